"""Detector throughput and latency: unbatched vs batched (in-process) vs Ray Serve; ORT vs torch.

Runs on CPU in one go (a few minutes on 2 cores) and prints one JSON object, also written to
bench/results/batching.json.  The per-item overhead Ray Serve adds over the in-process batcher
(goal <= 2 ms) is reported two ways, each with the real detector and with a no-op model of the
same payload (3x320x320 float32 in, 1x320x320 out) that isolates Ray's own cost from the
detector's compute noise.  In both, the two clients are alive at once, get the same settings
and are measured in alternating rounds so machine load hits both alike:

* ``ray_overhead_sequential[_noop]``: strictly sequential single items (batch size 1, no
  queue delay): the honest worst case, where nothing can be amortised.  Per round, the median
  item latency; the overhead is the median over rounds of (Ray - in-process).
* ``ray_overhead_batched[_noop]``: ``--overhead-items`` items with ``--concurrency`` in flight,
  batch size ``--batch`` and ``--delay-ms`` on both backends; the overhead per item is
  (Ray wall - in-process wall) / items per round, median over rounds.

``ray_serve_call_floor`` is a bare Serve round trip (echo, tiny payload, same handles): no
sequential figure can go below it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dxai.batching import make_inference_client
from dxai.configs.schema.inference import (
    BatchingConfig,
    EngineConfig,
    InferenceConfig,
    RayServeModelConfig,
)
from dxai.configs.schema.services import RayConfig
from dxai.engines import load_registry
from dxai.engines.registry import ModelRegistry, sha256_file
from dxai.engines.spec import ModelSpec
from dxai.observability.metrics import Sensor

MODEL = "ppocr_det"
NOOP = "noop"
RESULTS = Path(__file__).resolve().parent / "results" / "batching.json"
GOAL_MS = 2.0


def config(
    kind: str, backend: str, max_batch: int, delay_ms: float, threads: int, model: str = MODEL
) -> Any:
    return InferenceConfig(
        backend=backend,  # type: ignore[arg-type]
        models=(model,),
        engine=EngineConfig(kind=kind, intra_op_threads=threads),  # type: ignore[arg-type]
        batching=BatchingConfig(max_batch_size=max_batch, max_queue_delay_ms=delay_ms),
        ray_serve=RayServeModelConfig(num_cpus=1.0, max_ongoing_requests=64),
    )


async def _timed(client: Any, item: np.ndarray) -> float:
    start = time.perf_counter()
    await client.infer(MODEL, item)
    return time.perf_counter() - start


async def load_test(client: Any, items: list[np.ndarray], concurrency: int) -> dict[str, float]:
    """Run every item with ``concurrency`` in flight; throughput and latency percentiles."""
    await client.infer(MODEL, items[0])
    sem = asyncio.Semaphore(concurrency)

    async def one(item: np.ndarray) -> float:
        async with sem:
            return await _timed(client, item)

    start = time.perf_counter()
    lat = await asyncio.gather(*(one(x) for x in items))
    wall = time.perf_counter() - start
    ms = sorted(v * 1000 for v in lat)
    return {
        "images": len(items),
        "images_per_s": round(len(items) / wall, 2),
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 2),
    }


async def run_case(cfg: Any, items: list[np.ndarray], concurrency: int, **kw: Any) -> Any:
    async with make_inference_client(cfg, load_registry(), sensor=Sensor(), **kw) as client:
        return await load_test(client, items, concurrency)


def noop_registry(folder: Path) -> ModelRegistry:
    """A registry with one no-op ONNX model (max over channels): detector-sized I/O, ~no compute."""
    from onnx import TensorProto, helper, save

    node = helper.make_node("ReduceMax", ["x"], ["y"], keepdims=1, axes=[1])
    graph = helper.make_graph(
        [node],
        "noop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(folder / "noop.onnx"))
    spec = ModelSpec.model_validate(
        {
            "name": NOOP,
            "version": "1",
            "format": "onnx",
            "source": {"path": "noop.onnx"},
            "sha256": sha256_file(folder / "noop.onnx"),
            "input": {"name": "x", "shape": [-1, 3, -1, -1]},
            "output": {"name": "y", "shape": [-1, 1, -1, -1]},
            "buckets": [[320, 320], [640, 640]],
            "postprocess": {"crop": "spatial", "stride": 1},
        }
    )
    return ModelRegistry(models={NOOP: spec}, base_dir=folder)


async def _sequential_ms(client: Any, model: str, items: list[np.ndarray]) -> list[float]:
    await client.infer(model, items[0])
    out = []
    for item in items:
        start = time.perf_counter()
        await client.infer(model, item)
        out.append((time.perf_counter() - start) * 1e3)
    return out


async def overhead(
    registry: ModelRegistry, model: str, items: list[np.ndarray], threads: int, rounds: int
) -> dict[str, Any]:
    """Sequential single-item latency, in-process vs Ray Serve, in alternating rounds."""
    local_cfg = config("onnxruntime", "inprocess", 1, 0.0, threads, model)
    ray_cfg = config("onnxruntime", "ray", 1, 0.0, threads, model)
    local_med: list[float] = []
    ray_med: list[float] = []
    ray_all: list[float] = []
    async with (
        make_inference_client(local_cfg, registry, sensor=Sensor()) as local,
        make_inference_client(ray_cfg, registry, ray_config=RayConfig(), sensor=Sensor()) as ray,
    ):
        for _ in range(rounds):
            local_med.append(statistics.median(await _sequential_ms(local, model, items)))
            remote = await _sequential_ms(ray, model, items)
            ray_med.append(statistics.median(remote))
            ray_all.extend(remote)
        payload = _payload_path(ray, model)
    per_round = sorted(r - lo for r, lo in zip(ray_med, local_med, strict=True))
    deciles = statistics.quantiles(ray_all, n=10)
    return {
        "model": model,
        "payload_bytes": int(items[0].nbytes),
        "rounds": rounds,
        "items_per_round": len(items),
        "ray_payload": payload,
        "inprocess_median_ms": round(statistics.median(local_med), 3),
        "ray_median_ms": round(statistics.median(ray_med), 3),
        "ray_p10_p90_ms": [round(deciles[0], 3), round(deciles[-1], 3)],
        **_goal(per_round),
    }


def _payload_path(client: Any, model: str) -> str:
    """How the Ray client's payloads travelled: same-host shared memory or through Ray."""
    return "shared_memory" if client.uses_shared_memory(model) else "through_ray"


def _goal(per_round: list[float]) -> dict[str, Any]:
    """Median and spread of sorted per-round overheads, and the goal comparison."""
    median = statistics.median(per_round)
    return {
        "ray_overhead_ms_per_item": round(median, 3),
        "overhead_min_max_ms": [round(per_round[0], 3), round(per_round[-1], 3)],
        "goal_ms": GOAL_MS,
        "meets_goal": median <= GOAL_MS,
    }


async def _wall_s(client: Any, model: str, items: list[np.ndarray], concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: np.ndarray) -> None:
        async with sem:
            await client.infer(model, item)

    start = time.perf_counter()
    await asyncio.gather(*(one(x) for x in items))
    return time.perf_counter() - start


async def batched_overhead(
    registry: ModelRegistry, model: str, items: list[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    """Wall time of the same concurrent load, in-process vs Ray Serve, in alternating rounds."""
    threads = 1 if model == NOOP else args.threads
    batch, delay, conc = args.batch, args.delay_ms, args.concurrency
    local_cfg = config("onnxruntime", "inprocess", batch, delay, threads, model)
    ray_cfg = config("onnxruntime", "ray", batch, delay, threads, model)
    local_s: list[float] = []
    ray_s: list[float] = []
    async with (
        make_inference_client(local_cfg, registry, sensor=Sensor()) as local,
        make_inference_client(ray_cfg, registry, ray_config=RayConfig(), sensor=Sensor()) as ray,
    ):
        await _wall_s(local, model, items[:conc], conc)
        await _wall_s(ray, model, items[:conc], conc)
        for _ in range(args.overhead_rounds):
            local_s.append(await _wall_s(local, model, items, conc))
            ray_s.append(await _wall_s(ray, model, items, conc))
        payload = _payload_path(ray, model)
    n = len(items)
    per_round = sorted((r - lo) * 1e3 / n for r, lo in zip(ray_s, local_s, strict=True))
    return {
        "model": model,
        "payload_bytes": int(items[0].nbytes),
        "rounds": args.overhead_rounds,
        "items_per_round": n,
        "batch": batch,
        "delay_ms": delay,
        "concurrency": conc,
        "ray_payload": payload,
        "inprocess_ms_per_item": round(statistics.median(local_s) * 1e3 / n, 3),
        "ray_ms_per_item": round(statistics.median(ray_s) * 1e3 / n, 3),
        **_goal(per_round),
    }


async def serve_call_floor(calls: int) -> dict[str, Any]:
    """Median round trip of a bare Serve call (echo, ``@serve.batch`` + a thread hop, tiny
    payload) through the same tuned handles: the floor under any sequential Ray figure."""
    from ray import serve

    from dxai.batching.ray_handles import REPLICA_ENV, close_handles, make_handles

    @serve.deployment(
        name="dxai_bench_floor",
        ray_actor_options={"num_cpus": 1.0, "runtime_env": {"env_vars": dict(REPLICA_ENV)}},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    class Echo:
        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)  # type: ignore[misc]
        async def __call__(self, xs: list[int]) -> list[int]:
            return await asyncio.to_thread(list, xs)

    serve.start(proxy_location="Disabled")
    await asyncio.to_thread(serve.run, Echo.bind(), name="dxai_bench_floor", route_prefix=None)
    handles = make_handles("dxai_bench_floor", "dxai_bench_floor")
    try:
        for _ in range(20):
            await handles.direct.remote(1)
        ms = []
        for _ in range(calls):
            start = time.perf_counter()
            await handles.direct.remote(1)
            ms.append((time.perf_counter() - start) * 1e3)
    finally:
        await close_handles(handles)
        await asyncio.to_thread(serve.delete, "dxai_bench_floor")
    return {"calls": calls, "median_ms": round(statistics.median(ms), 3)}


def _load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


async def throughput_cases(args: argparse.Namespace, items: list[np.ndarray]) -> dict[str, Any]:
    """Unbatched vs batched in-process (ORT, torch) and batched through Ray Serve."""
    t, b, conc = args.threads, args.batch, args.concurrency
    cases: dict[str, Any] = {}
    for kind in ("onnxruntime", "torch"):
        cases[f"{kind}_unbatched"] = await run_case(
            config(kind, "inprocess", 1, 0.0, t), items, conc
        )
        cases[f"{kind}_batched"] = await run_case(
            config(kind, "inprocess", b, args.delay_ms, t), items, conc
        )
    cases["onnxruntime_ray_batched"] = await run_case(
        config("onnxruntime", "ray", b, args.delay_ms, t), items, conc
    )
    return cases


async def overhead_cases(args: argparse.Namespace, items: list[np.ndarray]) -> dict[str, Any]:
    """Ray's per-item overhead, sequential and batched, with the no-op model and the detector.

    The no-op model runs with one intra-op thread: with more, ONNX Runtime's spinning idle
    threads take the CPU that Ray's I/O needs and the figure measures that contention.
    """
    few, rounds = items[: args.overhead_items], args.overhead_rounds
    out: dict[str, Any] = {"load_avg_before_overhead": _load_avg()}
    out["ray_serve_call_floor"] = await serve_call_floor(200)
    with tempfile.TemporaryDirectory() as folder:
        noop = noop_registry(Path(folder))
        out["ray_overhead_sequential_noop"] = await overhead(noop, NOOP, few, 1, rounds)
        out["ray_overhead_batched_noop"] = await batched_overhead(noop, NOOP, few, args)
    registry = load_registry()
    out["ray_overhead_sequential"] = await overhead(registry, MODEL, few, args.threads, rounds)
    out["ray_overhead_batched"] = await batched_overhead(registry, MODEL, few, args)
    out["load_avg_after_overhead"] = _load_avg()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    shape = (3, args.size, args.size)
    items = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(args.images)]
    out: dict[str, Any] = {"model": MODEL, "image": list(shape), "threads": args.threads}
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        if not args.overhead_only:
            out["cases"] = await throughput_cases(args, items)
        out.update(await overhead_cases(args, items))
    finally:
        ray.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overhead-items", type=int, default=40)
    parser.add_argument("--overhead-rounds", type=int, default=5)
    parser.add_argument("--overhead-only", action="store_true", help="skip the throughput cases")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
