"""Liveness and readiness: named checks, judged on the event loop, asked from any thread.

The metrics server's thread answers ``/healthz`` and ``/readyz`` (see ``metrics_http``) by asking
a :class:`HealthState` that the daemon fills with checks.  Liveness is one question: does the
event loop run a callback within ``loop_timeout_s``?  Readiness runs every registered check *on
the loop* (checks read state the loop owns, such as a consumer's assignment; they must be cheap
and never block: anything slow, like a network probe, runs in the background and the check only
reads its last result).  Bodies are JSON with check names chosen by the daemon (component and
configured route names) and short fixed phrases or exception class names: never a message, a
URL, a path or anything read from a study (no PHI).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Phase = Literal["starting", "serving", "draining"]
_T = TypeVar("_T")
JsonBody = dict[str, Any]

_PHASE_DETAIL: dict[Phase, str] = {
    "starting": "starting: intake not started yet",
    "serving": "serving",
    "draining": "draining: stopped taking work, finishing running jobs",
}


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict and a short PHI-free phrase that says why."""

    ok: bool
    detail: str


ReadinessCheck = Callable[[], CheckResult]


class HealthState:
    """The process's liveness and readiness, shared by the daemon and the HTTP thread."""

    def __init__(self, loop_timeout_s: float = 2.0) -> None:
        self.loop_timeout_s = loop_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checks: dict[str, ReadinessCheck] = {}
        self._phase: Phase = "starting"
        self._lock = threading.Lock()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop whose answers ``/healthz`` waits for and where checks run."""
        self._loop = loop

    def add(self, name: str, check: ReadinessCheck) -> None:
        """Register (or replace) the readiness check ``name``."""
        with self._lock:
            self._checks[name] = check

    def set_phase(self, phase: Phase) -> None:
        """``starting`` and ``draining`` are never ready; ``serving`` is when every check is."""
        self._phase = phase

    @property
    def phase(self) -> Phase:
        """The lifecycle phase the daemon last reported."""
        return self._phase

    def liveness(self) -> tuple[bool, JsonBody]:
        """Whether the event loop answered in time (call from any thread but the loop's)."""
        started = time.monotonic()
        answered = self._on_loop(lambda: True)
        if answered is None:
            reason = f"event loop did not answer within {self.loop_timeout_s:g} s"
            return False, {"status": "unhealthy", "reason": reason}
        elapsed_ms = (time.monotonic() - started) * 1000.0
        return True, {"status": "ok", "event_loop_answer_ms": round(elapsed_ms, 3)}

    def readiness(self) -> tuple[bool, JsonBody]:
        """Every check's verdict, judged on the loop (call from any thread but the loop's)."""
        results = self._on_loop(self.evaluate)
        if results is None:
            reason = f"event loop did not answer within {self.loop_timeout_s:g} s"
            results = {"event_loop": CheckResult(False, reason)}
        return readiness_body(results)

    def evaluate(self) -> dict[str, CheckResult]:
        """Run the phase check and every registered check now (on the loop's thread)."""
        phase = self._phase
        results = {"lifecycle": CheckResult(phase == "serving", _PHASE_DETAIL[phase])}
        with self._lock:
            checks = sorted(self._checks.items())
        for name, check in checks:
            results[name] = _safe(check)
        return results

    def _on_loop(self, func: Callable[[], _T]) -> _T | None:
        """``func()`` run on the loop, or None when there is no loop or it did not answer."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func())
                except BaseException as exc:  # noqa: BLE001 - handed to the asking thread
                    future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
            return future.result(timeout=self.loop_timeout_s)
        except (RuntimeError, concurrent.futures.TimeoutError):
            future.cancel()
            return None


def _safe(check: ReadinessCheck) -> CheckResult:
    """A check that raises is not ready, with the exception's class name only."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a broken check must not break the endpoint
        return CheckResult(False, f"check failed ({type(exc).__name__})")


def readiness_body(results: dict[str, CheckResult]) -> tuple[bool, JsonBody]:
    """(ready, body): ``not_ready`` maps each failing check to its detail."""
    failing = {name: r.detail for name, r in results.items() if not r.ok}
    checks = {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}
    body: JsonBody = {"status": "not_ready" if failing else "ready", "checks": checks}
    if failing:
        body["not_ready"] = failing
    return not failing, body
