"""Assemble instances (header + pixels + burned-in text), write them, and record ground truth."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dxai.synth import header, private
from dxai.synth.burnin import burn_in
from dxai.synth.encode import SynthError, encode_pixels, resolve_transfer_syntax
from dxai.synth.identities import make_identity
from dxai.synth.iods import add_image_pixel
from dxai.synth.manifest import BurnedInText, CorpusManifest, FileRecord
from dxai.synth.modalities import MODALITIES, ModalitySpec
from dxai.synth.plan import (
    InstancePlan,
    SeriesPlan,
    StudyPlan,
    plan_instances,
    plan_series,
    plan_study,
)
from dxai.synth.texts import image_items

INSTANCES_PER_SERIES = 2
DEFAULT_MODALITIES = ("CT", "MR", "US", "SC", "DX")
GROUND_TRUTH_NAME = "ground_truth.json"
ProgressCallback = Callable[[int, int], None]
_IMPLEMENTATION_CLASS_UID = 0x00020012  # names the writing software, not the instance


@dataclass(frozen=True)
class Job:
    """One instance to generate."""

    spec: ModalitySpec
    study: StudyPlan
    series: SeriesPlan
    instance: InstancePlan

    @property
    def relpath(self) -> str:
        """``<study>/<series>/<instance>.dcm`` relative to the corpus root."""
        return f"{self.study.index}/{self.series.index}/{self.instance.number - 1}.dcm"


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def collect_uids(ds: Dataset) -> list[str]:
    """Every UID value outside the DICOM root in ``ds`` (file meta, nested and private too)."""
    found: list[str] = []

    def visit(dataset: Dataset) -> None:
        for elem in dataset:
            if elem.tag == _IMPLEMENTATION_CLASS_UID:
                continue
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)
            elif elem.VR == "UI" and elem.value:
                values = elem.value if elem.VM > 1 else [elem.value]
                found.extend(str(v) for v in values if UID(str(v)).is_private)

    visit(ds.file_meta)
    visit(ds)
    return _unique(found)


def _plant_header(job: Job, ds: Dataset, rng: random.Random, phi: list[str]) -> None:
    ident = job.study.identity
    header.add_patient(ds, ident, rng, phi)
    header.add_study(ds, job.study, rng, phi)
    header.add_series(ds, job.study, job.series, job.spec.header_modality, phi)
    header.add_equipment(ds, ident, job.spec.manufacturer, phi)
    header.add_image_common(ds, job.study, job.instance, job.spec.sop_class_uid, rng, phi)
    private.add_private_blocks(ds, job.study, phi)
    if rng.random() < 0.3:
        private.add_original_attributes(ds, job.study, phi)


def build_instance(job: Job, seed: int, small: bool) -> tuple[Dataset, FileRecord]:
    """Build one instance in memory and its ground-truth record."""
    rng = random.Random(f"dxai-synth-instance-{job.instance.rng_key}")
    gen = np.random.default_rng([seed, job.study.index, job.series.index, job.instance.number])
    phantom = job.spec.phantom(gen, rng, small)
    n_frames = int(phantom.frames.shape[0])
    burned = burn_in(phantom, image_items(job.spec.name, job.study, rng, n_frames), rng)
    phi: list[str] = []
    ds = header.new_dataset(job.spec.sop_class_uid, job.instance.sop_uid, job.study.identity)
    _plant_header(job, ds, rng, phi)
    job.spec.iod(ds, phantom, job.series, job.instance, rng)
    has_phi = any(b.phi for b in burned)
    ds.BurnedInAnnotation = "YES" if has_phi and rng.random() < 0.85 else "NO"
    if job.spec.name == "MR" and rng.random() < 0.5:
        private.add_overlay(ds, *phantom.shape, job.study, phi)
    add_image_pixel(ds, phantom)
    ts = resolve_transfer_syntax(job.series.transfer_syntax)
    encode_pixels(ds, phantom, ts)
    return ds, _record(job, ds, phi, burned, n_frames)


def _record(
    job: Job, ds: Dataset, phi: list[str], burned: list[BurnedInText], n_frames: int
) -> FileRecord:
    return FileRecord(
        path=job.relpath,
        modality=job.spec.name,
        sop_class_uid=job.spec.sop_class_uid,
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        study_instance_uid=job.study.study_uid,
        series_instance_uid=job.series.series_uid,
        sop_instance_uid=job.instance.sop_uid,
        frames=n_frames,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        phi_strings=_unique(phi),
        original_uids=collect_uids(ds),
        burned_in=burned,
    )


def _series_syntaxes(spec: ModalitySpec, wanted: Sequence[UID] | None) -> list[str]:
    names = list(spec.transfer_syntaxes)
    if wanted is None:
        return names
    return [n for n in names if resolve_transfer_syntax(n) in wanted]


def plan_jobs(
    seed: int, studies: int, modalities: Sequence[str], transfer_syntaxes: Sequence[str] | None
) -> Iterator[Job]:
    """Every instance of the corpus, in write order."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise SynthError(f"unknown modalities {unknown}; choose from {sorted(MODALITIES)}")
    wanted = (
        None
        if transfer_syntaxes is None
        else [resolve_transfer_syntax(t) for t in transfer_syntaxes]
    )
    for patient in range(studies):
        identity = make_identity(seed, patient)
        for m, name in enumerate(modalities):
            spec = MODALITIES[name]
            study = plan_study(seed, patient * len(modalities) + m, identity)
            for s, ts in enumerate(_series_syntaxes(spec, wanted)):
                series = plan_series(seed, study, s, name, ts)
                for inst in plan_instances(seed, study, series, INSTANCES_PER_SERIES):
                    yield Job(spec, study, series, inst)


def generate_corpus(
    out_dir: Path,
    *,
    seed: int = 0,
    studies: int = 2,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    transfer_syntaxes: Sequence[str] | None = None,
    small: bool = False,
    progress: ProgressCallback | None = None,
) -> CorpusManifest:
    """Write a synthetic corpus under ``out_dir`` and its ``ground_truth.json``.

    ``studies`` fake patients each get one study per modality; each study has one series per
    transfer syntax suited to the modality (restricted to ``transfer_syntaxes`` when given: short
    names or UIDs) with two instances, the second referencing the first.  Same seed, same bytes.
    """
    jobs = list(plan_jobs(seed, studies, modalities, transfer_syntaxes))
    if not jobs:
        raise SynthError("no modality supports the requested transfer syntaxes")
    out_dir = Path(out_dir)
    records: list[FileRecord] = []
    for done, job in enumerate(jobs, start=1):
        ds, record = build_instance(job, seed, small)
        target = out_dir / job.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        records.append(record)
        if progress is not None:
            progress(done, len(jobs))
    manifest = CorpusManifest(seed=seed, files=records)
    manifest.dump(out_dir / GROUND_TRUTH_NAME)
    return manifest
