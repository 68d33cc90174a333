"""Inbound AI model tasks: a real ONNX model from the registry, fed through the real batcher."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inbound_helpers import make_ct_series, make_mr_series, make_scout, study_view
from pydantic import ValidationError
from pydicom.dataset import Dataset

from dxai.actors.inbound.ai_model import check_model_tasks, run_model_task
from dxai.actors.inbound.ai_preprocess import preprocess_dataset
from dxai.batching.buckets import FloatArray
from dxai.batching.client import InferenceClient, make_inference_client
from dxai.configs.errors import ConfigError, EngineError
from dxai.configs.schema.ai_tasks import (
    AiServiceConfig,
    AiTasksConfig,
    ModelTaskContract,
    PreprocessConfig,
)
from dxai.configs.schema.inference import BatchingConfig, InferenceConfig
from dxai.engines.registry import ModelRegistry, load_registry
from dxai.observability.metrics import Sensor

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

MODEL = "ai_bright"
GAIN, BIAS = 10.0, -5.0  # y = sigmoid(GAIN * mean(x) + BIAS)
SIZE = 64
BRIGHT_STORED, DARK_STORED = 2000, 0  # HU 976 and -1024 with the helper's intercept -1024

REGISTRY_YAML = """
models:
  {name}:
    version: "1"
    format: onnx
    source: {{path: bright.onnx}}
    sha256: {sha}
    input: {{name: x, dtype: float32, shape: [-1, 1, {size}, {size}]}}
    output: {{name: y, dtype: float32, shape: [-1, 1]}}
    buckets: [[{size}, {size}]]
    pad_multiple: [{size}, {size}]
    oversize: reject
    postprocess: {{crop: none}}
"""


def build_model(path: Path) -> None:
    """x [N,1,64,64] → ReduceMean over C,H,W → Mul → Add → Sigmoid → y [N,1]."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "gain"], ["g"]),
        helper.make_node("Add", ["g", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bright",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            helper.make_tensor("gain", TensorProto.FLOAT, [], [GAIN]),
            helper.make_tensor("bias", TensorProto.FLOAT, [], [BIAS]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def expected_score(mean_input: float) -> float:
    return 1.0 / (1.0 + math.exp(-(GAIN * mean_input + BIAS)))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    model_file = tmp_path / "bright.onnx"
    build_model(model_file)
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    reg_file = tmp_path / "models.yaml"
    reg_file.write_text(REGISTRY_YAML.format(name=MODEL, sha=sha, size=SIZE), encoding="utf-8")
    return load_registry(reg_file)


@pytest.fixture
def sensor() -> Sensor:
    return Sensor(process=False)


@pytest.fixture
async def client(registry: ModelRegistry, sensor: Sensor) -> AsyncIterator[InferenceClient]:
    config = InferenceConfig(
        models=(MODEL,), batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=20.0)
    )
    async with make_inference_client(config, registry, sensor=sensor) as real:
        yield real


class SpyClient:
    """Wraps the real client: records how many items were in flight at once; can fail some."""

    def __init__(self, inner: InferenceClient, fail_calls: Sequence[int] = ()) -> None:
        self.inner, self.fail_calls = inner, set(fail_calls)
        self.calls = self.in_flight = self.max_in_flight = 0

    async def infer(
        self, model_name: str, item: FloatArray, *, deadline_s: float | None = None
    ) -> FloatArray:
        self.calls += 1
        if self.calls in self.fail_calls:
            raise EngineError("model failed for this item")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.inner.infer(model_name, item, deadline_s=deadline_s)
        finally:
            self.in_flight -= 1


class StuckClient:
    """A client whose items never come back (a wedged backend)."""

    async def infer(
        self, model_name: str, item: FloatArray, *, deadline_s: float | None = None
    ) -> FloatArray:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def ct_slices(levels: Sequence[int], **kwargs: Any) -> list[Dataset]:
    """A CT series with one slice per stored level (each slice uniform at that level)."""
    datasets = make_ct_series(len(levels), 2.0, 2.0, rows=SIZE, cols=SIZE, **kwargs)
    for ds, level in zip(datasets, levels, strict=True):
        ds.PixelData = np.full((SIZE, SIZE), level, dtype=np.int16).tobytes()
    return datasets


def contract(**overrides: Any) -> ModelTaskContract:
    body: dict[str, Any] = {
        "name": "ai_brightness",
        "model": MODEL,
        "series": {"modalities": ["CT"], "min_instances": 1},
        "preprocess": {
            "window": "fixed",
            "window_center": 40,
            "window_width": 400,
            "size": [SIZE, SIZE],
        },
        "outputs": [
            {
                "index": 0,
                "code": "ai.bright",
                "concept": {"value": "BRIGHT-1", "scheme": "99DXAI", "meaning": "Bright image"},
                "threshold": 0.5,
                "severity": "warning",
                "aggregate": "max",
                "measurement": True,
            }
        ],
    }
    body.update(overrides)
    return ModelTaskContract.model_validate(body)


def sops(datasets: Sequence[Dataset]) -> tuple[str, ...]:
    return tuple(str(ds.SOPInstanceUID) for ds in datasets)


def batch_samples(sensor: Sensor) -> tuple[float, float]:
    labels = {"model": MODEL}
    count = sensor.registry.get_sample_value("dxai_batch_size_count", labels) or 0.0
    total = sensor.registry.get_sample_value("dxai_batch_size_sum", labels) or 0.0
    return count, total


async def test_bright_slices_give_the_finding_with_their_score(
    client: InferenceClient, sensor: Sensor
) -> None:
    bright = ct_slices([BRIGHT_STORED] * 3)
    spy = SpyClient(client)
    report = await run_model_task(study_view(bright), contract(), spy)
    assert report.status == "passed"
    assert report.task == "ai_brightness"
    assert report.blocking is False
    assert report.counts == {"series": 1, "items": 3, "failed_items": 0}
    (finding,) = report.findings
    assert finding.code == "ai.bright"
    assert finding.severity == "warning"
    assert finding.series_uid == str(bright[0].SeriesInstanceUID)
    assert set(finding.sop_uids) == set(sops(bright))
    assert finding.score == pytest.approx(expected_score(1.0), abs=1e-5)
    assert finding.value == finding.score
    assert finding.unit == "1"
    assert finding.concept is not None
    assert (finding.concept.value, finding.concept.scheme) == ("BRIGHT-1", "99DXAI")
    for uid in sops(bright):
        assert uid not in finding.message


async def test_dark_slices_give_no_finding(client: InferenceClient) -> None:
    report = await run_model_task(study_view(ct_slices([DARK_STORED] * 2)), contract(), client)
    assert report.status == "passed"
    assert report.findings == ()
    assert report.counts["items"] == 2


async def test_mixed_series_names_only_the_bright_instances(client: InferenceClient) -> None:
    datasets = ct_slices([BRIGHT_STORED, DARK_STORED, BRIGHT_STORED, DARK_STORED])
    outputs = [
        {"code": "ai.bright", "threshold": 0.5, "aggregate": "max"},
        {
            "code": "ai.bright_mean",
            "threshold": 0.9,
            "aggregate": "mean",
            "measurement": True,
            "report_below": True,
        },
    ]
    report = await run_model_task(study_view(datasets), contract(outputs=outputs), client)
    by_code = {f.code: f for f in report.findings}
    assert set(by_code["ai.bright"].sop_uids) == {sops(datasets)[0], sops(datasets)[2]}
    mean = by_code["ai.bright_mean"]
    want = (expected_score(1.0) + expected_score(0.0)) / 2
    assert mean.severity == "info"
    assert mean.score == pytest.approx(want, abs=1e-5)
    assert mean.value == pytest.approx(want, abs=1e-5)
    assert set(mean.sop_uids) == {sops(datasets)[0], sops(datasets)[2]}  # each >= 0.9


async def test_items_are_submitted_together_and_batched(
    client: InferenceClient, sensor: Sensor
) -> None:
    datasets = ct_slices([BRIGHT_STORED] * 6)
    spy = SpyClient(client)
    before = batch_samples(sensor)
    report = await run_model_task(study_view(datasets), contract(), spy)
    count, total = (a - b for a, b in zip(batch_samples(sensor), before, strict=True))
    assert report.counts["items"] == 6
    assert spy.max_in_flight == 6
    assert total == 6
    assert count < 6  # fewer batches than items: at least one batch held several


async def test_undecodable_instance_fails_alone(client: InferenceClient) -> None:
    datasets = ct_slices([BRIGHT_STORED] * 3)
    datasets[1].PixelData = datasets[1].PixelData[:100]
    report = await run_model_task(study_view(datasets), contract(), client)
    assert report.status == "passed"
    assert report.counts == {"series": 1, "items": 3, "failed_items": 1}
    assert "invalid_dicom" in report.detail
    (finding,) = report.findings
    assert set(finding.sop_uids) == {sops(datasets)[0], sops(datasets)[2]}


async def test_inference_error_fails_alone_and_all_failing_fails_the_task(
    client: InferenceClient,
) -> None:
    datasets = ct_slices([BRIGHT_STORED] * 3)
    view = study_view(datasets)
    report = await run_model_task(view, contract(), SpyClient(client, fail_calls=[2]))
    assert report.status == "passed"
    assert report.counts["failed_items"] == 1
    assert len(report.findings[0].sop_uids) == 2
    failing = await run_model_task(view, contract(), SpyClient(client, fail_calls=[1, 2, 3]))
    assert failing.status == "failed"
    assert failing.findings == ()
    assert failing.detail == "no item succeeded (engine_error)"


async def test_unselected_series_is_skipped(client: InferenceClient) -> None:
    mr = make_mr_series(3)
    scout = make_scout(str(mr[0].StudyInstanceUID))
    spy = SpyClient(client)
    report = await run_model_task(study_view(mr + scout), contract(), spy)
    assert report.status == "skipped"
    assert report.findings == ()
    assert spy.calls == 0


async def test_blocking_contract_holds_the_study(client: InferenceClient) -> None:
    outputs = [{"code": "ai.bright", "threshold": 0.5, "severity": "blocking"}]
    task = contract(blocking=True, outputs=outputs)
    report = await run_model_task(study_view(ct_slices([BRIGHT_STORED])), task, client)
    assert report.status == "held"
    assert report.blocking is True
    assert report.holds


async def test_middle_instance_only(client: InferenceClient) -> None:
    datasets = ct_slices([DARK_STORED, BRIGHT_STORED, DARK_STORED])
    pre = contract().preprocess.model_copy(update={"instances": "middle"})
    report = await run_model_task(study_view(datasets), contract(preprocess=pre), client)
    assert report.counts["items"] == 1
    assert report.findings[0].sop_uids == (sops(datasets)[1],)


async def test_deadline_gives_timed_out() -> None:
    view = study_view(ct_slices([BRIGHT_STORED] * 2))
    report = await run_model_task(view, contract(), StuckClient(), deadline_s=0.3)
    assert report.status == "timed_out"
    assert report.findings == ()


def test_auto_window_uses_first_header_values_and_resamples() -> None:
    (ds,) = make_ct_series(1, 2.0, 2.0, rows=32, cols=32)
    ramp = np.tile(np.arange(32, dtype=np.int16) * 100, (32, 1))  # HU -1024 .. 2076
    ds.PixelData = ramp.tobytes()
    ds.WindowCenter, ds.WindowWidth = ["0", "500"], ["2000", "100"]
    pre = PreprocessConfig(window="auto", size=(16, 48), channels=3, mean=(0.5,), std=(0.5,))
    item = preprocess_dataset(ds, pre)
    assert item.shape == (3, 16, 48) and item.dtype == np.float32
    hu = ramp[0].astype(np.float64) - 1024
    windowed = np.clip((hu + 1000.0) / 2000.0, 0.0, 1.0)
    assert item[0, 0, 0] == pytest.approx((windowed[0] - 0.5) / 0.5, abs=1e-5)
    assert item[2, 5, -1] == pytest.approx((windowed[-1] - 0.5) / 0.5, abs=1e-5)
    assert np.all(np.diff(item[1, 3]) >= -1e-6)  # bilinear keeps the ramp monotonic


def test_check_model_tasks_against_the_registry(registry: ModelRegistry) -> None:
    check_model_tasks(AiTasksConfig(models=(contract(),)), registry)
    pre = contract().preprocess.model_copy(update={"channels": 3})
    with pytest.raises(ConfigError, match="channels"):
        check_model_tasks(AiTasksConfig(models=(contract(preprocess=pre),)), registry)
    with pytest.raises(ConfigError, match="not registered"):
        check_model_tasks(AiTasksConfig(models=(contract(model="nope"),)), registry)
    small = contract().preprocess.model_copy(update={"size": (32, 32)})
    with pytest.raises(ConfigError, match="size"):
        check_model_tasks(AiTasksConfig(models=(contract(preprocess=small),)), registry)


def test_config_rules() -> None:
    assert AiTasksConfig() == AiTasksConfig(models=(), services=())
    with pytest.raises(ValidationError, match="pattern"):
        contract(outputs=[{"code": "bright"}])
    with pytest.raises(ValidationError, match="pattern"):
        contract(name="brightness")
    with pytest.raises(ValidationError, match="blocking"):
        contract(outputs=[{"code": "ai.bright", "severity": "blocking"}])
    with pytest.raises(ValidationError, match="window fixed"):
        contract(preprocess={"window": "fixed"})
    with pytest.raises(ValidationError, match="extra"):
        contract(surprise=1)
    with pytest.raises(ValidationError, match="credentials"):
        AiServiceConfig(name="ai_vendor", url="https://user:pw@vendor.example/ai")
    with pytest.raises(ValidationError, match="unique"):
        AiTasksConfig(
            models=(contract(),),
            services=(AiServiceConfig(name="ai_brightness", url="http://127.0.0.1:1/x"),),
        )
