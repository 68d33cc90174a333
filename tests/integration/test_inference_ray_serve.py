"""Ray Serve backend: a local Ray (2 CPUs) + Serve running the real PP-OCRv4 detector.

The client batches on its side and sends one call per sub-batch.  Payloads travel through
same-host shared memory, or (shared memory off) through Ray: small sub-batches over the
direct channel, a >3 MiB one via the object store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dxai.batching import make_inference_client
from dxai.batching.buckets import bucket_for
from dxai.batching.ray_serve import RayServeClient
from dxai.configs.errors import DeadlineExceededError, InvalidInferenceInputError
from dxai.configs.schema.inference import (
    BatchingConfig,
    EngineConfig,
    InferenceConfig,
    RayServeModelConfig,
)
from dxai.engines import load_engine, load_registry
from dxai.observability.metrics import Sensor


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray instance for the whole session (slow to start), shut down at the end."""
    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def ray_config(shared_memory_dir: Path | None = None) -> InferenceConfig:
    return InferenceConfig(
        backend="ray",
        models=("ppocr_det",),
        engine=EngineConfig(kind="onnxruntime", intra_op_threads=1),
        batching=BatchingConfig(max_batch_size=4, max_queue_delay_ms=20.0),
        ray_serve=RayServeModelConfig(
            num_replicas=1,
            num_cpus=1.0,
            num_gpus=0.0,
            shared_memory_dir=str(shared_memory_dir) if shared_memory_dir else None,
        ),
    )


@pytest.mark.parametrize("shared", [True, False], ids=["shm", "through_ray"])
async def test_ray_serve_runs_real_detector(local_ray: None, shared: bool, tmp_path: Path):
    registry = load_registry()
    spec = registry.get("ppocr_det")
    rng = np.random.default_rng(3)
    items = [rng.uniform(-1, 1, (3, h, w)).astype(np.float32) for h, w in [(200, 300), (64, 500)]]
    items += [rng.uniform(-1, 1, (3, 320, 320)).astype(np.float32) for _ in range(4)]
    items.append(rng.uniform(-1, 1, (3, 520, 530)).astype(np.float32))
    reference = load_engine(spec, EngineConfig(), 1, sensor=Sensor())
    assert isinstance(make_inference_client(ray_config(), registry), RayServeClient)
    client = RayServeClient(ray_config(tmp_path if shared else None), registry, sensor=Sensor())
    async with client:
        await client.start()
        assert client.uses_shared_memory("ppocr_det") is shared
        assert client.transport_for("ppocr_det", items[0]) == "direct"
        assert client.transport_for("ppocr_det", items[-1]) == "object_store"
        results = await asyncio.gather(*(client.infer("ppocr_det", x) for x in items))
        bad = await asyncio.gather(
            client.infer("ppocr_det", items[0]),
            client.infer("ppocr_det", np.zeros((3, 40, 40), np.float64)),
            return_exceptions=True,
        )
        with pytest.raises(DeadlineExceededError):
            await client.infer("ppocr_det", items[0], deadline_s=1e-4)
        assert client.uses_shared_memory("ppocr_det") is shared
    await client.stop()
    assert list(tmp_path.iterdir()) == []
    for x, got in zip(items, results, strict=True):
        h, w = x.shape[1:]
        # a CPU engine: items run at their own size rounded to the pad multiple (shapes: auto)
        padded = np.zeros((1, 3, *bucket_for(spec, h, w, exact=True)), np.float32)
        padded[0, :, :h, :w] = x
        want = reference.infer(padded)[0, :, :h, :w]
        assert got.shape == (1, h, w)
        assert float(np.abs(got - want).max()) < 1e-4
    assert isinstance(bad[0], np.ndarray)
    assert isinstance(bad[1], InvalidInferenceInputError)
