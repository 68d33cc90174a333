"""Real engines on CPU: ONNX Runtime and torch on the PP-OCRv4 models, through the batcher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from dxai.batching import make_inference_client
from dxai.batching.buckets import bucket_for
from dxai.configs.errors import EngineError, InvalidInferenceInputError
from dxai.configs.schema.inference import BatchingConfig, EngineConfig, InferenceConfig
from dxai.engines import load_engine, load_registry
from dxai.engines.registry import sha256_file
from dxai.engines.spec import ModelSpec
from dxai.observability.metrics import Sensor

SIZES = [(200, 300), (320, 320), (96, 500), (250, 130), (64, 64), (300, 200)]


def det_items(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (3, h, w)).astype(np.float32) for h, w in SIZES]


def reference_outputs(items: list[np.ndarray], exact: bool = False) -> list[np.ndarray]:
    """Each item alone, padded to its bucket (``exact``: to the pad multiple), through ONNX
    Runtime, cropped back.

    (The detector has global-average-pool blocks, so the padded size matters a little: the
    reference pads exactly as the batcher does.)
    """
    spec = load_registry().get("ppocr_det")
    engine = load_engine(spec, EngineConfig(), 1, sensor=Sensor())
    outs = []
    for x in items:
        h, w = x.shape[1:]
        padded = np.zeros((1, 3, *bucket_for(spec, h, w, exact=exact)), np.float32)
        padded[0, :, :h, :w] = x
        outs.append(engine.infer(padded)[0, :, :h, :w])
    return outs


def test_torch_matches_onnxruntime_on_detector():
    spec = load_registry().get("ppocr_det")
    ort = load_engine(spec, EngineConfig(kind="onnxruntime"), 4, sensor=Sensor())
    torch_engine = load_engine(spec, EngineConfig(kind="torch", intra_op_threads=2), 4)
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, 320, 320)).astype(np.float32)
    a, b = ort.infer(batch), torch_engine.infer(batch)
    assert a.shape == b.shape == (2, 1, 320, 320)
    assert float(np.abs(a - b).max()) < 1e-5
    assert torch_engine.info.backend == "torch" and torch_engine.info.device == "cpu"
    assert ort.info.providers == ("CPUExecutionProvider",)


def test_torch_matches_onnxruntime_on_recognizer():
    spec = load_registry().get("ppocr_rec")
    ort = load_engine(spec, EngineConfig(kind="onnxruntime"), 4, sensor=Sensor())
    torch_engine = load_engine(spec, EngineConfig(kind="torch", intra_op_threads=2), 4)
    for width in (96, 320):
        batch = np.random.default_rng(width).uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
        a, b = ort.infer(batch), torch_engine.infer(batch)
        assert a.shape == b.shape == (2, width // 8, a.shape[2])
        assert float(np.abs(a - b).max()) < 1e-4
        assert np.array_equal(a.argmax(axis=2), b.argmax(axis=2))  # the same characters read


def test_torch_engine_refuses_unconvertible_model_clearly(tmp_path: Path):
    from onnx import TensorProto, helper, save

    node = helper.make_node("Glow", ["x"], ["y"], domain="org.example")  # no converter for it
    graph = helper.make_graph(
        [node],
        "glow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])],
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("org.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    save(model, str(tmp_path / "glow.onnx"))
    spec = ModelSpec.model_validate(
        {
            "name": "glow",
            "version": "1",
            "format": "onnx",
            "source": {"path": "glow.onnx"},
            "sha256": sha256_file(tmp_path / "glow.onnx"),
            "input": {"name": "x", "shape": [-1, 3, -1, -1]},
            "output": {"name": "y", "shape": [-1, 3, -1, -1]},
            "buckets": [[32, 32]],
        }
    )
    with pytest.raises(EngineError, match="onnx2torch cannot convert"):
        load_engine(spec, EngineConfig(kind="torch"), 4, sensor=Sensor(), base_dir=tmp_path)


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
async def test_inprocess_client_batches_real_detector(kind: str):
    items = det_items()
    expected = reference_outputs(items)
    sensor = Sensor()
    config = InferenceConfig(
        models=("ppocr_det",),
        engine=EngineConfig(kind=kind, intra_op_threads=2),  # type: ignore[arg-type]
        batching=BatchingConfig(max_batch_size=4, max_queue_delay_ms=50.0, shapes="buckets"),
    )
    async with make_inference_client(config, load_registry(), sensor=sensor) as client:
        results = await asyncio.gather(*(client.infer("ppocr_det", x) for x in items))
        with pytest.raises(InvalidInferenceInputError):
            await client.infer("ppocr_det", np.zeros((1, 32, 32), np.float32))
    for x, got, want in zip(items, results, expected, strict=True):
        assert got.shape == (1, *x.shape[1:])
        assert float(np.abs(got - want).max()) < 1e-4
    labels = {"model": "ppocr_det", "backend": kind, "device": "cpu"}
    assert sensor.registry.get_sample_value("dxai_engine_loaded", labels) == 0.0
    batches = sensor.registry.get_sample_value("dxai_batch_size_count", {"model": "ppocr_det"})
    assert batches is not None and batches < len(items)


async def test_inprocess_client_runs_exact_shapes_on_cpu():
    """The default on CPU (``shapes: auto``): each item runs at its size rounded up to the pad
    multiple, with the same output as that item alone, padded the same way."""
    items = det_items(seed=1)
    expected = reference_outputs(items, exact=True)
    config = InferenceConfig(models=("ppocr_det",), batching=BatchingConfig(max_batch_size=4))
    assert config.batching.exact_shapes(config.engine)
    async with make_inference_client(config, load_registry(), sensor=Sensor()) as client:
        results = await asyncio.gather(*(client.infer("ppocr_det", x) for x in items))
    for x, got, want in zip(items, results, expected, strict=True):
        assert got.shape == (1, *x.shape[1:])
        assert float(np.abs(got - want).max()) < 1e-4


async def test_inprocess_client_runs_recognizer_and_classifier():
    rng = np.random.default_rng(2)
    crops = [rng.uniform(-1, 1, (3, 48, w)).astype(np.float32) for w in (60, 150, 320, 700)]
    config = InferenceConfig(models=("ppocr_rec", "ppocr_cls"))
    async with make_inference_client(config, load_registry(), sensor=Sensor()) as client:
        outs = await asyncio.gather(*(client.infer("ppocr_rec", c) for c in crops))
        cls = await client.infer("ppocr_cls", rng.uniform(-1, 1, (3, 48, 192)).astype(np.float32))
    assert [o.shape for o in outs] == [(8, 6625), (19, 6625), (40, 6625), (88, 6625)]
    for out in outs:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-3)
    assert cls.shape == (2,)
