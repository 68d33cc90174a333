"""The modalities the generator knows: SOP class, suitable transfer syntaxes, phantom, IOD."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from dxai.synth import iods, pixels
from dxai.synth.encode import TRANSFER_SYNTAXES
from dxai.synth.pixels import Phantom
from dxai.synth.plan import InstancePlan, SeriesPlan

PhantomFactory = Callable[[np.random.Generator, random.Random, bool], Phantom]
IodWriter = Callable[[Dataset, Phantom, SeriesPlan, InstancePlan, random.Random], None]

_LOSSLESS_16 = ("explicit", "implicit", "rle", "jpegls", "j2k")
_ALL_8 = ("explicit", "implicit", "rle", "jpeg", "jpegls", "j2k")


@dataclass(frozen=True)
class ModalitySpec:
    """How to make one kind of instance."""

    name: str
    header_modality: str
    sop_class_uid: str
    manufacturer: str
    transfer_syntaxes: tuple[str, ...]  # short names, see encode.TRANSFER_SYNTAXES
    phantom: PhantomFactory
    iod: IodWriter
    frame_of_reference: bool

    def ts_uids(self) -> tuple[str, ...]:
        """The transfer syntax UIDs this modality is generated in by default."""
        return tuple(str(TRANSFER_SYNTAXES[name]) for name in self.transfer_syntaxes)


def _ct(gen: np.random.Generator, rng: random.Random, small: bool) -> Phantom:
    return pixels.ct_phantom(gen, 128 if small else rng.choice([256, 512]))


def _mr(gen: np.random.Generator, rng: random.Random, small: bool) -> Phantom:
    return pixels.mr_phantom(gen, 128 if small else 256)


def _us(gen: np.random.Generator, rng: random.Random, small: bool) -> Phantom:
    return pixels.us_phantom(gen, 120, 160, 3) if small else pixels.us_phantom(gen, 240, 320, 10)


def _sc(gen: np.random.Generator, rng: random.Random, small: bool) -> Phantom:
    rows, cols = (120, 160) if small else (384, 512)
    return pixels.sc_phantom(gen, rows, cols, rgb=rng.random() < 0.6)


def _dx(gen: np.random.Generator, rng: random.Random, small: bool) -> Phantom:
    return pixels.dx_phantom(gen, 128 if small else 512, mono1=rng.random() < 0.4)


MODALITIES: dict[str, ModalitySpec] = {
    "CT": ModalitySpec(
        "CT", "CT", CTImageStorage, "SYNTH MEDICAL", _LOSSLESS_16, _ct, iods.add_ct, True
    ),
    "MR": ModalitySpec("MR", "MR", MRImageStorage, "SIEMENS", _LOSSLESS_16, _mr, iods.add_mr, True),
    "US": ModalitySpec(
        "US",
        "US",
        UltrasoundMultiFrameImageStorage,
        "GE MEDICAL SYSTEMS",
        _ALL_8,
        _us,
        iods.add_us,
        False,
    ),
    "SC": ModalitySpec(
        "SC", "OT", SecondaryCaptureImageStorage, "SYNTH VIEWER", _ALL_8, _sc, iods.add_sc, False
    ),
    "DX": ModalitySpec(
        "DX",
        "DX",
        DigitalXRayImageStorageForPresentation,
        "SYNTH XRAY",
        _LOSSLESS_16,
        _dx,
        iods.add_dx,
        False,
    ),
}
