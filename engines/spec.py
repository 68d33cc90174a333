"""Typed model specifications, as read from the model registry (``configs/models.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dxai.engines.onnx_rewrite import Rewrite

ModelFormat = Literal["onnx", "torchscript", "exported_program"]
CropKind = Literal["spatial", "sequence", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where the model file comes from: a package resource or a filesystem path."""

    package: str | None = None
    resource: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSource:
        if (self.path is None) == (self.package is None or self.resource is None):
            raise ValueError("give either path, or package and resource")
        return self


class TensorSpec(_Strict):
    """Name, dtype and shape of an engine input or output (-1: dynamic dimension)."""

    name: str
    dtype: str = "float32"
    shape: tuple[int, ...] = ()


class PreprocessSpec(_Strict):
    """How callers turn pixels into the model input: ``(pixel * scale - mean) / std``."""

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    limit_side_len: int | None = None
    image_height: int | None = None


class PostprocessSpec(_Strict):
    """How a padded output is cropped back to one item.

    ``spatial``: output ``(..., H, W)`` cropped to the item's ``(h, w)`` divided by ``stride``;
    ``sequence``: output ``(T, C)`` cropped to ``ceil(w / stride)`` steps; ``none``: as is.
    """

    crop: CropKind = "none"
    stride: int = Field(default=1, ge=1)


class ModelSpec(_Strict):
    """One model of the registry."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    version: str
    format: ModelFormat
    source: ModelSource
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: TensorSpec
    output: TensorSpec
    buckets: tuple[tuple[int, int], ...] = Field(min_length=1)
    pad_multiple: tuple[int, int] = (32, 32)
    pad_value: float = 0.0
    oversize: Literal["reject", "pad"] = "pad"
    preprocess: PreprocessSpec = PreprocessSpec()
    postprocess: PostprocessSpec = PostprocessSpec()
    labels: tuple[str, ...] = ()
    labels_metadata_key: str | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)
    # exact graph rewrites the ONNX Runtime engine applies at load (engines/onnx_rewrite.py)
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def channels(self) -> int:
        """The number of input channels (dimension 1 of the NCHW input)."""
        return self.input.shape[1]

    @model_validator(mode="after")
    def _nchw(self) -> ModelSpec:
        if len(self.input.shape) != 4 or self.input.shape[1] <= 0:
            raise ValueError("input.shape must be NCHW with a fixed channel count")
        if any(h <= 0 or w <= 0 for h, w in self.buckets):
            raise ValueError("buckets must be positive (height, width) pairs")
        return self
