"""Header de-identification to DICOM PS3.15 Annex E with keyed pseudonyms and a verify pass."""

from dxai.actors.deid.engine import Deidentifier, DeidResult
from dxai.actors.deid.fileio import read_dicom
from dxai.actors.deid.keys import load_or_create_key
from dxai.actors.deid.reid import ReidentificationStore
from dxai.actors.deid.verify import Finding, VerifyResult, verify

__all__ = [
    "DeidResult",
    "Deidentifier",
    "Finding",
    "ReidentificationStore",
    "VerifyResult",
    "load_or_create_key",
    "read_dicom",
    "verify",
]
