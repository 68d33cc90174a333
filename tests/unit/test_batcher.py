"""The dynamic batcher with a fake engine (ordering, buckets, failures, cancellation, limits);
the Ray Serve transport choice (no Ray needed)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
from batch_fakes import POISON, SPEC

from dxai.batching.batcher import DynamicBatcher
from dxai.batching.ray_handles import (
    DIRECT_MAX_BYTES,
    ModelHandles,
    keep_large_buffers_mapped,
    reply_nbytes,
)
from dxai.configs.errors import (
    BatcherStoppedError,
    DeadlineExceededError,
    EngineError,
    InvalidInferenceInputError,
    QueueFullError,
)
from dxai.configs.schema.inference import BatchingConfig
from dxai.engines.base import EngineInfo
from dxai.engines.spec import ModelSpec, TensorSpec
from dxai.observability.metrics import Sensor


class FakeEngine:
    """Doubles its input; fails on POISON; optionally blocks until ``gate`` is set."""

    def __init__(self, max_batch: int = 8, gated: bool = False) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.values: list[float] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        if not gated:
            self.gate.set()
        self._max_batch = max_batch

    info = EngineInfo("onnxruntime", "cpu", "fp32")
    input_spec = SPEC.input
    output_spec = SPEC.output

    @property
    def max_batch_size(self) -> int:
        return self._max_batch

    def load(self, model: ModelSpec, model_file: Path) -> None:
        del model, model_file

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise RuntimeError("test gate never opened")
        self.batches.append(batch.shape)
        self.values.extend(float(v) for v in batch[:, 0, 0, 0])
        if np.any(batch == POISON):
            raise ValueError("poisoned input")
        return batch * 2.0

    def close(self) -> None:
        pass


def item(value: float, h: int = 20, w: int = 24) -> np.ndarray:
    return np.full((1, h, w), value, dtype=np.float32)


async def poll(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


def make(engine: FakeEngine, sensor: Sensor | None = None, **cfg: object) -> DynamicBatcher:
    base: dict[str, object] = {"max_batch_size": 4, "max_queue_delay_ms": 20.0}
    config = BatchingConfig.model_validate(base | cfg)
    return DynamicBatcher(SPEC, engine, config, sensor=sensor or Sensor())


@pytest.fixture
async def fast() -> AsyncIterator[tuple[DynamicBatcher, FakeEngine]]:
    engine = FakeEngine()
    batcher = make(engine)
    await batcher.start()
    yield batcher, engine
    await batcher.stop()


async def test_each_item_gets_its_own_result_in_order(fast: tuple[DynamicBatcher, FakeEngine]):
    batcher, engine = fast
    inputs = [item(float(i), h=10 + i, w=30 - i) for i in range(10)]
    results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
    for i, (x, r) in enumerate(zip(inputs, results, strict=True)):
        assert r.shape == (1, x.shape[1], x.shape[2])
        assert np.all(r == 2.0 * i)
    assert max(shape[0] for shape in engine.batches) > 1
    assert sum(shape[0] for shape in engine.batches) == 10


async def test_batches_are_bucketed_and_never_mix_shapes(fast: tuple[DynamicBatcher, FakeEngine]):
    batcher, engine = fast
    small = [item(1.0, 10, 10) for _ in range(3)]
    big = [item(2.0, 50, 40) for _ in range(3)]
    huge = item(3.0, 70, 65)
    results = await asyncio.gather(*(batcher.submit(x) for x in [*small, *big, huge]))
    assert {shape[2:] for shape in engine.batches} == {(32, 32), (64, 64), (96, 96)}
    assert results[-1].shape == (1, 70, 65)
    assert all(np.all(r == 2.0) for r in results[:3])


async def test_exact_shapes_run_items_at_their_own_rounded_size():
    """``batching.shapes`` exact (auto on CPU): no bucket padding, only up to pad_multiple;
    items of one rounded size still share a batch."""
    engine = FakeEngine()
    config = BatchingConfig(max_batch_size=4, max_queue_delay_ms=20.0)
    batcher = DynamicBatcher(SPEC, engine, config, sensor=Sensor(), exact_shapes=True)
    await batcher.start()
    try:
        inputs = [item(1.0, 10, 10), item(1.0, 12, 30), item(2.0, 33, 40), item(3.0, 20, 20)]
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
    finally:
        await batcher.stop()
    assert sorted(shape[2:] for shape in engine.batches) == [(32, 32), (64, 64)]
    assert sorted(shape[0] for shape in engine.batches) == [1, 3]
    assert [r.shape for r in results] == [(1, 10, 10), (1, 12, 30), (1, 33, 40), (1, 20, 20)]


async def test_idle_engine_runs_at_once_busy_engine_gathers_a_batch():
    """No batch running: an item leaves at once (no ``max_queue_delay_ms`` wait); while one
    runs, what arrives waits and leaves as one batch when the engine is free again."""
    engine = FakeEngine(gated=True)
    batcher = make(engine, max_queue_delay_ms=60_000.0)
    await batcher.start()
    try:
        lone = asyncio.create_task(batcher.submit(item(1.0)))
        await poll(engine.entered.is_set, limit_s=5.0)  # far sooner than the minute's delay
        waiting = [asyncio.create_task(batcher.submit(item(float(v)))) for v in range(3)]
        await poll(lambda: batcher.depth == 3)
        engine.gate.set()
        results = await asyncio.wait_for(asyncio.gather(lone, *waiting), timeout=10.0)
    finally:
        await batcher.stop()
    assert [float(r[0, 0, 0]) for r in results] == [2.0, 0.0, 2.0, 4.0]
    assert [shape[0] for shape in engine.batches] == [1, 3]


async def test_bad_item_fails_alone(fast: tuple[DynamicBatcher, FakeEngine]):
    batcher, _engine = fast
    inputs = [item(1.0), item(POISON), item(3.0), item(4.0)]
    outcomes = await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)
    assert isinstance(outcomes[1], EngineError)
    assert "ValueError" in str(outcomes[1])
    for idx in (0, 2, 3):
        assert isinstance(outcomes[idx], np.ndarray)
        assert np.all(outcomes[idx] == 2.0 * inputs[idx][0, 0, 0])


async def test_invalid_item_is_refused_before_queueing(fast: tuple[DynamicBatcher, FakeEngine]):
    batcher, engine = fast
    with pytest.raises(InvalidInferenceInputError):
        await batcher.submit(np.zeros((3, 10, 10), dtype=np.float32))
    with pytest.raises(InvalidInferenceInputError):
        await batcher.submit(np.zeros((1, 10, 10), dtype=np.float64))
    assert engine.batches == []


async def test_cancelled_item_is_skipped_and_batcher_continues():
    engine = FakeEngine(gated=True)
    batcher = make(engine, max_batch_size=1, max_queue_delay_ms=0.0)
    await batcher.start()
    first = asyncio.create_task(batcher.submit(item(1.0)))
    await poll(engine.entered.is_set)
    second = asyncio.create_task(batcher.submit(item(2.0)))
    await poll(lambda: batcher.depth == 1)
    second.cancel()
    engine.gate.set()
    assert np.all(await first == 2.0)
    with pytest.raises(asyncio.CancelledError):
        await second
    assert np.all(await batcher.submit(item(5.0)) == 10.0)
    assert 2.0 not in engine.values
    await batcher.stop()


async def test_deadline_expires_while_engine_is_busy():
    engine = FakeEngine(gated=True)
    batcher = make(engine, max_batch_size=1, max_queue_delay_ms=0.0)
    await batcher.start()
    busy = asyncio.create_task(batcher.submit(item(1.0)))
    await poll(engine.entered.is_set)
    with pytest.raises(DeadlineExceededError):
        await batcher.submit(item(2.0), deadline_s=0.05)
    engine.gate.set()
    assert np.all(await busy == 2.0)
    await poll(lambda: batcher.depth == 0)
    assert 2.0 not in engine.values
    await batcher.stop()


async def test_full_queue_rejects_then_drains():
    engine = FakeEngine(gated=True)
    batcher = make(engine, max_batch_size=1, max_queue_delay_ms=0.0, queue_capacity=2)
    await batcher.start()
    running = asyncio.create_task(batcher.submit(item(1.0)))
    await poll(engine.entered.is_set)
    queued = [asyncio.create_task(batcher.submit(item(v))) for v in (2.0, 3.0)]
    await poll(lambda: batcher.depth == 2)
    with pytest.raises(QueueFullError):
        await batcher.submit(item(4.0))
    engine.gate.set()
    results = await asyncio.gather(running, *queued)
    assert [float(r[0, 0, 0]) for r in results] == [2.0, 4.0, 6.0]
    await batcher.stop()


async def test_full_queue_waits_with_policy_wait():
    engine = FakeEngine(gated=True)
    batcher = make(
        engine,
        max_batch_size=1,
        max_queue_delay_ms=0.0,
        queue_capacity=1,
        queue_full_policy="wait",
    )
    await batcher.start()
    running = asyncio.create_task(batcher.submit(item(1.0)))
    await poll(engine.entered.is_set)
    queued = asyncio.create_task(batcher.submit(item(2.0)))
    await poll(lambda: batcher.depth == 1)
    waiting = asyncio.create_task(batcher.submit(item(3.0)))
    await asyncio.sleep(0)
    assert not waiting.done()
    engine.gate.set()
    results = await asyncio.gather(running, queued, waiting)
    assert [float(r[0, 0, 0]) for r in results] == [2.0, 4.0, 6.0]
    await batcher.stop()


async def test_stop_drains_queued_items_and_refuses_new_ones():
    engine = FakeEngine(gated=True)
    batcher = make(engine, max_queue_delay_ms=10_000.0)
    await batcher.start()
    await batcher.start()
    first = asyncio.create_task(batcher.submit(item(9.0)))
    await poll(engine.entered.is_set)  # the engine is busy: what comes now waits for company
    pending = [asyncio.create_task(batcher.submit(item(float(v)))) for v in range(3)]
    await poll(lambda: batcher.depth == 3)
    engine.gate.set()
    await batcher.stop()
    await batcher.stop()
    assert float(first.result()[0, 0, 0]) == 18.0
    assert [float(p.result()[0, 0, 0]) for p in pending] == [0.0, 2.0, 4.0]
    with pytest.raises(BatcherStoppedError):
        await batcher.submit(item(1.0))


async def test_stop_fails_items_an_engine_never_finishes():
    engine = FakeEngine(gated=True)
    config = BatchingConfig(max_batch_size=1, max_queue_delay_ms=0.0)
    batcher = DynamicBatcher(SPEC, engine, config, sensor=Sensor(), stop_timeout_s=0.05)
    await batcher.start()
    stuck = asyncio.create_task(batcher.submit(item(1.0)))
    await poll(engine.entered.is_set)
    await batcher.stop()
    with pytest.raises(BatcherStoppedError):
        await stuck
    engine.gate.set()


async def test_metrics_are_recorded():
    sensor = Sensor()
    engine = FakeEngine()
    batcher = make(engine, sensor=sensor)
    await batcher.start()
    await asyncio.gather(*(batcher.submit(item(1.0)) for _ in range(4)))
    await batcher.stop()
    reg = sensor.registry
    labels = {"model": "fake"}
    assert reg.get_sample_value("dxai_batch_size_count", labels) >= 1
    assert reg.get_sample_value("dxai_batch_size_sum", labels) == 4
    assert reg.get_sample_value("dxai_batch_queue_wait_seconds_count", labels) == 4
    exec_labels = {"model": "fake", "backend": "onnxruntime"}
    assert reg.get_sample_value("dxai_batch_execution_seconds_count", exec_labels) >= 1
    assert reg.get_sample_value("dxai_batch_fill_ratio_count", labels) >= 1
    assert reg.get_sample_value("dxai_batch_queue_depth", labels) == 0


REC_SPEC = SPEC.model_copy(
    update={
        "output": TensorSpec(name="y", shape=(-1, -1, 1000)),
        "postprocess": SPEC.postprocess.model_copy(update={"crop": "sequence", "stride": 8}),
    }
)


def test_reply_size_follows_the_output_spec():
    assert reply_nbytes(SPEC, np.zeros((1, 30, 50), np.float32)) == 30 * 50 * 4
    assert reply_nbytes(REC_SPEC, np.zeros((1, 48, 65), np.float32)) == 9 * 1000 * 4
    unknown = SPEC.model_copy(update={"output": TensorSpec(name="y", shape=(-1, -1, -1, -1))})
    assert reply_nbytes(unknown, np.zeros((1, 8, 8), np.float32)) is None


def _route(handles: ModelHandles, spec: ModelSpec, item: np.ndarray) -> tuple[str, object]:
    """(transport, handle) of a call carrying ``item`` alone."""
    request, reply = item.nbytes, reply_nbytes(spec, item)
    return handles.transport_for_bytes(request, reply), handles.pick_for_bytes(request, reply)


def test_small_items_go_direct_large_ones_by_reference():
    handles = ModelHandles(direct=object(), by_ref=object())
    small = np.zeros((1, 100, 100), np.float32)
    large = np.zeros((1, 1024, 1024), np.float32)
    assert handles.tuned
    assert _route(handles, SPEC, small) == ("direct", handles.direct)
    assert _route(handles, SPEC, large) == ("object_store", handles.by_ref)
    big_reply = np.zeros((1, 48, 8000), np.float32)
    assert big_reply.nbytes < DIRECT_MAX_BYTES < reply_nbytes(REC_SPEC, big_reply)
    assert _route(handles, REC_SPEC, big_reply)[0] == "object_store"


def test_untuned_handles_always_use_the_object_store():
    plain = object()
    handles = ModelHandles(direct=plain, by_ref=plain)
    assert not handles.tuned
    assert _route(handles, SPEC, np.zeros((1, 10, 10), np.float32))[0] == "object_store"


def test_keep_large_buffers_mapped_is_idempotent():
    first = keep_large_buffers_mapped()
    assert keep_large_buffers_mapped() == first
    assert np.full((3, 512, 512), 1.0, np.float32).sum() == 3 * 512 * 512
