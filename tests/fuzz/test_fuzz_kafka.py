"""Fuzz target 4: hostile messages through the Kafka intake of a real daemon (real broker).

Each message (a hostile event, some with hostile trace headers, some empty) goes to a per-test
topic; the daemon (production mode, in this process) must keep consuming and dead-letter each
one: an invalid event as itself (origin ``topic/partition/offset``, code ``invalid_event``), a
valid one as its job's event once the job is refused (no source it names is configured, or
the one that is holds no such study).  A repeated job (same job id and study) is a duplicate:
no second dead letter.  The daemon's RSS grows by less than a bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fuzz_support import TargetFigures, cases, finish, fuzz, rss_mib, target
from hostile_events import RawEvent, hostile_event
from hypothesis import strategies as st
from kafka_helpers import kafka_section

from dxai.configs.errors import InvalidEventError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import run_daemon
from dxai.daemon.events import parse_study_event
from dxai.observability.metrics import Sensor

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]
MAX_MESSAGE_BYTES = 900_000  # under the broker's default message.max.bytes (1 MiB)
DEADLINE_S = 240.0
RSS_GROWTH_MAX_MIB = 600.0
TRACEPARENTS = (
    None,
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"00-zzzz-00f067aa0ba902b7-01",
    b"\xff\xfe\x00garbage",
    b"ff-" + b"0" * 5000,
    b"00-00000000000000000000000000000000-0000000000000000-01",
)


def _config(tmp: Path, bootstrap: str, topic: str) -> DxaiConfig:
    (tmp / "inbox").mkdir()
    return DxaiConfig.model_validate(
        {
            "mode": "production",
            "state": {"data_dir": str(tmp / "state")},
            "deid": {"pixels": "never"},
            "kafka": kafka_section(bootstrap, topic, max_retries=0, retry_backoff_initial_s=0.05),
            "sources": {"inbox": {"kind": "local", "root": str(tmp / "inbox")}},
            "destinations": {"default": {"kind": "folder", "path": str(tmp / "out")}},
            "pipeline": {"cpu_workers": 2},
            "metrics": {"enabled": False},
        }
    )


class Message:
    """One message to send: its value and trace header (short repr)."""

    __slots__ = ("event", "traceparent")

    def __init__(self, event: RawEvent, traceparent: bytes | None) -> None:
        self.event, self.traceparent = event, traceparent

    def __repr__(self) -> str:
        return f"Message({self.event!r}, traceparent={self.traceparent!r:.40})"


def messages() -> st.SearchStrategy[Message]:
    """A hostile event (at most ``MAX_MESSAGE_BYTES``) with a hostile or no trace header."""
    return st.builds(
        Message, hostile_event(max_bytes=MAX_MESSAGE_BYTES), st.sampled_from(TRACEPARENTS)
    )


def _expectation(raw: bytes) -> tuple[str, str | None]:
    """(``invalid`` or the job's identity, its dead letter's digest when one is due)."""
    try:
        event = parse_study_event(raw)
    except InvalidEventError:
        return "invalid", hashlib.sha256(raw).hexdigest()
    return f"{event.exchange_job_id}\x1f{event.study_uid}", hashlib.sha256(raw).hexdigest()


class Expected:
    """What the DLQ topic must hold: each invalid message by origin, one dead letter per job.

    A job's dead letter holds the event the daemon took first; messages of one job (same job
    id and study) on different partitions may be taken in any order, so any of them counts.
    """

    def __init__(self, figures: TargetFigures) -> None:
        self.figures = figures
        self.invalid: dict[str, str] = {}  # origin -> sha256 of the value
        self.jobs: dict[str, str] = {}  # sha256 of a valid event -> its job identity
        self.labels: dict[str, str] = {}  # sha256 -> what the message was (failure messages)

    def add(self, raw: bytes, origin: str, label: str = "") -> None:
        kind, digest = _expectation(raw)
        assert digest is not None
        self.labels[digest] = f"{label} ({len(raw)} bytes)"
        if kind == "invalid":
            self.invalid[origin] = digest
            self.figures.add("invalid_event")
        else:
            self.figures.add("duplicate" if kind in self.jobs.values() else "job")
            self.jobs[digest] = kind

    def identities(self) -> set[str]:
        """Every job the messages make."""
        return set(self.jobs.values())


async def _produce(bootstrap: str, topic: str, batch: list[Message], expected: Expected) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        for index, message in enumerate(batch):
            headers = [] if message.traceparent is None else [("traceparent", message.traceparent)]
            sent = await producer.send_and_wait(
                topic, message.event.raw, key=str(index).encode(), headers=headers
            )
            where = f"{topic}/{sent.partition}/{sent.offset}"
            expected.add(message.event.raw, where, message.event.labels)
    finally:
        await producer.stop()


class DeadLetters:
    """Everything read from the DLQ topic: by origin (invalid events), jobs' by value digest."""

    def __init__(self) -> None:
        self.by_origin: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.job_values: list[tuple[str, str]] = []  # (sha256 of the value, error code)

    def add(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        head = dict(headers)
        origin = head["dxai-dlq-origin"].decode()
        digest = hashlib.sha256(value).hexdigest()
        if origin.startswith("job/"):
            self.job_values.append((digest, head["dxai-dlq-error-code"].decode()))
        else:
            self.by_origin[origin] = (digest, head)

    def jobs(self, expected: Expected) -> dict[str, list[str]]:
        """Job identity -> the error codes of its dead letters."""
        out: dict[str, list[str]] = {}
        for digest, code in self.job_values:
            out.setdefault(expected.jobs.get(digest, "unexpected"), []).append(code)
        return out

    def missing(self, expected: Expected) -> tuple[int, list[str]]:
        """How many invalid events, and which jobs, have no dead letter yet."""
        invalid = len(expected.invalid.keys() - self.by_origin.keys())
        jobs = expected.identities() - self.jobs(expected).keys()
        return invalid, sorted(jobs)


async def _read_dlq(bootstrap: str, topic: str, expected: Expected, daemon: Any) -> DeadLetters:
    seen = DeadLetters()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4_000_000,
    )
    await consumer.start()
    try:
        end = time.monotonic() + DEADLINE_S
        while any(seen.missing(expected)):
            assert not daemon.done(), "the daemon stopped"
            if time.monotonic() > end:
                invalid, jobs = seen.missing(expected)
                pytest.fail(f"dead letters missing: {invalid} invalid events, jobs {jobs[:5]}")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    seen.add(record.value or b"", list(record.headers))
    finally:
        await consumer.stop()
    return seen


def _check(expected: Expected, seen: DeadLetters) -> None:
    for origin, digest in expected.invalid.items():
        value, head = seen.by_origin[origin]
        assert value == digest, origin
        assert head["dxai-dlq-error-code"] == b"invalid_event"
        assert head["dxai-dlq-reason"], origin
    jobs = seen.jobs(expected)
    assert "unexpected" not in jobs, "a dead letter that no job's event holds"
    for identity, codes in jobs.items():
        assert codes in (["source_not_allowed"], ["study_not_found"]), (identity, codes)


async def test_kafka_intake_dead_letters_every_hostile_message(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    batch: list[Message] = []
    await asyncio.to_thread(fuzz, cases(150, share=0.5), messages(), batch.append)
    config = _config(tmp_path, kafka_bootstrap, kafka_topic)
    figures = target("kafka")
    start = rss_mib()
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(config, stop, Sensor()))
    expected = Expected(figures)
    try:
        await _produce(kafka_bootstrap, kafka_topic, batch, expected)
        seen = await _read_dlq(kafka_bootstrap, f"{kafka_topic}.dlq", expected, daemon)
        assert not daemon.done(), "the daemon stopped"
        _check(expected, seen)
    except BaseException:
        figures.crash()
        raise
    finally:
        stop.set()
        await asyncio.wait_for(daemon, DEADLINE_S)
    done = finish("kafka")
    done.rss_start_mib = start
    growth = done.rss_end_mib - start
    assert growth < RSS_GROWTH_MAX_MIB, f"RSS grew {growth:.0f} MiB over {len(batch)} messages"
