"""Priors from a local archive folder (a configured ``local`` source): the same ranking as the
QIDO-RS search, over the studies whose files lie under the folder.

For a folder-based archive (a landing share, a small site's export folder, ``dxai demo``): every
file's header is read (no Pixel Data, tolerantly; unreadable files are skipped), grouped by
Study Instance UID, and ranked by :func:`~dxai.actors.inbound.priors.rank_priors`.  Symlinks
that lead out of the folder are not followed.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from pydicom.dataset import Dataset

from dxai.actors.inbound.patient_match import Demographics, demographics_of, parse_date
from dxai.actors.inbound.priors import CandidateStudy, CurrentStudy, Prior, rank_priors
from dxai.actors.inflate import dcmread_bounded
from dxai.configs.schema.priors import PriorsConfig

#: the most files one search reads (a folder larger than this is not an archive to scan)
MAX_FILES = 20_000


def _header(path: Path) -> Dataset | None:
    try:
        return dcmread_bounded(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - an unreadable file is not a candidate
        return None


def scan_candidates(root: Path) -> list[CandidateStudy]:
    """One candidate per study under ``root`` (blocking: run in a thread)."""
    inside = root.resolve()
    studies: dict[str, tuple[Dataset, set[str]]] = {}
    files = (p for p in sorted(inside.rglob("*")) if p.is_file())
    for count, path in enumerate(files):
        if count >= MAX_FILES or not path.resolve().is_relative_to(inside):
            continue
        ds = _header(path)
        uid = str(ds.get("StudyInstanceUID", "")) if ds is not None else ""
        if ds is None or not uid:
            continue
        _first, modalities = studies.setdefault(uid, (ds, set()))
        modalities.add(str(ds.get("Modality", "")).upper())
    return [_candidate(uid, ds, mods) for uid, (ds, mods) in studies.items()]


def _candidate(uid: str, ds: Dataset, modalities: set[str]) -> CandidateStudy:
    return CandidateStudy(
        study_uid=uid,
        patient=demographics_of(ds),
        study_date=parse_date(str(ds.get("StudyDate", ""))),
        modalities=tuple(sorted(m for m in modalities if m)),
        body_part=str(ds.get("BodyPartExamined", "") or ""),
        description=str(ds.get("StudyDescription", "") or ""),
    )


async def search_local_priors(
    root: Path, target: Demographics, current: CurrentStudy, config: PriorsConfig
) -> tuple[Prior, ...]:
    """The patient's prior studies under ``root``, ranked like the DICOMweb search."""
    if not config.enabled:
        return ()
    candidates = await anyio.to_thread.run_sync(scan_candidates, root)
    return rank_priors(target, current, candidates, config)
