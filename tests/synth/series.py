"""Whole CT series: one phantom slice per instance, text burned into chosen slices only.

The workload of the daemon's CT benchmark (``bench/daemon.py --ct``) and of the tests of the
``presence`` scan action: a series that is clean but for one slice in the middle.  The header
never flags the text (``BurnedInAnnotation`` NO, ``ImageType`` ORIGINAL): only the pixels tell.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from dxai.synth import header, pixels
from dxai.synth.burnin import burn_in
from dxai.synth.corpus import Job, _plant_header
from dxai.synth.encode import encode_pixels, resolve_transfer_syntax
from dxai.synth.identities import make_identity
from dxai.synth.iods import add_image_pixel
from dxai.synth.manifest import BurnedInText
from dxai.synth.modalities import MODALITIES
from dxai.synth.plan import plan_instances, plan_series, plan_study
from dxai.synth.texts import phi_items


@dataclass(frozen=True)
class SeriesSlice:
    """One instance of a synthetic series and the text burned into it (empty: none)."""

    dataset: Dataset
    burned: list[BurnedInText]


def ct_series(
    seed: int,
    study: int,
    count: int,
    *,
    size: int = 512,
    text_on: Collection[int] = (),
    transfer_syntax: str = "explicit",
) -> list[SeriesSlice]:
    """``count`` axial CT slices (``size`` x ``size``) of one series of study ``study``.

    Slices whose 0-based index is in ``text_on`` get the patient's name, ID and birth date
    (and maybe more) burned in, in the header's own spelling variants.  Same arguments, same
    bytes.
    """
    spec = MODALITIES["CT"]
    plan = plan_study(seed, study, make_identity(seed, study))
    series = plan_series(seed, plan, 0, "CT", transfer_syntax)
    out: list[SeriesSlice] = []
    for n, instance in enumerate(plan_instances(seed, plan, series, count)):
        job = Job(spec, plan, series, instance)
        rng = random.Random(f"dxai-synth-series-{instance.rng_key}")
        gen = np.random.default_rng([seed, study, instance.number])
        phantom = pixels.ct_phantom(gen, size)
        burned = burn_in(phantom, phi_items(plan, rng), rng) if n in text_on else []
        ds = header.new_dataset(spec.sop_class_uid, instance.sop_uid, plan.identity)
        _plant_header(job, ds, rng, [])
        spec.iod(ds, phantom, series, instance, rng)
        ds.BurnedInAnnotation = "NO"
        add_image_pixel(ds, phantom)
        encode_pixels(ds, phantom, resolve_transfer_syntax(transfer_syntax))
        out.append(SeriesSlice(ds, burned))
    return out
