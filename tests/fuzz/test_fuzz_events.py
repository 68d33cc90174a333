"""Fuzz target 2: hostile events through ``parse_study_event`` and ``Pipeline.submit``.

``parse_study_event`` either returns an event that the job store's own re-read
(``StudyEvent.model_validate_json`` of the stored UTF-8 text) gives back unchanged, or raises
:class:`InvalidEventError` with a bounded, printable reason that never repeats the input.
``Pipeline.submit`` (real job store, routes and folder destination; an in-memory publisher)
never raises: a bad event becomes a dead letter with its original bytes and a code, a valid one
a job that ends with a final decision, and, since no study exists anywhere here, a dead letter
whose code says why: ``source_not_allowed`` for every source the configuration does not name.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from fuzz_support import cases, finish, fuzz, guarded, target
from hostile_events import RawEvent, hostile_event

from dxai.actors.outbound import build_pipeline
from dxai.configs.errors import InvalidEventError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.events import (
    DecisionEvent,
    LocalSource,
    NamedSource,
    ResultsEvent,
    StudyEvent,
    parse_study_event,
)
from dxai.daemon.gateways.resolve import Routes
from dxai.daemon.jobs import JobStore
from dxai.daemon.jobs.model import job_key
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import TraceContext

T = TypeVar("T")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
REASON_MAX = 1200
#: words a rejection may spell out besides contract names and pydantic error types
REASON_WORDS = frozenset(
    {"JSON", "JSONDecodeError", "UnicodeDecodeError", "RecursionError", "ValueError", "NoneType"}
)
JOB_SECONDS = 60.0


def check_rejection(exc: InvalidEventError) -> str:
    """A rejection is coded, bounded, printable ASCII and built from known words only."""
    reason = str(exc)
    assert exc.code == "invalid_event"
    assert 0 < len(reason) <= REASON_MAX, len(reason)
    assert re.fullmatch(r"[ -~]*", reason), f"unprintable reason: {reason[:200]!r}"
    for word in re.findall(r"[A-Za-z_]+", reason):
        assert word.islower() or word in REASON_WORDS, f"{word!r} echoed in {reason[:200]!r}"
    return "rejected"


def parse_case(event: RawEvent) -> str:
    """Parse one raw event; check the rejection or the stored re-read."""
    try:
        parsed = parse_study_event(event.raw)
    except InvalidEventError as exc:
        return check_rejection(exc)
    stored = event.raw.decode("utf-8")  # what Pipeline.submit keeps in the job store
    assert StudyEvent.model_validate_json(stored) == parsed, "the stored event reads otherwise"
    return "parsed"


def test_parse_study_event_rejects_or_round_trips() -> None:
    figures = target("parse_study_event")

    def one(event: RawEvent) -> None:
        guarded(figures, lambda: parse_case(event))

    fuzz(cases(400), hostile_event(), one)
    finish("parse_study_event")


# -- Pipeline.submit -----------------------------------------------------------------------


class MemPublisher:
    """Every output in memory: decisions and results by job key, dead letters in order."""

    def __init__(self) -> None:
        self.decisions: dict[str, DecisionEvent] = {}
        self.res: dict[str, ResultsEvent] = {}
        self.dlq: list[tuple[str, str, str, str]] = []

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        self.decisions[event.job_key] = event

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        self.res[event.job_key] = event

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        self.dlq.append((digest(original), reason, code, origin))  # not the bytes: RSS is measured


def digest(raw: bytes) -> str:
    """SHA-256 of ``raw`` (hex)."""
    return hashlib.sha256(raw).hexdigest()


class EventRig:
    """A pipeline as the daemon builds it, but publishing to memory; no study exists."""

    def __init__(self, tmp: Path) -> None:
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        self.config = DxaiConfig.model_validate(
            {
                "mode": "embedded",
                "state": {"data_dir": str(tmp / "state")},
                "deid": {"pixels": "never"},
                "sources": {"inbox": {"kind": "local", "root": str(tmp / "inbox")}},
                "pipeline": {"cpu_workers": 2, "decision_deadline_s": 30},
                "metrics": {"enabled": False},
            }
        )
        routes = Routes(self.config)
        self.store = JobStore(tmp / "jobs.sqlite3")
        self.pub = MemPublisher()
        self.parts = PipelineParts(
            store=self.store,
            source_for=routes.source_for,
            sink=routes.fallback_sink(),
            processor=build_pipeline(self.config)[0],
            publisher=self.pub,
            sensor=Sensor(),
            retry=RetryPolicy(max_retries=0),
            sinks=routes.sink_for,
        )


def expected_code(event: StudyEvent, inbox: Path) -> str:
    """Why a valid event's job must fail here: only the ``inbox`` root is a configured source
    (and it holds no study); anything else is refused before fetching."""
    src = event.source
    if isinstance(src, NamedSource):
        return "study_not_found" if src.name == "inbox" else "source_not_allowed"
    if not isinstance(src, LocalSource) or src.name != "inbox":
        return "source_not_allowed"
    try:
        real = (inbox / src.path).resolve(strict=True) if src.path else inbox
    except (OSError, ValueError, RuntimeError):
        return "source_not_allowed"
    return "study_not_found" if real == inbox.resolve() else "source_not_allowed"


class SubmitCase:
    """Submits raw events from a worker thread to the pipeline on the test's event loop."""

    def __init__(self, rig: EventRig, pipe: Pipeline, loop: asyncio.AbstractEventLoop) -> None:
        self.rig, self.pipe, self.loop = rig, pipe, loop
        self.number = 0
        self.expected: dict[str, str] = {}

    def call(self, work: Awaitable[T]) -> T:
        """Run ``work`` on the pipeline's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(_wrap(work), self.loop).result(JOB_SECONDS)

    def __call__(self, event: RawEvent) -> str:
        self.number += 1
        origin = f"fuzz/0/{self.number}"
        admission = self.call(self.pipe.submit(event.raw, None, origin))
        try:
            parsed = parse_study_event(event.raw)
        except InvalidEventError:
            assert admission == "dead_letter"
            raw, reason, code, where = self.rig.pub.dlq[-1]
            assert (raw, code, where) == (digest(event.raw), "invalid_event", origin) and reason
            return str(admission)
        assert admission in ("accepted", "duplicate", "resumed", "in_progress"), admission
        self._check_job(parsed, event.raw, fresh=admission == "accepted")
        return f"{admission}:{expected_code(parsed, self.rig.inbox)}"

    def _check_job(self, event: StudyEvent, raw: bytes, fresh: bool) -> None:
        """The job ends (block), its decision says why and its event is dead-lettered."""
        key = job_key(event.exchange_job_id, event.study_uid, self.rig.config.pipeline.version)
        deadline = time.monotonic() + JOB_SECONDS
        while not (job := self.call(self.rig.store.get(key))) or not job.finished:
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.01)  # polling the store with a deadline
        decision = self.rig.pub.decisions[key]
        assert decision.decision == "block" and self.rig.pub.res[key].state == "failed"
        if fresh:  # a duplicate (same job id and study) was decided by its first event
            self.expected[key] = expected_code(event, self.rig.inbox)
        code = self.expected.get(key, expected_code(event, self.rig.inbox))
        assert [r.code for r in decision.reasons] == [code], decision.reasons
        if not fresh:
            return
        dead = [d for d in self.rig.pub.dlq if d[3] == f"job/{key[:16]}"]
        assert [(d[0], d[2]) for d in dead] == [(digest(raw), code)]


async def _wrap(work: Awaitable[T]) -> T:
    return await work


@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_pipeline_submit_dead_letters_every_bad_event(tmp_path: Path) -> None:
    rig = EventRig(tmp_path)
    figures = target("pipeline.submit")
    async with rig.store, Pipeline(rig.parts, rig.config.pipeline) as pipe:
        submit = SubmitCase(rig, pipe, asyncio.get_running_loop())

        def one(event: RawEvent) -> None:
            guarded(figures, lambda: submit(event))

        await asyncio.to_thread(fuzz, cases(250), hostile_event(), one)
    finish("pipeline.submit")
