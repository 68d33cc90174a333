"""One recursive walk over a dataset that applies the compiled profile to every element.

Each element is looked at once and left unconverted: its VR comes from the raw element (or the
data dictionary), and only the values that are needed (removed or replaced text, kept
vocabulary) are decoded, straight from their bytes.  Kept elements stay raw, so writing them
costs no re-encoding.  Sequences are always entered, so every depth is de-identified, except the
two whole values that Table E.1-1 replaces under ``D``: a Content Sequence becomes one dummy item
(:mod:`dxai.actors.deid.structured`) and an Encapsulated Document a dummy document, or is
cleaned with the profile's ``clean_encapsulated_documents`` (:mod:`dxai.actors.deid.document`).
Cleaning of text (``C``) and of documents is deferred until the walk has collected every PHI
token of the instance.
"""

from __future__ import annotations

from functools import cache

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from dxai.actors.deid.collect import STANDARD_UID_PREFIX, collect, tracked_uid
from dxai.actors.deid.context import CODE_TAGS, Slot, WalkContext, tag_text
from dxai.actors.deid.document import (
    ENCAPSULATED_DOCUMENT,
    dummy_document,
    mime_type,
    set_document,
)
from dxai.actors.deid.iod import resolve_action
from dxai.actors.deid.phi import ADDRESS_TAGS
from dxai.actors.deid.private import clean_private
from dxai.actors.deid.structured import CONTENT_SEQUENCE, DUMMY_VALUES, replace_content_tree
from dxai.actors.deid.table import CompiledTable
from dxai.actors.deid.values import (
    dummy_value,
    element_vr,
    elements_of,
    encodings_of,
    text_of,
    vr_of,
)

__all__ = ["WalkContext", "apply_action", "is_free_text", "walk"]

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT"}
)
SCRUB_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "AE", "PN"})
DEFAULT_SCRUB_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})
# Cleaned values of these VRs are free text: PHI patterns are looked for in them too.
FREE_TEXT_VRS = DEFAULT_SCRUB_VRS
# What de-identification writes to mark its output (PatientIdentityRemoved, method, codes).
MARKING_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
# Kept values of these VRs are vocabulary (CS) or dates kept by the profile: never PHI tokens.
KEPT_VALUE_VRS = frozenset({"CS", "DA", "DT"})
# Nor are kept coded values, or an address the profile keeps (Retain Institution Identity):
# a patient's town in the institution's address is not the patient's.
KEPT_VALUE_TAGS = CODE_TAGS | ADDRESS_TAGS
_DATE_DEFAULTS = {"full": "K", "shift": "C", "remove": "D"}


def _set(ds: Dataset, tag: BaseTag, vr: str, value: object, ctx: WalkContext) -> None:
    ds[tag] = DataElement(tag, vr, value)
    if isinstance(value, str) and value:
        ctx.collector.generated.append(value)


def _remap_uids(slot: Slot, ctx: WalkContext) -> None:
    originals = [u.strip("\x00 ") for u in slot.text().split("\\")]
    mapped: list[str] = []
    for uid in originals:
        if not uid or uid.startswith(STANDARD_UID_PREFIX):
            mapped.append(uid)
            continue
        new = ctx.pseudo.uid(uid)
        ctx.uid_map[uid] = new
        if tracked_uid(uid):
            ctx.original_uids.add(uid)
        mapped.append(new)
    slot.ds[slot.tag] = DataElement(slot.tag, "UI", mapped if len(mapped) > 1 else mapped[0])


def _dates(slot: Slot, ctx: WalkContext) -> bool:
    """Shift a DA/DT element in place; False when the element is not a shiftable date."""
    vr = slot.vr
    if vr not in ("DA", "DT") or ctx.date_mode != "shift":
        return False
    text = slot.text()
    ctx.collector.add(text, vr)
    shift = ctx.pseudo.shift_da if vr == "DA" else ctx.pseudo.shift_dt
    parts = [shift(p, ctx.offset_days) if p.strip() else "" for p in text.split("\\")]
    _set(slot.ds, slot.tag, vr, "\\".join(parts), ctx)
    return True


def _sequence(ds: Dataset, tag: BaseTag, ctx: WalkContext, depth: int) -> None:
    try:
        items = ds[tag].value
    except Exception:  # noqa: BLE001 - any parse failure of a nested sequence is handled alike
        del ds[tag]
        ctx.counts["sq_unreadable_removed"] += 1
        ctx.errors.append(f"unreadable sequence {tag_text(int(tag))} removed")
        return
    for item in items or ():
        if isinstance(item, Dataset):
            walk(item, ctx, depth + 1)


def _replacement(slot: Slot, ctx: WalkContext) -> object:
    tag = int(slot.tag)
    if tag == PATIENT_ID:
        return ctx.pseudo.patient_id(slot.text())
    if tag == PATIENT_NAME:
        return ctx.pseudo.patient_name(ctx.patient_id, slot.text())
    if slot.vr == "UI":
        return "\\".join(ctx.pseudo.uid(u) for u in slot.text().split("\\") if u.strip())
    return dummy_value(slot.vr)


def _replaced_whole(slot: Slot, action: str, ctx: WalkContext) -> bool:
    """Content Sequence and Encapsulated Document under ``D``: a dummy (or a cleaned document).

    True when the element was handled here.  A ``D`` sequence is otherwise kept and entered
    (its items' own actions apply); a content tree or a document is not: see
    :mod:`dxai.actors.deid.structured` and :mod:`dxai.actors.deid.document`.
    """
    tag = int(slot.tag)
    if tag == CONTENT_SEQUENCE and action == "D":
        collect(slot, ctx)
        replace_content_tree(slot.ds)
        ctx.collector.generated.extend(DUMMY_VALUES)
        ctx.counts["D_content_tree"] += 1
        return True
    if tag != ENCAPSULATED_DOCUMENT or action not in ("D", "C"):
        return False
    if ctx.clean_documents:
        ctx.documents.append(slot.ds)  # cleaned once every PHI token is known
    else:
        set_document(slot.ds, dummy_document(mime_type(slot.ds)))
        ctx.counts["D_document"] += 1
    return True


def apply_action(slot: Slot, action: str, ctx: WalkContext, depth: int) -> None:
    """Apply one resolved action code (X, Z, D, U, K, C) to one element (already counted)."""
    ds, tag, vr = slot.ds, slot.tag, slot.vr
    if _replaced_whole(slot, action, ctx):
        return
    if action == "K" or (vr == "SQ" and action in ("D", "U", "C")):
        if vr == "SQ":
            _sequence(ds, tag, ctx, depth)
        elif vr in KEPT_VALUE_VRS or int(tag) in KEPT_VALUE_TAGS:
            ctx.collector.keep(slot.text())
        return
    if action == "C":
        if not _dates(slot, ctx) and vr in SCRUB_VRS:
            ctx.deferred.append((ds, tag, vr))
        return
    collect(slot, ctx)
    if action == "X":
        del ds[tag]
    elif action == "Z":
        is_name = int(tag) in (PATIENT_ID, PATIENT_NAME)
        empty: object = Sequence() if vr == "SQ" else ("" if vr in STRING_VRS else None)
        _set(ds, tag, vr, _replacement(slot, ctx) if is_name else empty, ctx)
    elif action == "U" and vr == "UI":
        _remap_uids(slot, ctx)
    elif not _dates(slot, ctx):  # D (or U on a non-UI element)
        _set(ds, tag, vr, _replacement(slot, ctx), ctx)


def _default_action(tag: int, vr: str, ctx: WalkContext) -> str:
    """The action for a public attribute that Table E.1-1 does not list (recorded by tag)."""
    action = "K"
    if tag in CODE_TAGS:
        action = "K"
    elif vr == "PN":
        action = "D"
    elif vr in ("DA", "DT"):
        action = _DATE_DEFAULTS[ctx.date_mode]
    elif vr in DEFAULT_SCRUB_VRS:
        action = "C"
    if action != "K" or vr == "SQ":
        ctx.defaults[tag_text(tag)] = action
    ctx.counts[f"default_{action}"] += 1
    return action


@cache
def _keyword(tag: int) -> str:
    return str(keyword_for_tag(tag))


def _action(tag: int, vr: str, ctx: WalkContext, depth: int) -> str:
    """The resolved action for a public attribute at ``depth``."""
    group = tag >> 16
    if tag in ctx.keep_tags:
        code: str | None = "K"
    elif 0x5000 <= group <= 0x50FF and not group & 1:
        code = ctx.table.curve
    elif 0x6000 <= group <= 0x60FF and not group & 1:
        code = ctx.table.overlay_comments if tag & 0xFFFF == 0x4000 else ctx.table.overlay_data
    else:
        code = ctx.table.actions.get(tag)
    if code is None:
        return _default_action(tag, vr, ctx)
    if code == "K":
        return code
    keyword = _keyword(tag) if code[0] in "XZ" else ""
    return resolve_action(code, ctx.family, keyword, depth)


def is_free_text(tag: int, vr: str, table: CompiledTable, keep_tags: frozenset[int]) -> bool:
    """True for an element that the profile cleans as text (``C``, of a text VR).

    Those elements are the free text of an output: what is left of them after cleaning is
    searched for PHI patterns as well as for the instance's own tokens (by the cleaning and by
    the verify pass alike).  Kept elements (``K``, keep_tags, coded values, the marking written
    by de-identification) and private elements are searched for tokens only.
    """
    if vr not in FREE_TEXT_VRS or tag in keep_tags or tag in CODE_TAGS or tag >> 16 & 1:
        return False
    if tag in MARKING_TAGS:
        return False
    group = tag >> 16
    if 0x6000 <= group <= 0x60FF:
        code: str | None = table.overlay_comments if tag & 0xFFFF == 0x4000 else table.overlay_data
    elif 0x5000 <= group <= 0x50FF:
        code = table.curve
    else:
        code = table.actions.get(tag)
    return code == "C" if code is not None else True


def walk(ds: Dataset, ctx: WalkContext, depth: int = 0) -> None:
    """De-identify ``ds`` in place, recursing into every sequence item."""
    retain_safe = ctx.table.private == "C"
    for kept in clean_private(ds, retain_safe, ctx.table.safe_private, ctx.counts):
        if element_vr(ds, kept) == "SQ":
            _sequence(ds, kept, ctx, depth)
    encodings = encodings_of(ds)
    counts = ctx.counts
    for tag, elem in elements_of(ds):  # each step changes only its own element
        value = int(tag)
        if value >> 16 & 1:
            continue
        if not value & 0xFFFF:
            del ds[tag]  # group length: retired, and wrong once values change
            continue
        vr = vr_of(elem)
        action = _action(value, vr, ctx, depth)
        counts[action] += 1
        if action == "K" and vr != "SQ":  # the common case: nothing to change
            if vr in KEPT_VALUE_VRS or value in KEPT_VALUE_TAGS:
                ctx.collector.keep(text_of(elem, encodings))
            continue
        apply_action(Slot(ds, tag, elem, vr, encodings), action, ctx, depth)
