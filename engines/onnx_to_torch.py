"""ONNX → torch conversion with onnx2torch, cached in memory by model sha256.

onnx2torch cannot convert the PP-OCRv4 models as exported; two graph fixes, which change no
computation, make it:

* every ``Constant`` node with a ``value`` tensor becomes a graph initializer (the detector's
  Constant nodes trip the converter);
* shapes are inferred, and a 2-D ``Conv`` output whose rank inference lost gets a rank-4
  annotation (the recogniser's BatchNormalization converter needs its input's rank).

The outputs then match ONNX Runtime to about 1e-7 (detector) and 2e-6 (recogniser) on CPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from dxai.configs.errors import EngineError

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def constants_to_initializers(model: Any) -> int:
    """Move ``Constant(value=tensor)`` nodes of ``model``'s main graph to initializers.

    Returns how many nodes were moved.  Other Constant forms (value_float, ...) stay nodes.
    """
    import onnx

    graph = model.graph
    keep: list[Any] = []
    moved = 0
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and set(attrs) == {"value"}:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs["value"].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return moved


def annotate_conv_ranks(model: Any) -> int:
    """Give every 2-D ``Conv`` output with an unknown rank a rank-4 ``value_info``.

    Run after ``onnx.shape_inference``; a Conv with a 4-D weight always yields N x C x H x W.
    Returns how many outputs were annotated.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    weight_rank = {init.name: len(init.dims) for init in graph.initializer}
    known = {v.name: v for v in graph.value_info}
    added = 0
    for node in graph.node:
        if node.op_type != "Conv" or weight_rank.get(node.input[1]) != 4:
            continue
        info = known.get(node.output[0])
        if info is not None and len(info.type.tensor_type.shape.dim) == 4:
            continue
        if info is not None:
            graph.value_info.remove(info)
        dims = [f"{node.output[0]}_d{i}" for i in range(4)]
        graph.value_info.append(
            helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, dims)
        )
        added += 1
    return added


def prepare_for_torch(model: Any) -> Any:
    """The graph fixes above, applied in order; returns the model to convert."""
    import onnx

    constants_to_initializers(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    annotate_conv_ranks(inferred)
    return inferred


def convert_onnx(model_file: Path, sha256: str, name: str) -> Any:
    """A fresh-from-cache ``torch.nn.Module`` (eval mode, CPU, fp32) for an ONNX file.

    The cache returns the same module object for the same hash; callers that change its
    device or dtype must ``copy.deepcopy`` it first.
    """
    with _LOCK:
        cached = _CACHE.get(sha256)
        if cached is not None:
            return cached
        import onnx
        from onnx2torch import convert

        proto = prepare_for_torch(onnx.load(str(model_file)))
        try:
            module = convert(proto).eval()
        except Exception as exc:
            raise EngineError(
                f"model {name}: onnx2torch cannot convert it ({type(exc).__name__}: {exc}); "
                "use the onnxruntime or tensorrt engine for this model"
            ) from exc
        _CACHE[sha256] = module
        return module


def clear_cache() -> None:
    """Forget every converted module."""
    with _LOCK:
        _CACHE.clear()
