"""The Engine protocol: load a model, run a batch, close; knows nothing of DICOM."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dxai.configs.errors import EngineError, ModelIntegrityError
from dxai.engines.spec import ModelSpec, TensorSpec

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class EngineInfo:
    """What was actually loaded: always logged and exported as a metric, never guessed."""

    backend: str
    device: str
    precision: str
    providers: tuple[str, ...] = ()


@runtime_checkable
class Engine(Protocol):
    """One loaded model on one runtime.  ``infer`` is blocking: call it off the event loop."""

    @property
    def info(self) -> EngineInfo:
        """Backend, device, precision and providers actually in use."""
        ...

    @property
    def input_spec(self) -> TensorSpec:
        """The (single) input tensor."""
        ...

    @property
    def output_spec(self) -> TensorSpec:
        """The (single) output tensor."""
        ...

    @property
    def max_batch_size(self) -> int:
        """The largest batch ``infer`` accepts."""
        ...

    @property
    def metadata(self) -> Mapping[str, str]:
        """Custom key/value metadata of the loaded model file (empty where a runtime has none)."""
        ...

    def load(self, model: ModelSpec, model_file: Path) -> None:
        """Load ``model`` from ``model_file`` (already sha256-verified by the caller)."""
        ...

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run one NCHW float32 batch; return the float32 output batch (same N)."""
        ...

    def close(self) -> None:
        """Release the runtime's resources; idempotent."""
        ...


def check_batch(batch: FloatArray, max_batch_size: int, channels: int) -> None:
    """Raise ValueError unless ``batch`` is a float32 NCHW array within the limits."""
    if batch.dtype != np.float32 or batch.ndim != 4:
        raise ValueError(f"batch must be float32 NCHW, got {batch.dtype} rank {batch.ndim}")
    if not 1 <= batch.shape[0] <= max_batch_size:
        raise ValueError(f"batch size {batch.shape[0]} outside 1..{max_batch_size}")
    if batch.shape[1] != channels:
        raise ValueError(f"batch has {batch.shape[1]} channels, model expects {channels}")


class EngineBase:
    """Shared state and accessors of the concrete engines (set by their ``__init__``/``load``)."""

    _info: EngineInfo
    _max_batch: int
    _model: ModelSpec | None
    _metadata: Mapping[str, str] = MappingProxyType({})

    @property
    def info(self) -> EngineInfo:
        """Backend, device, precision and providers actually in use."""
        return self._info

    @property
    def input_spec(self) -> TensorSpec:
        """The model's input tensor."""
        return self._loaded().input

    @property
    def output_spec(self) -> TensorSpec:
        """The model's output tensor."""
        return self._loaded().output

    @property
    def max_batch_size(self) -> int:
        """The largest batch accepted."""
        return self._max_batch

    @property
    def metadata(self) -> Mapping[str, str]:
        """Custom metadata of the loaded model file; empty unless the engine read some."""
        return self._metadata

    def _loaded(self) -> ModelSpec:
        if self._model is None:
            raise EngineError(f"{self._info.backend} engine used before load()")
        return self._model


def model_labels(model: ModelSpec, engine: Engine) -> tuple[str, ...]:
    """``model``'s class labels: from the registry, else the loaded file's metadata.

    Labels stored in the model file (``labels_metadata_key``) are one a line, e.g. the
    characters of a CTC recogniser.  :class:`ModelIntegrityError` when there are none.
    """
    if model.labels:
        return model.labels
    key = model.labels_metadata_key
    text = engine.metadata.get(key) if key else None
    if text is None:
        raise ModelIntegrityError(f"model {model.name} has no labels (metadata key {key!r})")
    return tuple(text.splitlines())
