"""The ``presence`` scan action: every instance gets the cheap pass, full OCR only where it says.

Driven through :func:`run_series` (shared by ``dxai deid`` and the daemon) with a fake pixel
actor that records which instances it was asked to OCR; the last test goes through the
daemon's own study path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset

from dxai.actors.outbound import (
    InstanceOutcome,
    InstancePipeline,
    PixelStep,
    build_pipeline,
    read_member,
    run_series,
)
from dxai.actors.outbound.series import plan
from dxai.actors.pixels import PixelReport, RedactedBox
from dxai.actors.pixels.presence import Probe
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline import Pipeline
from dxai.synth.series import ct_series


class Recorder:
    """A pixel actor (no detector: the presence pass uses statistics alone) that redacts
    every instance it is asked to OCR and records their InstanceNumbers."""

    def __init__(self) -> None:
        self.policy = PixelPolicyConfig()
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def redact_dataset(
        self, ds: Dataset, phi_values: Sequence[str], request: str = "auto", flagged: bool = False
    ) -> PixelReport:
        with self.lock:
            self.seen.append(int(ds.InstanceNumber))
        box = RedactedBox(0, 0, 8, 8, "name")
        return PixelReport(status="redacted", phi_regions=1, boxes=[box], text_regions=1)


def _raws(count: int, text_on: set[int], size: int = 256, **header: object) -> list[bytes]:
    out = []
    for item in ct_series(21, 0, count, size=size, text_on=text_on):
        for key, value in header.items():
            setattr(item.dataset, key, value)
        buf = BytesIO()
        item.dataset.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def _pipeline(tmp: Path, actor: Recorder) -> InstancePipeline:
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}})
    return InstancePipeline(build_pipeline(config)[0].deid, PixelStep(actor, "auto"))


async def _inline(_index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
    return await asyncio.to_thread(call)


async def test_presence_is_the_default_plan_for_ct(tmp_path: Path) -> None:
    members = [read_member(raw) for raw in _raws(3, set(), size=64)]
    plans = plan(members, _pipeline(tmp_path, Recorder()))
    assert [(p.action, p.first, p.rest) for p in plans] == [("presence", [0, 1, 2], [])]


async def test_one_middle_slice_with_text_in_a_40_slice_series_is_ocred(tmp_path: Path) -> None:
    actor = Recorder()
    raws = list(reversed(_raws(40, {23})))  # any arrival order: the decision is per instance
    outs = await run_series([read_member(r) for r in raws], _pipeline(tmp_path, actor), _inline)
    assert actor.seen == [24]  # InstanceNumber of the 0-based slice 23, and nothing else
    assert [o.status for o in outs] == ["passed"] * 40
    scanned = [i for i, o in enumerate(outs) if o.pixels is not None and o.pixels.scanned]
    assert scanned == [40 - 24]
    assert outs[40 - 24].pixels is not None and outs[40 - 24].pixels.boxes_redacted == 1


async def test_clean_series_is_never_ocred(tmp_path: Path) -> None:
    actor = Recorder()
    raws = _raws(20, set())
    outs = await run_series([read_member(r) for r in raws], _pipeline(tmp_path, actor), _inline)
    assert actor.seen == [] and all(o.status == "passed" for o in outs)
    assert not any(o.pixels is not None and o.pixels.scanned for o in outs)


async def test_a_structural_cue_sends_every_instance_to_ocr(tmp_path: Path) -> None:
    actor = Recorder()
    raws = _raws(5, set(), size=64, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    await run_series([read_member(r) for r in raws], _pipeline(tmp_path, actor), _inline)
    assert sorted(actor.seen) == [1, 2, 3, 4, 5]


async def test_the_probes_run_through_the_given_offload(tmp_path: Path) -> None:
    calls: list[int] = []

    async def offload(call: Callable[[], Probe]) -> Probe:
        calls.append(1)
        return await asyncio.to_thread(call)

    members = [read_member(r) for r in _raws(4, set(), size=64)]
    await run_series(members, _pipeline(tmp_path, Recorder()), _inline, offload)
    assert len(calls) == 4


async def test_the_daemon_honours_presence(tmp_path: Path) -> None:
    from test_daemon_pipeline import STUDY, MemSource, Rig, _event

    actor = Recorder()
    raws = _raws(12, {5}, StudyInstanceUID=STUDY)  # the study the event names
    rig = Rig(tmp_path, MemSource(raws), _pipeline(tmp_path, actor))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    assert actor.seen == [6]
    res = rig.pub.res[0]
    assert (res.state, res.instances_released) == ("released", 12)
    assert {t.task: t for t in res.tasks}["pixels"].counts["scanned"] == 1


async def test_without_ocr_models_every_instance_is_held(tmp_path: Path) -> None:
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    pipeline = InstancePipeline(build_pipeline(config)[0].deid, PixelStep(None, "auto"))
    members = [read_member(r) for r in _raws(4, set(), size=64)]
    outs = await run_series(members, pipeline, _inline)
    assert {(o.status, o.reason) for o in outs} == {("held", "pixel_actor_unavailable")}
