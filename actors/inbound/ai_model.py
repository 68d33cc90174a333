"""A registry model run as an inbound task, under its :class:`ModelTaskContract`.

The contract picks series and instances (headers only), each picked instance becomes one item
(decode + window + resample in worker threads) and every item is submitted at once to the
:class:`InferenceClient` so that its batcher batches them.  A bad item (undecodable pixels, an
inference error) fails alone and is counted; the task reports from the others and fails only
when no item succeeded.  Per series and output, the instances' scores are aggregated and a
finding is emitted when the score reaches the output's threshold.  No network I/O here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from dxai.actors.inbound.ai_preprocess import prepare_item
from dxai.actors.inbound.ai_select import eligible_instances, pick_instances, select_series
from dxai.actors.inbound.findings import Concept, Finding, TaskReport, TaskStatus, report_of
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.batching.buckets import FloatArray
from dxai.batching.client import InferenceClient
from dxai.configs.errors import (
    ConfigError,
    DeadlineExceededError,
    DxaiError,
    EngineError,
    InvalidDicomError,
)
from dxai.configs.schema.ai_tasks import AiTasksConfig, ModelTaskContract, OutputFinding
from dxai.engines.registry import ModelRegistry

#: how many instances are decoded and preprocessed at once (each in a worker thread)
PREPARE_CONCURRENCY = 4


@dataclass(frozen=True)
class _Item:
    series_uid: str
    ref: InstanceRef


@dataclass(frozen=True)
class _Result:
    """One item's outcome: its scores (after activation) or its error code."""

    series_uid: str
    sop_uid: str
    scores: tuple[float, ...] | None = None
    error: str | None = None


def _activated(output: FloatArray, activation: str) -> tuple[float, ...]:
    values = np.asarray(output, dtype=np.float64).reshape(-1)
    if activation == "sigmoid":
        values = 1.0 / (1.0 + np.exp(-values))
    elif activation == "softmax" and values.size:
        shifted = np.exp(values - values.max())
        values = shifted / shifted.sum()
    return tuple(float(v) for v in values)


async def _prepare(item: _Item, contract: ModelTaskContract, gate: asyncio.Semaphore) -> object:
    """The item's array, or a :class:`_Result` carrying its error code."""
    async with gate:
        try:
            return await asyncio.to_thread(prepare_item, item.ref, contract.preprocess)
        except DxaiError as exc:
            return _Result(item.series_uid, item.ref.sop_uid, error=exc.code)
        except Exception:  # noqa: BLE001 - boundary: a hostile instance fails alone
            return _Result(item.series_uid, item.ref.sop_uid, error=InvalidDicomError.code)


async def _infer(
    item: _Item,
    array: FloatArray,
    contract: ModelTaskContract,
    client: InferenceClient,
    deadline: float,
) -> _Result:
    remaining = max(deadline - asyncio.get_running_loop().time(), 1e-3)
    try:
        out = await client.infer(contract.model, array, deadline_s=remaining)
        scores = _activated(out, contract.activation)
        needed = max(o.index for o in contract.outputs) + 1
        if len(scores) < needed or not all(math.isfinite(s) for s in scores):
            raise EngineError(f"model {contract.model}: output has {len(scores)} usable values")
    except DxaiError as exc:
        return _Result(item.series_uid, item.ref.sop_uid, error=exc.code)
    return _Result(item.series_uid, item.ref.sop_uid, scores=scores)


async def _run_items(
    items: list[_Item], contract: ModelTaskContract, client: InferenceClient, deadline: float
) -> list[_Result]:
    """Preprocess every item (bounded threads), then submit all ready items together."""
    gate = asyncio.Semaphore(PREPARE_CONCURRENCY)
    prepared = await asyncio.gather(*(_prepare(item, contract, gate) for item in items))
    failed = [p for p in prepared if isinstance(p, _Result)]
    ready = [
        (item, p) for item, p in zip(items, prepared, strict=True) if isinstance(p, np.ndarray)
    ]
    inferred = await asyncio.gather(
        *(_infer(item, array, contract, client, deadline) for item, array in ready)
    )
    return failed + list(inferred)


def _finding(
    contract: ModelTaskContract, output: OutputFinding, series_uid: str, done: list[_Result]
) -> Finding | None:
    scores = [(r.sop_uid, (r.scores or ())[output.index]) for r in done]
    values = [s for _, s in scores]
    score = max(values) if output.aggregate == "max" else float(np.mean(values))
    above = tuple(sop for sop, s in scores if s >= output.threshold)
    hit = score >= output.threshold
    if not hit and not output.report_below:
        return None
    concept = output.concept
    message = (
        f"{output.code}: score {score:.3f} (threshold {output.threshold:g}, "
        f"{output.aggregate} of {len(values)} instances, {len(above)} at or above)"
    )
    return Finding(
        code=output.code,
        severity=output.severity if hit else "info",
        message=message,
        task=contract.name,
        series_uid=series_uid,
        sop_uids=above,
        value=score if output.measurement else None,
        unit=output.unit if output.measurement else None,
        concept=Concept(concept.value, concept.scheme, concept.meaning) if concept else None,
        score=score,
    )


def _findings(
    contract: ModelTaskContract, series: list[SeriesView], results: list[_Result]
) -> list[Finding]:
    findings: list[Finding] = []
    for view in series:
        done = [r for r in results if r.series_uid == view.series_uid and r.scores is not None]
        if not done:
            continue
        for output in contract.outputs:
            finding = _finding(contract, output, view.series_uid, done)
            if finding is not None:
                findings.append(finding)
    return findings


def _plain(
    contract: ModelTaskContract, status: TaskStatus, detail: str, counts: dict[str, int]
) -> TaskReport:
    return TaskReport(
        contract.name, status, detail=detail, counts=counts, blocking=contract.blocking
    )


def _report(
    contract: ModelTaskContract, series: list[SeriesView], results: list[_Result]
) -> TaskReport:
    errors = Counter(r.error for r in results if r.error is not None)
    ok = len(results) - sum(errors.values())
    counts = {"series": len(series), "items": len(results), "failed_items": sum(errors.values())}
    top = errors.most_common(1)[0][0] if errors else ""
    if ok == 0:
        if DeadlineExceededError.code in errors:
            return _plain(contract, "timed_out", DeadlineExceededError.code, counts)
        return _plain(contract, "failed", f"no item succeeded ({top})", counts)
    findings = _findings(contract, series, results)
    detail = f"{counts['failed_items']} of {len(results)} items failed ({top})" if errors else ""
    report = report_of(contract.name, findings, detail, **counts)
    return dataclasses.replace(report, blocking=contract.blocking)


async def run_model_task(
    study: StudyView,
    contract: ModelTaskContract,
    client: InferenceClient,
    *,
    deadline_s: float | None = None,
) -> TaskReport:
    """Run ``contract``'s model over the series it takes; the report's task is its name.

    ``skipped`` when no series is taken, ``failed`` when no item succeeded, ``timed_out`` when
    ``deadline_s`` (default: the contract's) passes first; else ``passed`` / ``held``.
    """
    selected = select_series(study, contract.series)
    if not selected:
        return _plain(contract, "skipped", "no series selected", {"series": 0})
    items = [
        _Item(view.series_uid, ref)
        for view in selected
        for ref in pick_instances(eligible_instances(view, contract.series), contract.preprocess)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (contract.deadline_s if deadline_s is None else deadline_s)
    try:
        async with asyncio.timeout_at(deadline):
            results = await _run_items(items, contract, client, deadline)
    except TimeoutError:
        counts = {"series": len(selected), "items": len(items)}
        return _plain(contract, "timed_out", DeadlineExceededError.code, counts)
    return _report(contract, selected, results)


def _output_size(shape: tuple[int, ...]) -> int | None:
    dims = shape[1:]
    return math.prod(dims) if dims and all(d > 0 for d in dims) else None


def check_model_tasks(config: AiTasksConfig, registry: ModelRegistry) -> None:
    """Check every contract against the registry (model known, channels, fixed input size,
    output indices); :class:`ConfigError` names the contract.  Call once at startup."""
    for i, contract in enumerate(config.models):
        where = f"ai_tasks.models[{i}] ({contract.name})"
        try:
            spec = registry.get(contract.model)
        except DxaiError as exc:
            raise ConfigError(f"{where}.model: {contract.model!r} is not registered") from exc
        pre = contract.preprocess
        if spec.channels != pre.channels:
            raise ConfigError(f"{where}.preprocess.channels: model takes {spec.channels}")
        fixed = spec.input.shape[2:]
        if all(d > 0 for d in fixed) and tuple(fixed) != pre.size:
            raise ConfigError(f"{where}.preprocess.size: model takes {list(fixed)}")
        size = _output_size(spec.output.shape)
        if size is not None and any(o.index >= size for o in contract.outputs):
            raise ConfigError(f"{where}.outputs: index beyond the model's {size} outputs")
