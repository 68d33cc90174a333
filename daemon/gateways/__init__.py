"""Gateways: the only code that talks to archives and PACS (DICOMweb, DIMSE, local files)."""

from dxai.daemon.gateways.base import InstanceData, StoreReport, StudySink, StudySource
from dxai.daemon.gateways.dicomweb import DicomWebGateway, StudyNotFoundError
from dxai.daemon.gateways.dimse import DimseSink, DimseSource
from dxai.daemon.gateways.dimse_move import MoveTarget
from dxai.daemon.gateways.folder import FolderSink
from dxai.daemon.gateways.local import LocalFolderSource
from dxai.daemon.gateways.multipart import (
    MultipartError,
    MultipartParser,
    build_multipart,
    split_multipart,
)

__all__ = [
    "DicomWebGateway",
    "DimseSink",
    "DimseSource",
    "FolderSink",
    "InstanceData",
    "LocalFolderSource",
    "MoveTarget",
    "MultipartError",
    "MultipartParser",
    "StoreReport",
    "StudyNotFoundError",
    "StudySink",
    "StudySource",
    "build_multipart",
    "split_multipart",
]
