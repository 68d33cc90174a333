"""GPU engines (run on a CUDA node only): torch fp32/fp16 and TensorRT vs ONNX Runtime CPU."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dxai.batching import make_inference_client
from dxai.configs.schema.inference import BatchingConfig, EngineConfig, InferenceConfig
from dxai.engines import load_engine, load_registry
from dxai.observability.metrics import Sensor

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device visible (torch.cuda.is_available())"
)


def batch(n: int = 2, size: int = 320) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 3, size, size)).astype(np.float32)


def reference(x: np.ndarray) -> np.ndarray:
    spec = load_registry().get("ppocr_det")
    return load_engine(spec, EngineConfig(), x.shape[0], sensor=Sensor()).infer(x)


@pytest.mark.parametrize(("precision", "tol"), [("fp32", 1e-3), ("fp16", 2e-2)])
def test_torch_cuda_matches_onnxruntime_cpu(precision: str, tol: float):
    spec = load_registry().get("ppocr_det")
    cfg = EngineConfig(kind="torch", device="cuda", precision=precision)  # type: ignore[arg-type]
    engine = load_engine(spec, cfg, 4, sensor=Sensor())
    x = batch()
    assert engine.info.device == "cuda" and engine.info.precision == precision
    assert float(np.abs(engine.infer(x) - reference(x)).max()) < tol


@pytest.mark.parametrize(("precision", "tol"), [("fp32", 1e-3), ("fp16", 5e-2)])
def test_torch_cuda_recognizer_matches_onnxruntime_cpu(precision: str, tol: float):
    spec = load_registry().get("ppocr_rec")
    cfg = EngineConfig(kind="torch", device="cuda", precision=precision)  # type: ignore[arg-type]
    engine = load_engine(spec, cfg, 4, sensor=Sensor())
    ref = load_engine(spec, EngineConfig(), 4, sensor=Sensor())
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, 48, 320)).astype(np.float32)
    got, want = engine.infer(x), ref.infer(x)
    assert got.shape == want.shape == (4, 40, want.shape[2])
    assert float(np.abs(got - want).max()) < tol


async def test_batcher_on_cuda_fp16():
    cfg = InferenceConfig(
        models=("ppocr_det",),
        engine=EngineConfig(kind="torch", device="cuda", precision="fp16"),
        batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=2.0),
    )
    items = [x for x in batch(12)]
    async with make_inference_client(cfg, load_registry(), sensor=Sensor()) as client:
        outs = await asyncio.gather(*(client.infer("ppocr_det", x) for x in items))
    assert all(o.shape == (1, 320, 320) for o in outs)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="tensorrt not installed")
def test_tensorrt_builds_caches_and_matches(tmp_path: Path):
    spec = load_registry().get("ppocr_det")
    cfg = EngineConfig(kind="tensorrt", device="cuda", engine_cache_dir=str(tmp_path))
    engine = load_engine(spec, cfg, 4, sensor=Sensor())
    x = batch()
    assert float(np.abs(engine.infer(x) - reference(x)).max()) < 1e-3
    assert len(list(tmp_path.glob("ppocr_det-*.plan"))) == 1
    again = load_engine(spec, cfg, 4, sensor=Sensor())
    assert float(np.abs(again.infer(x) - engine.infer(x)).max()) < 1e-5
