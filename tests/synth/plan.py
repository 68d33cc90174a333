"""What one study, series and instance of the corpus will contain (decided before writing)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydicom.uid import generate_uid

from dxai.synth.identities import FakeIdentity


def fake_uid(seed: int, *parts: object) -> str:
    """A deterministic UID under pydicom's root, derived from the seed and ``parts``."""
    return str(generate_uid(entropy_srcs=["dxai-synth", str(seed), *map(str, parts)]))


@dataclass(frozen=True)
class StudyPlan:
    """One study of one fake patient."""

    index: int
    identity: FakeIdentity
    study_uid: str
    prior_study_uid: str
    accession: str
    study_id: str
    requested_procedure_id: str
    scheduled_step_id: str
    date: str  # YYYYMMDD
    time: str  # HHMMSS


@dataclass(frozen=True)
class SeriesPlan:
    """One series: a modality encoded in one transfer syntax."""

    index: int
    modality: str
    transfer_syntax: str
    series_uid: str
    frame_of_reference_uid: str
    number: int
    time: str


@dataclass(frozen=True)
class InstancePlan:
    """One instance; the second of a series references the first."""

    number: int  # 1-based InstanceNumber
    sop_uid: str
    previous_sop_uid: str | None
    rng_key: str


def plan_study(seed: int, index: int, identity: FakeIdentity) -> StudyPlan:
    """Decide the identifiers and dates of study ``index``."""
    rng = random.Random(f"dxai-synth-study-{seed}-{index}")
    year, month, day = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return StudyPlan(
        index=index,
        identity=identity,
        study_uid=fake_uid(seed, "study", index),
        prior_study_uid=fake_uid(seed, "prior-study", index),
        accession=f"A{rng.randint(10000000, 99999999)}",
        study_id=f"S{rng.randint(1000, 9999)}",
        requested_procedure_id=f"RP{rng.randint(100000, 999999)}",
        scheduled_step_id=f"SPS{rng.randint(100000, 999999)}",
        date=f"{year:04d}{month:02d}{day:02d}",
        time=f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
    )


def plan_series(seed: int, study: StudyPlan, index: int, modality: str, ts: str) -> SeriesPlan:
    """Decide the identifiers of series ``index`` of ``study``."""
    hh, mm = int(study.time[:2]), int(study.time[2:4]) + index
    return SeriesPlan(
        index=index,
        modality=modality,
        transfer_syntax=ts,
        series_uid=fake_uid(seed, "series", study.index, index),
        frame_of_reference_uid=fake_uid(seed, "for", study.index),
        number=index + 1,
        time=f"{(hh + mm // 60) % 24:02d}{mm % 60:02d}{study.time[4:]}",
    )


def plan_instances(
    seed: int, study: StudyPlan, series: SeriesPlan, count: int
) -> list[InstancePlan]:
    """The instances of ``series``; instance n > 1 references instance n - 1."""
    uids = [fake_uid(seed, "sop", study.index, series.index, n) for n in range(count)]
    return [
        InstancePlan(
            number=n + 1,
            sop_uid=uids[n],
            previous_sop_uid=uids[n - 1] if n else None,
            rng_key=f"{seed}-{study.index}-{series.index}-{n}",
        )
        for n in range(count)
    ]
