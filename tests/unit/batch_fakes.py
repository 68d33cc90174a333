"""Shared fixtures of the batcher tests: a fake model spec and the value that poisons an item."""

from __future__ import annotations

from dxai.engines.spec import ModelSpec, TensorSpec

POISON = -999.0
"""An item holding this value fails in the fake engines."""

SPEC = ModelSpec(
    name="fake",
    version="1",
    format="onnx",
    source={"path": "unused.onnx"},
    sha256="0" * 64,
    input=TensorSpec(name="x", shape=(-1, 1, -1, -1)),
    output=TensorSpec(name="y", shape=(-1, 1, -1, -1)),
    buckets=((32, 32), (64, 64)),
    postprocess={"crop": "spatial", "stride": 1},
)
"""A one-channel model with two buckets whose output is cropped back spatially."""
