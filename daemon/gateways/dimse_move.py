"""C-MOVE retrieval with pynetdicom: a dedicated Storage SCP receives the moved instances.

For each series a Storage SCP is started at the move destination (:class:`MoveTarget`: its own
AE title and port, which the archive must know as a modality), a C-MOVE-RQ names that AE as the
destination, and the instances the archive sends on its own association land as files in a
per-job folder (never the embedded landing zone), each handed over as soon as it is written
(``dimse_retrieve.stream_received``).  The SCP accepts associations only from the archive's AE
title (or ``MoveTarget.sender_ae``); any other calling AE is rejected.  One move at a time uses
a given port.
Statuses: pending responses carry sub-operation counts; success with every sub-operation
received passes; warning, cancel, failed or missing sub-operations raise
:class:`RetrieveIncompleteError` (retried, never a partial release); out of resources
(``A7xx``) or no answer within ``timeout_s`` raises :class:`ServiceUnavailableError` (retried);
an unknown destination (``A801``; Orthanc answers ``C000``), a bad identifier (``A900``) or
"unable to process" (``Cxxx``) raises :class:`RetrieveRefusedError` (dead letter), unless
sub-operations failed (then incomplete).  The SCP accepts every storage SOP class in every
transfer syntax pynetdicom knows, compressed ones included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from dxai.configs.errors import (
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.gateways.dimse_retrieve import RetrieveControl
from dxai.daemon.gateways.received import discard_received, take_received
from dxai.daemon.gateways.tls import dimse_tls_args

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
    # the only calling AE title the SCP accepts during a move; None: the archive's own AE title
    sender_ae: str | None = None


@dataclass
class MoveCounts:
    """Sub-operation counts of the last C-MOVE response."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0


@dataclass
class Receiver:
    """A C-STORE handler (C-MOVE's SCP, C-GET's SCP role): each instance (Part 10) to a file.

    ``paths`` lists the files completely written; each is also handed to ``on_file`` (from
    the association's thread).  Once ``stop`` is set (nobody reads any more) further instances
    are refused; a file that cannot be written is refused and counted in ``failures``.
    """

    folder: Path
    on_file: Callable[[Path], None] | None = None
    stop: threading.Event | None = None
    paths: list[Path] = field(default_factory=list)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def on_store(self, event: Any) -> int:
        """Move the received instance into the folder; the C-STORE response status."""
        try:
            return self._store(event)
        finally:
            discard_received(event)  # a refused instance's temporary file

    def _store(self, event: Any) -> int:
        if self.stop is not None and self.stop.is_set():
            return _OUT_OF_RESOURCES
        with self.lock:
            path = self.folder / f"{self._next:06d}.dcm"
            self._next += 1
        try:
            take_received(event, path, durable=False)  # a work file, read once
        except OSError:
            path.unlink(missing_ok=True)
            with self.lock:
                self.failures += 1
            return _OUT_OF_RESOURCES
        with self.lock:
            self.paths.append(path)
        if self.on_file is not None:
            self.on_file(path)
        return _OK


def _port_lock(target: MoveTarget) -> threading.Lock:
    with _LOCKS_GUARD:
        return _PORT_LOCKS.setdefault((target.host, target.port), threading.Lock())


def _start_scp(target: MoveTarget, receiver: Receiver, sender_ae: str) -> Any:
    """The Storage SCP of one move: associations from any AE but ``sender_ae`` are rejected."""
    ae = AE(ae_title=target.ae_title)
    ae.require_calling_aet = [sender_ae]
    for cx in AllStoragePresentationContexts:  # every syntax, compressed ones included
        if cx.abstract_syntax is not None:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    handlers: list[Any] = [(evt.EVT_C_STORE, receiver.on_store)]
    try:
        return ae.start_server((target.host, target.port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise ServiceUnavailableError(f"move SCP port {target.port} unavailable") from exc


def sub_operation_counts(status: Dataset) -> MoveCounts:
    """The sub-operation counts of a C-MOVE/C-GET response (absent ones: 0)."""
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
    assoc = ae.associate(
        peer.host, peer.port, ae_title=peer.ae_title, tls_args=dimse_tls_args(peer)
    )
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
            code, counts = int(status.Status), sub_operation_counts(status)
    finally:
        if assoc.is_established:
            assoc.release()
    return code, counts


def check_retrieve(
    code: int,
    counts: MoveCounts,
    received: int,
    peer_ae: str,
    what: str = "C-MOVE",
    *,
    failures: int = 0,
) -> None:
    """Raise unless the retrieve ended in success with every sub-operation received.

    Failed or warning sub-operations (or files we could not write, ``failures``) make it
    incomplete whatever the final status: Orthanc ends a C-GET whose sub-operations failed
    with ``C000``, which alone would read as a refusal.
    """
    detail = (
        f"status 0x{code:04X}, {counts.completed} completed, {counts.failed} failed, "
        f"{counts.warning} warning, {received} received"
    )
    if failures or counts.failed or counts.warning:
        raise RetrieveIncompleteError(f"{what} from {peer_ae}: {detail}")
    if code in _REFUSED or (code & 0xF000) == 0xC000:
        raise RetrieveRefusedError(f"{what} refused by {peer_ae}: status 0x{code:04X}")
    if code in _PENDING or code == -1:
        raise RetrieveIncompleteError(f"{what} from {peer_ae} ended without a final status")
    if code & 0xFF00 == _OUT_OF_RESOURCES:
        raise ServiceUnavailableError(f"{what} failed at {peer_ae}: status 0x{code:04X}")
    if code != _OK or received < counts.completed:
        raise RetrieveIncompleteError(f"{what} from {peer_ae}: {detail}")


def c_move_series_blocking(
    peer: DimseEndpoint,
    calling_ae: str,
    target: MoveTarget,
    uids: tuple[str, str],
    folder: Path,
    *,
    on_file: Callable[[Path], None] | None = None,
    control: RetrieveControl | None = None,
) -> list[Path]:
    """C-MOVE one series (``uids``: study, series) to ``target``; the files (blocking).

    Each file is handed to ``on_file`` once written; ``control.stop`` refuses further ones.
    """
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID, query.SeriesInstanceUID = uids
    receiver = Receiver(folder, on_file=on_file, stop=control.stop if control else None)
    with _port_lock(target):
        server = _start_scp(target, receiver, target.sender_ae or peer.ae_title)
        try:
            code, counts = _send_move(peer, calling_ae, target, query)
        finally:
            server.shutdown()
    check_retrieve(code, counts, len(receiver.paths), peer.ae_title, failures=receiver.failures)
    return list(receiver.paths)
