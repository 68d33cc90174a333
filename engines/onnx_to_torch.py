"""ONNX → torch conversion with onnx2torch, cached in memory by model sha256.

onnx2torch cannot convert the PP-OCRv4 detector as exported (its ``Constant`` nodes trip it);
turning every ``Constant`` node with a ``value`` tensor into a graph initializer first makes it
convert, and the outputs then match ONNX Runtime to about 1e-7 on CPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from dxai.daemon.errors import EngineError

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

        proto = onnx.load(str(model_file))
        constants_to_initializers(proto)
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
