"""Configuration of engines, the dynamic batcher and the inference backend."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dxai.daemon.config.base import Section

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

    @model_validator(mode="after")
    def _fp16_needs_cuda(self) -> EngineConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision fp16 requires device cuda")
        return self


class BatchingConfig(Section):
    """The dynamic batcher, one per model."""

    max_batch_size: int = Field(default=8, ge=1, le=1024)
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    queue_capacity: int = Field(default=256, ge=1)
    max_concurrent_batches: int = Field(default=1, ge=1, le=64)
    default_deadline_s: float = Field(default=60.0, gt=0)


class RayServeModelConfig(Section):
    """Per-deployment Ray Serve settings."""

    num_replicas: int = Field(default=1, ge=1)
    num_gpus: float = Field(default=0.0, ge=0)
    num_cpus: float = Field(default=1.0, gt=0)


class InferenceConfig(Section):
    """Where inference runs: in-process batcher or Ray Serve, chosen by config alone."""

    backend: Literal["inprocess", "ray"] = "inprocess"
    models_file: str | None = None
    engine: EngineConfig = EngineConfig()
    batching: BatchingConfig = BatchingConfig()
    ray_serve: RayServeModelConfig = RayServeModelConfig()
