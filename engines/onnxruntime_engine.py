"""ONNX Runtime engine: CPU, or the CUDA execution provider where it is present (no fallback)."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from dxai.configs.errors import BackendUnavailableError, EngineError
from dxai.configs.schema.inference import EngineConfig
from dxai.engines.base import EngineBase, EngineInfo, FloatArray, check_batch
from dxai.engines.onnx_rewrite import rewritten_bytes
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger

_log = get_logger(__name__)

_CUDA_EP = "CUDAExecutionProvider"
_CPU_EP = "CPUExecutionProvider"


def _providers(config: EngineConfig, available: list[str]) -> list[Any]:
    if config.device == "cpu":
        return [_CPU_EP]
    if _CUDA_EP not in available:
        raise BackendUnavailableError(
            f"onnxruntime: device cuda requested but {_CUDA_EP} is not available "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use device cpu"
        )
    return [(_CUDA_EP, {"device_id": config.gpu_id})]


def _model_source(model: ModelSpec, model_file: Path) -> str | bytes:
    """The file's path, or its bytes after the registry's graph rewrites (logged)."""
    if not model.rewrites:
        return str(model_file)
    data, counts = rewritten_bytes(str(model_file), model.rewrites)
    for kind, count in counts.items():
        _log.info(
            "model graph rewritten",
            extra={"component": "engines", "model": model.name, "kind": kind, "count": count},
        )
    return data


class OnnxRuntimeEngine(EngineBase):
    """An ``onnxruntime.InferenceSession`` behind the Engine protocol.

    ``variable_shapes``: inputs are not padded to a few fixed shapes (callers without the
    batcher), so the session plans no memory pattern.
    """

    def __init__(
        self, config: EngineConfig, max_batch_size: int, *, variable_shapes: bool = False
    ) -> None:
        if config.precision != "fp32":
            raise BackendUnavailableError(
                "onnxruntime engine runs fp32 models only; use torch or tensorrt for fp16"
            )
        self._config = config
        self._max_batch = max_batch_size
        self._variable_shapes = variable_shapes
        self._session: Any = None
        self._model: ModelSpec | None = None
        self._info = EngineInfo("onnxruntime", config.device, config.precision)

    def load(self, model: ModelSpec, model_file: Path) -> None:
        """Create the session with the configured threads and providers."""
        import onnxruntime as ort

        providers = _providers(self._config, list(ort.get_available_providers()))
        try:
            source = _model_source(model, model_file)
            session = ort.InferenceSession(source, self._options(ort), providers=providers)
        except Exception as exc:
            raise EngineError(f"onnxruntime could not load model {model.name}: {exc}") from exc
        used = tuple(session.get_providers())
        if self._config.device == "cuda" and (not used or used[0] != _CUDA_EP):
            raise BackendUnavailableError(f"onnxruntime did not enable {_CUDA_EP} (got {used})")
        self._session, self._model = session, model
        self._metadata = MappingProxyType(dict(session.get_modelmeta().custom_metadata_map))
        self._info = EngineInfo("onnxruntime", self._config.device, "fp32", used)

    def _options(self, ort: Any) -> Any:
        """Session options: the configured threads, full graph optimisation, quiet log."""
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._config.intra_op_threads
        opts.inter_op_num_threads = self._config.inter_op_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if self._variable_shapes:
            # a memory pattern planned for one input shape is rarely reused when shapes change
            # on nearly every call (OCR on unpadded images and crops), and planning it costs
            # ~8% of OCR time
            opts.enable_mem_pattern = False
        return opts

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run one batch through the session."""
        model = self._loaded()
        check_batch(batch, self._max_batch, model.channels)
        out = self._session.run([model.output.name], {model.input.name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the session."""
        self._session = None
        self._metadata = MappingProxyType({})
