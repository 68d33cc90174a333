"""Create and load engines by config; the loaded backend is always logged and exported."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

from dxai.configs.schema.inference import EngineConfig
from dxai.engines.base import Engine
from dxai.engines.registry import packaged_registry, verify_model_file
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor, default_sensor

_log = get_logger(__name__)


def create_engine(
    config: EngineConfig, max_batch_size: int, *, variable_shapes: bool = False
) -> Engine:
    """An unloaded engine of ``config.kind``; raises BackendUnavailableError if it cannot run.

    ``variable_shapes``: the caller does not pad inputs to the model's buckets, so shapes
    change from call to call (ONNX Runtime then plans no memory pattern; others ignore it).
    """
    if config.kind == "onnxruntime":
        from dxai.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(config, max_batch_size, variable_shapes=variable_shapes)
    if config.kind == "torch":
        from dxai.engines.torch_engine import TorchEngine

        return TorchEngine(config, max_batch_size)
    from dxai.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(config, max_batch_size)


def load_engine(
    model: ModelSpec,
    config: EngineConfig,
    max_batch_size: int,
    *,
    base_dir: Path | None = None,
    sensor: Sensor | None = None,
    variable_shapes: bool = False,
) -> Engine:
    """Verify ``model``'s sha256, create and load its engine, log and export what loaded.

    Blocking (hashing, session creation, conversion): call it off the event loop.
    ``variable_shapes`` as for :func:`create_engine`.
    """
    started = time.perf_counter()
    model_file = verify_model_file(model, base_dir)
    engine = create_engine(config, max_batch_size, variable_shapes=variable_shapes)
    engine.load(model, model_file)
    info = engine.info
    _log.info(
        "engine loaded",
        extra={
            "model": model.name,
            "backend": info.backend,
            "device": info.device,
            "precision": info.precision,
            "providers": list(info.providers),
            "batch_size": max_batch_size,
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )
    labels = {"model": model.name, "backend": info.backend, "device": info.device}
    (sensor or default_sensor()).set_gauge("engine_loaded", 1.0, labels)
    return engine


@lru_cache(maxsize=8)
def shared_engine(
    name: str, config: EngineConfig, max_batch_size: int, *, variable_shapes: bool = False
) -> Engine:
    """The process-wide engine of packaged-registry model ``name`` for these settings.

    For callers that run a model directly instead of through an InferenceClient (the CPU OCR
    of the pixel actor): verified, loaded and logged by :func:`load_engine` on first use, then
    kept for the life of the process.  An ONNX Runtime engine may run in several threads.
    """
    return load_engine(
        packaged_registry().get(name), config, max_batch_size, variable_shapes=variable_shapes
    )
