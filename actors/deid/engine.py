"""The header de-identification engine: PS3.15 Annex E profile + keyed pseudonyms + verify.

``Deidentifier`` is immutable after construction and keeps per-call state in a fresh
:class:`~dxai.actors.deid.walker.WalkContext`, so one instance may be shared by worker threads.
"""

from __future__ import annotations

import copy
import functools
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from dxai.actors.deid.document import (
    cleaned_document,
    document_bytes,
    dummy_document,
    mime_type,
    set_document,
)
from dxai.actors.deid.iod import iod_family
from dxai.actors.deid.marking import mark
from dxai.actors.deid.phi import PhiMatcher
from dxai.actors.deid.pseudonym import Pseudonymizer
from dxai.actors.deid.table import compile_table
from dxai.actors.deid.values import dummy_value, encodings_of, raw_text
from dxai.actors.deid.verify import VerifyResult, verify
from dxai.actors.deid.walker import FREE_TEXT_VRS, WalkContext, is_free_text, walk
from dxai.configs.errors import DeidentificationError
from dxai.configs.schema.deid import DeidProfile

# File Meta elements that may identify the sender; removed from every output.
_META_DROP = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)


@dataclass
class DeidResult:
    """A de-identified dataset and what was done to it (no PHI apart from ``phi_values``)."""

    dataset: Dataset
    actions: Counter[str]
    phi_values: frozenset[str]
    original_uids: frozenset[str]
    uid_map: dict[str, str]
    defaults: dict[str, str]
    date_offset_days: int | None
    patient_pseudonym: tuple[str, str] | None = None  # (original PatientID, pseudonym)
    warnings: list[str] = field(default_factory=list)
    free_text_seconds: float = 0.0  # time spent cleaning text and documents (after the walk)


def _date_mode(options: frozenset[str]) -> str:
    if "retain_longitudinal_full_dates" in options:
        return "full"
    if "retain_longitudinal_modified_dates" in options:
        return "shift"
    return "remove"


def _keep_tags(keywords: Iterable[str]) -> frozenset[int]:
    tags = set()
    for word in keywords:
        tag = tag_for_keyword(word)
        if tag is None:
            raise DeidentificationError(f"keep_tags: unknown attribute keyword {word!r}")
        tags.add(int(tag))
    return frozenset(tags)


class Deidentifier:
    """Applies one profile with one key; ``deidentify`` is pure CPU and thread-safe."""

    def __init__(
        self,
        profile: DeidProfile,
        key: bytes,
        *,
        profile_name: str = "custom",
        date_shift_max_days: int = 365,
    ) -> None:
        if len(key) < 16:
            raise DeidentificationError("the de-identification key must be at least 16 bytes")
        self.profile = profile
        self.profile_name = profile_name
        self.options = frozenset(profile.options)
        self.table = compile_table(self.options)
        self.pseudo = Pseudonymizer(key=key, date_shift_max_days=date_shift_max_days)
        self.keep_tags = _keep_tags(profile.keep_tags)
        self.date_mode = _date_mode(self.options)
        self.clean_documents = profile.clean_encapsulated_documents
        self._free_text: dict[tuple[int, str], bool] = {}

    def _context(self, ds: Dataset) -> WalkContext:
        patient_id = _top_text(ds, 0x00100020)
        return WalkContext(
            table=self.table,
            pseudo=self.pseudo,
            family=iod_family(_sop_class(ds)),
            keep_tags=self.keep_tags,
            date_mode=self.date_mode,
            offset_days=self.pseudo.date_offset_days(patient_id),
            patient_id=patient_id,
            clean_documents=self.clean_documents,
        )

    def deidentify(self, ds: Dataset, *, in_place: bool = False) -> DeidResult:
        """De-identify ``ds`` (a copy unless ``in_place``) and return the result."""
        out = ds if in_place else copy.deepcopy(ds)
        ctx = self._context(out)
        walk(out, ctx)
        tokens = ctx.collector.final_tokens()
        started = time.perf_counter()
        _scrub_deferred(ctx, tokens)
        _clean_documents(ctx, tokens)
        free_text_seconds = time.perf_counter() - started
        mark(out, self.profile_name, self.options, self.date_mode)
        _fix_file_meta(out)
        pseudonym = out.get("PatientID")
        return DeidResult(
            dataset=out,
            actions=ctx.counts,
            phi_values=tokens,
            original_uids=frozenset(ctx.original_uids),
            uid_map=dict(ctx.uid_map),
            defaults=dict(ctx.defaults),
            date_offset_days=ctx.offset_days if self.date_mode == "shift" else None,
            patient_pseudonym=(ctx.patient_id, str(pseudonym)) if pseudonym else None,
            warnings=ctx.errors,
            free_text_seconds=free_text_seconds,
        )

    def verify(
        self, output: Dataset, phi_values: Iterable[str], *, original_uids: Iterable[str] = ()
    ) -> VerifyResult:
        """Scan ``output`` for PHI tokens (and original UIDs unless UIDs are retained).

        The elements this profile cleans as text (:func:`~dxai.actors.deid.walker.is_free_text`)
        and every encapsulated document are also searched for PHI patterns.
        """
        uids = () if "retain_uids" in self.options else original_uids
        return verify(output, phi_values, original_uids=uids, free_text=self.is_free_text)

    def is_free_text(self, tag: int, vr: str) -> bool:
        """True for an element that this profile cleans as text (PHI patterns apply)."""
        key = (tag, vr)
        known = self._free_text.get(key)
        if known is None:
            known = is_free_text(tag, vr, self.table, self.keep_tags)
            self._free_text[key] = known  # same answer from any thread: a benign race
        return known


def _sop_class(ds: Dataset) -> str:
    sop_class = _top_text(ds, 0x00080016)
    meta = getattr(ds, "file_meta", None)
    if not sop_class and meta is not None:
        sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
    return sop_class


def _top_text(ds: Dataset, tag: int) -> str:
    if tag not in ds:
        return ""
    try:
        return raw_text(ds.get_item(BaseTag(tag)), encodings_of(ds)).strip("\x00 ")
    except (ValueError, LookupError, TypeError):
        return ""


def _deferred_texts(ctx: WalkContext) -> list[str | None]:
    texts: list[str | None] = []
    for ds, tag, _ in ctx.deferred:
        try:
            texts.append(raw_text(ds.get_item(tag), encodings_of(ds)))
        except (ValueError, LookupError, TypeError):
            texts.append(None)
    return texts


def _scrub_deferred(ctx: WalkContext, tokens: frozenset[str]) -> None:
    if not ctx.deferred:
        return
    texts = _deferred_texts(ctx)
    matcher = PhiMatcher.for_text(tokens, "\x00".join(t for t in texts if t))
    for (ds, tag, vr), text in zip(ctx.deferred, texts, strict=True):
        if text is None:
            del ds[tag]
            ctx.counts["C_unreadable_removed"] += 1
            continue
        cleaned = matcher.scrub(text, patterns=vr in FREE_TEXT_VRS)
        if cleaned != text.strip():
            # A value that was nothing but PHI gets a dummy: it may be Type 1.
            ds[tag] = DataElement(tag, vr, cleaned or dummy_value(vr))
            ctx.counts["C_cleaned"] += 1


def _scrub_document(tokens: frozenset[str], text: str) -> str:
    return PhiMatcher.for_text(tokens, text).scrub(text, patterns=True)


def _clean_documents(ctx: WalkContext, tokens: frozenset[str]) -> None:
    """Clean each encapsulated document left for it (see :mod:`dxai.actors.deid.document`)."""
    scrub = functools.partial(_scrub_document, tokens)
    for ds in ctx.documents:
        mime = mime_type(ds)
        cleaned = cleaned_document(document_bytes(ds), mime, scrub)
        set_document(ds, dummy_document(mime) if cleaned is None else cleaned)
        ctx.counts["C_document" if cleaned is not None else "D_document"] += 1


def _fix_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag in _META_DROP:
        if tag in meta:
            del meta[tag]
    for meta_tag, tag in ((0x00020003, 0x00080018), (0x00020002, 0x00080016)):
        if tag in ds:  # Media Storage SOP Instance / Class UID follow the dataset
            meta[meta_tag] = DataElement(meta_tag, "UI", ds[tag].value)
    meta[0x00020012] = DataElement(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
    if 0x00020013 in meta:
        del meta[0x00020013]
