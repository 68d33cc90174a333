"""Transfer syntaxes: names, which data each suits, and encoding of the pixel data."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dxai.configs.errors import PermanentError
from dxai.synth.pixels import Phantom

TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg": JPEGBaseline8Bit,
    "jpegls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
}
_JPEG_QUALITY = 92


class SynthError(PermanentError):
    """The synthetic generator was asked for something it cannot produce."""

    code = "synth_invalid"


def resolve_transfer_syntax(name: str) -> UID:
    """A short name (``explicit``, ``implicit``, ``rle``, ``jpeg``, ``jpegls``, ``j2k``) or UID."""
    if name in TRANSFER_SYNTAXES:
        return TRANSFER_SYNTAXES[name]
    if name in TRANSFER_SYNTAXES.values():
        return UID(name)
    raise SynthError(f"unsupported transfer syntax {name!r}; use {sorted(TRANSFER_SYNTAXES)}")


def _jpeg_frames(ph: Phantom) -> list[bytes]:
    out = []
    for frame in ph.frames:
        buffer = io.BytesIO()
        mode = "RGB" if ph.rgb else "L"
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), mode).save(
            buffer, "JPEG", quality=_JPEG_QUALITY, subsampling=1, optimize=False
        )
        out.append(buffer.getvalue())
    return out


def _encode_jpeg_baseline(ds: Dataset, ph: Phantom) -> None:
    """JPEG baseline with Pillow (pydicom cannot encode it), one fragment per frame."""
    if ph.frames.dtype != np.uint8:
        raise SynthError("JPEG baseline needs 8-bit pixel data")
    frames = _jpeg_frames(ph)
    raw = ph.frames.nbytes
    ds.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if ph.rgb:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = f"{raw / sum(len(f) for f in frames):.2f}"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit


def encode_pixels(ds: Dataset, ph: Phantom, ts: UID) -> None:
    """Encode the native pixel data already in ``ds`` into transfer syntax ``ts``."""
    if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = ts
    elif ts == JPEGBaseline8Bit:
        _encode_jpeg_baseline(ds, ph)
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        arr = ph.frames if ph.frames.shape[0] > 1 else ph.frames[0]
        if ts == JPEG2000Lossless and ph.rgb:
            ds.PhotometricInterpretation = "YBR_RCT"  # lossless colour transform (MCT) in J2K
        ds.compress(ts, arr, generate_instance_uid=False)
