"""One recursive walk over a dataset that applies the compiled profile to every element.

Elements whose action is keep are never converted from their raw bytes (that keeps the walk
fast); sequences are always entered, so every depth is de-identified.  Cleaning of text (``C``)
is deferred until the walk has collected every PHI token of the instance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from dxai.actors.deid.iod import resolve_action
from dxai.actors.deid.phi import TEXT_VRS, PhiCollector
from dxai.actors.deid.private import clean_private
from dxai.actors.deid.pseudonym import Pseudonymizer
from dxai.actors.deid.table import CompiledTable
from dxai.actors.deid.values import (
    dummy_value,
    element_vr,
    encodings_of,
    raw_text,
    value_text,
)

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STANDARD_UID_PREFIX = "1.2.840.10008."
MIN_TRACKED_UID = 8  # junk such as "0" cannot identify anything and is not tracked by verify
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT"}
)
SCRUB_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "AE", "PN"})
DEFAULT_SCRUB_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})
# Kept values of these VRs are vocabulary (CS) or dates kept by the profile: never PHI tokens.
KEPT_VALUE_VRS = frozenset({"CS", "DA", "DT"})
# Coded-entry attributes (not in Table E.1-1): kept verbatim and never PHI tokens.
CODE_TAGS = frozenset(
    {
        0x00080100,  # CodeValue
        0x00080102,  # CodingSchemeDesignator
        0x00080103,  # CodingSchemeVersion
        0x00080104,  # CodeMeaning
        0x00080105,  # MappingResource
        0x0008010F,  # ContextIdentifier
        0x00080119,  # LongCodeValue
        0x00080120,  # URNCodeValue
        0x00080117,  # ContextUID
        0x0040A040,  # ValueType
        0x0040A010,  # RelationshipType
    }
)


@dataclass
class WalkContext:
    """Everything one call of the walk accumulates (one per instance: thread-safe)."""

    table: CompiledTable
    pseudo: Pseudonymizer
    family: str
    keep_tags: frozenset[int]
    date_mode: str  # "full", "shift" or "remove"
    offset_days: int
    patient_id: str
    collector: PhiCollector = field(default_factory=PhiCollector)
    counts: Counter[str] = field(default_factory=Counter)
    uid_map: dict[str, str] = field(default_factory=dict)
    original_uids: set[str] = field(default_factory=set)
    deferred: list[tuple[Dataset, BaseTag, str]] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _text(ds: Dataset, tag: BaseTag) -> str:
    try:
        elem = ds.get_item(tag)
        if elem is not None and not elem.value:
            return ""
        return raw_text(elem, encodings_of(ds))
    except (ValueError, LookupError, TypeError):
        elem = ds.get_item(tag)
        data = getattr(elem, "value", b"")
        return data.decode("latin-1", "replace") if isinstance(data, bytes) else str(data)


def _collect_items(ds: Dataset, tag: BaseTag, ctx: WalkContext) -> None:
    """Collect PHI tokens from every public text value inside a sequence being removed."""
    try:
        items = list(ds[tag].value or ())
        for item in items:
            for elem in item.iterall():
                if elem.tag.is_private or elem.VR == "CS" or int(elem.tag) in CODE_TAGS:
                    continue
                if elem.VR in TEXT_VRS:
                    ctx.collector.add(value_text(elem.value), str(elem.VR))
    except Exception:  # noqa: BLE001 - an unreadable sequence is removed all the same
        ctx.counts["sq_unreadable_removed"] += 1


def _collect(ds: Dataset, tag: BaseTag, vr: str, ctx: WalkContext) -> None:
    if vr == "SQ":
        _collect_items(ds, tag, ctx)
    elif vr == "UI":
        uids = (u.strip("\x00 ") for u in _text(ds, tag).split("\\"))
        ctx.original_uids.update(
            u for u in uids if len(u) >= MIN_TRACKED_UID and not u.startswith(STANDARD_UID_PREFIX)
        )
    elif vr in TEXT_VRS:
        ctx.collector.add(_text(ds, tag), vr)


def _set(ds: Dataset, tag: BaseTag, vr: str, value: object, ctx: WalkContext) -> None:
    ds[tag] = DataElement(tag, vr, value)
    if isinstance(value, str) and value:
        ctx.collector.generated.append(value)


def _remap_uids(ds: Dataset, tag: BaseTag, ctx: WalkContext) -> None:
    originals = [u.strip("\x00 ") for u in _text(ds, tag).split("\\")]
    mapped: list[str] = []
    for uid in originals:
        if not uid or uid.startswith(STANDARD_UID_PREFIX):
            mapped.append(uid)
            continue
        new = ctx.pseudo.uid(uid)
        ctx.uid_map[uid] = new
        if len(uid) >= MIN_TRACKED_UID:
            ctx.original_uids.add(uid)
        mapped.append(new)
    ds[tag] = DataElement(tag, "UI", mapped if len(mapped) > 1 else mapped[0])


def _dates(ds: Dataset, tag: BaseTag, vr: str, ctx: WalkContext) -> bool:
    """Shift a DA/DT element in place; False when the element is not a shiftable date."""
    if vr not in ("DA", "DT") or ctx.date_mode != "shift":
        return False
    text = _text(ds, tag)
    ctx.collector.add(text, vr)
    shift = ctx.pseudo.shift_da if vr == "DA" else ctx.pseudo.shift_dt
    parts = [shift(p, ctx.offset_days) if p.strip() else "" for p in text.split("\\")]
    _set(ds, tag, vr, "\\".join(parts), ctx)
    return True


def _sequence(ds: Dataset, tag: BaseTag, ctx: WalkContext, depth: int) -> None:
    try:
        items = ds[tag].value
    except Exception:  # noqa: BLE001 - any parse failure of a nested sequence is handled alike
        del ds[tag]
        ctx.counts["sq_unreadable_removed"] += 1
        ctx.errors.append(f"unreadable sequence {_tag_text(int(tag))} removed")
        return
    for item in items or ():
        if isinstance(item, Dataset):
            walk(item, ctx, depth + 1)


def _replacement(tag: int, vr: str, ctx: WalkContext, ds: Dataset, btag: BaseTag) -> object:
    if tag == PATIENT_ID:
        return ctx.pseudo.patient_id(_text(ds, btag))
    if tag == PATIENT_NAME:
        return ctx.pseudo.patient_name(ctx.patient_id, _text(ds, btag))
    if vr == "UI":
        return "\\".join(ctx.pseudo.uid(u) for u in _text(ds, btag).split("\\") if u.strip())
    return dummy_value(vr)


def apply_action(ds: Dataset, tag: BaseTag, action: str, ctx: WalkContext, depth: int) -> None:
    """Apply one resolved action code (X, Z, D, U, K, C) to one element."""
    vr = element_vr(ds, tag)
    ctx.counts[action] += 1
    if action == "K" or (vr == "SQ" and action in ("D", "U", "C")):
        if vr == "SQ":
            _sequence(ds, tag, ctx, depth)
        elif vr in KEPT_VALUE_VRS or int(tag) in CODE_TAGS:
            ctx.collector.keep(_text(ds, tag))
        return
    if action == "C":
        if not _dates(ds, tag, vr, ctx) and vr in SCRUB_VRS:
            ctx.deferred.append((ds, tag, vr))
        return
    _collect(ds, tag, vr, ctx)
    if action == "X":
        del ds[tag]
    elif action == "Z":
        is_name = int(tag) in (PATIENT_ID, PATIENT_NAME)
        empty: object = Sequence() if vr == "SQ" else ("" if vr in STRING_VRS else None)
        _set(ds, tag, vr, _replacement(int(tag), vr, ctx, ds, tag) if is_name else empty, ctx)
    elif action == "U" and vr == "UI":
        _remap_uids(ds, tag, ctx)
    elif not _dates(ds, tag, vr, ctx):  # D (or U on a non-UI element)
        _set(ds, tag, vr, _replacement(int(tag), vr, ctx, ds, tag), ctx)


def _default_action(ds: Dataset, tag: BaseTag, ctx: WalkContext) -> str:
    """The action for a public attribute that Table E.1-1 does not list (recorded by tag)."""
    vr = element_vr(ds, tag)
    action = "K"
    if int(tag) in CODE_TAGS:
        action = "K"
    elif vr == "PN":
        action = "D"
    elif vr in ("DA", "DT"):
        action = {"full": "K", "shift": "C", "remove": "D"}[ctx.date_mode]
    elif vr in DEFAULT_SCRUB_VRS:
        action = "C"
    if action != "K" or vr == "SQ":
        ctx.defaults[_tag_text(int(tag))] = action
    return action


def _public_action(tag: int, ctx: WalkContext) -> str | None:
    group, element = tag >> 16, tag & 0xFFFF
    if tag in ctx.keep_tags:
        return "K"
    if 0x5000 <= group <= 0x50FF and not group & 1:
        return ctx.table.curve
    if 0x6000 <= group <= 0x60FF and not group & 1:
        return ctx.table.overlay_comments if element == 0x4000 else ctx.table.overlay_data
    return ctx.table.action_for(tag)


def walk(ds: Dataset, ctx: WalkContext, depth: int = 0) -> None:
    """De-identify ``ds`` in place, recursing into every sequence item."""
    retain_safe = ctx.table.private == "C"
    for kept in clean_private(ds, retain_safe, ctx.table.safe_private, ctx.counts):
        if element_vr(ds, kept) == "SQ":
            _sequence(ds, kept, ctx, depth)
    for tag in list(ds.keys()):
        value = int(tag)
        if value >> 16 & 1:
            continue
        if value & 0xFFFF == 0:
            del ds[tag]  # group length: retired, and wrong once values change
            continue
        code = _public_action(value, ctx)
        if code is None:
            action = _default_action(ds, tag, ctx)
            ctx.counts[f"default_{action}"] += 1
        else:
            keyword = str(keyword_for_tag(value)) if code[0] in "XZ" else ""
            action = resolve_action(code, ctx.family, keyword, depth)
        apply_action(ds, tag, action, ctx, depth)
