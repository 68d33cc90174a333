"""The audit chain's records and hashes, and the check of a whole chain (no I/O here).

Each record carries the hash of the record before it (the first one :data:`GENESIS`), and its
own hash is SHA-256 over a canonical JSON of every field but the hash itself.  Changing a field
breaks that record's hash; deleting or inserting a record breaks the sequence or the link of
the record after it.  Records hold UIDs, job keys, codes and counts only: never PHI.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "ts", "kind", "actor", "job_key", "data", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditRecord:
    """One audit record: what happened (``kind``), who caused it, to which job, the details."""

    seq: int
    ts: float
    kind: str
    actor: str
    job_key: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str = ""

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every field but ``hash``."""
        body = {
            "seq": self.seq,
            "ts": repr(float(self.ts)),
            "kind": self.kind,
            "actor": self.actor,
            "job_key": self.job_key,
            "data": self.data,
            "prev_hash": self.prev_hash,
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def sealed(self) -> AuditRecord:
        """This record with its hash computed."""
        return AuditRecord(
            self.seq, self.ts, self.kind, self.actor, self.job_key, self.data, self.prev_hash,
            self.digest(),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (one line of ``dxai audit export``)."""
        return {name: getattr(self, name) for name in FIELDS} | {"data": dict(self.data)}


@dataclass(frozen=True)
class ChainCheck:
    """The result of checking a chain: intact, or the first record that is not."""

    records: int
    head: str
    bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """True when every record verified."""
        return self.bad_seq is None


def check_chain(records: Iterable[AuditRecord]) -> ChainCheck:
    """Walk ``records`` in stored order; the first broken link, hash or sequence number."""
    prev, expected, count = GENESIS, 1, 0
    for record in records:
        problem = _problem(record, prev, expected)
        if problem:
            return ChainCheck(count, prev, record.seq, problem)
        prev, expected, count = record.hash, record.seq + 1, count + 1
    return ChainCheck(count, prev)


def _problem(record: AuditRecord, prev: str, expected: int) -> str:
    if record.seq != expected:
        return f"sequence number {record.seq} where {expected} was expected (missing or inserted)"
    if record.prev_hash != prev:
        return "its link to the previous record does not match (one before it changed or went)"
    if record.digest() != record.hash:
        return "its content does not match its hash (the record was changed)"
    return ""
