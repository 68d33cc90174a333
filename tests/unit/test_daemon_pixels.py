"""The pixel PHI step in the daemon's instance processing, with a fake pixel actor."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from dxai.actors.outbound import InstancePipeline, PixelStep, build_pipeline
from dxai.actors.pixels import PixelReport, RedactedBox
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline import Pipeline

CT = get_testdata_file("CT_small.dcm")
assert CT is not None
RAW = Path(CT).read_bytes()
ORIGINAL = pydicom.dcmread(CT)


def _raw(flag: str | None, *, new_uid: bool = False) -> bytes:
    ds = pydicom.dcmread(CT)
    if flag is not None:
        ds.BurnedInAnnotation = flag
    if new_uid:  # another instance of the same series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


class FakeActor:
    """Records what it was given; answers with a fixed status (thread-safe)."""

    def __init__(self, status: str = "redacted", reasons: Sequence[str] = ()) -> None:
        self.status = status
        self.reasons = list(reasons)
        self.calls: list[tuple[str, tuple[str, ...], str]] = []
        self.lock = threading.Lock()
        self.policy = PixelPolicyConfig()

    def redact_dataset(
        self, ds: Dataset, phi_values: Sequence[str], request: str = "auto", flagged: bool = False
    ) -> PixelReport:
        with self.lock:
            self.calls.append((str(ds.get("PatientName", "")), tuple(phi_values), request))
        boxes = [RedactedBox(0, 0, 8, 8, "name")] if self.status == "redacted" else []
        if self.status in ("redacted", "clean"):
            ds.BurnedInAnnotation = "NO"
        return PixelReport(
            status=self.status,  # type: ignore[arg-type]
            text_regions=2,
            phi_regions=len(boxes),
            boxes=boxes,
            held_reasons=self.reasons,
            error_code="decode_failed" if self.status == "failed" else "",
            seconds=0.01,
        )


def build_processor(config: DxaiConfig, actor: FakeActor | None = None) -> InstancePipeline:
    return build_pipeline(config, actor)[0]


def _processor(tmp: Path, actor: FakeActor | None, mode: str = "auto") -> InstancePipeline:
    header_only = build_processor(DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}}))
    return InstancePipeline(
        header_only.deid, PixelStep(actor, "always" if mode == "always" else "auto")
    )


def test_pixels_see_original_phi_and_deidentified_header(tmp_path: Path) -> None:
    actor = FakeActor("redacted")
    out = _processor(tmp_path, actor, "always").process(RAW)
    assert out.status == "passed" and out.data is not None
    assert out.pixels is not None and out.pixels.boxes_redacted == 1 and out.pixels.scanned
    name_seen, values, request = actor.calls[0]
    assert str(ORIGINAL.PatientName) in values  # PHI values from the ORIGINAL header
    assert name_seen != str(ORIGINAL.PatientName)  # pixels redacted after header de-id
    assert request == "always"
    assert pydicom.dcmread(BytesIO(out.data)).BurnedInAnnotation == "NO"


@pytest.mark.parametrize(
    ("status", "reasons", "flag", "expected", "reason"),
    [
        ("held", ["low_confidence", "phi_legible"], None, "held", "pixel_phi_legible"),
        ("held", ["low_confidence"], None, "held", "pixel_low_confidence"),
        ("failed", [], None, "failed", "pixel_decode_failed"),
        ("skipped", [], "YES", "held", "pixel_phi_unchecked"),
        ("skipped", [], "NO", "passed", ""),
        ("skipped", [], None, "passed", ""),
        ("clean", [], "YES", "passed", ""),
    ],
)
def test_pixel_status_decides_the_instance(
    tmp_path: Path,
    status: str,
    reasons: list[str],
    flag: str | None,
    expected: str,
    reason: str,
) -> None:
    out = _processor(tmp_path, FakeActor(status, reasons)).process(_raw(flag))
    assert (out.status, out.reason) == (expected, reason)
    assert (out.releasable is not None) == (expected == "passed")
    assert out.pixels is not None and out.pixels.status == status


def test_no_pixel_actor_holds_every_image(tmp_path: Path) -> None:
    out = _processor(tmp_path, None).process(RAW)
    assert (out.status, out.reason, out.releasable) == ("held", "pixel_actor_unavailable", None)


def test_pixels_never_runs_no_actor(tmp_path: Path) -> None:
    actor = FakeActor("held", ["phi_legible"])
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    processor = build_processor(config, actor)
    out = processor.process(_raw("YES"))
    assert out.status == "passed" and out.pixels is None and actor.calls == []
    assert processor.info.pixel_mode == "never"


async def test_pixel_hold_reaches_decision_and_results(tmp_path: Path) -> None:
    from test_daemon_pipeline import MemSource, Rig, _event

    class OneHeld(FakeActor):
        def redact_dataset(
            self,
            ds: Dataset,
            phi_values: Sequence[str],
            request: str = "auto",
            flagged: bool = False,
        ) -> PixelReport:
            with self.lock:
                self.status = "held" if self.calls else "redacted"
                self.reasons = ["phi_legible"] if self.calls else []
            return super().redact_dataset(ds, phi_values, request)

    actor = OneHeld()
    actor.policy = PixelPolicyConfig(scan_modalities={"CT": "sample"})  # OCR both: the sample
    rig = Rig(tmp_path, MemSource([RAW, _raw(None, new_uid=True)]), _processor(tmp_path, actor))
    rig.config = rig.config.model_copy(update={"cpu_workers": 1})
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    decision = rig.pub.decisions[0]
    assert decision.decision == "hold" and [r.code for r in decision.reasons] == [
        "pixel_phi_legible"
    ]
    res = rig.pub.res[0]
    assert (res.state, res.instances_released, res.instances_held) == ("held_for_review", 0, 1)
    assert res.certificate is not None and res.certificate.pixel_mode == "auto"
    pixels = {t.task: t for t in res.tasks}["pixels"]
    assert pixels.status == "held"
    assert pixels.counts["scanned"] == 2 and pixels.counts["boxes_redacted"] == 1
    assert pixels.counts["held"] == 1 and pixels.counts["text_regions"] == 4
    assert rig.sink.stored == []  # per-study release: a held instance holds the study


def test_build_processor_uses_the_given_actor_for_auto(tmp_path: Path) -> None:
    actor = FakeActor("clean")
    config = DxaiConfig.model_validate(
        {"state": {"data_dir": str(tmp_path)}, "deid": {"pixels": "auto"}}
    )
    processor = build_processor(config, actor)
    assert processor.pixels is not None and processor.pixels.actor is actor
    assert processor.info.pixel_mode == "auto"
    assert processor.process(RAW).status == "passed" and actor.calls[0][2] == "auto"


def test_a_pixel_failure_says_what_failed(tmp_path: Path) -> None:
    """A failed pixel step names what failed in the outcome's errors (the report's PHI-free
    message), not only its code: a user of ``dxai deid`` sees why an instance was not written."""
    from pydicom.uid import JPEGBaseline8Bit

    from dxai.actors.pixels import PixelRedactor

    ds = pydicom.dcmread(CT)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit  # a stream no decoder reads
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not a jpeg \xff\xd9"])
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = _processor(tmp_path, PixelRedactor(), "always").process(buf.getvalue())
    assert (out.status, out.reason) == ("failed", "pixel_invalid_dicom")
    assert out.errors == ("pixels: pixel data could not be decoded (JPEG Baseline (Process 1))",)
