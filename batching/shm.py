"""Same-host shared memory for sub-batch payloads: the Serve call carries only a descriptor.

Measured on 2 cores, most of Ray's per-item cost for a 1.2 MB item is copying the payload
(pickle, protobuf and gRPC buffers on both ends, or the object store's per-call cost).  When
the replica runs on the caller's host, the client pads the batch straight into a file in
``/dev/shm`` (the copy ``pad_into`` makes anyway), the replica maps it, runs the engine on
that memory and writes each cropped output into the file's reply region; only a small
``ShmRequest`` travels through Serve.  Files are private (mode 0600), carry a random token
the replica checks (so a same-named file on another host is never mistaken for ours), are
pre-allocated (``posix_fallocate``: a full tmpfs fails the call, never faults the process),
reused by later calls, and unlinked when the client stops or a call is abandoned.  Names carry
the client's pid; files left by a client that was killed outright are removed by the next
client on the host (``sweep_stale``).
A replica that cannot open the file answers ``ShmUnavailable`` and the client falls back to
sending the sub-batch itself.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dxai.batching.buckets import Bucket, FloatArray
from dxai.batching.subbatch import Outcome, SubBatch

SHM_DIR = Path("/dev/shm")
HEADER = 64
"""Bytes before the request array: the token, padded so arrays stay 64-byte aligned."""
TOKEN_BYTES = 16
PREFIX = "dxai-"
_F32 = 4


@dataclass(frozen=True)
class ShmRequest:
    """A sub-batch that lies in shared memory file ``folder/name``: the batch at ``HEADER``."""

    folder: str
    name: str
    token: bytes
    shape: tuple[int, int, int, int]
    sizes: tuple[tuple[int, int], ...]
    deadlines: tuple[float, ...]
    reply_offset: int
    reply_capacity: int

    @property
    def size(self) -> int:
        """Number of items."""
        return len(self.sizes)


@dataclass(frozen=True)
class ShmOutput:
    """An item's output written to the reply region: float32 of ``shape`` at ``offset``."""

    offset: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ShmUnavailable:
    """The replica could not use the file (another host, or no /dev/shm)."""

    reason: str


class Slot:
    """One private shared memory file, mapped in the client."""

    def __init__(self, capacity: int, directory: Path = SHM_DIR) -> None:
        self.folder = str(directory.resolve())
        self.name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self.capacity = capacity
        self._path = directory / self.name
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, capacity)
            self._map = mmap.mmap(fd, capacity)
        except BaseException:
            self._path.unlink()
            raise
        finally:
            os.close(fd)
        self._map[:TOKEN_BYTES] = self.token

    def array(self, offset: int, shape: tuple[int, ...]) -> FloatArray:
        """A float32 view of the mapping (valid until ``close``)."""
        count = int(np.prod(shape))
        return np.frombuffer(self._map, np.float32, count, offset).reshape(shape)

    def close(self) -> None:
        """Unlink the file; unmap it unless a view is still alive (then the GC does)."""
        self._path.unlink(missing_ok=True)
        with contextlib.suppress(BufferError):
            self._map.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(directory: Path) -> int:
    """Unlink this user's payload files whose client process is gone; returns how many.

    (Hosts whose containers share one /dev/shm but not one pid namespace should give each
    container its own ``shared_memory_dir``.)
    """
    removed = 0
    uid = os.getuid()
    for path in directory.glob(f"{PREFIX}*-*"):
        pid_text = path.name[len(PREFIX) :].split("-", 1)[0]
        with contextlib.suppress(OSError, ValueError):
            if path.stat().st_uid == uid and not _alive(int(pid_text)):
                path.unlink()
                removed += 1
    return removed


class SlotPool:
    """Reusable slots of one client; a slot is lent to one call at a time."""

    def __init__(self, directory: Path = SHM_DIR) -> None:
        sweep_stale(directory)
        self._directory = directory
        self._free: list[Slot] = []
        self._lent: set[Slot] = set()

    def acquire(self, nbytes: int) -> Slot:
        """A free slot of at least ``nbytes`` (the smallest that fits), else a new one."""
        fits = [s for s in self._free if s.capacity >= nbytes]
        if fits:
            slot = min(fits, key=lambda s: s.capacity)
            self._free.remove(slot)
        else:
            if self._free:
                self._free.pop(0).close()
            slot = Slot(max(nbytes, 1 << 20), self._directory)
        self._lent.add(slot)
        return slot

    def release(self, slot: Slot) -> None:
        """Give a slot back for reuse (its last call is over on both ends)."""
        self._lent.discard(slot)
        self._free.append(slot)

    def discard(self, slot: Slot) -> None:
        """Drop a slot a replica may still write to (abandoned call)."""
        self._lent.discard(slot)
        slot.close()

    def close(self) -> None:
        """Unlink every slot; idempotent."""
        for slot in [*self._free, *self._lent]:
            slot.close()
        self._free.clear()
        self._lent.clear()


def aligned(nbytes: int) -> int:
    """``nbytes`` rounded up to a multiple of 64 (every array in a file starts aligned)."""
    return (nbytes + 63) // 64 * 64


def layout(count: int, channels: int, bucket: Bucket, reply: int) -> tuple[int, int]:
    """(reply offset, total bytes) for ``count`` padded items and ``reply`` output bytes."""
    offset = HEADER + aligned(count * channels * bucket[0] * bucket[1] * _F32)
    return offset, offset + reply


class Attachments:
    """Replica side: mapped client files by path (LRU), and the request/reply conversion."""

    def __init__(self, keep: int = 16) -> None:
        self._keep = keep
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()

    @property
    def open_files(self) -> int:
        """Client files mapped now."""
        return len(self._maps)

    def _open(self, req: ShmRequest) -> mmap.mmap:
        key = f"{req.folder}/{req.name}"
        found = self._maps.get(key)
        if found is not None:
            self._maps.move_to_end(key)
            return found
        if "/" in req.name or not req.name.startswith(PREFIX) or not Path(req.folder).is_absolute():
            raise OSError("bad shared memory path")
        fd = os.open(Path(req.folder) / req.name, os.O_RDWR)
        try:
            mapped = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self._prune()
        self._maps[key] = mapped
        return mapped

    def _prune(self) -> None:
        """Unmap files their client unlinked (abandoned or stopped), then the oldest."""
        for key in [key for key in self._maps if not Path(key).exists()]:
            self._drop(key)
        while len(self._maps) >= self._keep:
            self._drop(next(iter(self._maps)))

    def _drop(self, key: str) -> None:
        mapped = self._maps.pop(key)
        with contextlib.suppress(BufferError):
            mapped.close()

    def sub_batch(self, req: ShmRequest) -> SubBatch | ShmUnavailable:
        """The request as a sub-batch viewing the client's file, or why it cannot be."""
        try:
            mapped = self._open(req)
        except (OSError, ValueError) as exc:
            return ShmUnavailable(type(exc).__name__)
        need = layout(req.shape[0], req.shape[1], (req.shape[2], req.shape[3]), 0)[0]
        if len(mapped) < need + req.reply_capacity or mapped[:TOKEN_BYTES] != req.token:
            self._drop(f"{req.folder}/{req.name}")
            return ShmUnavailable("token")
        count = int(np.prod(req.shape))
        batch = np.frombuffer(mapped, np.float32, count, HEADER).reshape(req.shape)
        return SubBatch(batch, req.sizes, req.deadlines)

    def write_reply(
        self, req: ShmRequest, outcomes: Sequence[Outcome]
    ) -> list[Outcome | ShmOutput]:
        """Outputs copied into the reply region where they fit (others stay inline)."""
        mapped = self._maps[f"{req.folder}/{req.name}"]
        offset, end = req.reply_offset, req.reply_offset + req.reply_capacity
        replies: list[Outcome | ShmOutput] = []
        for outcome in outcomes:
            fits = isinstance(outcome, np.ndarray) and offset + outcome.nbytes <= end
            if fits and isinstance(outcome, np.ndarray) and outcome.dtype == np.float32:
                view = np.frombuffer(mapped, np.float32, outcome.size, offset)
                view[:] = outcome.reshape(-1)
                replies.append(ShmOutput(offset, tuple(outcome.shape)))
                offset += aligned(outcome.nbytes)
            else:
                replies.append(outcome)
        return replies


Reply = list[Outcome | ShmOutput] | ShmUnavailable


def run_requests(
    attachments: Attachments,
    requests: Sequence[object],
    run: Callable[[Sequence[object]], list[list[Outcome]]],
) -> list[Reply]:
    """Replica side: resolve shared memory requests, ``run`` every sub-batch once, reply.

    ``run`` is ``run_sub_batches`` bound to the replica's engine; a request whose file
    cannot be used is answered ``ShmUnavailable`` (the client resends it inline).
    """
    subs: list[object] = []
    unusable: dict[int, ShmUnavailable] = {}
    for idx, req in enumerate(requests):
        resolved = attachments.sub_batch(req) if isinstance(req, ShmRequest) else req
        if isinstance(resolved, ShmUnavailable):
            unusable[idx] = resolved
        else:
            subs.append(resolved)
    outcomes = iter(run(subs))
    replies: list[Reply] = []
    for idx, req in enumerate(requests):
        if idx in unusable:
            replies.append(unusable[idx])
        elif isinstance(req, ShmRequest):
            replies.append(attachments.write_reply(req, next(outcomes)))
        else:
            replies.append(list(next(outcomes)))
    return replies
