"""Exact ONNX graph rewrites (engines/onnx_rewrite.py): same outputs, fewer nodes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dxai.configs.schema.inference import EngineConfig
from dxai.engines.onnx_rewrite import REWRITES, rewrite_model, rewritten_bytes
from dxai.engines.onnxruntime_engine import OnnxRuntimeEngine
from dxai.engines.registry import packaged_registry, verify_model_file

pytestmark = pytest.mark.unit


def _const(name: str, value: float | np.ndarray) -> onnx.NodeProto:
    array = np.asarray(value, dtype=np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _toy_model(pad_second: int = 0) -> onnx.ModelProto:
    """conv -> *s +t -> hardswish -> *w +b -> conv (1x1, or padded) -> also a graph output."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b1"),
        numpy_helper.from_array(
            rng.normal(size=(5, 4, 1 + 2 * pad_second, 3)).astype(np.float32), "w2"
        ),
    ]
    consts = [
        _const(n, v)
        for n, v in [
            ("s", 0.7),
            ("t", -0.2),
            ("three", 3.0),
            ("zero", 0.0),
            ("six", 6.0),
            ("six2", 6.0),
            ("w", 1.3),
            ("b", 0.4),
        ]
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["s", "c1"], ["m1"]),
        helper.make_node("Add", ["m1", "t"], ["a1"]),
        helper.make_node("Add", ["a1", "three"], ["h1"]),
        helper.make_node("Clip", ["h1", "zero", "six"], ["h2"]),
        helper.make_node("Mul", ["a1", "h2"], ["h3"]),
        helper.make_node("Div", ["h3", "six2"], ["hs"]),
        helper.make_node("Mul", ["w", "hs"], ["m2"]),
        helper.make_node("Add", ["m2", "b"], ["a2"]),
        helper.make_node("Conv", ["a2", "w2"], ["y"], pads=[pad_second, 0, pad_second, 0]),
    ]
    graph = helper.make_graph(
        consts + nodes,
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, None, None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def _run(model: onnx.ModelProto | bytes, x: np.ndarray) -> np.ndarray:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def _ops(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node if n.op_type != "Constant")


def test_every_rewrite_keeps_the_outputs_and_removes_nodes() -> None:
    original = _toy_model()
    model = _toy_model()
    counts = rewrite_model(model)
    onnx.checker.check_model(model)
    assert counts == {"conv_affine": 1, "affine_conv": 1, "hardswish": 1}
    assert _ops(model) == Counter({"Conv": 2, "HardSigmoid": 1, "Mul": 1})
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32) * 3
    np.testing.assert_allclose(_run(model, x), _run(original, x), rtol=1e-5, atol=1e-5)


def test_a_padded_conv_keeps_the_affine_before_it() -> None:
    """Folding a shift into a padded conv would change the border: not done."""
    original, model = _toy_model(pad_second=1), _toy_model(pad_second=1)
    counts = rewrite_model(model)
    assert counts["affine_conv"] == 0 and counts["conv_affine"] == 1
    assert _ops(model)["Add"] == 1
    x = np.random.default_rng(1).normal(size=(1, 3, 16, 16)).astype(np.float32) * 3
    np.testing.assert_allclose(_run(model, x), _run(original, x), rtol=1e-5, atol=1e-5)


def test_a_value_used_twice_is_not_folded() -> None:
    """The conv's output also feeds a graph output: the Mul/Add stay."""
    model = _toy_model()
    extra = helper.make_tensor_value_info("c1", TensorProto.FLOAT, [1, 4, 16, 16])
    model.graph.output.append(extra)
    counts = rewrite_model(model)
    assert counts["conv_affine"] == 0
    assert "c1" in {o for n in model.graph.node for o in n.output}


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("ppocr_det", (1, 3, 96, 128)),
        ("ppocr_rec", (2, 3, 48, 160)),
        ("ppocr_cls", (2, 3, 48, 192)),
    ],
)
def test_packaged_models_rewritten_give_the_same_outputs(name: str, shape: tuple[int, ...]) -> None:
    registry = packaged_registry()
    spec = registry.get(name)
    assert set(spec.rewrites) == set(REWRITES)
    path = verify_model_file(spec, registry.base_dir)
    data, counts = rewritten_bytes(str(path), spec.rewrites)
    assert counts["hardswish"] > 0
    x = np.random.default_rng(2).uniform(-1, 1, size=shape).astype(np.float32)
    expected = _run(onnx.load(str(path)), x)
    np.testing.assert_allclose(_run(data, x), expected, rtol=1e-4, atol=1e-4)


def test_engine_loads_the_rewritten_graph(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    registry = packaged_registry()
    spec = registry.get("ppocr_cls")
    engine = OnnxRuntimeEngine(EngineConfig(kind="onnxruntime", device="cpu"), 4)
    with caplog.at_level("INFO"):
        engine.load(spec, verify_model_file(spec, registry.base_dir))
    assert any(r.getMessage() == "model graph rewritten" for r in caplog.records)
    out = engine.infer(np.zeros((1, 3, 48, 192), dtype=np.float32))
    assert out.shape == (1, 2)
