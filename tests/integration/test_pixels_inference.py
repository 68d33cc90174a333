"""The pixel redactor with its models run by the real in-process InferenceClient (batcher)."""

from __future__ import annotations

from pathlib import Path

import pydicom

from dxai.actors.pixels import PixelRedactor, phi_values
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.evaluate import score_frames, truth_boxes
from dxai.actors.pixels.inference import redact_dataset_async
from dxai.batching import make_inference_client
from dxai.configs.schema.inference import InferenceConfig
from dxai.engines import load_registry
from dxai.synth.corpus import generate_corpus


async def test_async_redaction_through_the_batcher_matches_direct_runtime(
    tmp_path: Path,
) -> None:
    manifest = generate_corpus(tmp_path / "c", seed=3, studies=1, small=True)
    records = [r for r in manifest.files if any(b.phi for b in r.burned_in)][:3]
    assert records
    direct = PixelRedactor()
    config = InferenceConfig(models=("ppocr_det", "ppocr_rec"))
    async with make_inference_client(config, load_registry()) as client:
        for rec in records:
            path = tmp_path / "c" / rec.path
            ds, reference = pydicom.dcmread(path), pydicom.dcmread(path)
            before = decode(pydicom.dcmread(path)).frames
            report = await redact_dataset_async(ds, phi_values(ds), "always", client)
            expected = direct.redact_dataset(reference, phi_values(reference), "always")
            assert report.status in ("redacted", "held")
            assert report.boxes, rec.path
            # the batcher pads items to buckets: boxes may move by a pixel, never disappear
            assert abs(len(report.boxes) - len(expected.boxes)) <= 1
            truth = truth_boxes(rec.burned_in)
            score = score_frames(before, decode(ds).frames, truth)
            assert score.phi_found >= score.phi_total - 1, rec.path
