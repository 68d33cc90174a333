"""PHI-safe structured logging.

Log records carry a constant message plus ``extra`` fields.  Only fields whose names are on the
allow list are printed as they are; any other field is replaced by a short keyed-free hash so that
a value can be correlated across lines without being readable.  Never log names, IDs, dates of
birth, addresses or free text: log UIDs, hashed job ids, counts and durations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from typing import Any

SAFE_FIELDS = frozenset(
    {
        "study_uid",
        "series_uid",
        "sop_instance_uid",
        "job",
        "job_id_hash",
        "backend",
        "device",
        "model",
        "count",
        "duration_s",
        "state",
        "reason",
        "path_index",
        "topic",
        "partition",
        "offset",
        "status",
        "profile",
        "port",
        "url",
        "error_code",
        "batch_size",
        "component",
        "file",
        "precision",
        "providers",
    }
)
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def hash_value(value: object) -> str:
    """A short, stable, non-reversible token for a value that must not be logged."""
    return "h:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:12]


class PhiSafeJsonFormatter(logging.Formatter):
    """Format records as one JSON object per line, hashing fields not on the allow list."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STD_ATTRS or key.startswith("_"):
                continue
            out[key] = value if key in SAFE_FIELDS else hash_value(value)
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
