"""Run a list of single items through an engine: bucket, batch, retry singly, one outcome each.

Used inside Ray Serve replicas (where ``@serve.batch`` hands over mixed shapes); blocking.
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


def _as_error(model: str, exc: Exception) -> DxaiError:
    if isinstance(exc, DxaiError):
        return exc
    return EngineError(f"model {model}: inference failed ({type(exc).__name__}: {str(exc)[:200]})")


def run_batch(
    engine: Engine, model: ModelSpec, arrays: Sequence[FloatArray], bucket: tuple[int, int]
) -> list[FloatArray]:
    """Pad ``arrays`` to ``bucket``, run one batch, crop each output back."""
    out = engine.infer(pad_stack(arrays, bucket, model.pad_value))
    if out.shape[0] != len(arrays):
        raise EngineError(f"model {model.name}: {out.shape[0]} outputs for {len(arrays)} inputs")
    return [crop_output(model, out[i], a.shape[1], a.shape[2]) for i, a in enumerate(arrays)]


def _run_group(
    engine: Engine, model: ModelSpec, arrays: list[FloatArray], bucket: tuple[int, int]
) -> list[Outcome]:
    try:
        return list(run_batch(engine, model, arrays, bucket))
    except Exception as exc:  # noqa: BLE001 - retried one by one so a bad item fails alone
        if len(arrays) == 1:
            return [_as_error(model.name, exc)]
    outcomes: list[Outcome] = []
    for array in arrays:
        try:
            outcomes.append(run_batch(engine, model, [array], bucket)[0])
        except Exception as exc:  # noqa: BLE001 - this item's own error
            outcomes.append(_as_error(model.name, exc))
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
