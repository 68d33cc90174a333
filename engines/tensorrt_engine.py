"""TensorRT engine: build a serialized engine from ONNX once (cached), run it on a CUDA stream.

One optimization profile per shape bucket of the model (batch 1..max, that bucket's height and
width), so padded batches always hit a dense, pre-tuned profile.  Device buffers and the stream
come from torch (CUDA build).  ``tensorrt`` is imported lazily: where it is absent, constructing
the engine raises :class:`BackendUnavailableError`.

API used (TensorRT 10 Python): ``Builder.create_network``, ``OnnxParser.parse``,
``IBuilderConfig.add_optimization_profile`` / ``set_flag(BuilderFlag.FP16)`` /
``set_memory_pool_limit``, ``Builder.build_serialized_network``,
``Runtime.deserialize_cuda_engine``, ``IExecutionContext.set_optimization_profile_async`` /
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import BackendUnavailableError, EngineError
from dxai.configs.schema.inference import EngineConfig
from dxai.engines.base import EngineBase, EngineInfo, FloatArray, check_batch
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger

_log = get_logger(__name__)
Profile = tuple[tuple[int, int, int, int], tuple[int, int, int, int], tuple[int, int, int, int]]


def import_tensorrt() -> Any:
    """``tensorrt``, or :class:`BackendUnavailableError` with the reason."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            "tensorrt engine requested but the tensorrt package is not installed on this node "
            "(pip install 'dicom-exchange-ai[gpu]' on a CUDA node)"
        ) from exc
    return tensorrt


def bucket_profiles(model: ModelSpec, max_batch: int) -> list[Profile]:
    """(min, opt, max) NCHW shapes, one profile per bucket of ``model``."""
    c = model.channels
    return [((1, c, h, w), (max_batch, c, h, w), (max_batch, c, h, w)) for h, w in model.buckets]


def engine_cache_key(
    model_sha256: str, trt_version: str, gpu_name: str, precision: str, profiles: list[Profile]
) -> str:
    """The cache key: model hash + TensorRT version + GPU name + precision + profiles."""
    text = "|".join([model_sha256, trt_version, gpu_name, precision, repr(profiles)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_network(trt: Any, builder: Any, logger: Any, model_file: Path) -> Any:
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model_file.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"tensorrt could not parse {model_file.name}: {errors}")
    return network, parser


def build_serialized_engine(
    trt: Any, model: ModelSpec, model_file: Path, config: EngineConfig, profiles: list[Profile]
) -> bytes:
    """Build a serialized engine for ``model`` with the given optimization profiles."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_network(trt, builder, logger, model_file)
    build_cfg = builder.create_builder_config()
    build_cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.trt_workspace_mib << 20)
    if config.precision == "fp16":
        build_cfg.set_flag(trt.BuilderFlag.FP16)
    for lo, opt, hi in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(model.input.name, lo, opt, hi)
        build_cfg.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, build_cfg)
    if serialized is None:
        raise EngineError(f"tensorrt failed to build an engine for model {model.name}")
    return bytes(serialized)


def _cache_dir(config: EngineConfig) -> Path:
    if config.engine_cache_dir:
        return Path(config.engine_cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dxai" / "trt"


def load_or_build(
    trt: Any,
    model: ModelSpec,
    model_file: Path,
    config: EngineConfig,
    gpu_name: str,
    max_batch: int,
) -> tuple[bytes, list[Profile]]:
    """The serialized engine from the cache, building and caching it on a miss."""
    profiles = bucket_profiles(model, max_batch)
    key = engine_cache_key(model.sha256, trt.__version__, gpu_name, config.precision, profiles)
    path = _cache_dir(config) / f"{model.name}-{key[:24]}.plan"
    if path.is_file():
        return path.read_bytes(), profiles
    _log.info("building tensorrt engine", extra={"model": model.name, "backend": "tensorrt"})
    data = build_serialized_engine(trt, model, model_file, config, profiles)
    write_bytes_atomic(path, data)
    return data, profiles


def _pick_profile(profiles: list[Profile], shape: tuple[int, ...]) -> int:
    for idx, (lo, _opt, hi) in enumerate(profiles):
        if all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return idx
    raise EngineError(f"tensorrt: batch shape {shape} fits no optimization profile")


class TensorRTEngine(EngineBase):
    """A deserialized TensorRT engine with one execution context per optimization profile."""

    def __init__(self, config: EngineConfig, max_batch_size: int) -> None:
        self._trt = import_tensorrt()
        import torch

        if config.device != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailableError("tensorrt engine needs device cuda and a visible GPU")
        self._torch = torch
        self._config = config
        self._max_batch = max_batch_size
        self._device = torch.device("cuda", config.gpu_id)
        self._lock = threading.Lock()
        self._runtime: Any = None
        self._engine: Any = None
        self._contexts: list[Any] = []
        self._profiles: list[Profile] = []
        self._stream: Any = None
        self._model: ModelSpec | None = None

    @property
    def info(self) -> EngineInfo:
        """Backend, device, precision; providers names the TensorRT version."""
        version = f"tensorrt-{self._trt.__version__}"
        return EngineInfo("tensorrt", "cuda", self._config.precision, (version,))

    def load(self, model: ModelSpec, model_file: Path) -> None:
        """Build or fetch the engine, deserialize it, make one context per profile."""
        trt, torch = self._trt, self._torch
        torch.cuda.set_device(self._device)
        gpu_name = torch.cuda.get_device_name(self._device)
        data, profiles = load_or_build(
            trt, model, model_file, self._config, gpu_name, self._max_batch
        )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineError(f"tensorrt could not deserialize the engine of model {model.name}")
        self._stream = torch.cuda.Stream(device=self._device)
        self._contexts = []
        for idx in range(len(profiles)):
            ctx = engine.create_execution_context()
            ctx.set_optimization_profile_async(idx, self._stream.cuda_stream)
            self._contexts.append(ctx)
        self._stream.synchronize()
        self._runtime, self._engine, self._profiles, self._model = runtime, engine, profiles, model

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run one batch on the profile whose range holds its shape."""
        model = self._loaded()
        check_batch(batch, self._max_batch, model.channels)
        ctx = self._contexts[_pick_profile(self._profiles, batch.shape)]
        torch = self._torch
        with self._lock, torch.cuda.stream(self._stream):
            x = torch.from_numpy(batch).to(self._device, non_blocking=False)
            if not ctx.set_input_shape(model.input.name, tuple(batch.shape)):
                raise EngineError(f"tensorrt rejected input shape {tuple(batch.shape)}")
            out_shape = tuple(ctx.get_tensor_shape(model.output.name))
            y = torch.empty(out_shape, dtype=torch.float32, device=self._device)
            ctx.set_tensor_address(model.input.name, x.data_ptr())
            ctx.set_tensor_address(model.output.name, y.data_ptr())
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise EngineError(f"tensorrt execution failed for model {model.name}")
            self._stream.synchronize()
            return np.ascontiguousarray(y.cpu().numpy(), dtype=np.float32)

    def close(self) -> None:
        """Drop contexts, engine and stream."""
        self._contexts, self._engine, self._stream = [], None, None
