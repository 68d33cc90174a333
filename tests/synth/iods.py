"""IOD-specific modules (Image Pixel, CT, MR, US, SC, DX) for the synthetic instances."""

from __future__ import annotations

import random

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dxai.synth.pixels import Phantom
from dxai.synth.plan import InstancePlan, SeriesPlan

_VIEWS = {"PA": ("399348003", "postero-anterior"), "AP": ("399182009", "antero-posterior")}


def _code(value: str, meaning: str) -> Dataset:
    """A SNOMED CT coded entry."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


def add_image_pixel(ds: Dataset, ph: Phantom) -> None:
    """Image Pixel module with native (uncompressed) little-endian pixel data."""
    rows, cols = ph.shape
    ds.SamplesPerPixel = 3 if ph.rgb else 1
    ds.PhotometricInterpretation = ph.photometric
    if ph.rgb:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = ph.frames.dtype.itemsize * 8
    ds.BitsStored = ph.bits_stored
    ds.HighBit = ph.bits_stored - 1
    ds.PixelRepresentation = int(ph.signed)
    if ph.frames.shape[0] > 1:
        ds.NumberOfFrames = int(ph.frames.shape[0])
    ds.PixelData = ph.frames.astype(ph.frames.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    if ph.window is not None:
        ds.WindowCenter = f"{ph.window[0]:g}"
        ds.WindowWidth = f"{ph.window[1]:g}"


def _plane(ds: Dataset, ph: Phantom, inst: InstancePlan, spacing: float, thickness: float) -> None:
    """Frame of Reference is set by the caller; this is the Image Plane module."""
    rows, cols = ph.shape
    z = -50.0 + inst.number * thickness
    ds.PixelSpacing = [f"{spacing:g}", f"{spacing:g}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [f"{-cols * spacing / 2:g}", f"{-rows * spacing / 2:g}", f"{z:g}"]
    ds.SliceThickness = f"{thickness:g}"
    ds.SliceLocation = f"{z:g}"


def add_frame_of_reference(ds: Dataset, series: SeriesPlan) -> None:
    """Frame of Reference module (CT, MR)."""
    ds.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def add_ct(
    ds: Dataset, ph: Phantom, series: SeriesPlan, inst: InstancePlan, rng: random.Random
) -> None:
    """CT Image module and its Image Plane."""
    add_frame_of_reference(ds, series)
    ds.PatientPosition = "HFS"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    intercept, slope = ph.rescale if ph.rescale is not None else (0.0, 1.0)
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleType = "HU"
    ds.KVP = str(rng.choice([100, 120, 140]))
    ds.ConvolutionKernel = rng.choice(["STANDARD", "B30f", "LUNG"])
    _plane(ds, ph, inst, spacing=500 / ph.shape[1], thickness=2.5)


def add_mr(
    ds: Dataset, ph: Phantom, series: SeriesPlan, inst: InstancePlan, rng: random.Random
) -> None:
    """MR Image module and its Image Plane."""
    add_frame_of_reference(ds, series)
    ds.PatientPosition = "HFS"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = str(rng.choice([450, 500, 3000]))
    ds.EchoTime = str(rng.choice([12, 15, 90]))
    ds.EchoTrainLength = "1"
    ds.MagneticFieldStrength = rng.choice(["1.5", "3"])
    ds.ImagedNucleus = "1H"
    ds.SequenceName = "se2d1"
    _plane(ds, ph, inst, spacing=230 / ph.shape[1], thickness=5.0)


def add_us(
    ds: Dataset, ph: Phantom, series: SeriesPlan, inst: InstancePlan, rng: random.Random
) -> None:
    """US Image, Multi-frame and Cine modules."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.PatientOrientation = ""
    ds.FrameTime = "33.3"
    ds.FrameIncrementPointer = Tag("FrameTime")
    ds.CineRate = 30
    ds.LossyImageCompression = "00"
    ds.TransducerData = ["C5-1", "", ""]


def add_sc(
    ds: Dataset, ph: Phantom, series: SeriesPlan, inst: InstancePlan, rng: random.Random
) -> None:
    """SC Equipment and SC Image modules."""
    ds.ConversionType = "WSD"
    ds.PatientOrientation = ""
    ds.DateOfSecondaryCapture = ds.ContentDate
    ds.TimeOfSecondaryCapture = ds.ContentTime
    ds.SecondaryCaptureDeviceManufacturer = "SYNTH VIEWER"


def add_dx(
    ds: Dataset, ph: Phantom, series: SeriesPlan, inst: InstancePlan, rng: random.Random
) -> None:
    """DX Series, DX Anatomy Imaged, DX Image and DX Detector modules (for presentation)."""
    mono1 = ph.photometric == "MONOCHROME1"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = -1 if mono1 else 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.ImageLaterality = "U"
    ds.ViewPosition = rng.choice(["PA", "AP"])
    ds.PositionerType = ""
    ds.ViewCodeSequence = [_code(*_VIEWS[ds.ViewPosition])]
    ds.PatientOrientation = ["L", "F"] if ds.ViewPosition == "PA" else ["R", "F"]
    ds.ImagerPixelSpacing = ["0.15", "0.15"]
    ds.DetectorType = "SCINTILLATOR"
    ds.KVP = str(rng.choice([80, 110, 125]))
    ds.AcquisitionContextSequence = []
    ds.AnatomicRegionSequence = [_code("43799004", "Chest")]
