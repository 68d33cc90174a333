"""Inference engines (ONNX Runtime, PyTorch, TensorRT) and the model registry.

Engines know nothing of DICOM: they load a registered model and run float32 NCHW batches.
"""

from dxai.engines.base import Engine, EngineInfo, model_labels
from dxai.engines.factory import create_engine, load_engine, shared_engine
from dxai.engines.registry import (
    ModelRegistry,
    load_registry,
    packaged_registry,
    verify_model_file,
)
from dxai.engines.spec import ModelSpec, TensorSpec

__all__ = [
    "Engine",
    "EngineInfo",
    "ModelRegistry",
    "ModelSpec",
    "TensorSpec",
    "create_engine",
    "load_engine",
    "load_registry",
    "model_labels",
    "packaged_registry",
    "shared_engine",
    "verify_model_file",
]
