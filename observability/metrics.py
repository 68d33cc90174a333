"""The Sensor: the only way pipeline code records metrics.

Metric names are declared once here; label values are checked so that UIDs, PHI or other
unbounded values never become Prometheus labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_.:/-]{0,63}$")
_LOOKS_LIKE_UID = re.compile(r"^\d+(\.\d+){2,}$")

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def check_label_value(value: str) -> str:
    """Return ``value`` if it is a safe, bounded label value; raise ValueError otherwise."""
    if not _LABEL_VALUE.match(value) or _LOOKS_LIKE_UID.match(value):
        raise ValueError("metric label values must be short lower-case enum words")
    return value


@dataclass
class Sensor:
    """Metrics for one process, on its own registry (tests get a fresh one each)."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        reg = self.registry
        self.counters: dict[str, Counter] = {
            "events_consumed": Counter(
                "dxai_events_consumed", "Events consumed", ["source"], registry=reg
            ),
            "events_produced": Counter(
                "dxai_events_produced", "Events produced", ["topic"], registry=reg
            ),
            "errors": Counter(
                "dxai_errors", "Errors by type", ["component", "error_code"], registry=reg
            ),
            "instances": Counter(
                "dxai_instances", "Instances processed", ["component", "status"], registry=reg
            ),
            "deid_actions": Counter(
                "dxai_deid_actions", "De-identification actions", ["action"], registry=reg
            ),
            "ocr_cache": Counter(
                "dxai_ocr_cache_lookups", "OCR recognition cache lookups", ["result"], registry=reg
            ),
        }
        self.histograms: dict[str, Histogram] = {
            "decision_latency_s": Histogram(
                "dxai_decision_latency_seconds",
                "Decision latency",
                [],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            "e2e_latency_s": Histogram(
                "dxai_end_to_end_latency_seconds",
                "End-to-end latency",
                [],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            "queue_wait_s": Histogram(
                "dxai_batch_queue_wait_seconds",
                "Batcher queue wait",
                ["model"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            "batch_exec_s": Histogram(
                "dxai_batch_execution_seconds",
                "Batch execution time",
                ["model", "backend"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            "batch_size": Histogram(
                "dxai_batch_size",
                "Items per batch",
                ["model"],
                buckets=(1, 2, 4, 8, 16, 32, 64, 128),
                registry=reg,
            ),
            "batch_fill_ratio": Histogram(
                "dxai_batch_fill_ratio",
                "Batch size / max batch size",
                ["model"],
                buckets=(0.125, 0.25, 0.5, 0.75, 1.0),
                registry=reg,
            ),
            "loop_lag_s": Histogram(
                "dxai_event_loop_lag_seconds",
                "Event loop lag",
                [],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            "instance_s": Histogram(
                "dxai_instance_seconds",
                "Time per instance",
                ["component"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
        }
        self.gauges: dict[str, Gauge] = {
            "jobs": Gauge("dxai_jobs", "Jobs by state", ["state"], registry=reg),
            "engine_loaded": Gauge(
                "dxai_engine_loaded",
                "Loaded engines by backend and device",
                ["model", "backend", "device"],
                registry=reg,
            ),
            "queue_depth": Gauge(
                "dxai_batch_queue_depth", "Items waiting in the batcher", ["model"], registry=reg
            ),
        }

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


_DEFAULT: Sensor | None = None


def default_sensor() -> Sensor:
    """The process-wide sensor (created on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Sensor()
    return _DEFAULT
