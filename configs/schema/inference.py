"""Configuration of engines, the dynamic batcher and the inference backend.

Per-model facts (file, hash, input spec, shape buckets, thresholds) live in the model registry
(``configs/models.yaml``); this section says *how* this node runs them.  ``per_model`` overrides
the node-wide engine, batching and Ray Serve settings for one model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from dxai.configs.schema.base import Section

EngineKind = Literal["onnxruntime", "torch", "tensorrt"]
DeviceKind = Literal["cpu", "cuda"]
Precision = Literal["fp32", "fp16"]


class EngineConfig(Section):
    """Which runtime runs the models on this node, and how."""

    kind: EngineKind = "onnxruntime"
    device: DeviceKind = "cpu"
    precision: Precision = "fp32"
    intra_op_threads: int = Field(default=1, ge=0, le=256)
    inter_op_threads: int = Field(default=1, ge=0, le=256)
    engine_cache_dir: str | None = None
    gpu_id: int = Field(default=0, ge=0, le=64)
    trt_workspace_mib: int = Field(default=1024, ge=16, le=1 << 20)

    @model_validator(mode="after")
    def _fp16_needs_cuda(self) -> EngineConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision fp16 requires device cuda")
        if self.kind == "tensorrt" and self.device != "cuda":
            raise ValueError("engine kind tensorrt requires device cuda")
        return self


class BatchingConfig(Section):
    """The dynamic batcher, one per model."""

    max_batch_size: int = Field(default=8, ge=1, le=1024)
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    queue_capacity: int = Field(default=256, ge=1)
    queue_full_policy: Literal["reject", "wait"] = "reject"
    max_concurrent_batches: int = Field(default=1, ge=1, le=64)
    default_deadline_s: float = Field(default=60.0, gt=0)
    shapes: Literal["auto", "buckets", "exact"] = Field(
        default="auto",
        description="How items are padded before batching: 'buckets' up to the model's shape "
        "buckets (few shapes: dense batches, TensorRT profiles), 'exact' only up to its "
        "pad_multiple (an engine that takes any shape does no padded work: a 512x512 slice "
        "padded to the 640x640 bucket cost the CPU detector 1.56x), 'auto' exact on CPU.",
    )

    def exact_shapes(self, engine: EngineConfig) -> bool:
        """Whether items run at their own (pad_multiple-rounded) size on ``engine``."""
        if self.shapes == "auto":
            return engine.device == "cpu"
        return self.shapes == "exact"


class RayServeModelConfig(Section):
    """Per-deployment Ray Serve settings."""

    num_replicas: int = Field(default=1, ge=1)
    num_gpus: float = Field(default=0.0, ge=0)
    num_cpus: float = Field(default=1.0, ge=0)
    max_ongoing_requests: int = Field(default=64, ge=1)
    # same-host payloads go through files in this tmpfs folder (only a descriptor goes through
    # Serve); a replica on another host falls back to Ray by itself.  None: always through Ray.
    shared_memory_dir: str | None = "/dev/shm"

    @field_validator("shared_memory_dir")
    @classmethod
    def _absolute_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute folder path (or null)")
        return value


class ModelRunConfig(Section):
    """Overrides for one model; a field left out uses the node-wide value."""

    engine: EngineConfig | None = None
    batching: BatchingConfig | None = None
    ray_serve: RayServeModelConfig | None = None


class InferenceConfig(Section):
    """Where inference runs: in-process batcher or Ray Serve, chosen by config alone."""

    backend: Literal["inprocess", "ray"] = "inprocess"
    models_file: str | None = None
    models: tuple[str, ...] | None = None
    engine: EngineConfig = EngineConfig()
    batching: BatchingConfig = BatchingConfig()
    ray_serve: RayServeModelConfig = RayServeModelConfig()
    per_model: dict[str, ModelRunConfig] = Field(default_factory=dict)

    def engine_for(self, model: str) -> EngineConfig:
        """The engine settings for ``model`` (its override, else the node-wide one)."""
        override = self.per_model.get(model)
        return override.engine if override and override.engine else self.engine

    def batching_for(self, model: str) -> BatchingConfig:
        """The batching settings for ``model``."""
        override = self.per_model.get(model)
        return override.batching if override and override.batching else self.batching

    def exact_shapes_for(self, model: str) -> bool:
        """Whether ``model``'s items run at their own size (its batching on its engine)."""
        return self.batching_for(model).exact_shapes(self.engine_for(model))

    def ray_serve_for(self, model: str) -> RayServeModelConfig:
        """The Ray Serve settings for ``model``."""
        override = self.per_model.get(model)
        return override.ray_serve if override and override.ray_serve else self.ray_serve
