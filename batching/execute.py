"""Run one padded batch through an engine and crop each output back to its item.

Blocking helpers shared by the in-process runner and the Ray Serve replicas.
"""

from __future__ import annotations

from collections.abc import Sequence

from dxai.batching.buckets import FloatArray, crop_output, pad_stack
from dxai.configs.errors import DxaiError, EngineError
from dxai.engines.base import Engine
from dxai.engines.spec import ModelSpec

Outcome = FloatArray | DxaiError


def as_item_error(model: str, exc: BaseException) -> DxaiError:
    """``exc`` if it is a DxaiError, else an EngineError naming the model and cause type."""
    if isinstance(exc, DxaiError):
        return exc
    return EngineError(f"model {model}: inference failed ({type(exc).__name__}: {str(exc)[:200]})")


def run_padded(
    engine: Engine, model: ModelSpec, batch: FloatArray, sizes: Sequence[tuple[int, int]]
) -> list[FloatArray]:
    """Run one padded NCHW batch; each output cropped back to its item's (h, w)."""
    out = engine.infer(batch)
    if out.shape[0] != batch.shape[0]:
        raise EngineError(f"model {model.name}: {out.shape[0]} outputs for {batch.shape[0]} inputs")
    return [crop_output(model, out[i], h, w) for i, (h, w) in enumerate(sizes)]


def run_batch(
    engine: Engine, model: ModelSpec, arrays: Sequence[FloatArray], bucket: tuple[int, int]
) -> list[FloatArray]:
    """Pad ``arrays`` to ``bucket``, run one batch, crop each output back."""
    sizes = [(a.shape[1], a.shape[2]) for a in arrays]
    return run_padded(engine, model, pad_stack(arrays, bucket, model.pad_value), sizes)
