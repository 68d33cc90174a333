"""ONNX Runtime engine: CPU, or the CUDA execution provider where it is present (no fallback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dxai.configs.errors import BackendUnavailableError, EngineError
from dxai.configs.schema.inference import EngineConfig
from dxai.engines.base import EngineBase, EngineInfo, FloatArray, check_batch
from dxai.engines.spec import ModelSpec

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


class OnnxRuntimeEngine(EngineBase):
    """An ``onnxruntime.InferenceSession`` behind the Engine protocol."""

    def __init__(self, config: EngineConfig, max_batch_size: int) -> None:
        if config.precision != "fp32":
            raise BackendUnavailableError(
                "onnxruntime engine runs fp32 models only; use torch or tensorrt for fp16"
            )
        self._config = config
        self._max_batch = max_batch_size
        self._session: Any = None
        self._model: ModelSpec | None = None
        self._info = EngineInfo("onnxruntime", config.device, config.precision)

    def load(self, model: ModelSpec, model_file: Path) -> None:
        """Create the session with the configured threads and providers."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._config.intra_op_threads
        opts.inter_op_num_threads = self._config.inter_op_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = _providers(self._config, list(ort.get_available_providers()))
        try:
            session = ort.InferenceSession(str(model_file), opts, providers=providers)
        except Exception as exc:
            raise EngineError(f"onnxruntime could not load model {model.name}: {exc}") from exc
        used = tuple(session.get_providers())
        if self._config.device == "cuda" and (not used or used[0] != _CUDA_EP):
            raise BackendUnavailableError(f"onnxruntime did not enable {_CUDA_EP} (got {used})")
        self._session, self._model = session, model
        self._info = EngineInfo("onnxruntime", self._config.device, "fp32", used)

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run one batch through the session."""
        model = self._loaded()
        check_batch(batch, self._max_batch, model.channels)
        out = self._session.run([model.output.name], {model.input.name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the session."""
        self._session = None
