"""DIMSE gateway with pynetdicom, in worker threads: C-STORE SCU, C-FIND + C-GET/C-MOVE source."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any

import anyio.to_thread
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, StoragePresentationContexts, build_role, evt

from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.gateways.base import StoreReport
from dxai.daemon.gateways.dimse_move import MoveTarget, c_move_series_blocking

_MAX_CONTEXTS = 120
StudyRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.2.1")
StudyRootQueryRetrieveInformationModelGet = UID("1.2.840.10008.5.1.4.1.2.2.3")
_OK = 0x0000


def _associate(ae: Any, peer: DimseEndpoint, **kwargs: Any) -> Any:
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, **kwargs)
    if not assoc.is_established:
        raise ServiceUnavailableError(f"DIMSE association to {peer.ae_title} failed")
    return assoc


def c_store_blocking(
    peer: DimseEndpoint, calling_ae: str, instances: Sequence[bytes]
) -> StoreReport:
    """C-STORE every instance over one association (blocking; call from a thread)."""
    datasets = [pydicom.dcmread(BytesIO(b)) for b in instances]
    ae = AE(ae_title=calling_ae)
    contexts = {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}
    if len(contexts) > _MAX_CONTEXTS:
        raise PermanentError(f"{len(contexts)} presentation contexts exceed {_MAX_CONTEXTS}")
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    assoc = _associate(ae, peer)
    failed: list[str] = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not status or status.Status != _OK:
                failed.append(str(ds.SOPInstanceUID))
    finally:
        assoc.release()
    return StoreReport(stored=len(datasets) - len(failed), failed_uids=tuple(failed))


def c_find_series_blocking(peer: DimseEndpoint, calling_ae: str, study_uid: str) -> list[str]:
    """Series Instance UIDs of a study by C-FIND at SERIES level (blocking)."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    assoc = _associate(ae, peer)
    uids: list[str] = []
    try:
        for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status in (0xFF00, 0xFF01) and ident is not None:
                uids.append(str(ident.SeriesInstanceUID))
    finally:
        assoc.release()
    return uids


def c_get_series_blocking(
    peer: DimseEndpoint, calling_ae: str, study_uid: str, series_uid: str
) -> list[bytes]:
    """Every instance of one series by C-GET, as Part 10 bytes (blocking)."""
    received: list[bytes] = []

    def on_store(event: Any) -> int:
        received.append(event.encoded_dataset(include_meta=True))
        return _OK

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for cx in StoragePresentationContexts[: _MAX_CONTEXTS - 1]:
        if cx.abstract_syntax is not None:
            ae.add_requested_context(cx.abstract_syntax)
            roles.append(build_role(cx.abstract_syntax, scp_role=True))
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    assoc = _associate(ae, peer, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        for _status, _ident in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            pass
    finally:
        assoc.release()
    return received


class DimseSink:
    """A C-STORE destination."""

    def __init__(self, peer: DimseEndpoint, calling_ae: str = "DXAI") -> None:
        self.peer = peer
        self.calling_ae = calling_ae

    async def store(self, instances: Sequence[bytes]) -> StoreReport:
        """C-STORE ``instances`` in a worker thread."""
        if not instances:
            return StoreReport(stored=0)
        return await anyio.to_thread.run_sync(
            c_store_blocking, self.peer, self.calling_ae, instances
        )

    async def aclose(self) -> None:
        """Nothing held between calls."""


class DimseSource:
    """A C-FIND + C-GET (or C-MOVE to our own Storage SCP) study source.

    ``method`` ``c-move`` needs ``move_target`` (the AE the archive sends to) and puts the moved
    files in a fresh folder under ``work_dir`` (default: the system temp folder), removed as
    they are read and on :meth:`aclose`.  Any other method raises :class:`PermanentError`.
    """

    def __init__(
        self,
        peer: DimseEndpoint,
        calling_ae: str = "DXAI",
        method: str = "c-get",
        move_target: MoveTarget | None = None,
        work_dir: Path | None = None,
    ) -> None:
        if method not in ("c-get", "c-move"):
            raise PermanentError(f"unsupported DIMSE retrieve method {method!r}")
        if method == "c-move" and move_target is None:
            raise PermanentError("C-MOVE needs a move destination (AE title and port)")
        self.peer = peer
        self.calling_ae = calling_ae
        self.method = method
        self.move_target = move_target
        self.work_dir = work_dir
        self._folders: list[Path] = []

    async def list_series(self, study_uid: str) -> list[str]:
        """C-FIND the series of the study."""
        return await anyio.to_thread.run_sync(
            c_find_series_blocking, self.peer, self.calling_ae, study_uid
        )

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """Retrieve one series in a worker thread (C-GET or C-MOVE), then yield its instances."""
        if self.method == "c-move":
            async for raw in self._moved(study_uid, series_uid):
                yield raw
            return
        items = await anyio.to_thread.run_sync(
            c_get_series_blocking, self.peer, self.calling_ae, study_uid, series_uid
        )
        for item in items:
            yield item

    async def _moved(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        assert self.move_target is not None
        folder = await anyio.to_thread.run_sync(_new_folder, self.work_dir)
        self._folders.append(folder)
        paths = await anyio.to_thread.run_sync(
            c_move_series_blocking,
            self.peer,
            self.calling_ae,
            self.move_target,
            (study_uid, series_uid),
            folder,
        )
        for path in paths:
            yield await anyio.to_thread.run_sync(_take, path)

    async def aclose(self) -> None:
        """Remove the folders of moved instances."""
        folders, self._folders = self._folders, []
        for folder in folders:
            await anyio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))


def _new_folder(work_dir: Path | None) -> Path:
    """A fresh private folder for one move's files (blocking)."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dxai-move-", dir=work_dir))


def _take(path: Path) -> bytes:
    """Read a moved file and delete it (blocking)."""
    data = path.read_bytes()
    path.unlink(missing_ok=True)
    return data
