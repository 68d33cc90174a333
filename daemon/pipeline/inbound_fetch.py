"""Fetch an inbound study into the job's staging area and view it as the inbound actors do.

Every instance is staged as it arrives (in memory within the daemon's budget, else on disk);
its header is read once (tolerantly, without Pixel Data) and its whole dataset again only when
an actor asks (pixel checks, AI preprocessing, SR evidence).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydicom.dataset import Dataset

from dxai.actors.deid.fileio import read_dicom
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.actors.inflate import dcmread_bounded
from dxai.configs.errors import ForeignInstanceError
from dxai.daemon.gateways.base import StudySource, foreign
from dxai.daemon.pipeline.staging import JobArea


def _header(raw: bytes) -> tuple[Dataset, str]:
    """The header (no Pixel Data) and transfer syntax of one instance; empty when unreadable:
    the QC gate then reports the instance as undecodable (its ``load`` raises)."""
    try:
        ds = dcmread_bounded(raw, stop_before_pixels=True, force=True)
        ts = str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", ""))
        list(ds.keys())  # a damaged element list fails here rather than in an actor
        return ds, ts
    except Exception:  # noqa: BLE001 - an unreadable header is a finding, not a crash
        return Dataset(), ""


def stage_instance(area: JobArea, raw: bytes) -> InstanceRef:
    """Stage ``raw`` and return its reference (blocking: run in a thread)."""
    header, ts = _header(raw)
    staged = area.stage_input(raw)

    def load() -> Dataset:
        return read_dicom(staged)

    return InstanceRef(header=header, load=load, size_bytes=len(raw), transfer_syntax=ts)


async def fetch_study(
    source: StudySource, study_uid: str, series: Sequence[str], area: JobArea
) -> StudyView:
    """Every series of the study, instance by instance into staging; the study's view."""
    views: list[SeriesView] = []
    for series_uid in series:
        refs: list[InstanceRef] = []
        async for raw in source.iter_instances(study_uid, series_uid):
            refs.append(await asyncio.to_thread(stage_instance, area, raw))
            found = str(refs[-1].header.get("StudyInstanceUID", ""))
            if foreign(found, study_uid):  # another patient's images in this study's read
                raise ForeignInstanceError("the archive answered with an instance of another study")
        if refs:
            views.append(SeriesView(series_uid, tuple(refs)))
    return StudyView(study_uid, tuple(views))
