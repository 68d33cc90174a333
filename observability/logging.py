"""PHI-safe structured logging: one JSON object per line, with the job and the trace.

Log records carry a constant message plus ``extra`` fields.  Fields go through the PHI filter
(:mod:`dxai.observability.phi_filter`): a field whose name is not on its list, or whose value
does not have the field's shape, is replaced by a short hash so that it can be correlated across
lines without being readable.  Message arguments (``log.info("x %s", value)``) are printed only
when they are numbers; an exception is printed as its class name, never its message.

Every line written while a job runs carries ``job`` (the job key's prefix, set by
:func:`job_scope`) and, when a span is current, ``trace_id`` and ``span_id`` (the same ids the
exported spans and the output events' ``traceparent`` carry).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from dxai.observability.phi_filter import FIELDS, hash_value, log_fields

#: Kept for callers that list the printable fields (see ``phi_filter.FIELDS``).
SAFE_FIELDS = frozenset(FIELDS)
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("dxai_log_job", default=None)

__all__ = ["SAFE_FIELDS", "PhiSafeJsonFormatter", "configure_logging", "get_logger", "hash_value"]


@contextmanager
def job_scope(job: str) -> Iterator[None]:
    """Within this block (and tasks or threads started from it) log lines carry ``job``."""
    token = _JOB.set(job)
    try:
        yield
    finally:
        _JOB.reset(token)


def current_job() -> str | None:
    """The job of the current context (None outside a job)."""
    return _JOB.get()


def _message(record: logging.LogRecord) -> str:
    """The constant message; arguments only when every one is a number (else hashed)."""
    template = str(record.msg)
    args = record.args
    if not args:
        return template
    values = args if isinstance(args, tuple) else (args,)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        try:
            return template % values
        except (TypeError, ValueError):
            return template
    return f"{template} [args {hash_value(values)}]"


def _trace_fields() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span (none outside a span)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class PhiSafeJsonFormatter(logging.Formatter):
    """Format records as one JSON object per line through the PHI filter."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        extra = {
            key: value
            for key, value in vars(record).items()
            if key not in _STD_ATTRS and not key.startswith("_")
        }
        job = current_job()
        if job is not None and "job" not in extra:
            extra["job"] = job
        out.update(log_fields(extra))
        out.update(_trace_fields())
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Install the PHI-safe JSON formatter on the root logger (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PhiSafeJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> logging.Logger:
    """The logger for a dxai module."""
    return logging.getLogger(name)
