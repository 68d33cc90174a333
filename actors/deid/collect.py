"""PHI tokens and original UIDs taken from values that the profile removes or replaces.

Values are decoded straight from their raw bytes; inside a sequence that is being removed only
elements that might be sequences (SQ, UN or no VR) are converted, to find nested items, so that
every depth contributes its tokens without converting every value.  A removed sequence that is
still raw is first read straight from its bytes (:mod:`dxai.actors.deid.rawseq`), with the same
result and no pydicom parsing; pydicom parses it only when that reader declines.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dxai.actors.deid.context import CODE_TAGS, Slot, WalkContext
from dxai.actors.deid.phi import TEXT_VRS
from dxai.actors.deid.rawseq import sequence_texts
from dxai.actors.deid.values import dictionary_vr, encodings_of, text_of

STANDARD_UID_PREFIX = "1.2.840.10008."
MIN_TRACKED_UID = 8  # junk such as "0" cannot identify anything and is not tracked by verify
_MAYBE_SEQUENCE = frozenset({None, "", "UN", "SQ"})
_UNDEFINED = 0xFFFFFFFF


def tracked_uid(uid: str) -> bool:
    """True for a UID whose presence in an output would count as a leak."""
    return len(uid) >= MIN_TRACKED_UID and not uid.startswith(STANDARD_UID_PREFIX)


def _collect_items(items: Iterable[Dataset], ctx: WalkContext) -> None:
    """Tokens of every public, non-coded text value in ``items``, at every depth."""
    for item in items:
        encodings = encodings_of(item)
        for tag in list(item.keys()):
            elem = item.get_item(tag)
            if elem is None:
                continue
            value = int(tag)
            vr = elem.VR
            if not vr and not value >> 16 & 1:
                vr = dictionary_vr(value)  # implicit VR: what conversion would choose
            if vr in _MAYBE_SEQUENCE:
                elem = item[tag]  # converted, as iterall() would, to find nested items
                vr = elem.VR
                if vr == "SQ":
                    _collect_items(elem.value or (), ctx)
                    continue
            if value >> 16 & 1 or vr == "CS" or value in CODE_TAGS:
                continue
            if vr in TEXT_VRS:
                ctx.collector.add(text_of(elem, encodings), str(vr))


def _collect_raw(slot: Slot, ctx: WalkContext) -> bool:
    """Collect a still-raw sequence from its bytes (see ``rawseq``); False when pydicom must."""
    elem = slot.elem
    if not (
        isinstance(elem, RawDataElement)
        and (elem.VR == "SQ" or (elem.VR is None and elem.is_implicit_VR))
        and isinstance(elem.value, bytes)
        and elem.is_little_endian
        and elem.length != _UNDEFINED
    ):
        return False
    try:
        texts = sequence_texts(elem.value, elem.is_implicit_VR, slot.encodings)
    except ValueError:
        return False
    for text, vr in texts:
        ctx.collector.add(text, vr)
    return True


def collect(slot: Slot, ctx: WalkContext) -> None:
    """Record the tokens (or original UIDs) of a value that is about to be removed or replaced."""
    vr = slot.vr
    if vr == "SQ":
        if _collect_raw(slot, ctx):
            return
        try:
            _collect_items(slot.ds[slot.tag].value or (), ctx)
        except Exception:  # noqa: BLE001 - an unreadable sequence is removed all the same
            ctx.counts["sq_unreadable_removed"] += 1
    elif vr == "UI":
        uids = (u.strip("\x00 ") for u in slot.text().split("\\"))
        ctx.original_uids.update(u for u in uids if tracked_uid(u))
    elif vr in TEXT_VRS:
        ctx.collector.add(slot.text(), vr, int(slot.tag))
