"""C-MOVE retrieval with pynetdicom: a dedicated Storage SCP receives the moved instances.

For each series a Storage SCP is started at the move destination (:class:`MoveTarget`: its own
AE title and port, which the archive must know as a modality), a C-MOVE-RQ names that AE as the
destination, and the instances the archive sends on its own association land as files in a
per-job folder (never the embedded landing zone).  One move at a time uses a given port.
Statuses: pending responses carry sub-operation counts; success with every sub-operation
received passes; warning, cancel, failed or missing sub-operations raise
:class:`RetrieveIncompleteError` (retried, never a partial release); out of resources
(``A7xx``) or no answer within ``timeout_s`` raises :class:`ServiceUnavailableError` (retried);
an unknown destination (``A801``; Orthanc answers ``C000``), a bad identifier (``A900``) or
"unable to process" (``Cxxx``) raises :class:`RetrieveRefusedError` (dead letter).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

from dxai.configs.errors import (
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.configs.schema.services import DimseEndpoint

StudyRootQueryRetrieveInformationModelMove = UID("1.2.840.10008.5.1.4.1.2.2.2")
_OK, _PENDING = 0x0000, (0xFF00, 0xFF01)
_OUT_OF_RESOURCES = 0xA700
_REFUSED = (0xA801, 0xA900)  # move destination unknown; identifier does not match SOP class
_PORT_LOCKS: dict[tuple[str, int], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class MoveTarget:
    """Where the archive sends moved instances: our Storage SCP (AE title, bind host, port)."""

    ae_title: str
    port: int
    host: str = "127.0.0.1"
    timeout_s: float = 300.0


@dataclass
class MoveCounts:
    """Sub-operation counts of the last C-MOVE response."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0


@dataclass
class _Receiver:
    """The SCP's C-STORE handler: writes each instance (Part 10) into ``folder``."""

    folder: Path
    paths: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_store(self, event: Any) -> int:
        with self.lock:
            path = self.folder / f"{len(self.paths):06d}.dcm"
            self.paths.append(path)
        try:
            path.write_bytes(event.encoded_dataset(include_meta=True))
        except OSError:
            return _OUT_OF_RESOURCES
        return _OK


def _port_lock(target: MoveTarget) -> threading.Lock:
    with _LOCKS_GUARD:
        return _PORT_LOCKS.setdefault((target.host, target.port), threading.Lock())


def _start_scp(target: MoveTarget, receiver: _Receiver) -> Any:
    ae = AE(ae_title=target.ae_title)
    for cx in StoragePresentationContexts:
        if cx.abstract_syntax is not None:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    handlers: list[Any] = [(evt.EVT_C_STORE, receiver.on_store)]
    try:
        return ae.start_server((target.host, target.port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise ServiceUnavailableError(f"move SCP port {target.port} unavailable") from exc


def _counts(status: Dataset) -> MoveCounts:
    return MoveCounts(
        completed=int(status.get("NumberOfCompletedSuboperations", 0) or 0),
        failed=int(status.get("NumberOfFailedSuboperations", 0) or 0),
        warning=int(status.get("NumberOfWarningSuboperations", 0) or 0),
        remaining=int(status.get("NumberOfRemainingSuboperations", 0) or 0),
    )


def _send_move(
    peer: DimseEndpoint, calling_ae: str, target: MoveTarget, query: Dataset
) -> tuple[int, MoveCounts]:
    """C-MOVE-RQ ``query`` to ``peer``; the final status and sub-operation counts."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.dimse_timeout = ae.network_timeout = target.timeout_s
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        raise ServiceUnavailableError(f"DIMSE association to {peer.ae_title} failed")
    code, counts = -1, MoveCounts()
    try:
        responses = assoc.send_c_move(
            query, target.ae_title, StudyRootQueryRetrieveInformationModelMove
        )
        for status, _ident in responses:
            if not status or "Status" not in status:
                raise ServiceUnavailableError(f"C-MOVE to {peer.ae_title}: no response in time")
            code, counts = int(status.Status), _counts(status)
    finally:
        if assoc.is_established:
            assoc.release()
    return code, counts


def _check(code: int, counts: MoveCounts, received: int, peer_ae: str) -> None:
    """Raise unless the move ended in success with every sub-operation received."""
    if code in _REFUSED or (code & 0xF000) == 0xC000:
        raise RetrieveRefusedError(f"C-MOVE refused by {peer_ae}: status 0x{code:04X}")
    if code in _PENDING or code == -1:
        raise RetrieveIncompleteError(f"C-MOVE from {peer_ae} ended without a final status")
    if code & 0xFF00 == _OUT_OF_RESOURCES:
        raise ServiceUnavailableError(f"C-MOVE failed at {peer_ae}: status 0x{code:04X}")
    if code != _OK or counts.failed or counts.warning or received < counts.completed:
        raise RetrieveIncompleteError(
            f"C-MOVE from {peer_ae}: status 0x{code:04X}, {counts.completed} completed, "
            f"{counts.failed} failed, {counts.warning} warning, {received} received"
        )


def c_move_series_blocking(
    peer: DimseEndpoint,
    calling_ae: str,
    target: MoveTarget,
    uids: tuple[str, str],
    folder: Path,
) -> list[Path]:
    """C-MOVE one series (``uids``: study, series) to ``target``; the files (blocking)."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID, query.SeriesInstanceUID = uids
    receiver = _Receiver(folder)
    with _port_lock(target):
        server = _start_scp(target, receiver)
        try:
            code, counts = _send_move(peer, calling_ae, target, query)
        finally:
            server.shutdown()
    _check(code, counts, len(receiver.paths), peer.ae_title)
    return list(receiver.paths)
