"""The asyncio dynamic batcher: one per model, bucketed shapes, bounded, deadline-aware.

Items are grouped by shape bucket; a bucket's batch leaves when it is full, when its oldest item
has waited ``max_queue_delay_ms``, or at once when no batch of this model is running: waiting
for company only pays while the engine is busy (what arrives meanwhile forms the next batch),
and an idle engine made every OCR call of a lone instance wait the whole delay (8-14% of the
pixel step on the real burned-in files).  A ready batch goes to a ``BatchRunner``: an in-process
engine in a thread pool (never on the event loop), or one Ray Serve call per batch.  At most
``max_concurrent_batches`` batches run at once (per runner replica).  Every submitted item
resolves exactly once: with its own result, its own error (a failing batch is retried item by
item so a bad item fails alone), a deadline error, or a stop error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from dxai.batching.buckets import Bucket, FloatArray, bucket_for
from dxai.batching.buckets import validate_item as _validate
from dxai.batching.runners import BatchRunner, EngineRunner
from dxai.batching.subbatch import Outcome
from dxai.configs.errors import (
    BatcherStoppedError,
    DeadlineExceededError,
    DxaiError,
    EngineError,
    QueueFullError,
    UnknownModelError,
)
from dxai.configs.schema.inference import BatchingConfig
from dxai.engines.base import Engine
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor, default_sensor
from dxai.observability.tracing import TraceContext, current_span_context

_log = get_logger(__name__)
_STOP = object()
_WAKE = object()  # a batch ended: pending items may leave now that the engine is idle


@dataclass(eq=False)
class _Item:
    array: FloatArray
    bucket: Bucket
    future: asyncio.Future[FloatArray]
    enqueued: float
    deadline: float
    origin: TraceContext | None = None  # the span that submitted it (the batch links to it)


@dataclass
class _Batch:
    bucket: Bucket
    items: list[_Item] = field(default_factory=list)


def as_dxai_error(model: str, exc: BaseException) -> DxaiError:
    """``exc`` if it is a DxaiError, else an EngineError naming the model and cause type."""
    if isinstance(exc, DxaiError):
        return exc
    err = EngineError(f"model {model}: inference failed ({type(exc).__name__}: {str(exc)[:200]})")
    err.__cause__ = exc
    return err


class DynamicBatcher:
    """Dynamic batching of single items into engine batches for one model.

    ``engine`` is an in-process Engine (run in a thread pool) or any ``BatchRunner``.
    """

    def __init__(
        self,
        model: ModelSpec,
        engine: Engine | BatchRunner,
        config: BatchingConfig,
        *,
        sensor: Sensor | None = None,
        stop_timeout_s: float = 30.0,
        exact_shapes: bool = False,
    ) -> None:
        self._model = model
        self._exact = exact_shapes
        self._runner = engine if isinstance(engine, BatchRunner) else EngineRunner(model, engine)
        self._config = config
        self._sensor = sensor or default_sensor()
        self._stop_timeout = stop_timeout_s
        self._max_batch = min(config.max_batch_size, self._runner.max_batch_size)
        self._delay = config.max_queue_delay_ms / 1000.0
        self._backend = self._runner.backend
        self._queue: asyncio.Queue[_Item | object] = asyncio.Queue()
        self._pending: dict[Bucket, list[_Item]] = {}
        self._open: set[_Item] = set()
        self._depth = 0
        self._space = asyncio.Event()
        self._concurrency = self._runner.concurrency(config.max_concurrent_batches)
        self._sem = asyncio.Semaphore(self._concurrency)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._running = 0  # batches executing now

    @property
    def model(self) -> ModelSpec:
        """The model this batcher feeds."""
        return self._model

    @property
    def depth(self) -> int:
        """Items admitted but not yet dispatched into a batch."""
        return self._depth

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._task is not None and not self._closed

    async def start(self) -> None:
        """Start the dispatcher task; idempotent."""
        if self._task is not None:
            return
        await self._runner.start(self._concurrency, self._model.name)
        self._task = asyncio.create_task(self._run(), name=f"dxai-batcher-{self._model.name}")
        self._task.add_done_callback(self._on_dispatcher_done)

    async def stop(self) -> None:
        """Stop admitting, run what is queued, await every task, fail leftovers; idempotent."""
        if self._task is None or self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_STOP)
        done, _ = await asyncio.wait({self._task}, timeout=self._stop_timeout)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})
        self._fail_open(BatcherStoppedError(f"model {self._model.name}: batcher stopped"))
        await self._runner.close()

    async def submit(self, item: FloatArray, *, deadline_s: float | None = None) -> FloatArray:
        """Queue one CHW item; return its output cropped to the item's own size.

        Raises InvalidInferenceInputError (bad item), QueueFullError (queue full, policy
        reject), DeadlineExceededError, BatcherStoppedError or the item's EngineError.
        """
        if self._closed or self._task is None:
            raise BatcherStoppedError(f"model {self._model.name}: batcher is not running")
        array = _validate(self._model, item)
        bucket = bucket_for(self._model, array.shape[1], array.shape[2], exact=self._exact)
        loop = asyncio.get_running_loop()
        budget = self._config.default_deadline_s if deadline_s is None else deadline_s
        deadline = loop.time() + budget
        await self._admit(deadline)
        entry = _Item(
            array, bucket, loop.create_future(), loop.time(), deadline, current_span_context()
        )
        self._open.add(entry)
        self._queue.put_nowait(entry)
        try:
            async with asyncio.timeout_at(deadline):
                return await entry.future
        except TimeoutError:
            raise DeadlineExceededError(
                f"model {self._model.name}: item deadline of {budget:.3f}s passed"
            ) from None
        finally:
            self._open.discard(entry)
            if not entry.future.done():
                entry.future.cancel()

    async def _admit(self, deadline: float) -> None:
        capacity = self._config.queue_capacity
        if self._depth >= capacity and self._config.queue_full_policy == "reject":
            raise QueueFullError(f"model {self._model.name}: queue full ({capacity} items)")
        while self._depth >= capacity:
            self._space.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._space.wait()
            except TimeoutError:
                raise DeadlineExceededError(
                    f"model {self._model.name}: deadline passed waiting for queue space"
                ) from None
            if self._closed:
                raise BatcherStoppedError(f"model {self._model.name}: batcher stopped")
        self._set_depth(self._depth + 1)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        if depth < self._config.queue_capacity:
            self._space.set()
        self._sensor.set_gauge("queue_depth", float(depth), {"model": self._model.name})

    def _fail_open(self, error: DxaiError) -> None:
        for entry in list(self._open):
            if not entry.future.done():
                entry.future.set_exception(error)
        self._open.clear()
        self._space.set()

    def _on_dispatcher_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("batcher dispatcher failed", extra={"model": self._model.name})
            self._closed = True
            self._fail_open(EngineError(f"model {self._model.name}: batcher dispatcher failed"))

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            stopping = False
            while not stopping:
                got = await self._next(self._flush_timeout())
                if self._running == 0 and got is not None:
                    await asyncio.sleep(0)  # items submitted together arrive together
                while got is not None and got is not _STOP:
                    if isinstance(got, _Item):
                        self._pending.setdefault(got.bucket, []).append(got)
                    got = self._queue.get_nowait() if not self._queue.empty() else None
                stopping = got is _STOP
                for batch in self._ready(force=stopping, idle=self._running == 0):
                    await self._launch(group, batch)

    async def _next(self, wait_s: float | None) -> _Item | object | None:
        if wait_s is not None and wait_s <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            async with asyncio.timeout(wait_s):
                return await self._queue.get()
        except TimeoutError:
            return None

    def _flush_timeout(self) -> float | None:
        oldest = [items[0].enqueued for items in self._pending.values() if items]
        if not oldest:
            return None
        return min(oldest) + self._delay - asyncio.get_running_loop().time()

    def _ready(self, *, force: bool, idle: bool = False) -> list[_Batch]:
        """The batches that leave now: full ones; partial ones when forced, late, or (``idle``:
        no batch running) at once."""
        now = asyncio.get_running_loop().time()
        batches: list[_Batch] = []
        for bucket, items in list(self._pending.items()):
            while len(items) >= self._max_batch:
                batches.append(_Batch(bucket, items[: self._max_batch]))
                del items[: self._max_batch]
            if items and (force or idle or items[0].enqueued + self._delay <= now):
                batches.append(_Batch(bucket, list(items)))
                items.clear()
            if not items:
                del self._pending[bucket]
        return batches

    async def _launch(self, group: asyncio.TaskGroup, batch: _Batch) -> None:
        await self._sem.acquire()
        live = self._take_live(batch.items)
        if not live:
            self._sem.release()
            return
        self._running += 1  # counted from launch: the task starts at the next loop turn
        group.create_task(self._execute(_Batch(batch.bucket, live)))

    def _take_live(self, items: list[_Item]) -> list[_Item]:
        now = asyncio.get_running_loop().time()
        live: list[_Item] = []
        for entry in items:
            if entry.future.done():
                continue
            if entry.deadline <= now:
                entry.future.set_exception(
                    DeadlineExceededError(f"model {self._model.name}: deadline passed in queue")
                )
                continue
            self._sensor.observe("queue_wait_s", now - entry.enqueued, {"model": self._model.name})
            live.append(entry)
        self._set_depth(self._depth - len(items))
        return live

    async def _execute(self, batch: _Batch) -> None:
        try:
            with self._batch_span(batch):
                await self._execute_batch(batch)
        finally:
            self._running -= 1
            if self._running == 0 and self._pending and not self._closed:
                self._queue.put_nowait(_WAKE)

    def _batch_span(self, batch: _Batch) -> AbstractContextManager[object]:
        """The batch's span: a child of its first item's span, linked to every item's span
        (the items of one batch may come from several jobs, so several traces)."""
        origins = [entry.origin for entry in batch.items if entry.origin is not None]
        size = len(batch.items)
        attrs = {
            "model": self._model.name,
            "backend": self._backend,
            "batch_size": size,
            "fill_ratio": size / self._max_batch,
            "links": len(origins),
        }
        parent = origins[0] if origins else None
        return self._sensor.span("batch", attrs, parent=parent, links=origins)

    async def _execute_batch(self, batch: _Batch) -> None:
        arrays = [entry.array for entry in batch.items]
        deadlines = [entry.deadline for entry in batch.items]
        try:
            started = time.perf_counter()
            outcomes = await self._runner.run(arrays, batch.bucket, deadlines)
            self._observe_batch(len(arrays), time.perf_counter() - started)
            self._resolve(batch.items, outcomes)
        except Exception as exc:  # noqa: BLE001 - any runner failure becomes per-item errors
            if len(batch.items) == 1 or self._runner.isolates_failures:
                for entry in batch.items:
                    self._fail(entry, exc)
            else:
                await self._one_by_one(batch)
        finally:
            self._sem.release()

    def _resolve(self, items: Sequence[_Item], outcomes: Sequence[Outcome]) -> None:
        if len(outcomes) != len(items):
            raise EngineError(
                f"model {self._model.name}: {len(outcomes)} outcomes for {len(items)} items"
            )
        for entry, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self._fail(entry, outcome)
            elif not entry.future.done():
                entry.future.set_result(outcome)

    async def _one_by_one(self, batch: _Batch) -> None:
        for entry in batch.items:
            if entry.future.done():
                continue
            try:
                outcomes = await self._runner.run([entry.array], batch.bucket, [entry.deadline])
                self._resolve([entry], outcomes)
            except Exception as exc:  # noqa: BLE001 - the item fails alone, others go on
                self._fail(entry, exc)

    def _fail(self, entry: _Item, exc: BaseException) -> None:
        if not entry.future.done():
            entry.future.set_exception(as_dxai_error(self._model.name, exc))
        self._sensor.count(
            "errors", {"component": "batcher", "error_code": as_dxai_error("", exc).code}
        )

    def _observe_batch(self, size: int, exec_s: float) -> None:
        labels = {"model": self._model.name}
        self._sensor.observe("batch_size", float(size), labels)
        self._sensor.observe("batch_fill_ratio", size / self._max_batch, labels)
        self._sensor.observe("batch_exec_s", exec_s, {**labels, "backend": self._backend})


class BatcherRouter:
    """Routes ``infer`` calls to one batcher per model (the clients' shared front half).

    Subclasses fill ``_batchers`` on start and set ``_started``.
    """

    _batchers: dict[str, DynamicBatcher]
    _started: bool

    async def infer(
        self, model_name: str, item: FloatArray, *, deadline_s: float | None = None
    ) -> FloatArray:
        """Submit ``item`` to ``model_name``'s batcher and await its own result."""
        batcher = self._batchers.get(model_name)
        if batcher is None:
            if not self._started:
                raise BatcherStoppedError("inference client is not started")
            raise UnknownModelError(f"model {model_name!r} is not enabled on this node")
        return await batcher.submit(item, deadline_s=deadline_s)
