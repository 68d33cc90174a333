"""Client-side batching for Ray Serve without Ray: sub-batch packing, the replica's merge of
sub-batches (one outcome per item, partial failure, deadlines) and the ServeRunner behind the
dynamic batcher, with a fake deployment handle that runs the replica code in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batch_fakes import POISON, SPEC

from dxai.batching.batcher import DynamicBatcher
from dxai.batching.buckets import pad_into, pad_stack
from dxai.batching.ray_handles import ModelHandles
from dxai.batching.ray_runner import ServeRunner
from dxai.batching.shm import (
    PREFIX,
    Attachments,
    ShmRequest,
    ShmUnavailable,
    SlotPool,
    layout,
    run_requests,
    sweep_stale,
)
from dxai.batching.subbatch import Outcome, SubBatch, check_sub_batch, pack, run_sub_batches
from dxai.configs.errors import (
    DeadlineExceededError,
    EngineError,
    InvalidInferenceInputError,
    ServiceUnavailableError,
)
from dxai.configs.schema.inference import BatchingConfig
from dxai.observability.metrics import Sensor

FAR = time.time() + 3600.0


class Doubler:
    """Fake engine: doubles its batch, fails on POISON, records batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.values: list[float] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(int(batch.shape[0]))
        self.values.extend(float(v) for v in batch[:, 0, 0, 0])
        if np.any(batch == POISON):
            raise ValueError("poisoned input")
        return batch * 2.0


def item(value: float, h: int = 20, w: int = 24) -> np.ndarray:
    return np.full((1, h, w), value, dtype=np.float32)


def sub(values: list[float], bucket: tuple[int, int] = (32, 32), late: int = -1) -> SubBatch:
    deadlines = [0.0 if i == late else FAR for i in range(len(values))]
    return pack([item(v) for v in values], bucket, 0.0, deadlines)


def test_pack_pads_into_one_array_and_views_a_full_single_item():
    mixed = pack([item(1.0, 10, 20), item(2.0, 32, 5)], (32, 32), 0.0, [FAR, FAR])
    assert mixed.batch.shape == (2, 1, 32, 32) and mixed.batch.flags.c_contiguous
    assert mixed.sizes == ((10, 20), (32, 5)) and mixed.size == 2 and mixed.bucket == (32, 32)
    assert mixed.batch[0].sum() == 200 and mixed.batch[1].sum() == 2 * 32 * 5
    full = item(3.0, 32, 32)
    single = pack([full], (32, 32), 0.0, [FAR])
    assert single.batch.shape == (1, 1, 32, 32) and np.shares_memory(single.batch, full)


def test_malformed_sub_batches_are_refused():
    good = sub([1.0, 2.0])
    assert check_sub_batch(SPEC, good) is good
    bad = [
        "junk",
        SubBatch(good.batch.astype(np.float64), good.sizes, good.deadlines),  # type: ignore[arg-type]
        SubBatch(good.batch, good.sizes[:1], good.deadlines),
        SubBatch(good.batch, ((40, 10), (5, 5)), good.deadlines),
    ]
    for candidate in bad:
        with pytest.raises(InvalidInferenceInputError):
            check_sub_batch(SPEC, candidate)


def test_merged_sub_batches_run_in_engine_sized_chunks_one_outcome_each():
    engine = Doubler()
    subs = [sub([1.0, 2.0, 3.0]), sub([4.0, 5.0], bucket=(64, 64)), sub([6.0, 7.0])]
    outcomes = run_sub_batches(engine, SPEC, subs, 4)  # type: ignore[arg-type]
    assert [len(o) for o in outcomes] == [3, 2, 2]
    assert sorted(engine.batches) == [1, 2, 4]
    for values, per_sub in zip([[1, 2, 3], [4, 5], [6, 7]], outcomes, strict=True):
        for value, out in zip(values, per_sub, strict=True):
            assert isinstance(out, np.ndarray) and out.shape == (1, 20, 24)
            assert np.all(out == 2.0 * value)


def test_bad_late_and_malformed_items_fail_alone():
    engine = Doubler()
    subs: list[Any] = [sub([1.0, POISON, 3.0]), "junk", sub([4.0, 5.0], late=0)]
    outcomes = run_sub_batches(engine, SPEC, subs, 8)  # type: ignore[arg-type]
    assert isinstance(outcomes[0][1], EngineError) and "ValueError" in str(outcomes[0][1])
    assert np.all(outcomes[0][0] == 2.0) and np.all(outcomes[0][2] == 6.0)
    assert len(outcomes[1]) == 1 and isinstance(outcomes[1][0], InvalidInferenceInputError)
    assert isinstance(outcomes[2][0], DeadlineExceededError)
    assert np.all(outcomes[2][1] == 10.0)
    assert 4.0 not in engine.values


class FakeResponse:
    """Awaitable like a Serve response: the replica code runs in a thread."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work = work
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __await__(self) -> Any:
        return asyncio.to_thread(self._work).__await__()


class FakeHandle:
    """Runs ``run_sub_batches`` for each call (optionally held at a gate, or failing)."""

    def __init__(
        self, engine: Doubler, fail: Exception | None = None, elsewhere: Path | None = None
    ) -> None:
        self.engine = engine
        self.fail = fail
        self.calls: list[int] = []
        self.responses: list[FakeResponse] = []
        self.gate = threading.Event()
        self.gate.set()
        self.kinds: list[str] = []
        self.attachments = Attachments()
        self.elsewhere = elsewhere  # a replica host whose shared memory is this folder

    def _run(self, subs: Sequence[object]) -> list[list[Outcome]]:
        return run_sub_batches(self.engine, SPEC, subs, 4)  # type: ignore[arg-type]

    def remote(self, request: SubBatch | ShmRequest) -> FakeResponse:
        self.calls.append(request.size)
        self.kinds.append(type(request).__name__)
        if isinstance(request, ShmRequest) and self.elsewhere is not None:
            request = dataclasses.replace(request, folder=str(self.elsewhere))

        def work() -> Any:
            assert self.gate.wait(timeout=30), "test gate never opened"
            if self.fail is not None:
                raise self.fail
            return run_requests(self.attachments, [request], self._run)[0]

        response = FakeResponse(work)
        self.responses.append(response)
        return response


def serve_batcher(handle: FakeHandle, shm: Path | None = None, **cfg: Any) -> DynamicBatcher:
    config = BatchingConfig.model_validate({"max_batch_size": 4, "max_queue_delay_ms": 20.0} | cfg)
    handles = ModelHandles(direct=handle, by_ref=handle)
    runner = ServeRunner(SPEC, handles, 4, 1, shared_memory=shm)
    return DynamicBatcher(SPEC, runner, config, sensor=Sensor())


@pytest.fixture(params=["inline", "shm"])
def shm(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """Both payload paths: the sub-batch itself, or a shared memory file (in tmp_path)."""
    return tmp_path if request.param == "shm" else None


async def poll(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


async def test_client_side_batches_go_one_call_per_sub_batch(shm: Path | None):
    handle = FakeHandle(Doubler())
    batcher = serve_batcher(handle, shm)
    await batcher.start()
    inputs = [item(float(i), h=10 + i, w=30 - i) for i in range(10)]
    results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
    await batcher.stop()
    for i, (x, r) in enumerate(zip(inputs, results, strict=True)):
        assert r.shape == x.shape and np.all(r == 2.0 * i)
    assert sum(handle.calls) == 10 and max(handle.calls) == 4 and len(handle.calls) <= 4
    assert set(handle.kinds) == {"ShmRequest" if shm else "SubBatch"}
    assert shm is None or list(shm.iterdir()) == []


async def test_partial_failure_through_serve_fails_only_the_bad_item(shm: Path | None):
    handle = FakeHandle(Doubler())
    batcher = serve_batcher(handle, shm)
    await batcher.start()
    inputs = [item(1.0), item(POISON), item(3.0), item(4.0)]
    outcomes = await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)
    await batcher.stop()
    assert isinstance(outcomes[1], EngineError)
    assert [float(outcomes[i][0, 0, 0]) for i in (0, 2, 3)] == [2.0, 6.0, 8.0]  # type: ignore[index]
    assert handle.calls == [4]


async def test_failed_call_fails_every_item_of_its_sub_batch_once(shm: Path | None):
    handle = FakeHandle(Doubler(), fail=RuntimeError("replica died"))
    batcher = serve_batcher(handle, shm)
    await batcher.start()
    outcomes = await asyncio.gather(
        *(batcher.submit(item(float(v))) for v in range(3)), return_exceptions=True
    )
    await batcher.stop()
    assert all(isinstance(o, ServiceUnavailableError) for o in outcomes)
    assert handle.calls == [3]
    assert shm is None or list(shm.iterdir()) == []


async def test_cancelled_queued_item_is_never_sent_and_late_call_is_cancelled(shm: Path | None):
    handle = FakeHandle(Doubler())
    handle.gate.clear()
    batcher = serve_batcher(handle, shm, max_batch_size=1, max_queue_delay_ms=0.0)
    await batcher.start()
    first = asyncio.create_task(batcher.submit(item(1.0), deadline_s=0.2))
    await poll(lambda: len(handle.calls) == 1)
    second = asyncio.create_task(batcher.submit(item(2.0)))
    await poll(lambda: batcher.depth == 1)
    second.cancel()
    with pytest.raises(DeadlineExceededError):
        await first
    await poll(lambda: handle.responses[0].cancelled)
    assert shm is None or list(shm.iterdir()) == []  # the abandoned slot is unlinked
    handle.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert np.all(await batcher.submit(item(5.0)) == 10.0)
    await batcher.stop()
    assert handle.calls == [1, 1] and 2.0 not in handle.engine.values


def test_transport_is_chosen_per_sub_batch_size():
    direct, by_ref = object(), object()
    runner = ServeRunner(SPEC, ModelHandles(direct=direct, by_ref=by_ref), 8, 2)
    assert runner.concurrency(1) == 2 and runner.backend == "ray"
    small = [item(1.0, 60, 60) for _ in range(2)]
    assert runner.transport(small, (64, 64)) == "direct"
    big = [np.zeros((1, 700, 700), np.float32) for _ in range(2)]
    assert runner.transport(big[:1], (704, 704)) == "direct"
    assert runner.transport(big, (704, 704)) == "object_store"


def test_pad_into_matches_pad_stack():
    items = [item(1.0, 10, 20), item(2.0, 32, 5), item(3.0, 32, 32), item(4.0, 7, 32)]
    out = np.full((4, 1, 32, 32), np.nan, np.float32)
    pad_into(out, items, -0.5)
    assert np.array_equal(out, pad_stack(items, (32, 32), -0.5))


def test_replica_maps_the_file_and_writes_replies(tmp_path: Path):
    pool = SlotPool(tmp_path)
    shape = (2, 1, 32, 32)
    reply_at, total = layout(2, 1, (32, 32), 2 * 4096)
    slot = pool.acquire(total)
    pad_into(slot.array(64, shape), [item(1.0), item(POISON)], 0.0)
    req = ShmRequest(
        slot.folder, slot.name, slot.token, shape, ((20, 24), (20, 24)), (FAR, FAR), reply_at, 8192
    )
    replica = Attachments()
    replies = run_requests(replica, [req], lambda subs: run_sub_batches(Doubler(), SPEC, subs, 4))  # type: ignore[arg-type]
    got = replies[0]
    assert isinstance(got, list) and isinstance(got[1], EngineError)
    out = slot.array(got[0].offset, got[0].shape)  # type: ignore[union-attr]
    assert out.shape == (1, 20, 24) and np.all(out == 2.0)
    forged = ShmRequest(
        slot.folder, slot.name, b"x" * 16, shape, req.sizes, req.deadlines, reply_at, 8192
    )
    missing = ShmRequest(
        slot.folder, "dxai-gone", slot.token, shape, req.sizes, req.deadlines, reply_at, 0
    )
    for bad in (forged, missing):
        assert isinstance(run_requests(replica, [bad], lambda subs: [])[0], ShmUnavailable)
    pool.release(slot)
    assert pool.acquire(total - 1) is slot
    pool.close()
    assert list(tmp_path.iterdir()) == []


async def test_unusable_shared_memory_falls_back_to_inline_payloads(tmp_path: Path):
    elsewhere = tmp_path / "replica-host"
    elsewhere.mkdir()
    handle = FakeHandle(Doubler(), elsewhere=elsewhere)
    batcher = serve_batcher(handle, tmp_path)
    await batcher.start()
    first = await asyncio.gather(*(batcher.submit(item(float(v))) for v in range(3)))
    second = await batcher.submit(item(7.0))
    await batcher.stop()
    assert [float(r[0, 0, 0]) for r in first] == [0.0, 2.0, 4.0] and np.all(second == 14.0)
    assert handle.kinds == ["ShmRequest", "SubBatch", "SubBatch"]
    assert list(tmp_path.iterdir()) == [elsewhere]


def test_replica_unmaps_files_their_client_unlinked(tmp_path: Path):
    pool = SlotPool(tmp_path)
    replica = Attachments(keep=2)
    shape = (1, 1, 32, 32)
    reply_at, total = layout(1, 1, (32, 32), 0)

    def attach() -> None:
        slot = pool.acquire(total)
        req = ShmRequest(
            slot.folder, slot.name, slot.token, shape, ((32, 32),), (FAR,), reply_at, 0
        )
        assert isinstance(replica.sub_batch(req), SubBatch)
        pool.discard(slot)

    for _ in range(5):
        attach()
    assert replica.open_files == 1
    pool.close()


def test_files_of_dead_clients_are_swept_and_live_ones_kept(tmp_path: Path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(done.stdout)  # that process has exited
    stale = tmp_path / f"{PREFIX}{dead_pid}-00ff"
    stale.write_bytes(b"x")
    unrelated = tmp_path / "other-file"
    unrelated.write_bytes(b"x")
    pool = SlotPool(tmp_path)  # a new client sweeps on start
    slot = pool.acquire(1024)
    assert not stale.exists() and unrelated.exists()
    assert sweep_stale(tmp_path) == 0  # our own live slot stays
    assert (tmp_path / slot.name).exists()
    pool.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-file"]
