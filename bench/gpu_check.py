"""One prepared GPU check: CUDA visible, torch engine fp32/fp16 vs ONNX Runtime CPU, batcher.

Prints one JSON object (images/s per batch size for fp32 and fp16 on the PP-OCRv4 detector,
the fp16 speed-up of the largest batch over batch 1 (goal >= 4x), max abs differences against
ONNX Runtime on CPU for the detector and the recogniser, batcher throughput).  Without CUDA it
prints ``{"status": "no_cuda", ...}`` and exits 0.  Designed to finish in well under 5 minutes
on one GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import numpy as np

MODEL = "ppocr_det"


def _probe() -> dict[str, Any] | None:
    """None when CUDA is usable, else the JSON to print."""
    try:
        import torch
    except ImportError:
        return {"status": "no_torch", "cuda": False, "reason": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"status": "no_cuda", "cuda": False, "reason": "torch.cuda.is_available() is false"}
    return None


def _throughput(engine: Any, size: int, batch_sizes: list[int], seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for bs in batch_sizes:
        batch = rng.uniform(-1, 1, (bs, 3, size, size)).astype(np.float32)
        engine.infer(batch)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            engine.infer(batch)
            runs += 1
        out[str(bs)] = round(runs * bs / (time.perf_counter() - start), 1)
    return out


def _compare(ref: Any, engine: Any, size: int) -> dict[str, float]:
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    want, got = ref.infer(batch), engine.infer(batch)
    diff = np.abs(want - got)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}


async def _batcher(size: int, max_batch: int, images: int) -> dict[str, float]:
    from dxai.batching import make_inference_client
    from dxai.configs.schema.inference import BatchingConfig, EngineConfig, InferenceConfig
    from dxai.engines import load_registry
    from dxai.observability.metrics import Sensor

    cfg = InferenceConfig(
        models=(MODEL,),
        engine=EngineConfig(kind="torch", device="cuda", precision="fp16"),
        batching=BatchingConfig(max_batch_size=max_batch, max_queue_delay_ms=2.0),
    )
    rng = np.random.default_rng(2)
    shapes = [(3, size - 7 * (i % 5), size) for i in range(images)]
    items = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in shapes]
    async with make_inference_client(cfg, load_registry(), sensor=Sensor()) as client:
        await client.infer(MODEL, items[0])
        start = time.perf_counter()
        outs = await asyncio.gather(*(client.infer(MODEL, x) for x in items))
        wall = time.perf_counter() - start
    ok = all(o.shape == (1, *x.shape[1:]) for o, x in zip(outs, items, strict=True))
    return {"images": images, "images_per_s": round(images / wall, 1), "shapes_ok": ok}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from dxai.configs.schema.inference import EngineConfig
    from dxai.engines import load_engine, load_registry
    from dxai.observability.metrics import Sensor

    spec = load_registry().get(MODEL)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    max_batch = max(sizes)
    ref = load_engine(spec, EngineConfig(intra_op_threads=4), 2, sensor=Sensor())
    result: dict[str, Any] = {
        "status": "ok",
        "cuda": True,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "image": [3, args.size, args.size],
        "engines": {},
    }
    for precision in ("fp32", "fp16"):
        cfg = EngineConfig(kind="torch", device="cuda", precision=precision)  # type: ignore[arg-type]
        engine = load_engine(spec, cfg, max_batch, sensor=Sensor())
        result["engines"][f"torch_cuda_{precision}"] = {
            "vs_onnxruntime_cpu": _compare(ref, engine, 320),
            "images_per_s_by_batch": _throughput(engine, args.size, sizes, args.seconds),
        }
        engine.close()
    fp16 = result["engines"]["torch_cuda_fp16"]["images_per_s_by_batch"]
    result["fp16_batched_vs_unbatched"] = {
        "ratio": round(fp16[str(max_batch)] / fp16["1"], 2) if fp16.get("1") else None,
        "batch": max_batch,
        "goal": 4.0,
    }
    result["recognizer_torch_cuda_fp16"] = _recognizer_check()
    result["batcher_torch_cuda_fp16"] = asyncio.run(_batcher(args.size, 16, args.images))
    return result


def _recognizer_check() -> dict[str, Any]:
    """The recogniser on torch CUDA fp16 against ONNX Runtime CPU: same characters read?"""
    from dxai.configs.schema.inference import EngineConfig
    from dxai.engines import load_engine, load_registry
    from dxai.observability.metrics import Sensor

    spec = load_registry().get("ppocr_rec")
    ref = load_engine(spec, EngineConfig(intra_op_threads=4), 8, sensor=Sensor())
    cfg = EngineConfig(kind="torch", device="cuda", precision="fp16")
    engine = load_engine(spec, cfg, 8, sensor=Sensor())
    batch = np.random.default_rng(3).uniform(-1, 1, (8, 3, 48, 320)).astype(np.float32)
    want, got = ref.infer(batch), engine.infer(batch)
    engine.close()
    same = float(np.mean(want.argmax(axis=2) == got.argmax(axis=2)))
    return {"max_abs_diff": float(np.abs(want - got).max()), "same_argmax_share": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    result = _probe()
    if result is None:
        started = time.perf_counter()
        try:
            result = run(args)
        except Exception as exc:
            result = {"status": "error", "cuda": True, "error": f"{type(exc).__name__}: {exc}"}
        result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    return 0 if result.get("status") in ("ok", "no_cuda", "no_torch") else 1


if __name__ == "__main__":
    sys.exit(main())
