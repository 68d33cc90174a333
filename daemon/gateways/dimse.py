"""DIMSE gateway with pynetdicom, in worker threads: C-STORE SCU, C-FIND + C-GET/C-MOVE source."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalid
from pydicom.uid import UID
from pynetdicom import AE, build_role, evt

from dxai.actors.inflate import dcmread_bounded
from dxai.configs.errors import (
    InvalidDicomError,
    PermanentError,
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.gateways.answers import AnswerTooLargeError
from dxai.daemon.gateways.base import InstanceData, StoreReport, check_complete
from dxai.daemon.gateways.dimse_move import (
    MoveCounts,
    MoveTarget,
    Receiver,
    c_move_series_blocking,
    check_retrieve,
    sub_operation_counts,
)
from dxai.daemon.gateways.dimse_retrieve import (
    MAX_REQUESTED_CONTEXTS,
    RetrieveControl,
    storage_contexts,
    stream_received,
)
from dxai.daemon.gateways.tls import dimse_tls_args

_MAX_CONTEXTS = 120
StudyRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.2.1")
StudyRootQueryRetrieveInformationModelGet = UID("1.2.840.10008.5.1.4.1.2.2.3")
_OK, _PENDING, _CANCEL = 0x0000, (0xFF00, 0xFF01), 0xFE00
_OUT_OF_RESOURCES = 0xA700
_HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID"]


def _associate(ae: Any, peer: DimseEndpoint, **kwargs: Any) -> Any:
    """Associate with ``peer`` (over TLS when it says ``tls: true``); raise when refused."""
    tls_args = dimse_tls_args(peer)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls_args, **kwargs)
    if not assoc.is_established:
        raise ServiceUnavailableError(f"DIMSE association to {peer.ae_title} failed")
    return assoc


def _header(item: InstanceData) -> Dataset | None:
    """File meta, SOP Class and Instance UIDs of an instance, pixels unread (None: unreadable)."""
    try:
        return dcmread_bounded(item, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (
        PydicomInvalid,
        InvalidDicomError,
        OSError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ):
        return None


def _store_one(assoc: Any, item: InstanceData, peer_ae: str) -> bool:
    """C-STORE one instance (read only now); True when the peer answered success."""
    dataset = item if isinstance(item, Path) else dcmread_bounded(item)
    try:
        status = assoc.send_c_store(dataset)
    except ValueError:  # no accepted presentation context for its SOP class and syntax
        return False
    if not status or "Status" not in status:
        raise ServiceUnavailableError(f"C-STORE to {peer_ae}: no response in time")
    return int(status.Status) == _OK


def c_store_blocking(
    peer: DimseEndpoint, calling_ae: str, instances: Sequence[InstanceData]
) -> StoreReport:
    """C-STORE every instance over one association, one in memory at a time (blocking).

    Files (``Path``) are read only while sent.  An unreadable instance is reported as
    ``index-N``; a refused one by its SOP Instance UID.
    """
    headers = [_header(item) for item in instances]
    contexts = {
        (str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in headers if h is not None
    }
    if len(contexts) > _MAX_CONTEXTS:
        raise PermanentError(f"{len(contexts)} presentation contexts exceed {_MAX_CONTEXTS}")
    failed = [f"index-{i}" for i, h in enumerate(headers) if h is None]
    if not contexts:
        return StoreReport(stored=0, failed_uids=tuple(failed))
    ae = AE(ae_title=calling_ae)
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    assoc = _associate(ae, peer)
    try:
        for item, head in zip(instances, headers, strict=True):
            if head is not None and not _store_one(assoc, item, peer.ae_title):
                failed.append(str(head.SOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.release()
    return StoreReport(stored=len(instances) - len(failed), failed_uids=tuple(failed))


def _check_find(code: int, peer_ae: str) -> None:
    """Raise unless a C-FIND ended in success (a failed query is never 'no matches')."""
    if code == _OK:
        return
    if code == -1 or code in _PENDING:
        raise ServiceUnavailableError(f"C-FIND at {peer_ae} ended without a final status")
    if code & 0xFF00 == _OUT_OF_RESOURCES or code == _CANCEL:
        raise ServiceUnavailableError(f"C-FIND at {peer_ae} failed: status 0x{code:04X}")
    raise RetrieveRefusedError(f"C-FIND refused by {peer_ae}: status 0x{code:04X}")


def c_find_blocking(peer: DimseEndpoint, calling_ae: str, query: Dataset) -> list[Dataset]:
    """Every identifier a Study Root C-FIND answers (blocking).

    No association, no answer in time, or a failure status raise (``ServiceUnavailableError``
    or ``RetrieveRefusedError``); an empty list is a genuine 'no matches'.
    """
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, peer)
    found: list[Dataset] = []
    code = -1
    try:
        try:
            responses = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        except ValueError as exc:  # the peer did not accept the Study Root FIND model
            raise RetrieveRefusedError(f"C-FIND model refused by {peer.ae_title}") from exc
        for status, ident in responses:
            if not status or "Status" not in status:
                raise ServiceUnavailableError(f"C-FIND at {peer.ae_title}: no response in time")
            code = int(status.Status)
            if code in _PENDING and ident is not None:
                found.append(ident)
            if len(found) > peer.max_find_matches:
                assoc.abort()  # stop the answer here: nothing more is read
                raise AnswerTooLargeError(
                    f"C-FIND at {peer.ae_title}: more than {peer.max_find_matches} matches"
                )
    finally:
        if assoc.is_established:
            assoc.release()
    _check_find(code, peer.ae_title)
    return found


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def c_find_series_blocking(
    peer: DimseEndpoint, calling_ae: str, study_uid: str, series_uid: str = ""
) -> dict[str, int | None]:
    """Series of a study (or the one ``series_uid``) by C-FIND at SERIES level (blocking).

    Series Instance UID -> NumberOfSeriesRelatedInstances (None when the archive did not say).
    """
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    query.NumberOfSeriesRelatedInstances = ""
    out: dict[str, int | None] = {}
    for ident in c_find_blocking(peer, calling_ae, query):
        if uid := str(ident.get("SeriesInstanceUID", "") or ""):
            out[uid] = _int_or_none(ident.get("NumberOfSeriesRelatedInstances", ""))
    return out


def c_find_sop_classes_blocking(
    peer: DimseEndpoint, calling_ae: str, uids: tuple[str, str]
) -> list[str]:
    """The SOP Class UIDs present in one series (``uids``: study, series), by IMAGE-level C-FIND."""
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID, query.SeriesInstanceUID = uids
    query.SOPInstanceUID = ""
    query.SOPClassUID = ""
    found = c_find_blocking(peer, calling_ae, query)
    return sorted({sop for i in found if (sop := str(i.get("SOPClassUID", "") or ""))})


def _send_get(assoc: Any, query: Dataset, peer_ae: str) -> tuple[int, MoveCounts]:
    """C-GET-RQ ``query``; the final status (-1: none) and its sub-operation counts."""
    code, counts = -1, MoveCounts()
    for status, _ident in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
        if not status or "Status" not in status:
            raise RetrieveIncompleteError(f"C-GET from {peer_ae} ended without a final status")
        code, counts = int(status.Status), sub_operation_counts(status)
    return code, counts


def c_get_series_blocking(
    peer: DimseEndpoint,
    calling_ae: str,
    uids: tuple[str, str],
    folder: Path,
    *,
    on_file: Callable[[Path], None] | None = None,
    control: RetrieveControl | None = None,
    compressed: bool = True,
) -> list[Path]:
    """C-GET one series (``uids``: study, series) into files under ``folder`` (blocking).

    Contexts: the series' SOP classes (IMAGE-level C-FIND) with the uncompressed syntaxes and,
    unless ``compressed`` is False, one context per compressed syntax (SCP role).  Each file
    is handed to ``on_file`` once written.  The final status and sub-operation counts are
    checked as for C-MOVE (failed, warning, missing: :class:`RetrieveIncompleteError`).
    """
    sop_classes = c_find_sop_classes_blocking(peer, calling_ae, uids)
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    plan = storage_contexts(sop_classes, MAX_REQUESTED_CONTEXTS - 1, compressed)
    for abstract, syntaxes in plan:
        ae.add_requested_context(abstract, syntaxes)
    roles = [build_role(sop, scp_role=True) for sop in dict.fromkeys(a for a, _ in plan)]
    receiver = Receiver(folder, on_file=on_file, stop=control.stop if control else None)
    handlers = [(evt.EVT_C_STORE, receiver.on_store)]
    assoc = _associate(ae, peer, ext_neg=roles, evt_handlers=handlers)
    if control is not None:
        control.attach(assoc)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID, query.SeriesInstanceUID = uids
    try:
        code, counts = _send_get(assoc, query, peer.ae_title)
    finally:
        if assoc.is_established:
            assoc.release()
    received = len(receiver.paths)
    check_retrieve(code, counts, received, peer.ae_title, "C-GET", failures=receiver.failures)
    return list(receiver.paths)


class DimseSink:
    """A C-STORE destination."""

    def __init__(self, peer: DimseEndpoint, calling_ae: str = "DXAI") -> None:
        self.peer = peer
        self.calling_ae = calling_ae

    async def store(self, instances: Sequence[InstanceData]) -> StoreReport:
        """C-STORE ``instances`` in a worker thread, one instance in memory at a time."""
        if not instances:
            return StoreReport(stored=0)
        return await anyio.to_thread.run_sync(
            c_store_blocking, self.peer, self.calling_ae, instances
        )

    async def aclose(self) -> None:
        """Nothing held between calls."""


class DimseSource:
    """A C-FIND + C-GET (or C-MOVE to our own Storage SCP) study source.

    Both retrieves land each instance as a file in a fresh folder under ``work_dir`` (default:
    the system temp folder) and yield it as it arrives, deleting it once read; folders left by
    an interrupted retrieve go on :meth:`aclose`.  ``method`` ``c-move`` needs
    ``move_target`` (the AE the archive sends to).  Any other method raises
    :class:`PermanentError`.  Completeness: the C-GET/C-MOVE final status and sub-operation
    counts, and the series' NumberOfSeriesRelatedInstances from C-FIND (at :meth:`list_series`,
    else asked before the retrieve).
    """

    counts_instances = True  # completeness by count: see gateways.base.counts_instances

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
        self._expected: dict[tuple[str, str], int | None] = {}

    async def list_series(self, study_uid: str) -> list[str]:
        """C-FIND the series of the study (empty only on a genuine 'no matches')."""
        counts = await anyio.to_thread.run_sync(
            c_find_series_blocking, self.peer, self.calling_ae, study_uid
        )
        for uid, count in counts.items():
            self._expected[(study_uid, uid)] = count
        return list(counts)

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """Retrieve one series (C-GET or C-MOVE) in a worker thread, yielding as it arrives."""
        key = (study_uid, series_uid)
        if key not in self._expected:
            counts = await anyio.to_thread.run_sync(
                c_find_series_blocking, self.peer, self.calling_ae, study_uid, series_uid
            )
            self._expected[key] = counts.get(series_uid)
        folder = await anyio.to_thread.run_sync(_new_folder, self.work_dir)
        self._folders.append(folder)
        received = 0
        stream = stream_received(partial(self._retrieve, key, folder), folder)
        async with aclosing(stream):  # a consumer that stops early stops the retrieve now
            async for raw in stream:
                received += 1
                yield raw
        check_complete(received, self._expected[key], self.method.upper(), series_uid)

    def _retrieve(
        self,
        uids: tuple[str, str],
        folder: Path,
        on_file: Callable[[Path], None],
        control: RetrieveControl,
    ) -> None:
        """The blocking retrieve of one series (run by :func:`stream_received`)."""
        if self.method == "c-move":
            assert self.move_target is not None
            c_move_series_blocking(
                self.peer,
                self.calling_ae,
                self.move_target,
                uids,
                folder,
                on_file=on_file,
                control=control,
            )
        else:
            c_get_series_blocking(
                self.peer, self.calling_ae, uids, folder, on_file=on_file, control=control
            )

    async def aclose(self) -> None:
        """Remove the folders of retrieved instances."""
        folders, self._folders = self._folders, []
        for folder in folders:
            await anyio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))


def _new_folder(work_dir: Path | None) -> Path:
    """A fresh private folder for one retrieve's files (blocking)."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dxai-retrieve-", dir=work_dir))
