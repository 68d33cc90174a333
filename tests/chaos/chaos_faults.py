"""The chaos plan (seeded), the studies with planted PHI, and the event stream.

A plan is a list of faults, each after a random wait: SIGKILL + restart of the daemon, a
broker restart (SIGTERM or SIGKILL, down a few seconds), the source or the destination Orthanc
down and back up, the slow/failing pixel engine (a daemon incarnation with the ``engine``
variant, sent a probe study of its own and kept until that study concluded, then SIGKILLed
and restarted with the ``base`` variant), and a full staging disk for a few seconds.  The same
seed gives the same plan and the same studies; timings on a busy machine still vary, so a
replay repeats the faults and their order, not the exact instant each lands in a job.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from dataclasses import asdict, dataclass
from io import BytesIO
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from deid_checks import input_phi
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

SERIES, PER_SERIES = 2, 3
_SYLLABLES = ("zor", "qua", "vex", "lim", "dra", "kel", "mur", "tip", "hon", "bex", "wul", "sta")


@dataclass(frozen=True)
class Fault:
    """One planned fault: what, after how long a wait, for how long (outages)."""

    kind: str  # kill | engine | kafka | source | dest | disk
    wait_s: float
    duration_s: float = 0.0
    hard: bool = False  # kafka: SIGKILL instead of SIGTERM


def make_plan(rng: random.Random, kills: int, wait_s: tuple[float, float]) -> list[Fault]:
    """``kills`` daemon kills (one of them starts the engine phase) and, per eight kills (at
    least once), a broker restart, a source outage, a destination outage and a full disk."""
    others = max(1, kills // 8)
    kinds = ["kill"] * (kills - 1) + ["engine"]
    kinds += ["kafka", "source", "dest", "disk"] * others
    rng.shuffle(kinds)
    if kinds[-1] == "engine":  # the engine phase must end before the final settle
        kinds[-1], kinds[0] = kinds[0], kinds[-1]
    plan = []
    for kind in kinds:
        wait = round(rng.uniform(*wait_s), 2)
        duration = round(rng.uniform(2.0, 6.0), 2) if kind in ("kafka", "source", "dest") else 0.0
        if kind == "disk":
            duration = round(rng.uniform(3.0, 8.0), 2)
        plan.append(Fault(kind, wait, duration, hard=kind == "kafka" and rng.random() < 0.5))
    return plan


def plan_json(plan: list[Fault]) -> list[dict[str, Any]]:
    """The plan as JSON-able dicts (for the report)."""
    return [asdict(f) for f in plan]


def _planted(rng: random.Random, n: int) -> dict[str, str]:
    """Distinctive fake PHI for study ``n`` (never real people)."""

    def word() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()

    birth = f"19{rng.randrange(30, 99)}0{rng.randrange(1, 9)}{rng.randrange(10, 28)}"
    return {
        "PatientName": f"{word()}^{word()}",
        "PatientID": f"CHX{rng.randrange(10**7, 10**8)}",
        "PatientBirthDate": birth,
        "AccessionNumber": f"ACC{rng.randrange(10**6, 10**7)}-{n}",
        "PatientAddress": f"{rng.randrange(10, 999)} {word()} Street",
        "ReferringPhysicianName": f"{word()}^{word()}",
    }


@dataclass
class Study:
    """One uploaded study: its UID, its job id, the PHI tokens planted in it."""

    uid: str
    job_id: str
    phi: set[str]


def _template() -> Dataset:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None, "pydicom's bundled CT_small.dcm is missing"
    return dcmread(path)


async def upload_studies(base_url: str, rng: random.Random, count: int, tag: str) -> list[Study]:
    """Put ``count`` small CT studies with planted PHI into the (private) source archive."""
    template = _template()
    studies = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for n in range(count):
            for key, value in _planted(rng, n).items():
                setattr(template, key, value)
            template.StudyInstanceUID = generate_uid()
            for _ in range(SERIES):
                template.SeriesInstanceUID = generate_uid()
                for _ in range(PER_SERIES):
                    template.SOPInstanceUID = generate_uid()
                    template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
                    buf = BytesIO()
                    template.save_as(buf, enforce_file_format=True)
                    (await http.post("/instances", content=buf.getvalue())).raise_for_status()
            job = f"chaos-{tag}-{n}"
            studies.append(Study(template.StudyInstanceUID, job, input_phi(template)))
    return studies


def event_bytes(study: Study) -> bytes:
    """The ``study_scheduled_for_exchange`` event of a study."""
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": study.uid,
        "destination": "dest",
        "exchange_job_id": study.job_id,
        "source": {"kind": "dicomweb"},
    }
    return json.dumps(event).encode()


async def send_one(bootstrap: str, topic: str, study: Study, deadline: float) -> int:
    """Send one event, reconnecting while the broker is down; how many tries failed."""
    failures = 0
    while True:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=5000
        )
        try:
            await producer.start()
            await producer.send_and_wait(topic, event_bytes(study), key=study.uid.encode())
            return failures
        except KafkaError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # retry pace while the broker is down
        finally:
            await producer.stop()


async def stream_events(
    bootstrap: str, topic: str, studies: list[Study], interval_s: float, deadline: float
) -> dict[str, int]:
    """Send one event per study, ``interval_s`` apart (the stream the faults land in).

    A send that fails while the broker is down is retried (a retried send that had in fact
    landed is a redelivery, which the daemon must absorb)."""
    failures = 0
    for study in studies:
        failures += await send_one(bootstrap, topic, study, deadline)
        await asyncio.sleep(interval_s)  # the stream's pace, not a synchronisation
    return {"events_sent": len(studies), "send_failures_retried": failures}


SIGNALS = {True: signal.SIGKILL, False: signal.SIGTERM}
