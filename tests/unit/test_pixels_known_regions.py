"""Known PHI regions: CTP DicomPixelAnonymizer scripts parsed, matched and blanked before OCR."""

from __future__ import annotations

import hashlib
from importlib import resources
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.outbound import InstancePipeline, PixelStep, build_pipeline
from dxai.actors.pixels.known_regions import (
    CONFIG_KEY,
    PACKAGED,
    KnownRegionLibrary,
    library_for,
    packaged_library,
)
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.report import RedactedBox
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.errors import ConfigError
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.configs.schema.root import DxaiConfig

# the sha256 recorded in actors/data/ctp/README.md (CTP commit 361e90f8032f...)
CTP_SHA256 = "553a86e6717ff373310313df280898b7056c508ca1ac15d95d8496b77ffb0d60"
GE_DOSE_RULE = 'Manufacturer.containsIgnoreCase("GE MEDICAL") * '
GE_DOSE_RULE += 'CommentsOnRadiationDose.containsIgnoreCase("DLP")'
TEXT = 250  # stored value of the burned-in text pixels
BACKGROUND = 10


def _script_text() -> str:
    return resources.files("dxai.actors").joinpath(*PACKAGED).read_text(encoding="utf-8")


def _image(
    rows: int = 512, columns: int = 512, frames: int = 1, ts: str = uid.ExplicitVRLittleEndian
) -> Dataset:
    """An 8-bit greyscale image with text-like blocks inside and outside the GE dose region."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.ImageType = "CT", ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    arr = np.full((frames, rows, columns), BACKGROUND, dtype=np.uint8)
    arr[:, 20:40, 30:300] = TEXT  # "patient name" line in the dose screen's header band
    arr[:, 300:312, 40:200] = TEXT  # a dose table line below it
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = (arr if frames > 1 else arr[0]).tobytes()
    if ts != uid.ExplicitVRLittleEndian:
        ds.compress(ts, generate_instance_uid=False)
    return ds


def _ge_dose_screen(**kwargs: int) -> Dataset:
    ds = _image(**kwargs)
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.CommentsOnRadiationDose = "Total Exam DLP: 812.44 mGy-cm"
    return ds


class RecordingDetector:
    """Finds text wherever the display image is bright; keeps every image it was shown."""

    def __init__(self) -> None:
        self.images: list[UInt8Array] = []

    def detect(self, image: UInt8Array) -> list[Box]:
        self.images.append(image.copy())
        ys, xs = np.nonzero(image[..., 0] > 200)
        if not len(xs):
            return []
        return [Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]


class Benign:
    """Reads every crop as benign technique text (never PHI)."""

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition("kVp 120", 0.99) for _ in crops]


class NeverCalled:
    """A detector for instances that must not be OCRed."""

    def detect(self, image: UInt8Array) -> list[Box]:
        raise AssertionError("OCR ran on an instance the policy skips")


def _redactor(policy: PixelPolicyConfig | None = None) -> tuple[PixelRedactor, RecordingDetector]:
    detector = RecordingDetector()
    return PixelRedactor(policy or PixelPolicyConfig(), detector, Benign()), detector


def _pixels(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.pixel_array)


def _matches(expression: str, ds: Dataset) -> bool:
    library = KnownRegionLibrary.parse(f"{{ {expression} }}\n(0,0,1,1)\n")
    return bool(library.matching(ds))


# ------------------------------------------------------------------ the shipped library


def test_vendored_library_is_ctps_file_byte_for_byte() -> None:
    data = resources.files("dxai.actors").joinpath(*PACKAGED).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CTP_SHA256
    readme = resources.files("dxai.actors").joinpath("data", "ctp", "README.md")
    notes = readme.read_text(encoding="utf-8")
    assert CTP_SHA256 in notes and "361e90f8032fbb343000f3397159ae24a001229a" in notes
    assert "RSNA Public License" in notes


def test_every_rule_of_the_ctp_library_parses() -> None:
    text = _script_text()
    library = packaged_library()
    signatures = text.count("{")
    assert signatures > 0 and len(library.rules) == signatures == text.count("}")
    lines = text.splitlines()
    for rule in library.rules:
        assert "{" in lines[rule.line - 1], rule.line
        assert rule.regions, f"rule at line {rule.line} has no region"
        assert all(r.width > 0 and r.height > 0 for r in rule.regions)
    assert sum(len(rule.regions) for rule in library.rules) == 62
    assert library is KnownRegionLibrary.load(None)  # parsed once, shared


def test_library_rules_read_what_the_file_says() -> None:
    library = packaged_library()
    by_signature = {rule.signature: rule for rule in library.rules}
    ge = by_signature[GE_DOSE_RULE]
    assert [(r.left, r.top, r.width, r.height) for r in ge.regions] == [(0, 0, 512, 110)]
    antares = next(r for r in library.rules if "ANTARES" in r.signature)
    assert len(antares.regions) == 3  # several regions on one line
    volcano = next(r for r in library.rules if "Volcano" in r.signature)
    assert 'SeriesDescription.containsIgnoreCase ("FFR")' in volcano.signature


# ------------------------------------------------------------------ expression semantics


@pytest.fixture
def header() -> Dataset:
    ds = _ge_dose_screen(rows=64, columns=96)
    ds.file_meta.ImplementationVersionName = "MINDRAY_2.1"
    ds.WindowWidth = "1"
    phantom = Dataset()
    phantom.CodeValue, phantom.CodingSchemeDesignator = "113691", "DCM"
    phantom.CodeMeaning = "IEC Body Dosimetry Phantom"
    ds.CTDIPhantomTypeCodeSequence = [phantom]
    return ds


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('Modality.equals("CT")', True),
        ('Modality.equals("ct")', False),
        ('Modality.equalsIgnoreCase("ct")', True),
        ('Manufacturer.contains("MEDICAL")', True),
        ('Manufacturer.contains("medical")', False),
        ('Manufacturer.containsIgnoreCase("medical sys")', True),
        ('Manufacturer.startsWith("GE ")', True),
        ('Manufacturer.startsWith("ge")', False),
        ('Manufacturer.startsWithIgnoreCase("ge med")', True),
        ('Manufacturer.endsWith("SYSTEMS")', True),
        ('Manufacturer.endsWith("systems")', False),
        ('Manufacturer.endsWithIgnoreCase("systems")', True),
        ('Manufacturer.matches("GE .*SYSTEMS")', True),
        ('Manufacturer.matches("GE")', False),  # the whole value, as Java's String.matches
        ('[0008,0070].containsIgnoreCase("ge medical")', True),
        ('[0028,0010].equals("64") * [0028,0011].equals("96")', True),
        ('[0008,0060].equals("CT")', True),
        ('[0008,0008].equals("DERIVED\\SECONDARY\\SCREEN SAVE")', True),  # values joined by \
        ('ImageType.containsIgnoreCase("secondary")', True),
        ('Rows.equals("64")', True),
        ('WindowWidth.equals("1")', True),
        ('ImplementationVersionName.contains("MINDRAY")', True),  # file meta, group 0002
        ('CodeMeaning.containsIgnoreCase("iec body dosimetry")', True),  # inside a sequence
        ('SeriesDescription.equals("")', True),  # absent: the empty string
        ("SeriesDescription.isBlank()", True),
        ("Modality.isBlank()", False),
        ('[0009,1001].equals("")', True),  # an absent private tag
        ("true", True),
        ("false", False),
    ],
)
def test_methods_and_attributes(header: Dataset, expression: str, expected: bool) -> None:
    assert _matches(expression, header) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('Modality.equals("MR") + Modality.equals("CT")', True),
        ('Modality.equals("CT") * Rows.equals("1024")', False),
        ('!Modality.equals("MR")', True),
        ('!Modality.equals("CT")', False),
        ('!!Modality.equals("CT")', True),
        # ! binds tighter than *, which binds tighter than +
        ('Modality.equals("MR") * Rows.equals("64") + Modality.equals("CT")', True),
        ('Modality.equals("MR") * (Rows.equals("64") + Modality.equals("CT"))', False),
        ('!Modality.equals("CT") + true', True),
        ('!(Modality.equals("CT") + false)', False),
        ("true * false", False),
        ("false + false + true", True),
        ('( (Modality.equals("CT")) )', True),
        # the layout of the CTP library: lines, spaces before "(", comments
        (
            'Manufacturer.containsIgnoreCase ("GE") *  // the vendor\n'
            '   ( SeriesDescription.containsIgnoreCase("AAA") + Rows.equals("64") )',
            True,
        ),
    ],
)
def test_operators(header: Dataset, expression: str, expected: bool) -> None:
    assert _matches(expression, header) is expected


def test_comments_and_free_text_are_ignored(header: Dataset) -> None:
    script = (
        "Burned-in library (site copy)\n"
        '# { Modality.equals("CT") } (0,0,5,5) -- a commented-out rule\n'
        "GE screen captures\n"
        '  { Modality.equals("CT") }\n'
        "  (1,2,3,4) (10,20,30,40)\n"
        "    # (9,9,9,9) also commented out\n"
        "Other vendor\n"
        '{ Modality.equals("MR") }\n'
        "(5,5,5,5)\n"
    )
    library = KnownRegionLibrary.parse(script)
    assert [rule.line for rule in library.rules] == [4, 8]
    assert library.match(header) == [Box(1, 2, 4, 6), Box(10, 20, 40, 60)]


def test_every_matching_rule_applies_and_boxes_are_clipped(header: Dataset) -> None:
    script = (
        '{ Modality.equals("CT") }\n(0,0,512,110)\n'
        '{ Rows.equals("64") }\n(90,60,50,50) (0,0,512,110)\n'
        '{ Modality.equals("MR") }\n(0,0,8,8)\n'
        "{ true }\n(200,200,10,10)\n"  # wholly outside a 96 x 64 image
    )
    library = KnownRegionLibrary.parse(script)
    assert [r.line for r in library.matching(header)] == [1, 3, 7]
    assert library.match(header) == [Box(0, 0, 96, 64), Box(90, 60, 96, 64)]


def test_no_image_size_no_boxes() -> None:
    ds = Dataset()
    ds.Modality = "CT"
    assert KnownRegionLibrary.parse('{ Modality.equals("CT") }\n(0,0,5,5)').match(ds) == []


# ------------------------------------------------------------------ malformed scripts


@pytest.mark.parametrize(
    ("script", "line", "what"),
    [
        ('title\n\n{ Modality.equals("CT") *\n  Rows.equals(512) }\n(0,0,1,1)', 4, "'5'"),
        ('{ Modality.is("CT") }\n(0,0,1,1)', 1, "unknown method"),
        ('\n{ Modalty.equals("CT") }\n(0,0,1,1)', 2, "unknown attribute keyword"),
        ('{ Modality.matches("[") }\n(0,0,1,1)', 1, "regular expression"),
        ('{ Modality.equals("CT) }\n(0,0,1,1)', 1, "unterminated string"),
        ("{ Modality.equals() }\n(0,0,1,1)", 1, "argument"),
        ('{ Modality.isBlank("x") }\n(0,0,1,1)', 1, "no argument"),
        ("{ }\n(0,0,1,1)", 1, "expected an attribute"),
        ('{ Modality.equals("CT") Rows.equals("1") }', 1, "after the expression"),
        ('{ (Modality.equals("CT") }', 1, "expected ')'"),
        ('{ Modality.equals("CT") }\n(0,0,10)', 2, "not a region"),
        ('{ Modality.equals("CT") }\n(0,0,-1,5)', 2, "not a region"),
        ("{ true }\n(0,0,1,1)\nnote (unclosed\n", 3, "unbalanced '('"),
        ('{ Modality.equals("CT")\n(0,0,1,1)\n', 1, "unbalanced '{'"),
        ("rules\n}\n", 2, "unbalanced '}'"),
    ],
)
def test_malformed_script_names_the_line(script: str, line: int, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        KnownRegionLibrary.parse(script, "site.script")
    message = str(err.value)
    assert f"site.script line {line}:" in message and what in message
    assert message.startswith(CONFIG_KEY)


def test_unreadable_site_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.script"
    with pytest.raises(ConfigError, match=CONFIG_KEY):
        KnownRegionLibrary.load(missing)
    broken = tmp_path / "broken.script"
    broken.write_text('ok\n{ Modality.equals("CT") }\n(1,2,3)\n', encoding="utf-8")
    policy = PixelPolicyConfig(known_regions_file=str(broken))
    with pytest.raises(ConfigError, match=r"deid\.pixel_policy\.known_regions_file: .* line 3:"):
        PixelRedactor(policy, RecordingDetector(), Benign())  # fails when the redactor is built


# ------------------------------------------------------------------ the redactor


def test_ge_dose_screen_region_blanked_before_ocr() -> None:
    ds = _ge_dose_screen()
    redactor, detector = _redactor()
    report = redactor.redact_dataset(ds, ["DOE^JOHN"], "auto")
    assert report.status == "redacted"
    assert report.boxes == [RedactedBox(0, 0, 512, 110, "known_region")]
    pixels = _pixels(ds)
    assert int(pixels[0:110, 0:512].max()) == BACKGROUND  # the name line is gone
    assert int(pixels[300:312, 40:200].min()) == TEXT  # benign text outside stays
    assert detector.images, "OCR still read the rest of the image"
    for image in detector.images:  # OCR never saw the text of the known region
        assert int(image[0:110].max()) <= 200
    assert ds.BurnedInAnnotation == "NO"


def test_non_matching_image_untouched() -> None:
    ds = _image()
    ds.Manufacturer = "SIEMENS"
    before = bytes(ds.PixelData)
    report = _redactor()[0].redact_dataset(ds, ["DOE^JOHN"], "always")
    assert report.status == "clean" and report.boxes == []
    assert bytes(ds.PixelData) == before


def test_skipped_instance_still_gets_known_regions() -> None:
    policy = PixelPolicyConfig(scan_modalities={"CT": "skip"})
    redactor = PixelRedactor(policy, NeverCalled(), Benign())
    ds = _ge_dose_screen(frames=3)
    assert not redactor.should_scan(ds)
    report = redactor.redact_dataset(ds, ["DOE^JOHN"], "auto")
    assert report.status == "skipped" and report.scan_action == "known_regions"
    assert report.boxes == [RedactedBox(0, 0, 512, 110, "known_region")] and report.frames == 3
    pixels = _pixels(ds)
    assert int(pixels[:, 0:110].max()) == BACKGROUND  # on every frame
    assert int(pixels[:, 300:312, 40:200].min()) == TEXT


def test_unscanned_non_matching_instance_is_not_decoded() -> None:
    policy = PixelPolicyConfig(scan_modalities={"CT": "skip"})
    redactor = PixelRedactor(policy, NeverCalled(), Benign())
    ds = _image(ts=uid.RLELossless)
    before = bytes(ds.PixelData)
    report = redactor.redact_known_regions(ds)
    assert report.status == "skipped" and report.boxes == []
    assert report.transfer_syntax_out == report.transfer_syntax_in == uid.RLELossless
    assert bytes(ds.PixelData) == before


def test_compressed_dose_screen_keeps_its_lossless_syntax() -> None:
    ds = _ge_dose_screen(ts=uid.RLELossless)
    report = _redactor()[0].redact_dataset(ds, [], "always")
    assert report.status == "redacted" and report.transfer_syntax_out == uid.RLELossless
    assert int(_pixels(ds)[0:110].max()) == BACKGROUND


def test_regions_matched_on_the_original_header() -> None:
    original = _ge_dose_screen()
    redactor, _ = _redactor()
    known = redactor.known_regions(original)
    assert known == [Box(0, 0, 512, 110)]
    deidentified = _image()  # the attributes the rule reads were removed by de-identification
    assert redactor.known_regions(deidentified) == []
    report = redactor.redact_dataset(deidentified, [], "always", known=known)
    assert [b.reason for b in report.boxes] == ["known_region"]
    assert int(_pixels(deidentified)[0:110].max()) == BACKGROUND


def test_site_script_replaces_the_library(tmp_path: Path) -> None:
    script = tmp_path / "site.script"
    script.write_text(
        'Site rules\n{ Manufacturer.equalsIgnoreCase("acme imaging") }\n(30,300,100,20)\n',
        encoding="utf-8",
    )
    policy = PixelPolicyConfig(known_regions_file=str(script))
    library = library_for(policy)
    assert library is not None and len(library.rules) == 1
    acme = _image()
    acme.Manufacturer = "ACME Imaging"
    redactor, _ = _redactor(policy)
    report = redactor.redact_dataset(acme, [], "always")
    assert report.boxes == [RedactedBox(30, 300, 130, 320, "known_region")]
    assert int(_pixels(acme)[300:312, 40:130].max()) == BACKGROUND
    ge = _ge_dose_screen()  # CTP's library is not used any more
    assert redactor.redact_dataset(ge, [], "always").boxes == []
    assert int(_pixels(ge)[20:40, 30:300].min()) == TEXT


def test_known_regions_can_be_switched_off() -> None:
    policy = PixelPolicyConfig(known_regions=False)
    assert library_for(policy) is None
    ds = _ge_dose_screen()
    before = bytes(ds.PixelData)
    report = _redactor(policy)[0].redact_dataset(ds, [], "always")
    assert report.boxes == [] and bytes(ds.PixelData) == before


def test_config_defaults_and_bounds() -> None:
    policy = PixelPolicyConfig()
    assert policy.known_regions is True and policy.known_regions_file is None
    with pytest.raises(ValueError, match="known_regions_file"):
        PixelPolicyConfig(known_regions_file="")


# ---------------------------------------------------------- through the per-instance pipeline


def _pipeline_input(tmp: Path) -> tuple[bytes, InstancePipeline]:
    """A GE dose screen as Part 10 bytes, and the pipeline with the fake-OCR redactor."""
    ds = _ge_dose_screen()
    ds.PatientName, ds.PatientID = "DOE^JOHN", "MRN123"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}})
    header_only = build_pipeline(config)[0]
    return buf.getvalue(), InstancePipeline(header_only.deid, PixelStep(_redactor()[0], "auto"))


@pytest.mark.parametrize("scan", [True, False], ids=["ocr", "not-ocred-by-the-plan"])
def test_rules_match_the_original_header_in_the_pipeline(tmp_path: Path, scan: bool) -> None:
    """CommentsOnRadiationDose, which the GE rule reads, is removed by header de-id: the rule
    still matches (on the original header), also when the series plan does not OCR the slice."""
    raw, pipeline = _pipeline_input(tmp_path)
    out = pipeline.process(raw, scan=scan)
    assert out.status == "passed" and out.data is not None
    result = pydicom.dcmread(BytesIO(out.data))
    assert "CommentsOnRadiationDose" not in result
    assert int(np.asarray(result.pixel_array)[0:110, 0:512].max()) == BACKGROUND
    assert out.pixel_report is not None
    assert [b["reason"] for b in out.pixel_report["boxes"]][:1] == ["known_region"]
