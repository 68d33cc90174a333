"""What every fuzz target shares: how many cases, hypothesis settings, RSS, the figures.

The short variant (the CI run) uses each target's own small case count with fixed seeds, so CI
is reproducible.  ``FUZZ_EXAMPLES=N`` selects the long variant: every
target runs about ``N`` cases (the slow daemon targets a stated fraction), randomly seeded unless
``FUZZ_SEED`` is set.  ``FUZZ_REPORT=path.json`` writes the figures of the run (cases, outcomes,
crashes, peak RSS per target) besides the terminal summary.  The names do not start with
``DXAI_`` (those are configuration overrides).
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

EXAMPLES_ENV = "FUZZ_EXAMPLES"
SEED_ENV = "FUZZ_SEED"
REPORT_ENV = "FUZZ_REPORT"
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def long_examples() -> int:
    """``FUZZ_EXAMPLES`` (0: the short variant)."""
    value = os.environ.get(EXAMPLES_ENV, "").strip()
    return max(0, int(value)) if value else 0


def is_long() -> bool:
    """Whether this is the long variant."""
    return long_examples() > 0


def cases(short: int, share: float = 1.0) -> int:
    """How many cases a target runs: ``short`` in CI, ``share`` of ``FUZZ_EXAMPLES`` (never
    fewer than ``short``) in the long variant."""
    n = long_examples()
    return max(short, int(n * share)) if n else short


def fuzz_settings(max_examples: int) -> Callable[[F], F]:
    """Hypothesis settings of a fuzz target: no deadline (a case may wait on a daemon), no
    example database, no health checks (large inputs are the point)."""
    decorator: Callable[[F], F] = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    return decorator


def seed_base() -> int:
    """The seed of the first batch: 0 in the short variant (CI is reproducible), ``FUZZ_SEED``
    or a random one in the long variant (printed with the figures: rerun with it)."""
    global _SEED_BASE
    if _SEED_BASE is None:
        value = os.environ.get(SEED_ENV, "").strip()
        _SEED_BASE = int(value) if value else (random.randrange(1, 2**31) if is_long() else 0)
    return _SEED_BASE


_SEED_BASE: int | None = None
#: examples per hypothesis run: one long run keeps every example's bookkeeping (RSS grows with
#: the count), so targets run in batches of this many, each its own seeded hypothesis run
BATCH = 200


def fuzz(total: int, strategy: st.SearchStrategy[T], body: Callable[[T], None]) -> None:
    """Run ``body`` on ``total`` cases drawn from ``strategy``, in seeded batches."""
    base = seed_base()
    for index, start in enumerate(range(0, total, BATCH)):
        size = min(BATCH, total - start)

        @seed(base + index)
        @fuzz_settings(size)
        @given(strategy)
        def run(case: T) -> None:
            body(case)

        run()


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``: now, ``VmHWM``: peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def rss_mib() -> float:
    """The resident set size of this process now, MiB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, MiB."""
    return _status_kib("VmHWM") / 1024


@dataclass
class TargetFigures:
    """Cases and outcomes of one target (thread-safe: targets count from worker threads)."""

    cases: int = 0
    crashes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: str) -> None:
        """One case ended with ``outcome`` (a status, an admission, an answer...)."""
        with self._lock:
            self.cases += 1
            self.outcomes[outcome] += 1

    def crash(self) -> None:
        """One case crashed the target (the test fails; the figure says so)."""
        with self._lock:
            self.crashes += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "cases": self.cases,
            "crashes": self.crashes,
            "outcomes": dict(sorted(self.outcomes.items())),
            "rss_start_mib": round(self.rss_start_mib, 1),
            "rss_end_mib": round(self.rss_end_mib, 1),
        }


FIGURES: dict[str, TargetFigures] = {}


def target(name: str) -> TargetFigures:
    """The figures of target ``name`` (created on first use, RSS noted)."""
    figures = FIGURES.get(name)
    if figures is None:
        figures = FIGURES[name] = TargetFigures(rss_start_mib=rss_mib())
    return figures


def finish(name: str) -> TargetFigures:
    """Note the RSS at the end of target ``name`` and return its figures."""
    figures = target(name)
    figures.rss_end_mib = rss_mib()
    return figures


def guarded(figures: TargetFigures, call: Callable[[], str]) -> str:
    """Run one case; count its outcome, or count a crash and re-raise."""
    try:
        outcome = call()
    except BaseException:
        figures.crash()
        raise
    figures.add(outcome)
    return outcome


def summary() -> dict[str, Any]:
    """Every target's figures plus the process's peak RSS."""
    return {
        "variant": "long" if is_long() else "short",
        "examples": long_examples() or None,
        "seed": seed_base(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "targets": {name: f.as_dict() for name, f in sorted(FIGURES.items())},
        "total_cases": sum(f.cases for f in FIGURES.values()),
        "total_crashes": sum(f.crashes for f in FIGURES.values()),
    }


def write_report() -> Path | None:
    """Write :func:`summary` to ``FUZZ_REPORT`` when set; return the path."""
    value = os.environ.get(REPORT_ENV, "").strip()
    if not value or not FIGURES:
        return None
    path = Path(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(), indent=2) + "\n", encoding="utf-8")
    return path
