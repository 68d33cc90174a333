"""The series plan of the one per-instance pipeline: ``sample`` OCRs a few, the rest on a find.

The same :func:`run_series` serves ``dxai deid`` and the daemon; the daemon test at the end
proves the daemon's own path honours ``sample`` (it used to OCR every instance).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.outbound import (
    InstanceOutcome,
    InstancePipeline,
    PixelStep,
    build_pipeline,
    read_member,
    run_series,
)
from dxai.actors.pixels import PixelReport, RedactedBox
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline import Pipeline

CT = get_testdata_file("CT_small.dcm")
assert CT is not None
SERIES = "2.25.31415926535897932384626"


def _instances(count: int, flag: str | None = None) -> list[bytes]:
    out = []
    for number in range(1, count + 1):
        ds = pydicom.dcmread(CT)
        ds.SeriesInstanceUID = SERIES
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        if flag is not None:
            ds.BurnedInAnnotation = flag
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


class TextOn:
    """A pixel actor that finds PHI text on the instances whose numbers it is given."""

    def __init__(self, numbers: Sequence[int] = (), sample_count: int = 3) -> None:
        self.numbers = set(numbers)
        self.policy = PixelPolicyConfig(scan_modalities={"CT": "sample"}, sample_count=sample_count)
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def redact_dataset(
        self, ds: Dataset, phi_values: Sequence[str], request: str = "auto", flagged: bool = False
    ) -> PixelReport:
        number = int(ds.InstanceNumber)
        with self.lock:
            self.seen.append(number)
        if number in self.numbers:
            box = RedactedBox(0, 0, 8, 8, "name")
            return PixelReport(status="redacted", phi_regions=1, boxes=[box], text_regions=1)
        return PixelReport(status="clean")


def _pipeline(tmp: Path, actor: TextOn) -> InstancePipeline:
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}})
    header_only = build_pipeline(config)[0]
    return InstancePipeline(header_only.deid, PixelStep(actor, "auto"))


async def _inline(_index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
    return await asyncio.to_thread(call)


async def _run(tmp: Path, actor: TextOn, raws: list[bytes]) -> list[InstanceOutcome]:
    members = [read_member(raw) for raw in raws]
    return await run_series(members, _pipeline(tmp, actor), _inline)


async def test_sample_reads_a_spread_of_instances_and_stops_when_clean(tmp_path: Path) -> None:
    actor = TextOn()
    outs = await _run(tmp_path, actor, _instances(9))
    assert sorted(actor.seen) == [1, 5, 9]  # first, middle, last by InstanceNumber
    assert [o.status for o in outs] == ["passed"] * 9
    assert sum(o.pixels is not None and o.pixels.scanned for o in outs) == 3


async def test_text_in_the_sample_reads_the_whole_series(tmp_path: Path) -> None:
    actor = TextOn(numbers=[5])
    outs = await _run(tmp_path, actor, list(reversed(_instances(9))))
    assert sorted(actor.seen) == list(range(1, 10))
    assert all(o.status == "passed" for o in outs)
    assert outs[4].pixels is not None and outs[4].pixels.boxes_redacted == 1  # input order kept


async def test_unscanned_instance_flagged_burned_in_is_held(tmp_path: Path) -> None:
    actor = TextOn()
    outs = await _run(tmp_path, actor, _instances(6, flag="YES"))
    scanned = [o for o in outs if o.pixels is not None and o.pixels.scanned]
    held = [o for o in outs if o.status == "held"]
    assert len(scanned) == 3 and len(held) == 3
    assert {o.reason for o in held} == {"pixel_phi_unchecked"} and all(
        o.releasable is None for o in held
    )


async def test_the_daemon_honours_sample(tmp_path: Path) -> None:
    from test_daemon_pipeline import MemSource, Rig, _event

    actor = TextOn(sample_count=2)
    rig = Rig(tmp_path, MemSource(_instances(8)), _pipeline(tmp_path, actor))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    assert sorted(actor.seen) == [1, 8]
    res = rig.pub.res[0]
    assert (res.state, res.instances_released) == ("released", 8)
    assert {t.task: t for t in res.tasks}["pixels"].counts["scanned"] == 2
