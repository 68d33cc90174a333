"""Per-partition watermarks of the Kafka intake (pure bookkeeping, no I/O).

An input offset is *done* once its event needs nothing more from this daemon: its job concluded
and its final decision + results were produced, or the event was a dead letter or a duplicate.
The **watermark** of a partition is the lowest offset not done (the next offset the group
commits): every offset below it is done.  Offsets above it that are done already (a fast job
behind a slow one) are the partition's **concluded set**.  Together they form the partition's
:class:`Snapshot`, written to the state topic with every commit so that the next owner of the
partition skips those events (:mod:`dxai.daemon.intake.partition_state`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from dxai.configs.errors import PermanentError

STATE_VERSION = 1


class PartitionRevokedError(PermanentError):
    """A job's input partition moved to another daemon before the job concluded here: the new
    owner runs it again, so this daemon must not publish its final outputs."""

    code = "partition_revoked"


@dataclass(frozen=True)
class Snapshot:
    """A partition's progress: every offset below ``watermark`` is done, and so is every
    offset in ``concluded`` (all at or above the watermark)."""

    watermark: int
    concluded: frozenset[int] = frozenset()

    def covers(self, offset: int) -> bool:
        """Whether the event at ``offset`` needs nothing more (done by a previous owner)."""
        return offset < self.watermark or offset in self.concluded


def _ranges(offsets: list[int]) -> list[list[int]]:
    """Sorted offsets as inclusive ``[first, last]`` runs (compact for long contiguous runs)."""
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and runs[-1][1] == offset - 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return runs


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The state record's value (JSON, offsets only: no PHI)."""
    body = {
        "v": STATE_VERSION,
        "watermark": snapshot.watermark,
        "concluded": _ranges(sorted(snapshot.concluded)),
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_snapshot(value: bytes) -> Snapshot | None:
    """A state record's snapshot; None for a record this version cannot read."""
    try:
        body = json.loads(value)
        if body.get("v") != STATE_VERSION:
            return None
        done = {o for first, last in body["concluded"] for o in range(int(first), int(last) + 1)}
        return Snapshot(int(body["watermark"]), frozenset(done))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _snapshot_of(
    pending: Iterable[int], done: Iterable[int], upto: int | None, base: int
) -> Snapshot:
    """The snapshot of a partition with offsets ``pending`` held, ``done`` finished, ``upto``
    the next offset to consume and ``base`` the watermark it was taken over at."""
    held = list(pending)
    mark = min(held) if held else max(upto or 0, base)
    return Snapshot(mark, frozenset(o for o in done if o >= mark))


@dataclass
class PartitionMarks:
    """The bookkeeping of one assigned partition (see the module docstring)."""

    base: Snapshot
    pending: dict[int, str] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    next_offset: int | None = None
    dirty: bool = False
    floor: int = 0

    def __post_init__(self) -> None:
        self.done |= set(self.base.concluded)

    @property
    def watermark(self) -> int:
        """The lowest offset not done (the offset to commit)."""
        return self.snapshot().watermark

    @property
    def window(self) -> int:
        """Offsets consumed but not committed (what a slow job holds back)."""
        return max(0, (self.next_offset or 0) - self.watermark)

    def snapshot(self, also_done: Iterable[int] = ()) -> Snapshot:
        """The current snapshot, or the one it would be with ``also_done`` finished too."""
        extra = set(also_done)
        pending = (o for o in self.pending if o not in extra)
        return _snapshot_of(pending, self.done | extra, self.next_offset, self.base.watermark)


class WatermarkTracker:
    """Watermarks of every partition this daemon owns, and which job holds which offset."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], PartitionMarks] = {}
        self._holders: dict[str, set[tuple[str, int, int]]] = {}
        self._abandoned: set[str] = set()

    def owns(self, topic: str, partition: int) -> bool:
        """Whether the partition is tracked (assigned and rebuilt)."""
        return (topic, partition) in self._parts

    def assign(self, topic: str, partition: int, base: Snapshot) -> None:
        """Start tracking a partition from what its previous owner left (``base``)."""
        self._parts[(topic, partition)] = PartitionMarks(base)

    def revoke(self, topic: str, partition: int) -> list[str]:
        """Stop tracking a partition; the keys of its jobs still running are abandoned (their
        outputs must not be published here: the new owner runs them).  Returns those keys."""
        marks = self._parts.pop((topic, partition), None)
        if marks is None:
            return []
        keys = sorted(set(marks.pending.values()))
        for key in keys:
            holders = self._holders.get(key, set())
            holders -= {(topic, partition, o) for o in marks.pending}
            if not holders:
                self._holders.pop(key, None)
                self._abandoned.add(key)
        return keys

    def seen_before(self, topic: str, partition: int, offset: int) -> bool:
        """Whether a previous owner (or this one) already finished the event at ``offset``."""
        marks = self._parts[(topic, partition)]
        return marks.base.covers(offset) or offset < marks.floor or offset in marks.done

    def hold(self, topic: str, partition: int, offset: int, key: str) -> None:
        """The event at ``offset`` belongs to job ``key``, not concluded yet."""
        marks = self._parts[(topic, partition)]
        marks.pending[offset] = key
        marks.next_offset = max(marks.next_offset or 0, offset + 1)
        self._holders.setdefault(key, set()).add((topic, partition, offset))
        self._abandoned.discard(key)

    def finish(self, topic: str, partition: int, offset: int) -> None:
        """The event at ``offset`` needs nothing more (dead letter, duplicate, concluded)."""
        marks = self._parts.get((topic, partition))
        if marks is None:
            return
        key = marks.pending.pop(offset, None)
        if key is not None:
            holders = self._holders.get(key, set())
            holders.discard((topic, partition, offset))
            if not holders:
                self._holders.pop(key, None)
        marks.done.add(offset)
        marks.next_offset = max(marks.next_offset or 0, offset + 1)
        marks.dirty = True

    def parts_of(self, key: str) -> list[tuple[str, int]]:
        """The partitions holding offsets of job ``key``."""
        return sorted({(t, p) for t, p, _ in self._holders.get(key, set())})

    def concluded(self, key: str) -> list[tuple[str, int]]:
        """Job ``key``'s outputs are produced: its offsets are done.  Returns the partitions
        whose snapshot changed."""
        changed = self.parts_of(key)
        for topic, partition, offset in sorted(self._holders.get(key, set())):
            self.finish(topic, partition, offset)
        return changed

    def preview(
        self, parts: Iterable[tuple[str, int]], key: str | None = None
    ) -> dict[tuple[str, int], Snapshot]:
        """The snapshots of ``parts`` as they would be once ``key`` concluded (no change)."""
        held = self._holders.get(key, set()) if key is not None else set()
        out: dict[tuple[str, int], Snapshot] = {}
        for part in parts:
            extra = [o for t, p, o in held if (t, p) == part]
            out[part] = self._parts[part].snapshot(extra)
        return out

    def settle(self, part: tuple[str, int], committed: Snapshot) -> None:
        """``committed`` was committed for ``part``: forget done offsets below it, and the
        partition is clean unless it changed since."""
        marks = self._parts.get(part)
        if marks is None:
            return
        marks.floor = max(marks.floor, committed.watermark)
        marks.done = {o for o in marks.done if o >= committed.watermark}
        marks.dirty = marks.snapshot() != committed

    def is_abandoned(self, key: str) -> bool:
        """Whether ``key``'s partition moved away while the job ran here."""
        return key in self._abandoned

    def marks(self, topic: str, partition: int) -> PartitionMarks:
        """The partition's bookkeeping (KeyError when not tracked)."""
        return self._parts[(topic, partition)]

    def dirty(self) -> list[tuple[str, int]]:
        """Tracked partitions whose snapshot changed since it was last committed."""
        return sorted(tp for tp, marks in self._parts.items() if marks.dirty)

    def pending_in(self, partitions: list[tuple[str, int]]) -> int:
        """Offsets of ``partitions`` still held by running jobs."""
        return sum(len(self._parts[tp].pending) for tp in partitions if tp in self._parts)
