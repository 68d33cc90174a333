"""The batch runner of the Ray Serve client: one Serve call per client-side batch.

The client runs the same ``DynamicBatcher`` as the in-process backend (max batch size, queue
delay, buckets, deadlines, cancellation, backpressure); each batch it forms is sent as one
call, so Serve's per-call cost is shared by the batch.  The replica returns one outcome per
item.  The payload is padded straight into a same-host shared memory file when the replica
can map it (``shm``: only a descriptor travels through Serve); otherwise it is one
``SubBatch`` (a single padded array) over the direct gRPC channel or the object store, chosen
per sub-batch from its request and expected reply sizes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dxai.batching.buckets import Bucket, FloatArray, pad_into
from dxai.batching.ray_handles import ModelHandles, Transport, reply_nbytes
from dxai.batching.runners import BatchRunner
from dxai.batching.shm import (
    HEADER,
    SHM_DIR,
    ShmOutput,
    ShmRequest,
    ShmUnavailable,
    Slot,
    SlotPool,
    aligned,
    layout,
)
from dxai.batching.subbatch import Outcome, SubBatch, pack
from dxai.configs.errors import (
    DeadlineExceededError,
    DxaiError,
    EngineError,
    QueueFullError,
    ServiceUnavailableError,
)
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger

_log = get_logger(__name__)
_T = TypeVar("_T")

INLINE_PACK_BYTES = 256 << 10
"""Sub-batches needing more copying than this are packed in a worker thread, not on the loop."""


class ServeRunner(BatchRunner):
    """Sends each batch to one model's Serve deployment as a single call."""

    isolates_failures = True

    def __init__(
        self,
        model: ModelSpec,
        handles: ModelHandles,
        max_batch: int,
        replicas: int,
        *,
        shared_memory: Path | None = SHM_DIR,
    ) -> None:
        self._model = model
        self._handles = handles
        self._max_batch = max_batch
        self._replicas = replicas
        usable = shared_memory is not None and shared_memory.is_dir()
        self._pool = SlotPool(shared_memory) if usable and shared_memory else None

    @property
    def shared_memory(self) -> bool:
        """True while payloads travel through same-host shared memory."""
        return self._pool is not None

    @property
    def backend(self) -> str:
        """Metric label of this runner."""
        return "ray"

    @property
    def max_batch_size(self) -> int:
        """The deployment's engine batch size."""
        return self._max_batch

    def concurrency(self, configured: int) -> int:
        """``max_concurrent_batches`` per replica."""
        return configured * self._replicas

    def transport(self, arrays: Sequence[FloatArray], bucket: Bucket) -> Transport:
        """How a sub-batch of ``arrays`` padded to ``bucket`` would travel."""
        return self._handles.transport_for_bytes(*self._sizes(arrays, bucket))

    def _sizes(self, arrays: Sequence[FloatArray], bucket: Bucket) -> tuple[int, int | None]:
        request = len(arrays) * arrays[0].shape[0] * bucket[0] * bucket[1] * 4
        replies = [reply_nbytes(self._model, a) for a in arrays]
        reply = None if any(r is None for r in replies) else sum(aligned(r or 0) for r in replies)
        return request, reply

    async def run(
        self, arrays: Sequence[FloatArray], bucket: Bucket, deadlines: Sequence[float]
    ) -> list[Outcome]:
        """One call for the whole batch; raises a DxaiError if the call itself fails."""
        loop = asyncio.get_running_loop()
        offset = time.time() - loop.time()
        wall = [d + offset for d in deadlines]
        request, reply = self._sizes(arrays, bucket)
        if self._pool is not None and reply is not None:
            done = await self._run_shared(arrays, bucket, deadlines, wall, reply)
            if done is not None:
                return done
        sub = await self._pack(arrays, bucket, wall)
        handle = self._handles.pick_for_bytes(request, reply)
        return self._checked(await self._call(handle, sub, deadlines), len(arrays))

    async def _call(self, handle: Any, payload: object, deadlines: Sequence[float]) -> Any:
        """The raw reply of one Serve call; cancelled at the last item's deadline."""
        response = handle.remote(payload)
        try:
            async with asyncio.timeout_at(max(deadlines)):
                return await response
        except TimeoutError:
            response.cancel()
            raise DeadlineExceededError(
                f"model {self._model.name}: item deadline passed in ray serve"
            ) from None
        except asyncio.CancelledError:
            response.cancel()
            raise
        except DxaiError:
            raise
        except Exception as exc:
            raise map_ray_error(self._model.name, exc) from exc

    async def _run_shared(
        self,
        arrays: Sequence[FloatArray],
        bucket: Bucket,
        deadlines: Sequence[float],
        wall: Sequence[float],
        reply: int,
    ) -> list[Outcome] | None:
        """The batch through a shared memory slot; None: use the plain path instead."""
        pool = self._pool
        assert pool is not None
        shape = (len(arrays), int(arrays[0].shape[0]), bucket[0], bucket[1])
        reply_at, total = layout(shape[0], shape[1], bucket, reply)
        try:
            slot = pool.acquire(total)
        except OSError as exc:
            self._give_up_shared(type(exc).__name__)
            return None
        try:
            view = slot.array(HEADER, shape)
            await self._offload(view.nbytes, pad_into, view, arrays, self._model.pad_value)
            sizes = tuple((int(a.shape[1]), int(a.shape[2])) for a in arrays)
            req = ShmRequest(
                slot.folder, slot.name, slot.token, shape, sizes, tuple(wall), reply_at, reply
            )
            raw = await self._call(self._handles.direct, req, deadlines)
        except BaseException:
            pool.discard(slot)
            raise
        try:
            if isinstance(raw, ShmUnavailable):
                self._give_up_shared(raw.reason)
                return None
            replies = self._checked(raw, len(arrays))
            return await self._offload(reply, _read_replies, slot, replies)
        finally:
            if self._pool is pool:
                pool.release(slot)
            else:
                slot.close()

    async def _offload(self, nbytes: int, func: Callable[..., _T], *args: Any) -> _T:
        """``func(*args)`` in a thread when it copies more than a little, else inline."""
        if nbytes <= INLINE_PACK_BYTES:
            return func(*args)
        return await asyncio.to_thread(func, *args)

    def _give_up_shared(self, reason: str) -> None:
        _log.info(
            "ray serve: shared memory unavailable (%s), sending payloads through ray",
            reason,
            extra={"model": self._model.name},
        )
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def close(self) -> None:
        """Unlink this runner's shared memory files."""
        if self._pool is not None:
            self._pool.close()

    async def _pack(
        self, arrays: Sequence[FloatArray], bucket: Bucket, wall: Sequence[float]
    ) -> SubBatch:
        pad = self._model.pad_value
        is_view = len(arrays) == 1 and arrays[0].shape[1:] == bucket
        if is_view or sum(a.nbytes for a in arrays) <= INLINE_PACK_BYTES:
            return pack(arrays, bucket, pad, wall)
        return await asyncio.to_thread(pack, arrays, bucket, pad, wall)

    def _checked(self, outcomes: Any, count: int) -> list[Outcome]:
        if not isinstance(outcomes, list) or len(outcomes) != count:
            raise EngineError(f"model {self._model.name}: malformed reply from ray serve")
        return outcomes


def _read_replies(slot: Slot, replies: list[Any]) -> list[Outcome]:
    """Outcomes with every shared memory output copied out of the slot (it is reused)."""
    return [
        np.array(slot.array(r.offset, r.shape), copy=True) if isinstance(r, ShmOutput) else r
        for r in replies
    ]


def map_ray_error(model_name: str, exc: Exception) -> DxaiError:
    """A Serve call failure as a DxaiError (backpressure: QueueFullError)."""
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, BackPressureError):
        return QueueFullError(f"model {model_name}: ray serve queue full")
    return ServiceUnavailableError(
        f"model {model_name}: ray serve call failed ({type(exc).__name__})"
    )
