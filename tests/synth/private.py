"""Private blocks, Original Attributes Sequence and overlays that carry PHI."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.pixels.utils import pack_bits

from dxai.synth.fonts import load_font
from dxai.synth.plan import StudyPlan

ACME_CREATOR = "ACME_PRIVATE_1"
SIEMENS_CREATOR = "SIEMENS CSA HEADER"
GE_CREATOR = "GEMS_PARM_01"  # (0043,xx27) "Scan Pitch Ratio" is a Safe Private Attribute


def add_private_blocks(ds: Dataset, study: StudyPlan, phi: list[str]) -> list[str]:
    """Vendor and unknown private blocks; returns the UIDs planted in private elements."""
    ident = study.identity
    acme = ds.private_block(0x0011, ACME_CREATOR, create=True)
    acme.add_new(0x10, "LO", ident.dicom_name)
    acme.add_new(0x11, "LO", ident.mrn)
    acme.add_new(0x12, "LT", f"Scanned for {ident.given} {ident.family}, born {ident.birth_date}")
    acme.add_new(0x13, "UI", study.study_uid)
    csa = ds.private_block(0x0029, SIEMENS_CREATOR, create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    blob = (
        f"SV10\x04\x03\x02\x01tPatientName\x00{ident.dicom_name}\x00tPatientID\x00{ident.mrn}\x00"
    )
    raw = blob.encode("utf-8")
    csa.add_new(0x10, "OB", raw + b"\x00" * (len(raw) % 2))
    gems = ds.private_block(0x0043, GE_CREATOR, create=True)
    gems.add_new(0x27, "SH", "1.375:1")
    phi += [ident.dicom_name, ident.mrn, ident.birth_date]
    return [study.study_uid]


def add_original_attributes(ds: Dataset, study: StudyPlan, phi: list[str]) -> None:
    """An Original Attributes Sequence recording a corrected (misspelt) earlier name and ID."""
    ident = study.identity
    old_name = f"{ident.family}^{ident.given[:-1]}"
    modified = Dataset()
    modified.PatientName = old_name
    modified.PatientID = f"OLD{ident.mrn[3:]}"
    item = Dataset()
    item.ModifiedAttributesSequence = [modified]
    item.SourceOfPreviousValues = ident.institution
    item.AttributeModificationDateTime = f"{study.date}{study.time}"
    item.ModifyingSystem = "PACS_RECONCILE"
    item.ReasonForTheAttributeModification = "COERCE"
    ds.OriginalAttributesSequence = [item]
    phi += [old_name, f"OLD{ident.mrn[3:]}"]


def add_overlay(ds: Dataset, rows: int, cols: int, study: StudyPlan, phi: list[str]) -> None:
    """Overlay plane 6000: the patient's name drawn as graphics, plus a labelled description."""
    ident = study.identity
    image = Image.new("1", (cols, rows), 0)
    draw = ImageDraw.Draw(image)
    draw.text((4, rows - 20), ident.dicom_name, font=load_font(0, 12), fill=1)
    draw.rectangle((cols // 3, rows // 3, 2 * cols // 3, 2 * rows // 3), outline=1)
    bits = np.asarray(image, dtype=np.uint8)
    group = 0x6000 << 16
    ds.add_new(group | 0x0010, "US", rows)
    ds.add_new(group | 0x0011, "US", cols)
    ds.add_new(group | 0x0022, "LO", f"ROI drawn for {ident.mrn}")
    ds.add_new(group | 0x0040, "CS", "G")
    ds.add_new(group | 0x0050, "SS", [1, 1])
    ds.add_new(group | 0x0100, "US", 1)
    ds.add_new(group | 0x0102, "US", 0)
    ds.add_new(group | 0x1500, "LO", ident.family[:16])
    ds.add_new(group | 0x3000, "OW", pack_bits(bits))
    phi += [ident.mrn, ident.family[:16]]
