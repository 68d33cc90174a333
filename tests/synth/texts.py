"""Which strings get burned into an image: PHI in varied formats plus benign markers."""

from __future__ import annotations

import random

from dxai.synth.burnin import TextItem
from dxai.synth.plan import StudyPlan

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

MARKERS: dict[str, tuple[str, ...]] = {
    "CT": ("W:400 L:40", "kVp 120", "mAs 250", "5 cm", "L", "R", "Se 2 Im 14"),
    "MR": ("TR 500 TE 15", "W:800 L:400", "5 cm", "L", "R", "1.5T"),
    "US": ("MI 1.1 TIS 0.3", "5 cm", "C5-1", "FR 30Hz", "Gn 52"),
    "SC": ("W:400 L:40", "5 cm", "AP", "Zoom 1.5x"),
    "DX": ("L", "R", "AP", "PA", "kVp 80", "mAs 2.5", "ERECT"),
}


def _date_text(date: str, rng: random.Random) -> str:
    y, m, d = date[:4], date[4:6], date[6:]
    return rng.choice(
        [f"{y}-{m}-{d}", f"{m}/{d}/{y}", f"{d}-{_MONTHS[int(m) - 1]}-{y}", f"{d}.{m}.{y}", date]
    )


def phi_items(study: StudyPlan, rng: random.Random) -> list[TextItem]:
    """The identifying strings for one image, in varied formats and regions."""
    ident = study.identity
    dob = rng.choice(ident.dob_formats())
    mrn = rng.choice([ident.mrn, f"ID: {ident.mrn}", f"MRN {ident.mrn[3:]}"])
    top_left = rng.choice(["tl", "top"])
    items = [
        TextItem(rng.choice(ident.name_formats()), "name", True, top_left),
        TextItem(mrn, "mrn", True, "tl"),
        TextItem(rng.choice([dob, f"DOB: {dob}"]), "dob", True, "tl"),
    ]
    optional = [
        TextItem(f"Acc: {study.accession}", "accession", True, "tr"),
        TextItem(ident.institution, "institution", True, rng.choice(["tr", "bottom"])),
        TextItem(_date_text(study.date, rng), "date", True, "tr"),
    ]
    return items + [item for item in optional if rng.random() < 0.7]


def marker_items(modality: str, rng: random.Random, frames: int) -> list[TextItem]:
    """Benign annotations: laterality, technique, window and scale text."""
    pool = MARKERS[modality]
    chosen = rng.sample(pool, k=min(len(pool), rng.randint(2, 4)))
    regions = ["bl", "br", "tr", "bl", "br"]
    items = [
        TextItem(text, "marker", False, regions[i], scale_bar=text.endswith("cm"))
        for i, text in enumerate(chosen)
    ]
    if frames > 1:
        items += [
            TextItem(f"{f + 1}/{frames}", "marker", False, "br", frames=(f,)) for f in range(frames)
        ]
    return items


def image_items(modality: str, study: StudyPlan, rng: random.Random, frames: int) -> list[TextItem]:
    """All text for one image; about one image in five carries only benign markers."""
    phi = phi_items(study, rng) if rng.random() < 0.8 else []
    return phi + marker_items(modality, rng, frames)
