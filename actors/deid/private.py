"""Private attributes: remove them all, or keep the safe ones (Table E.3.10-1) of known creators.

A private data element ``(gggg,bbxx)`` belongs to the block reserved by the creator element
``(gggg,00bb)``.  With Retain Safe Private an element is kept only when its creator element is
present and non-empty and ``(gggg, xx, creator)`` is in the safe list; a block whose creator is
unknown (missing creator element, or a creator not in the list) is always removed.  Creator
elements are kept only while at least one element of their block is kept.
"""

from __future__ import annotations

from collections import Counter

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dxai.actors.deid.values import raw_text


def _creators(ds: Dataset, tags: list[BaseTag]) -> dict[tuple[int, int], str]:
    out: dict[tuple[int, int], str] = {}
    for tag in tags:
        element = int(tag) & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            try:
                text = raw_text(ds.get_item(tag), ["iso8859"])
            except (ValueError, LookupError, TypeError):
                text = ""
            out[(int(tag) >> 16, element)] = text.strip().strip("\x00").strip().upper()
    return out


def _is_safe(
    tag: int, creators: dict[tuple[int, int], str], safe: frozenset[tuple[int, int, str]]
) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    if element < 0x1000:
        return False
    creator = creators.get((group, element >> 8))
    if not creator:
        return False
    return (group, element & 0xFF, creator) in safe


def clean_private(
    ds: Dataset, retain_safe: bool, safe: frozenset[tuple[int, int, str]], counts: Counter[str]
) -> list[BaseTag]:
    """Remove private elements from ``ds`` (one level); return the kept safe data elements."""
    tags = [t for t in list(ds.keys()) if int(t) >> 16 & 1]
    if not tags:
        return []
    creators = _creators(ds, tags) if retain_safe else {}
    kept: list[BaseTag] = []
    used_blocks: set[tuple[int, int]] = set()
    for tag in tags:
        value = int(tag)
        if 0x0010 <= (value & 0xFFFF) <= 0x00FF:
            continue
        if retain_safe and _is_safe(value, creators, safe):
            kept.append(tag)
            used_blocks.add((value >> 16, (value & 0xFFFF) >> 8))
            continue
        del ds[tag]
        counts["private_removed"] += 1
    for tag in tags:
        value = int(tag)
        block = (value >> 16, value & 0xFFFF)
        if 0x0010 <= block[1] <= 0x00FF and block not in used_blocks:
            del ds[tag]
            counts["private_removed"] += 1
    counts["private_kept"] += len(kept)
    return kept
