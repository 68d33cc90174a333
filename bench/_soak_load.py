"""The soak benchmark's workload: template studies from ``dxai.synth``, sent again and again with
fresh UIDs (stored in the source Orthanc, then one Kafka event each).

Templates (generated once, cached in the temp folder): CT series of ``ct_slices`` axial slices
with PHI burned into one slice in the middle (the header does not say so: only the pixels tell),
and ultrasound (multi-frame) and secondary-capture studies from ``generate_corpus`` whose every
image carries burned-in text.  Each study sent gets new Study/Series/SOP/Frame-of-Reference UIDs
(references inside the study follow), so the source archive and the daemons see a new study.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
from aiokafka import AIOKafkaProducer
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.synth.corpus import collect_uids


@dataclass(frozen=True)
class Template:
    """One template study: its kind (``ct``, ``us``, ``sc``) and its Part 10 files."""

    kind: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Workload:
    """What the templates are made of (the cache key)."""

    seed: int = 11
    ct_slices: int = 8
    ct_size: int = 512
    patients: int = 2
    small: bool = False
    transfer_syntaxes: tuple[str, ...] = ("explicit", "jpeg")

    def key(self) -> str:
        """A short hash of the parameters, naming the cache folder."""
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        """The parameters, for the report."""
        return {
            "ct": f"{self.ct_slices} slices {self.ct_size}x{self.ct_size}, text on one slice",
            "us_sc": f"synth corpus ({'small' if self.small else 'full'} size), "
            f"transfer syntaxes {list(self.transfer_syntaxes)}, text on every image",
            "seed": self.seed,
        }


def _write_ct(root: Path, work: Workload, study: int) -> Path:
    from dxai.synth.series import ct_series

    folder = root / f"ct{study}"
    folder.mkdir(parents=True, exist_ok=True)
    middle = {work.ct_slices // 2}
    series = ct_series(work.seed, study, work.ct_slices, size=work.ct_size, text_on=middle)
    for n, item in enumerate(series):
        item.dataset.save_as(folder / f"{n:04d}.dcm", enforce_file_format=True)
    return folder


def _write_corpus(root: Path, work: Workload) -> list[tuple[str, Path]]:
    from dxai.synth import generate_corpus

    out = root / "corpus"
    generate_corpus(
        out,
        seed=work.seed,
        studies=work.patients,
        modalities=("US", "SC"),
        transfer_syntaxes=work.transfer_syntaxes,
        small=work.small,
    )
    folders = sorted((p for p in out.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    kinds = ("us", "sc")  # generate_corpus: one study per modality, in order, per patient
    return [(kinds[int(p.name) % 2], p) for p in folders]


def templates(work: Workload) -> list[Template]:
    """The cached templates (generated on first use), CT and US/SC interleaved."""
    root = Path(tempfile.gettempdir()) / f"dxai-soak-templates-{work.key()}"
    done = root / "complete"
    if not done.exists():
        folders = [("ct", _write_ct(root, work, s)) for s in range(work.patients)]
        folders += _write_corpus(root, work)
        order = [(kind, str(path)) for kind, path in folders]
        done.write_text(json.dumps(order), encoding="utf-8")
    order = json.loads(done.read_text(encoding="utf-8"))
    out = [Template(kind, tuple(sorted(Path(p).rglob("*.dcm")))) for kind, p in order]
    cts = [t for t in out if t.kind == "ct"]
    rest = [t for t in out if t.kind != "ct"]
    mixed: list[Template] = []
    for n, other in enumerate(rest):  # ct, us, ct, sc, ...
        mixed += [cts[n % len(cts)], other]
    return mixed or out


def _remap(ds: Dataset, mapping: dict[str, str]) -> None:
    """Replace every UID value of ``ds`` (nested ones too) found in ``mapping``."""
    for elem in ds.iterall():
        if elem.VR != "UI" or not elem.value:
            continue
        if elem.VM > 1:
            elem.value = [mapping.get(str(v), str(v)) for v in elem.value]
        else:
            elem.value = mapping.get(str(elem.value), str(elem.value))


def fresh_copy(template: Template) -> tuple[str, list[bytes]]:
    """The template's files with new UIDs (consistent within the study): study UID, bytes."""
    datasets = [pydicom.dcmread(p) for p in template.files]
    olds = {uid for ds in datasets for uid in collect_uids(ds)}
    mapping = {old: str(generate_uid()) for old in olds}
    blobs = []
    for ds in datasets:
        _remap(ds.file_meta, mapping)
        _remap(ds, mapping)
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        blobs.append(buf.getvalue())
    return str(datasets[0].StudyInstanceUID), blobs


@dataclass
class Sent:
    """One study of the stream: its job id, kind, instance count and produce time."""

    job_id: str
    study_uid: str
    kind: str
    instances: int
    produced_at: float = 0.0
    partition: int = -1


@dataclass
class Loader:
    """Stores fresh copies of the templates in the source Orthanc and produces their events."""

    orthanc: str
    bootstrap: str
    topic: str
    run_id: str
    source_ids: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)

    async def send_one(
        self, http: httpx.AsyncClient, producer: AIOKafkaProducer, template: Template
    ) -> Sent:
        """Upload one fresh study, then produce its event (``produced_at``: the record time)."""
        study_uid, blobs = await asyncio.to_thread(fresh_copy, template)
        for blob in blobs:
            answer = (await http.post("/instances", content=blob)).raise_for_status().json()
            self.source_ids.add(str(answer["ParentStudy"]))
        item = Sent(f"soak-{self.run_id}-{len(self.sent)}", study_uid, template.kind, len(blobs))
        event = {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": study_uid,
            "destination": "dest",
            "exchange_job_id": item.job_id,
            "source": {"kind": "dicomweb"},
        }
        before = time.time()
        meta = await producer.send_and_wait(
            self.topic, json.dumps(event).encode(), key=study_uid.encode()
        )
        item.produced_at = meta.timestamp / 1000 if meta.timestamp > 0 else before
        item.partition = meta.partition
        self.sent.append(item)
        return item

    async def stream(
        self, items: list[Template], rate_per_min: float, seconds: float, stop: asyncio.Event
    ) -> None:
        """Send templates round-robin at ``rate_per_min`` (a fixed schedule) for ``seconds``."""
        interval = 60.0 / rate_per_min
        started = time.monotonic()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            async with httpx.AsyncClient(base_url=self.orthanc, timeout=120) as http:
                n = 0
                while not stop.is_set() and (due := started + n * interval) < started + seconds:
                    await _sleep_until(due, stop)
                    if stop.is_set():
                        break
                    await self.send_one(http, producer, items[n % len(items)])
                    n += 1
        finally:
            await producer.stop()

    async def delete_sources(self) -> dict[str, int]:
        """Delete the studies this loader stored in the source Orthanc: counts by outcome."""
        return await delete_orthanc_studies(self.orthanc, self.source_ids)


async def _sleep_until(due: float, stop: asyncio.Event) -> None:
    delay = due - time.monotonic()
    if delay > 0:
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            return


async def delete_orthanc_studies(base: str, ids: Iterable[str]) -> dict[str, int]:
    """Delete the Orthanc studies ``ids`` (REST ids) at ``base``: how many were ``deleted``,
    already ``gone`` (404: someone emptied the shared Orthanc) or ``failed``."""
    counts = {"deleted": 0, "gone": 0, "failed": 0}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for orthanc_id in sorted(set(ids)):
            status = (await http.delete(f"/studies/{orthanc_id}")).status_code
            key = "deleted" if status == 200 else "gone" if status == 404 else "failed"
            counts[key] += 1
    return counts


async def orthanc_ids_of(base: str, study_uids: Iterable[str]) -> tuple[set[str], int]:
    """The Orthanc REST ids of the studies with these Study Instance UIDs, and how many of the
    UIDs were not found."""
    found: set[str] = set()
    missing = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for uid in set(study_uids):
            answer = (await http.post("/tools/lookup", content=uid)).raise_for_status()
            ids = {str(m["ID"]) for m in answer.json() if m.get("Type") == "Study"}
            missing += not ids
            found |= ids
    return found, missing
