"""Detector throughput and latency: unbatched vs batched (in-process) vs Ray Serve; ORT vs torch.

Runs on CPU in one go (~1 minute on 2 cores) and prints one JSON object, also written to
bench/results/batching.json.  ``ray_overhead_ms_per_item`` is the median extra latency of a
sequential single-item request through Ray Serve over the same request through the in-process
batcher (both batch size 1, no queue delay); the goal is <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from dxai.batching import make_inference_client
from dxai.daemon.config.inference import (
    BatchingConfig,
    EngineConfig,
    InferenceConfig,
    RayServeModelConfig,
)
from dxai.daemon.config.services import RayConfig
from dxai.engines import load_registry
from dxai.observability.metrics import Sensor

MODEL = "ppocr_det"
RESULTS = Path(__file__).resolve().parent / "results" / "batching.json"


def config(kind: str, backend: str, max_batch: int, delay_ms: float, threads: int) -> Any:
    return InferenceConfig(
        backend=backend,  # type: ignore[arg-type]
        models=(MODEL,),
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


async def sequential_latencies(client: Any, items: list[np.ndarray]) -> list[float]:
    """Per-item latency (s) of strictly sequential requests, after one warm-up."""
    await client.infer(MODEL, items[0])
    return [await _timed(client, x) for x in items]


async def run_case(cfg: Any, items: list[np.ndarray], concurrency: int, **kw: Any) -> Any:
    async with make_inference_client(cfg, load_registry(), sensor=Sensor(), **kw) as client:
        return await load_test(client, items, concurrency)


async def overhead(items: list[np.ndarray], threads: int) -> dict[str, float]:
    """Median per-item latency: in-process vs Ray Serve, batch size 1, no delay."""
    registry = load_registry()
    inproc_cfg = config("onnxruntime", "inprocess", 1, 0.0, threads)
    async with make_inference_client(inproc_cfg, registry, sensor=Sensor()) as client:
        local = await sequential_latencies(client, items)
    ray_cfg = config("onnxruntime", "ray", 1, 0.0, threads)
    async with make_inference_client(ray_cfg, registry, ray_config=RayConfig()) as client:
        remote = await sequential_latencies(client, items)
    med_local, med_ray = statistics.median(local) * 1e3, statistics.median(remote) * 1e3
    return {
        "inprocess_median_ms": round(med_local, 2),
        "ray_median_ms": round(med_ray, 2),
        "ray_overhead_ms_per_item": round(med_ray - med_local, 2),
        "goal_ms": 2.0,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    shape = (3, args.size, args.size)
    items = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(args.images)]
    t, b, conc = args.threads, args.batch, args.concurrency
    out: dict[str, Any] = {"model": MODEL, "image": list(shape), "threads": t, "cases": {}}
    for kind in ("onnxruntime", "torch"):
        out["cases"][f"{kind}_unbatched"] = await run_case(
            config(kind, "inprocess", 1, 0.0, t), items, conc
        )
        out["cases"][f"{kind}_batched"] = await run_case(
            config(kind, "inprocess", b, args.delay_ms, t), items, conc
        )
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out["cases"]["onnxruntime_ray_batched"] = await run_case(
            config("onnxruntime", "ray", b, args.delay_ms, t), items, conc
        )
        out["ray_overhead"] = await overhead(items[: args.overhead_items], t)
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
    parser.add_argument("--overhead-items", type=int, default=24)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
