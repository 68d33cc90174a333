"""The Sensor: the only way pipeline code records metrics and spans.

Metric names are declared once here; label values go through the PHI filter
(:func:`dxai.observability.phi_filter.label_value`) so that UIDs, PHI or other unbounded values
never become Prometheus labels.  Spans are made by the sensor's :class:`Tracer`
(:meth:`Sensor.span`); each span's duration is also recorded as ``dxai_stage_seconds{stage}``.
Code that has no sensor at hand (the per-instance pipeline in worker threads) calls
:func:`stage_span`: a span under whatever job span is current, recorded by that job's sensor,
or nothing outside a job.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from dxai.observability.phi_filter import label_value
from dxai.observability.tracing import NO_SPAN, Kind, Parent, SpanHandle, TraceContext, Tracer

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
_ACTIVE: contextvars.ContextVar[Sensor | None] = contextvars.ContextVar(
    "dxai_active_sensor", default=None
)


def check_label_value(value: str) -> str:
    """Return ``value`` if it is a safe, bounded label value; raise ValueError otherwise."""
    return label_value(value)


def _histogram(
    name: str, doc: str, labels: Sequence[str], buckets: Sequence[float], reg: CollectorRegistry
) -> Histogram:
    return Histogram(name, doc, list(labels), buckets=tuple(buckets), registry=reg)


def _counters(reg: CollectorRegistry) -> dict[str, Counter]:
    specs: dict[str, tuple[str, str, list[str]]] = {
        "events_consumed": (
            "dxai_events_consumed",
            "Input events taken, by source and what became of them",
            ["source", "outcome"],
        ),
        "events_produced": (
            "dxai_events_produced",
            "Output events sent (or not), by topic role and outcome",
            ["topic", "outcome"],
        ),
        "errors": ("dxai_errors", "Errors by component and code", ["component", "error_code"]),
        "instances": ("dxai_instances", "Instances processed", ["component", "status"]),
        "deid_actions": ("dxai_deid_actions", "De-identification actions", ["action"]),
        "ocr_cache": ("dxai_ocr_cache_lookups", "OCR recognition cache lookups", ["result"]),
        "decisions": ("dxai_decisions", "Decisions recorded, by decision", ["decision"]),
        "holds": ("dxai_holds", "Studies held for review, by reason code", ["reason"]),
        "dead_letters": ("dxai_dead_letters", "Dead letters, by reason code", ["reason"]),
        "inbound_tasks": (
            "dxai_inbound_tasks",
            "Inbound tasks run, by task and status",
            ["task", "status"],
        ),
        "inbound_findings": (
            "dxai_inbound_findings",
            "Inbound findings, by task and severity",
            ["task", "severity"],
        ),
        "inbound_priority": (
            "dxai_inbound_priority",
            "Inbound studies triaged, by priority",
            ["priority"],
        ),
    }
    return {
        key: Counter(name, doc, labels, registry=reg) for key, (name, doc, labels) in specs.items()
    }


def _histograms(reg: CollectorRegistry) -> dict[str, Histogram]:
    lat = _LATENCY_BUCKETS
    return {
        "decision_latency_s": _histogram(
            "dxai_decision_latency_seconds",
            "Event received to decision sent",
            ["decision"],
            _JOB_BUCKETS,
            reg,
        ),
        "e2e_latency_s": _histogram(
            "dxai_end_to_end_latency_seconds",
            "Event received to results sent",
            ["state"],
            _JOB_BUCKETS,
            reg,
        ),
        "stage_s": _histogram(
            "dxai_stage_seconds", "Time per pipeline stage (span)", ["stage"], lat, reg
        ),
        "queue_wait_s": _histogram(
            "dxai_batch_queue_wait_seconds", "Batcher queue wait", ["model"], lat, reg
        ),
        "batch_exec_s": _histogram(
            "dxai_batch_execution_seconds",
            "Engine time per batch",
            ["model", "backend"],
            lat,
            reg,
        ),
        "batch_size": _histogram(
            "dxai_batch_size", "Items per batch", ["model"], (1, 2, 4, 8, 16, 32, 64, 128), reg
        ),
        "batch_fill_ratio": _histogram(
            "dxai_batch_fill_ratio",
            "Batch size / max batch size",
            ["model"],
            (0.125, 0.25, 0.5, 0.75, 1.0),
            reg,
        ),
        "loop_lag_s": _histogram("dxai_event_loop_lag_seconds", "Event loop lag", [], lat, reg),
        "instance_s": _histogram(
            "dxai_instance_seconds", "Time per instance", ["component"], lat, reg
        ),
    }


def _gauges(reg: CollectorRegistry) -> dict[str, Gauge]:
    specs: dict[str, tuple[str, str, list[str]]] = {
        "jobs": ("dxai_jobs", "Jobs by state (job store)", ["state"]),
        "jobs_in_flight": ("dxai_jobs_in_flight", "Jobs running in this daemon now", []),
        "engine_loaded": (
            "dxai_engine_loaded",
            "Loaded engines by backend and device",
            ["model", "backend", "device"],
        ),
        "queue_depth": ("dxai_batch_queue_depth", "Items waiting in the batcher", ["model"]),
        "consumer_lag": (
            "dxai_kafka_consumer_lag",
            "Input records not yet committed, per partition (high watermark - committed)",
            ["partition"],
        ),
        "review_held_instances": (
            "dxai_review_held_instances",
            "Instances of studies waiting for a reviewer",
            [],
        ),
        "review_backlog_age_s": (
            "dxai_review_backlog_age_seconds",
            "How long the oldest study held for review has waited (0: none)",
            [],
        ),
    }
    return {
        key: Gauge(name, doc, labels, registry=reg) for key, (name, doc, labels) in specs.items()
    }


@dataclass
class Sensor:
    """Metrics and spans for one daemon, on its own registry and tracer (tests get fresh ones).

    ``tracer``: spans are made but not exported unless the tracer has an exporter (the daemon
    installs the configured one, see ``Tracer.from_config``).  ``process``: the registry also
    serves ``process_resident_memory_bytes`` and the other ``process_*`` series.
    """

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    tracer: Tracer = field(default_factory=Tracer)
    process: bool = True

    def __post_init__(self) -> None:
        reg = self.registry
        self.counters = _counters(reg)
        self.histograms = _histograms(reg)
        self.gauges = _gauges(reg)
        if self.process:
            ProcessCollector(registry=reg)

    @staticmethod
    def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
        return {k: check_label_value(v) for k, v in (labels or {}).items()}

    def count(
        self, name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0
    ) -> None:
        """Increment counter ``name``."""
        metric = self.counters[name]
        (metric.labels(**self._labels(labels)) if labels else metric).inc(amount)

    def observe(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Record ``value`` in histogram ``name``."""
        metric = self.histograms[name]
        (metric.labels(**self._labels(labels)) if labels else metric).observe(value)

    def set_gauge(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Set gauge ``name``."""
        metric = self.gauges[name]
        (metric.labels(**self._labels(labels)) if labels else metric).set(value)

    def forget(self, name: str, labels: Mapping[str, str]) -> None:
        """Remove one labelled series of gauge ``name`` (a partition no longer assigned)."""
        metric = self.gauges[name]
        try:
            metric.remove(*(self._labels(labels)[k] for k in metric._labelnames))
        except KeyError:
            return

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        parent: Parent | TraceContext | None = None,
        links: Sequence[TraceContext] = (),
        kind: Kind = "internal",
    ) -> Iterator[SpanHandle]:
        """A span (see ``Tracer.span``) timed into ``dxai_stage_seconds{stage=name}``; within
        it, :func:`stage_span` records through this sensor."""
        started = time.perf_counter()
        token = _ACTIVE.set(self)
        try:
            with self.tracer.span(
                name, attributes, parent=parent, links=links, kind=kind
            ) as handle:
                yield handle
        finally:
            _ACTIVE.reset(token)
            self.observe("stage_s", time.perf_counter() - started, {"stage": name})


@contextmanager
def stage_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[SpanHandle]:
    """A stage span under the current job's span, through its sensor (nothing outside a job:
    the handle then records nothing).

    For code that runs inside a job but has no sensor of its own (the per-instance pipeline in
    the CPU pool, the OCR adapters): the job's context reaches worker threads with the call.
    """
    sensor = _ACTIVE.get()
    if sensor is None:
        yield NO_SPAN
        return
    with sensor.span(name, attributes) as handle:
        yield handle


def active_sensor() -> Sensor | None:
    """The sensor of the span current in this context (None outside one)."""
    return _ACTIVE.get()


_DEFAULT: Sensor | None = None


def default_sensor() -> Sensor:
    """The process-wide sensor (created on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Sensor()
    return _DEFAULT
