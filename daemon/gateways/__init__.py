"""Gateways: the only code that talks to archives and PACS (DICOMweb, DIMSE, local files)."""

from dxai.daemon.gateways.base import StoreReport, StudySink, StudySource
from dxai.daemon.gateways.dicomweb import DicomWebGateway, StudyNotFoundError
from dxai.daemon.gateways.dimse import DimseSink, DimseSource
from dxai.daemon.gateways.dimse_move import MoveTarget
from dxai.daemon.gateways.folder import FolderSink
from dxai.daemon.gateways.local import LocalFolderSource
from dxai.daemon.gateways.multipart import MultipartError, build_multipart, split_multipart

__all__ = [
    "DicomWebGateway",
    "DimseSink",
    "DimseSource",
    "FolderSink",
    "LocalFolderSource",
    "MoveTarget",
    "MultipartError",
    "StoreReport",
    "StudyNotFoundError",
    "StudySink",
    "StudySource",
    "build_multipart",
    "split_multipart",
]
