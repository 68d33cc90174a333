"""Exact ONNX graph rewrites that ONNX Runtime's own optimiser does not do (CPU speed).

PaddlePaddle's exporter (``paddle2onnx``) writes the PP-OCR models' activations and learnable
scalar affines as chains of element-wise nodes, each one more pass over a whole feature map;
on a CPU they cost about a third of the detector's and the recogniser's time.  Each rewrite
below gives the same function (equal up to float rounding: checked against the original graph
in ``tests/unit/test_onnx_rewrite.py``):

- ``conv_affine``: ``Conv -> Mul(s) -> Add(t)`` with scalar ``s``, ``t`` becomes one ``Conv``
  with weights ``W * s`` and bias ``B * s + t``;
- ``affine_conv``: ``Mul(s) -> Add(t) -> Conv`` without padding becomes one ``Conv`` with
  weights ``W * s`` and bias ``B + t * sum(W)`` (with padding the border would change: left);
- ``hardswish``: ``x * Clip(x + 3, 0, 6) / 6`` becomes ``x * HardSigmoid(x, 1/6, 1/2)``
  (two nodes instead of four).

A node is only rewritten when every intermediate output has that one consumer and is not a
graph output, and the constants are single values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

Rewrite = Literal["conv_affine", "affine_conv", "hardswish"]
REWRITES: tuple[Rewrite, ...] = ("conv_affine", "affine_conv", "hardswish")


@dataclass
class _Graph:
    """The nodes of one graph, with what is needed to match patterns on them."""

    nodes: list[Any]
    outputs: set[str]
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)
    added: list[Any] = field(default_factory=list)
    consumers: dict[str, list[Any]] = field(default_factory=dict)

    def index(self) -> None:
        """Recount the consumers of every value (dropped nodes left out)."""
        self.consumers = {}
        for node in self.live():
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def live(self) -> Iterable[Any]:
        """The nodes not dropped."""
        return (n for n in self.nodes if id(n) not in self.dropped)

    def only(self, name: str, op: str) -> Any | None:
        """The single consumer of ``name`` when it is an ``op`` node (and not a graph output)."""
        found = self.consumers.get(name, [])
        if len(found) != 1 or name in self.outputs or found[0].op_type != op:
            return None
        return found[0]

    def scalar(self, node: Any, other: str) -> float | None:
        """The single-value constant ``node`` combines with ``other``, if that is its shape."""
        names = list(node.input)
        if len(names) != 2 or other not in names:
            return None
        const = self.consts.get(names[1 - names.index(other)])
        return float(const.ravel()[0]) if const is not None and const.size == 1 else None

    def drop(self, *nodes: Any) -> None:
        """Mark nodes removed."""
        self.dropped.update(id(n) for n in nodes)


def rewrite_model(model: Any, names: Iterable[Rewrite] = REWRITES) -> dict[Rewrite, int]:
    """Apply the named rewrites to an ``onnx.ModelProto`` in place; how many of each."""
    from onnx import numpy_helper

    graph = model.graph
    g = _Graph(list(graph.node), {o.name for o in graph.output})
    g.consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in g.nodes:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            g.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    counts = {name: _PASSES[name](g) for name in names}
    _store(graph, g)
    return counts


def _store(graph: Any, g: _Graph) -> None:
    """Write the surviving nodes back; drop constants nothing uses any more."""
    keep = list(g.live())
    used = {name for node in keep for name in node.input} | g.outputs
    keep = [n for n in keep if n.op_type != "Constant" or n.output[0] in used]
    inits = [i for i in [*graph.initializer, *g.added] if i.name in used]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _weights(g: _Graph, conv: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if len(conv.input) < 2 or conv.input[1] not in g.consts:
        return None
    weight = g.consts[conv.input[1]].astype(np.float32)
    if len(conv.input) < 3:
        return weight, np.zeros(weight.shape[0], np.float32)
    bias = g.consts.get(conv.input[2])
    return None if bias is None else (weight, bias.astype(np.float32))


def _set_weights(g: _Graph, conv: Any, x: str, weight: np.ndarray, bias: np.ndarray) -> None:
    from onnx import numpy_helper

    key = len(g.added)
    names = (f"dxai_fold_w_{key}", f"dxai_fold_b_{key}")
    for name, value in zip(names, (weight, bias), strict=True):
        g.added.append(numpy_helper.from_array(value.astype(np.float32), name))
        g.consts[name] = value
    del conv.input[:]
    conv.input.extend([x, *names])


def _affine_after(g: _Graph, name: str) -> tuple[Any, Any, float, float] | None:
    """``(mul, add, s, t)`` when ``name`` flows only into ``Mul(s)`` and that only into
    ``Add(t)`` (single-value constants)."""
    mul = g.only(name, "Mul")
    if mul is None or (s := g.scalar(mul, name)) is None:
        return None
    add = g.only(mul.output[0], "Add")
    if add is None or (t := g.scalar(add, mul.output[0])) is None:
        return None
    return mul, add, s, t


def _conv_affine(g: _Graph) -> int:
    """``Conv -> Mul(s) -> Add(t)`` folded into the Conv."""
    g.index()
    done = 0
    for conv in [n for n in g.live() if n.op_type == "Conv"]:
        chain = _affine_after(g, conv.output[0])
        found = _weights(g, conv) if chain is not None else None
        if chain is None or found is None:
            continue
        mul, add, s, t = chain
        weight, bias = found
        _set_weights(g, conv, conv.input[0], weight * s, bias * s + t)
        conv.output[0] = add.output[0]
        g.drop(mul, add)
        g.index()
        done += 1
    return done


def _unpadded(conv: Any) -> bool:
    for attr in conv.attribute:
        if attr.name == "pads" and any(attr.ints):
            return False
        if attr.name == "auto_pad" and attr.s not in (b"NOTSET", b"VALID"):
            return False
    return True


def _affine_conv(g: _Graph) -> int:
    """``Mul(s) -> Add(t) -> Conv`` (no padding) folded into the Conv."""
    g.index()
    done = 0
    for first in [n for n in g.live() if n.op_type == "Mul"]:
        inputs = [name for name in first.input if name not in g.consts]
        chain = _affine_after(g, inputs[0]) if len(inputs) == 1 else None
        if chain is None or chain[0] is not first:
            continue
        mul, add, s, t = chain
        conv = g.only(add.output[0], "Conv")
        if conv is None or not _unpadded(conv) or conv.input[0] != add.output[0]:
            continue
        found = _weights(g, conv)
        if found is None:
            continue
        weight, bias = found
        _set_weights(g, conv, inputs[0], weight * s, bias + t * weight.sum(axis=(1, 2, 3)))
        g.drop(mul, add)
        g.index()
        done += 1
    return done


def _is_const(g: _Graph, name: str, value: float) -> bool:
    const = g.consts.get(name)
    return const is not None and const.size == 1 and float(const.ravel()[0]) == value


def _hardswish_chain(g: _Graph, add: Any) -> tuple[str, list[Any]] | None:
    """``(x, [add, clip, mul, div])`` when ``add`` starts ``x * Clip(x + 3, 0, 6) / 6``."""
    inputs = [name for name in add.input if name not in g.consts]
    if len(inputs) != 1 or g.scalar(add, inputs[0]) != 3.0:
        return None
    x = inputs[0]
    clip = g.only(add.output[0], "Clip")
    if clip is None or len(clip.input) != 3 or clip.input[0] != add.output[0]:
        return None
    if not (_is_const(g, clip.input[1], 0.0) and _is_const(g, clip.input[2], 6.0)):
        return None
    mul = g.only(clip.output[0], "Mul")
    if mul is None or x not in mul.input:
        return None
    div = g.only(mul.output[0], "Div")
    if div is None or div.input[0] != mul.output[0] or not _is_const(g, div.input[1], 6.0):
        return None
    return x, [add, clip, mul, div]


def _hardswish(g: _Graph) -> int:
    """``x * Clip(x + 3, 0, 6) / 6`` as ``x * HardSigmoid(x)``."""
    from onnx import helper

    g.index()
    done = 0
    for add in [n for n in g.live() if n.op_type == "Add"]:
        chain = _hardswish_chain(g, add)
        if chain is None:
            continue
        x, nodes = chain
        gate = f"{add.output[0]}_dxai_hsig"
        new = [
            helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5),
            helper.make_node("Mul", [x, gate], [nodes[-1].output[0]]),
        ]
        at = next(i for i, n in enumerate(g.nodes) if n is add)
        g.nodes[at:at] = new
        g.drop(*nodes)
        g.index()
        done += 1
    return done


_PASSES: dict[Rewrite, Callable[[_Graph], int]] = {
    "conv_affine": _conv_affine,
    "affine_conv": _affine_conv,
    "hardswish": _hardswish,
}


def rewritten_bytes(path: str, names: Iterable[Rewrite]) -> tuple[bytes, dict[Rewrite, int]]:
    """The model file at ``path`` rewritten, serialised, and how many of each rewrite (made
    once per process for a given file, size and modification time)."""
    stat = Path(path).stat()
    data, counts = _rewritten(path, tuple(names), stat.st_size, stat.st_mtime_ns)
    return data, dict(counts)


@lru_cache(maxsize=8)
def _rewritten(
    path: str, names: tuple[Rewrite, ...], size: int, mtime_ns: int
) -> tuple[bytes, dict[Rewrite, int]]:
    import onnx

    model = onnx.load(path)
    counts = rewrite_model(model, names)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString()), counts
