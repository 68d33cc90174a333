"""Sub-batches: what one Ray Serve call carries, and how a replica runs a merge of them.

The client-side batcher groups items by shape bucket and sends each batch as one ``SubBatch``:
a single contiguous NCHW float32 array already padded to the bucket (the same ``pad_stack``
the in-process batcher runs, so results are bit-identical), each item's own size, and each
item's wall-clock deadline.  A replica's ``@serve.batch`` merges sub-batches from one or more
daemons; ``run_sub_batches`` runs them in engine-sized chunks of one bucket and returns one
outcome per item (its cropped output or its own error), so a bad item still fails alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from dxai.batching.buckets import Bucket, FloatArray, pad_stack
from dxai.batching.execute import Outcome, as_item_error, run_padded
from dxai.configs.errors import (
    DeadlineExceededError,
    EngineError,
    InvalidInferenceInputError,
)
from dxai.engines.base import Engine
from dxai.engines.spec import ModelSpec

__all__ = ["Outcome", "SubBatch", "check_sub_batch", "pack", "run_sub_batches"]


@dataclass(frozen=True)
class SubBatch:
    """Items of one bucket: ``batch[i, :, :h, :w]`` is item ``i`` with ``sizes[i] == (h, w)``."""

    batch: FloatArray
    sizes: tuple[tuple[int, int], ...]
    deadlines: tuple[float, ...]

    @property
    def size(self) -> int:
        """Number of items."""
        return len(self.sizes)

    @property
    def bucket(self) -> Bucket:
        """The padded (height, width) every item shares."""
        return int(self.batch.shape[2]), int(self.batch.shape[3])


def pack(
    items: Sequence[FloatArray], bucket: Bucket, pad_value: float, deadlines: Sequence[float]
) -> SubBatch:
    """Pad and stack ``items`` (validated CHW arrays of one bucket) into one sub-batch."""
    sizes = tuple((int(a.shape[1]), int(a.shape[2])) for a in items)
    if len(items) == 1 and sizes[0] == bucket and items[0].flags.c_contiguous:
        batch = items[0][np.newaxis]
    else:
        batch = pad_stack(items, bucket, pad_value)
    return SubBatch(batch, sizes, tuple(float(d) for d in deadlines))


def check_sub_batch(model: ModelSpec, sub: object) -> SubBatch:
    """``sub`` if it is a well-formed sub-batch for ``model``; InvalidInferenceInputError if not."""
    if not isinstance(sub, SubBatch) or not isinstance(sub.batch, np.ndarray):
        raise InvalidInferenceInputError(f"model {model.name}: request is not a sub-batch")
    arr = sub.batch
    if arr.dtype != np.float32 or arr.ndim != 4 or arr.shape[1] != model.channels:
        raise InvalidInferenceInputError(
            f"model {model.name}: sub-batch {arr.dtype} {arr.shape} is not float32 "
            f"(N, {model.channels}, H, W)"
        )
    if not arr.shape[0] == len(sub.sizes) == len(sub.deadlines) or arr.shape[0] < 1:
        raise InvalidInferenceInputError(f"model {model.name}: sub-batch counts disagree")
    if any(not (0 < h <= arr.shape[2] and 0 < w <= arr.shape[3]) for h, w in sub.sizes):
        raise InvalidInferenceInputError(f"model {model.name}: item size outside its bucket")
    return sub


Row = tuple[int, int]
"""(sub-batch index, item index within it)."""


def _gather(subs: Sequence[SubBatch], rows: Sequence[Row]) -> FloatArray:
    """The rows as one batch: a view when they are one sub-batch's consecutive rows."""
    first, start = rows[0]
    if all(s == first and r == start + k for k, (s, r) in enumerate(rows)):
        return subs[first].batch[start : start + len(rows)]
    return np.stack([subs[s].batch[r] for s, r in rows])


def _run_rows(
    engine: Engine, model: ModelSpec, subs: Sequence[SubBatch], rows: Sequence[Row]
) -> list[Outcome]:
    """One outcome per row; a failing batch is retried row by row so a bad item fails alone."""
    sizes = [subs[s].sizes[r] for s, r in rows]
    try:
        return list(run_padded(engine, model, _gather(subs, rows), sizes))
    except Exception as exc:  # noqa: BLE001 - retried one by one below
        if len(rows) == 1:
            return [as_item_error(model.name, exc)]
    outcomes: list[Outcome] = []
    for row in rows:
        try:
            outcomes.extend(
                run_padded(engine, model, _gather(subs, [row]), [subs[row[0]].sizes[row[1]]])
            )
        except Exception as exc:  # noqa: BLE001 - this item's own error
            outcomes.append(as_item_error(model.name, exc))
    return outcomes


def _live_rows(
    model: ModelSpec, subs: Sequence[object], outcomes: list[list[Outcome | None]]
) -> dict[Bucket, list[Row]]:
    """Rows to run grouped by bucket; malformed sub-batches and late items get their error."""
    now = time.time()
    groups: dict[Bucket, list[Row]] = {}
    for idx, raw in enumerate(subs):
        try:
            sub = check_sub_batch(model, raw)
        except InvalidInferenceInputError as exc:
            outcomes.append([exc] * max(1, _count(raw)))
            continue
        outcomes.append([None] * sub.size)
        for row, deadline in enumerate(sub.deadlines):
            if deadline <= now:
                outcomes[idx][row] = DeadlineExceededError(
                    f"model {model.name}: deadline passed in queue"
                )
            else:
                groups.setdefault(sub.bucket, []).append((idx, row))
    return groups


def _count(raw: object) -> int:
    sizes = getattr(raw, "sizes", ())
    return len(sizes) if isinstance(sizes, tuple) else 1


def run_sub_batches(
    engine: Engine, model: ModelSpec, subs: Sequence[object], max_batch: int
) -> list[list[Outcome]]:
    """One list of outcomes per sub-batch, one outcome per item, in order (never raises).

    Rows of one bucket from every sub-batch run together in chunks of at most ``max_batch``.
    Blocking: run it in a thread.
    """
    outcomes: list[list[Outcome | None]] = []
    groups = _live_rows(model, subs, outcomes)
    checked = cast(Sequence[SubBatch], subs)  # rows only name well-formed sub-batches
    for rows in groups.values():
        for start in range(0, len(rows), max_batch):
            chunk = rows[start : start + max_batch]
            results = _run_rows(engine, model, checked, chunk)
            for (s, r), result in zip(chunk, results, strict=True):
                outcomes[s][r] = result
    lost = EngineError(f"model {model.name}: internal: item lost")
    return [[o if o is not None else lost for o in per_sub] for per_sub in outcomes]
