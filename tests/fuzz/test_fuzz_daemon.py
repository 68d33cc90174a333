"""Fuzz target 3: a real embedded daemon in this process (``daemon_helpers.embedded``).

Webhook: hostile events with and without credentials and broken HTTP get the right answer
(202, 400, 401, 404, 405, 411 or 413); every 202 ends as a job with a final decision that
says why, every 400 as a dead letter holding the exact body.  C-STORE SCP: mutated files (file
meta intact, sent undecoded) are refused with a failure status or stored; every stored
instance ends in a sealed batch whose job reached a final decision and counted it.  The fetch
path: mutated files in a configured local source, fetched by webhook events, end likewise.
After each target the daemon still answers (``/healthz``, C-ECHO) and this process's RSS grew
by less than a bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import embedded
from dicom_mutations import Malformed, malformed_dicom
from fuzz_support import TargetFigures, cases, finish, fuzz, guarded, rss_mib, target
from hostile_http import HostileRequest, hostile_request, post_head, send
from hostile_http import get as http_get
from pydicom.filereader import read_file_meta_info
from scu_client import STORE_STATUSES, echo, raw_sending, scu, store

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle
from dxai.daemon.events import parse_study_event
from dxai.daemon.jobs.model import job_key

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    # the daemon runs beside hypothesis (its loop in this thread, the cases in a worker): its
    # own use of ``random`` is seen as a strategy's
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]
TOKEN = "fuzz-token"
DEADLINE_S = 240.0
RSS_GROWTH_MAX_MIB = 600.0
FINAL_STATES = {"released", "held_for_review", "blocked", "failed"}
CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _config(tmp: Path) -> DxaiConfig:
    token = tmp / "webhook.token"
    token.write_text(TOKEN, encoding="utf-8")
    (tmp / "inbox").mkdir()
    return DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp / "state")},
            "deid": {"pixels": "never"},
            "sources": {"inbox": {"kind": "local", "root": str(tmp / "inbox")}},
            "embedded": {
                "dicom_port": 0,
                "http_port": 0,
                "mllp_port": 0,
                "study_quiet_period_s": 0.3,
                "landing_retention_s": None,
                "webhook_bearer_token_file": str(token),
            },
            "kafka": {"max_retries": 1, "retry_backoff_initial_s": 0.05},
            "pipeline": {"cpu_workers": 2},
            "metrics": {"enabled": False},
        }
    )


def _ports(handle: DaemonHandle) -> tuple[int, int]:
    assert handle.ports is not None
    return handle.ports.http, handle.ports.dicom


async def _alive(handle: DaemonHandle) -> None:
    """The daemon still answers on HTTP and DICOM."""
    http, dicom = _ports(handle)
    health = await asyncio.to_thread(http_get, http, "/healthz")
    assert health.status == 200, health
    assert await asyncio.to_thread(echo, scu(), dicom) == 0x0000


def _check_rss(figures: TargetFigures, start_mib: float) -> None:
    figures.rss_start_mib, figures.rss_end_mib = start_mib, rss_mib()
    growth = figures.rss_end_mib - start_mib
    assert growth < RSS_GROWTH_MAX_MIB, f"RSS grew {growth:.0f} MiB over {figures.cases} cases"


async def _until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, with a deadline."""
    end = time.monotonic() + DEADLINE_S
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"{what} not done before the deadline")
        await asyncio.sleep(0.1)


def _json_by(folder: Path, field: str) -> dict[str, dict[str, Any]]:
    """Every JSON output in ``folder`` by one of its fields."""
    out = {}
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data[field]] = data
    return out


def check_final(decision: dict[str, Any], result: dict[str, Any], figures: TargetFigures) -> None:
    """A final decision that agrees with the results and, unless ``proceed``, says why."""
    assert result["state"] in FINAL_STATES
    assert decision["decision"] in ("proceed", "hold", "block")
    assert (decision["decision"] == "proceed") == (result["state"] == "released")
    codes = sorted({r["code"] for r in decision["reasons"]})
    if decision["decision"] != "proceed":
        assert codes and all(CODE.match(code) for code in codes)
    crashed = [r for r in decision["reasons"] if r["detail"].endswith(" while processing")]
    assert not crashed, f"the job crashed (its boundary caught it): {crashed}"
    figures.add(f"{decision['decision']}:{'+'.join(codes)}")


async def _jobs_finished(handle: DaemonHandle, keys: set[str]) -> None:
    async def done() -> bool:
        for key in keys:
            job = await handle.store.get(key)
            if job is None or not job.finished:
                return False
        return True

    await _until(done, f"{len(keys)} jobs")


# -- webhook ---------------------------------------------------------------------------------


class WebhookCases:
    """Sends each hostile request; keeps what the daemon must have produced for it."""

    def __init__(self, port: int, version: str, figures: TargetFigures) -> None:
        self.port, self.version, self.figures = port, version, figures
        self.accepted: set[str] = set()  # job keys of 202 answers
        self.dead: dict[str, str] = {}  # dlq file stem -> sha256 of the body (400 answers)

    def __call__(self, request: HostileRequest) -> None:
        guarded(self.figures, lambda: self._one(request))

    def _one(self, request: HostileRequest) -> str:
        answer = send(self.port, request)
        assert answer.status in request.allowed, (answer.status, answer.body[:200], request)
        if answer.status == 202:
            event = parse_study_event(request.body)
            self.accepted.add(job_key(event.exchange_job_id, event.study_uid, self.version))
        elif answer.status == 400 and request.label.startswith("event:"):
            stem = hashlib.sha256(b"http\0" + request.body).hexdigest()[:24]
            self.dead[stem] = hashlib.sha256(request.body).hexdigest()
        return str(answer.status)


async def test_webhook_answers_every_hostile_request(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with embedded(config) as handle:
        start = rss_mib()
        figures = target("daemon.webhook")
        webhook = WebhookCases(_ports(handle)[0], config.pipeline.version, figures)
        await asyncio.to_thread(fuzz, cases(150, share=0.4), hostile_request(TOKEN), webhook)
        await _alive(handle)
        await _jobs_finished(handle, webhook.accepted)
        _check_rss(figures, start)
    results = handle.results
    decisions = _json_by(results / "decisions", "job_key")
    outcomes = _json_by(results / "results", "job_key")
    jobs = target("daemon.webhook.jobs")
    for key in webhook.accepted:
        check_final(decisions[key], outcomes[key], jobs)
        # no study exists: the source is refused, or an allowed one has no such study
        codes = {r["code"] for r in decisions[key]["reasons"]}
        assert codes <= {"source_not_allowed", "study_not_found"}, codes
    for stem, digest in webhook.dead.items():
        assert hashlib.sha256((results / "dlq" / f"{stem}.bin").read_bytes()).hexdigest() == digest
        reason = (results / "dlq" / f"{stem}.reason").read_text(encoding="utf-8")
        assert reason.startswith("invalid_event: ")


# -- C-STORE SCP and the fetch path ------------------------------------------------------------


def _sop_uid(path: Path) -> str:
    """The SOP Instance UID of the file meta (kept intact by the SCP's mutations)."""
    return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)


class ScpCases:
    """C-STOREs each mutated file; keeps the SOP Instance UIDs the SCP stored."""

    def __init__(self, port: int, work: Path, figures: TargetFigures) -> None:
        self.port, self.work, self.figures = port, work, figures
        self.ae = scu()
        self.stored: set[str] = set()
        work.mkdir(parents=True, exist_ok=True)

    def __call__(self, case: Malformed) -> None:
        guarded(self.figures, lambda: self._one(case))

    def _one(self, case: Malformed) -> str:
        path = self.work / "case.dcm"
        path.write_bytes(case.data)
        status = store(self.ae, self.port, path)
        assert status in STORE_STATUSES, (status, case)
        if status == 0x0000:
            self.stored.add(_sop_uid(path))
        return f"0x{status:04X}" if isinstance(status, int) else status


def _batches(handle: DaemonHandle) -> dict[str, str]:
    """SOP Instance UID -> job id of every sealed landing batch."""
    batches = Path(handle.results).parent / "landing" / "batches"
    return {p.stem: p.parent.name for p in batches.glob("*/*.dcm")}


async def _check_scp(handle: DaemonHandle, stored: set[str]) -> None:
    """Every stored instance is in a sealed batch whose job ended and counted it."""

    def sealed() -> dict[str, str] | None:
        found = _batches(handle)
        return found if stored <= found.keys() else None

    found: dict[str, str] = await _until(sealed, "sealing every stored instance")
    jobs = {found[sop] for sop in stored}

    def ended() -> dict[str, dict[str, Any]] | None:
        outcomes = _json_by(handle.results / "results", "exchange_job_id")
        return outcomes if jobs <= outcomes.keys() else None

    outcomes = await _until(ended, "the landing jobs")
    decisions = _json_by(handle.results / "decisions", "exchange_job_id")
    figures = target("daemon.scp.jobs")
    for job in jobs:
        check_final(decisions[job], outcomes[job], figures)
        files = sum(1 for sop, owner in found.items() if owner == job)
        counted = outcomes[job]["instances_received"]
        assert outcomes[job]["state"] == "failed" or counted == files, (job, counted, files)


class FetchCases:
    """Puts each mutated file in the local source and asks for it by webhook event."""

    def __init__(self, port: int, inbox: Path, version: str, figures: TargetFigures) -> None:
        self.port, self.inbox, self.version, self.figures = port, inbox, version, figures
        self.keys: set[str] = set()
        self.number = 0

    def __call__(self, case: Malformed) -> None:
        guarded(self.figures, lambda: self._one(case))

    def _one(self, case: Malformed) -> str:
        self.number += 1
        folder = self.inbox / f"case-{self.number}"
        folder.mkdir()
        (folder / "0.dcm").write_bytes(case.data)
        found = re.search(rb"2\.25\.7[0-9]{34}", case.data)
        study = found.group(0).decode() if found else "1.2.3"
        event = {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": study,
            "destination": "default",
            "exchange_job_id": f"fetch-{self.number}",
            "source": {"kind": "local", "name": "inbox", "path": folder.name},
        }
        body = json.dumps(event).encode()
        head = post_head(len(body), f"Bearer {TOKEN}")
        answer = send(self.port, HostileRequest("fetch", head, body, frozenset({202})))
        assert answer.status == 202, answer
        self.keys.add(job_key(f"fetch-{self.number}", study, self.version))
        return "accepted"


async def test_scp_and_fetch_path_end_every_instance(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with embedded(config) as handle:
        http, dicom = _ports(handle)
        start = rss_mib()
        scp = ScpCases(dicom, tmp_path / "scu", target("daemon.scp"))
        with raw_sending():
            await asyncio.to_thread(fuzz, cases(60, share=0.4), malformed_dicom(meta=False), scp)
        await _alive(handle)
        fetch = FetchCases(http, tmp_path / "inbox", config.pipeline.version, target("fetch"))
        await asyncio.to_thread(fuzz, cases(40, share=0.3), malformed_dicom(), fetch)
        await _alive(handle)
        await _check_scp(handle, scp.stored)
        await _jobs_finished(handle, fetch.keys)
        _check_rss(finish("daemon.scp"), start)
        finish("fetch")
    decisions = _json_by(handle.results / "decisions", "job_key")
    outcomes = _json_by(handle.results / "results", "job_key")
    figures = target("fetch.jobs")
    for key in fetch.keys:
        check_final(decisions[key], outcomes[key], figures)
