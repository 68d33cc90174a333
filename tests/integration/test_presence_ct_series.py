"""The ``presence`` plan with the real redactor (packaged PP-OCR models) over a CT series.

A 40-slice series, clean but for PHI burned into one slice in the middle, goes through
:func:`run_series` as ``dxai deid --pixels auto`` runs it: only that slice is OCRed, and it
is redacted exactly as OCRing it unconditionally would (what the OCR itself reads is the
corpus tests' business: here it misses a 7-px-tall ID, the same with or without the pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom

from dxai.actors.outbound import InstanceOutcome, build_pipeline, read_member, run_series
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.evaluate import score_frames, truth_boxes
from dxai.configs.schema.root import DxaiConfig
from dxai.synth.series import ct_series

TEXT_SLICE = 22


async def _inline(_index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
    return await asyncio.to_thread(call)


async def test_the_middle_slice_with_text_is_ocred_and_redacted(tmp_path: Path) -> None:
    series = ct_series(4, 0, 40, text_on={TEXT_SLICE})
    raws = []
    for item in series:
        buf = BytesIO()
        item.dataset.save_as(buf, enforce_file_format=True)
        raws.append(buf.getvalue())
    config = DxaiConfig.model_validate(
        {"state": {"data_dir": str(tmp_path)}, "deid": {"pixels": "auto"}}
    )
    pipeline = build_pipeline(config)[0]
    assert pipeline.pixels is not None and pipeline.pixels.actor is not None
    outs = await run_series([read_member(r) for r in raws], pipeline, _inline)
    scanned = [i for i, o in enumerate(outs) if o.pixels is not None and o.pixels.scanned]
    assert scanned == [TEXT_SLICE]
    assert all(o.status == "passed" for o in outs)
    out = outs[TEXT_SLICE]
    assert out.pixels is not None and out.pixels.boxes_redacted > 0 and out.data is not None
    before = decode(pydicom.dcmread(BytesIO(raws[TEXT_SLICE]))).frames
    after = decode(pydicom.dcmread(BytesIO(out.data))).frames
    score = score_frames(before, after, truth_boxes(series[TEXT_SLICE].burned))
    assert score.phi_total > 0 and score.phi_found >= score.phi_total - 1
    assert pipeline.process(raws[TEXT_SLICE], scan=True).data == out.data
