"""PyTorch engine: TorchScript / ExportedProgram files, or ONNX converted with onnx2torch.

CPU here; CUDA (optionally fp16) where present.  Asking for CUDA where torch sees none raises
:class:`BackendUnavailableError`; nothing falls back.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from dxai.configs.errors import BackendUnavailableError
from dxai.configs.schema.inference import EngineConfig
from dxai.engines.base import EngineBase, EngineInfo, FloatArray, check_batch
from dxai.engines.onnx_to_torch import convert_onnx
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger

_log = get_logger(__name__)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(
            "torch engine requested but torch is not installed "
            "(pip install 'dicom-exchange-ai[torch]')"
        ) from exc
    return torch


def _set_threads(torch: Any, config: EngineConfig) -> None:
    if config.intra_op_threads > 0:
        torch.set_num_threads(config.intra_op_threads)
    if config.inter_op_threads > 0 and torch.get_num_interop_threads() != config.inter_op_threads:
        try:
            torch.set_num_interop_threads(config.inter_op_threads)
        except RuntimeError:
            _log.warning(
                "torch inter-op threads already fixed for this process",
                extra={"count": torch.get_num_interop_threads(), "backend": "torch"},
            )


def _load_module(torch: Any, model: ModelSpec, model_file: Path) -> Any:
    if model.format == "onnx":
        return convert_onnx(model_file, model.sha256, model.name)
    if model.format == "torchscript":
        return torch.jit.load(str(model_file), map_location="cpu").eval()
    return torch.export.load(str(model_file)).module()


class TorchEngine(EngineBase):
    """A ``torch.nn.Module`` behind the Engine protocol."""

    def __init__(self, config: EngineConfig, max_batch_size: int) -> None:
        self._torch = _import_torch()
        if config.device == "cuda" and not self._torch.cuda.is_available():
            raise BackendUnavailableError("torch engine: device cuda requested but CUDA is absent")
        self._config = config
        self._max_batch = max_batch_size
        self._module: Any = None
        self._model: ModelSpec | None = None
        self._device = (
            self._torch.device("cuda", config.gpu_id) if config.device == "cuda" else "cpu"
        )
        self._dtype = self._torch.float16 if config.precision == "fp16" else self._torch.float32

    @property
    def info(self) -> EngineInfo:
        """Backend, device and precision in use (providers: the torch device string)."""
        cfg = self._config
        return EngineInfo("torch", cfg.device, cfg.precision, (str(self._device),))

    def load(self, model: ModelSpec, model_file: Path) -> None:
        """Load or convert the module, move it to the device and precision."""
        torch = self._torch
        _set_threads(torch, self._config)
        module = _load_module(torch, model, model_file)
        if self._config.device != "cpu" or self._config.precision != "fp32":
            module = copy.deepcopy(module).to(device=self._device, dtype=self._dtype)
        self._module, self._model = module, model

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run one batch in inference mode; output returned as float32 on the host."""
        model = self._loaded()
        check_batch(batch, self._max_batch, model.channels)
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=self._device, dtype=self._dtype)
            y = self._module(x)
            if isinstance(y, (tuple, list)):
                y = y[0]
            out = y.float().cpu().numpy()
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the module (and the CUDA cache when on a GPU)."""
        self._module = None
        if self._config.device == "cuda":
            self._torch.cuda.empty_cache()
