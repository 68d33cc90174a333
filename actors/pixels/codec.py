"""Decode pixel data from any transfer syntax and write it back without silent loss.

Lossless inputs are written back in the same syntax where pydicom has an encoder (RLE, JPEG-LS
lossless, JPEG 2000 lossless) and as native Explicit VR Little Endian otherwise.  Lossy inputs
are written back native and marked ``LossyImageCompression = 01`` with their method and ratio
(PS3.3 C.7.6.1.1.5), because the pixels already went through a lossy step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut

from dxai.configs.errors import InvalidDicomError

#: the most bytes one instance's pixels may decode to.  Decoders allocate what the header's
#: geometry says (Rows x Columns x samples x frames x bytes), not what the data holds: a
#: damaged Rows / Columns made GDCM abort the process (std::bad_alloc) or take 12 GB.  1 GiB
#: holds a breast tomosynthesis or a long cine; anything larger fails its instance.
MAX_DECODED_BYTES = 1 << 30
REENCODE = frozenset({uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless})
LOSSLESS = REENCODE | frozenset(
    {uid.JPEGLossless, uid.JPEGLosslessSV1, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL}
)
LOSSY_METHOD = {
    uid.JPEGBaseline8Bit: "ISO_10918_1",
    uid.JPEGExtended12Bit: "ISO_10918_1",
    uid.JPEGLSNearLossless: "ISO_14495_1",
    uid.JPEG2000: "ISO_15444_1",
    uid.HTJ2K: "ISO_15444_15",
}


@dataclass
class DecodedPixels:
    """Stored pixel values as ``F x H x W`` or ``F x H x W x 3`` plus where they came from."""

    frames: npt.NDArray[np.generic]
    source_syntax: str
    lossy_source: bool
    compressed_bytes: int
    palette: npt.NDArray[np.uint8] | None
    source_photometric: str = ""


def transfer_syntax(ds: Dataset) -> uid.UID:
    """The dataset's transfer syntax (Implicit VR Little Endian when unknown)."""
    meta = getattr(ds, "file_meta", None)
    value = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return uid.UID(str(value)) if value else uid.ImplicitVRLittleEndian


def _is_lossy(ds: Dataset, ts: uid.UID) -> bool:
    if ts in LOSSY_METHOD:
        return not (ts == uid.JPEG2000 and str(ds.get("LossyImageCompression", "")) == "00")
    return str(ds.get("LossyImageCompression", "")) == "01"


def _plugin_failure(exc: BaseException) -> bool:
    """Whether a decoder or encoder failed on its input: any Exception, or the panic of a Rust
    plugin (pylibjpeg-rle's ``pyo3_runtime.PanicException`` derives from BaseException only,
    so an ``except Exception`` boundary lets a damaged RLE frame through)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def decoded_size(ds: Dataset) -> int:
    """How many bytes the header says the decoded pixels take (every frame)."""
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    return rows * columns * samples * frames * max(1, (bits + 7) // 8)


def _check_decoded_size(ds: Dataset) -> None:
    """Refuse a geometry past :data:`MAX_DECODED_BYTES` before any decoder allocates it."""
    try:
        size = decoded_size(ds)
    except (TypeError, ValueError) as exc:
        raise InvalidDicomError("image geometry is not a number") from exc
    if size < 0 or size > MAX_DECODED_BYTES:
        raise InvalidDicomError(f"decoded pixel data too large ({size} bytes)")


def decode(ds: Dataset) -> DecodedPixels:
    """Decode ``ds`` in place to native little endian and return its frames.

    JPEG YBR data is converted to RGB by the decoder and the header updated accordingly.
    """
    if "PixelData" not in ds:
        raise InvalidDicomError("dataset has no Pixel Data")
    _check_decoded_size(ds)
    ts = transfer_syntax(ds)
    size = len(ds.PixelData)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    try:
        if ts.is_compressed:
            _decompress(ds, photometric)
        ds.pixel_array_options(raw=True)
        arr = np.asarray(ds.pixel_array)
    except BaseException as exc:  # decoders raise many types; one boundary here
        if not _plugin_failure(exc):
            raise
        raise InvalidDicomError(f"pixel data could not be decoded ({ts.name})") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames == 1 and arr.ndim == (3 if samples > 1 else 2):
        arr = arr[np.newaxis]
    palette = _palette(ds) if "PALETTE" in str(ds.get("PhotometricInterpretation", "")) else None
    return DecodedPixels(arr.copy(), ts, _is_lossy(ds, ts), size, palette, photometric)


def _decompress(ds: Dataset, photometric: str) -> None:
    """Decompress ``ds`` in place to native little endian, YBR colour converted to RGB.

    pydicom's in-place ``decompress`` corrects the sign of a JPEG 2000 stream whose signedness
    differs from Pixel Representation (real scanners write such files) in a read-only buffer
    and raises; ``pixel_array`` decodes the same frames into a copy, which is then set as the
    native Pixel Data (as ``decompress`` would have)."""
    try:
        ds.decompress(as_rgb=True, generate_instance_uid=False)
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        arr = ds.pixel_array  # as_rgb by default
        colour = int(ds.get("SamplesPerPixel", 1)) == 3 and photometric.startswith("YBR")
        ds.set_pixel_data(arr, "RGB" if colour else photometric, int(ds.BitsStored))


def _palette(ds: Dataset) -> npt.NDArray[np.uint8]:
    entries = int(ds.RedPaletteColorLookupTableDescriptor[0]) or 65536
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    lut = np.asarray(apply_color_lut(np.arange(first + entries, dtype=np.uint16), ds))
    if lut.dtype != np.uint8:
        lut = (lut.astype(np.float64) / max(float(lut.max()), 1.0) * 255.0).round()
    return lut.astype(np.uint8)


def encode(ds: Dataset, decoded: DecodedPixels) -> uid.UID:
    """Write ``decoded.frames`` back into ``ds``; returns the transfer syntax now in use."""
    arr = decoded.frames
    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        arr = arr[0]
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    if decoded.lossy_source:
        _mark_lossy(ds, decoded)
        return transfer_syntax(ds)
    target = decoded.source_syntax
    if target in REENCODE:
        if target == uid.JPEG2000Lossless and decoded.source_photometric == "YBR_RCT":
            ds.PhotometricInterpretation = "YBR_RCT"  # RGB pixels, written with the RCT again
        try:
            ds.compress(target, arr, generate_instance_uid=False)
        except BaseException as exc:  # encoder plugins raise many types
            if not _plugin_failure(exc):
                raise
            raise InvalidDicomError(f"pixel data could not be re-encoded ({target.name})") from exc
    return transfer_syntax(ds)


def _mark_lossy(ds: Dataset, decoded: DecodedPixels) -> None:
    ds.LossyImageCompression = "01"
    method = LOSSY_METHOD.get(uid.UID(decoded.source_syntax))
    methods = [str(m) for m in _as_list(ds.get("LossyImageCompressionMethod"))]
    ratios = [str(r) for r in _as_list(ds.get("LossyImageCompressionRatio"))]
    if method is not None and (not methods or len(methods) == len(ratios)):
        native = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
        native *= int(ds.get("NumberOfFrames", 1) or 1) * (int(ds.BitsAllocated) // 8 or 1)
        ratio = native / max(decoded.compressed_bytes, 1)
        methods.append(method)
        ratios.append(f"{ratio:.4g}"[:16])
        ds.LossyImageCompressionRatio = ratios
    elif not methods and method is not None:
        methods.append(method)
    if methods:
        ds.LossyImageCompressionMethod = methods


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float):
        return [value]
    try:
        return [*value]  # type: ignore[misc]
    except TypeError:
        return [value]
