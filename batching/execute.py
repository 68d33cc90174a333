"""Run a list of single items through an engine: bucket, batch, retry singly, one outcome each.

Blocking helpers shared by the in-process runner and the Ray Serve replicas.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dxai.batching.buckets import FloatArray, crop_output, group_by_bucket, pad_stack
from dxai.batching.buckets import validate_item as _validate
from dxai.daemon.errors import DeadlineExceededError, DxaiError, EngineError
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


def _run_group(
    engine: Engine, model: ModelSpec, arrays: list[FloatArray], bucket: tuple[int, int]
) -> list[Outcome]:
    try:
        return list(run_batch(engine, model, arrays, bucket))
    except Exception as exc:  # noqa: BLE001 - retried one by one so a bad item fails alone
        if len(arrays) == 1:
            return [as_item_error(model.name, exc)]
    outcomes: list[Outcome] = []
    for array in arrays:
        try:
            outcomes.append(run_batch(engine, model, [array], bucket)[0])
        except Exception as exc:  # noqa: BLE001 - this item's own error
            outcomes.append(as_item_error(model.name, exc))
    return outcomes


def infer_items(
    engine: Engine,
    model: ModelSpec,
    items: Sequence[object],
    deadlines: Sequence[float],
    max_batch: int,
) -> list[Outcome]:
    """One outcome per item, in order: its output, or its own error (never raises)."""
    outcomes: list[Outcome | None] = [None] * len(items)
    valid: dict[int, FloatArray] = {}
    now = time.time()
    for idx, (item, deadline) in enumerate(zip(items, deadlines, strict=True)):
        try:
            if deadline <= now:
                raise DeadlineExceededError(f"model {model.name}: deadline passed in queue")
            valid[idx] = _validate(model, item)
        except DxaiError as exc:
            outcomes[idx] = exc
    order = list(valid)
    groups = group_by_bucket(model, [valid[i] for i in order])
    for bucket, members in groups.items():
        for start in range(0, len(members), max_batch):
            chunk = [order[m] for m in members[start : start + max_batch]]
            results = _run_group(engine, model, [valid[i] for i in chunk], bucket)
            for idx, result in zip(chunk, results, strict=True):
                outcomes[idx] = result
    return [o if o is not None else EngineError("internal: item lost") for o in outcomes]
