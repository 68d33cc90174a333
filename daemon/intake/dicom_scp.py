"""C-STORE SCP landing zone (pynetdicom): receive instances, hand arrivals to the event loop.

pynetdicom serves associations in its own threads.  The C-STORE handler writes the instance to
the :class:`LandingZone` in that thread and tells the event loop about the arrival (and the
association it came on) with ``loop.call_soon_threadsafe``; the loop side
(:class:`QuietTracker`) decides when a study is complete: no new instance for the quiet period,
and the association that was sending it closed (or moved on to another study), or no instance
for ``open_max_s`` while it stays open.  A sender that pauses inside one association (a slow
disk, a modality reconstructing) no longer splits its study into two jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    evt,
)

from dxai.actors.inflate import InflatedTooLargeError, check_deflated, dcmread_bounded
from dxai.daemon.gateways.folder import is_uid
from dxai.daemon.gateways.received import discard_received, received_path, take_received
from dxai.daemon.intake.landing import LandingZone
from dxai.observability.logging import get_logger

log = get_logger(__name__)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
_STUDY_UID = Tag(0x0020, 0x000D)


class StoreScp:
    """A Storage SCP accepting every storage SOP class in every known transfer syntax."""

    def __init__(
        self,
        zone: LandingZone,
        ae_title: str,
        on_instance: Callable[[str, int], None],
        loop: asyncio.AbstractEventLoop,
        on_association_end: Callable[[int], None] | None = None,
    ) -> None:
        self.zone = zone
        self.on_instance = on_instance
        self.on_association_end = on_association_end
        self.loop = loop
        self.ae = AE(ae_title=ae_title)
        for cx in [*AllStoragePresentationContexts, *VerificationPresentationContexts]:
            if cx.abstract_syntax is not None:
                self.ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self._server: Any = None

    def start(self, host: str, port: int) -> int:
        """Start serving in pynetdicom's threads; return the bound port (``port`` 0: any)."""
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store)]
        for ended in (evt.EVT_RELEASED, evt.EVT_ABORTED, evt.EVT_CONN_CLOSE):
            handlers.append((ended, self._on_end))
        self._server = self.ae.start_server((host, port), block=False, evt_handlers=handlers)
        bound: int = self._server.server_address[1]
        log.info("c-store scp listening", extra={"port": bound})
        return bound

    def stop(self) -> None:
        """Stop accepting associations and close the server (blocking; idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: Any) -> int:
        """EVT_C_STORE handler, run in an association thread (never on the event loop)."""
        try:
            return self._land(event)
        finally:
            discard_received(event)  # a refused instance's temporary file

    def _land(self, event: Any) -> int:
        uids = _store_uids(event)
        if uids is None:
            return STATUS_CANNOT_UNDERSTAND
        study_uid, sop_uid = uids
        try:
            self.zone.put(study_uid, sop_uid, lambda target: take_received(event, target))
        except OSError:
            log.exception("landing zone write failed", extra={"error_code": "landing_io"})
            return STATUS_OUT_OF_RESOURCES
        except (ValueError, TypeError, AttributeError, KeyError, EOFError):
            return STATUS_CANNOT_UNDERSTAND
        try:
            self.loop.call_soon_threadsafe(self.on_instance, study_uid, id(event.assoc))
        except RuntimeError:  # the loop is closing; the file is safe and recovered on restart
            return STATUS_SUCCESS
        return STATUS_SUCCESS

    def _on_end(self, event: Any) -> None:
        """An association was released, aborted or lost (pynetdicom thread); may repeat."""
        if self.on_association_end is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.on_association_end, id(event.assoc))
        except RuntimeError:  # the loop is closing
            return


def _store_uids(event: Any) -> tuple[str, str] | None:
    """(Study, SOP Instance UID) of a C-STORE request; None when either is missing or invalid,
    or when the dataset cannot be decoded at all (pydicom raises OSError, RecursionError,
    NotImplementedError... on damaged data: not a landing-zone failure, not out of resources).
    """
    try:
        study_uid = _study_uid(event)
        sop_uid = str(event.request.AffectedSOPInstanceUID or "")
    except InflatedTooLargeError:
        log.warning(
            "c-store refused: decompression bomb", extra={"error_code": "deflated_too_large"}
        )
        return None
    except Exception:  # noqa: BLE001 - any undecodable dataset is answered "cannot understand"
        return None
    if not (is_uid(study_uid) and is_uid(sop_uid)):
        return None
    return study_uid, sop_uid


def _study_uid(event: Any) -> str:
    """The Study Instance UID of a C-STORE request's dataset, read from its header alone (the
    received file, else the bytes in memory); a deflated dataset is checked for a bomb first."""
    received = received_path(event)
    if received is not None:
        head = dcmread_bounded(received, stop_before_pixels=True, specific_tags=[_STUDY_UID])
        return str(head.get("StudyInstanceUID", ""))
    if event.context.transfer_syntax == DeflatedExplicitVRLittleEndian:
        data = event.request.DataSet
        data.seek(0)
        check_deflated(data)  # before pynetdicom inflates it in memory
    return str(event.dataset.get("StudyInstanceUID", ""))


class QuietTracker:
    """Event-loop side: when a study is complete (see the module docstring).

    ``touch(study, association)`` records an arrival; the study is complete ``quiet_s`` after
    its last instance unless an association whose latest instance was of this study is still
    open: then when that association ends (the quiet period over), or ``open_max_s`` after the
    last instance at the latest (a sender that keeps its association open for ever).
    """

    def __init__(
        self, quiet_s: float, on_complete: Callable[[str], None], open_max_s: float | None = None
    ) -> None:
        self.quiet_s = quiet_s
        self.open_max_s = max(quiet_s, open_max_s if open_max_s is not None else quiet_s)
        self.on_complete = on_complete
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._last: dict[str, float] = {}
        self._sending: dict[int, str] = {}  # open association -> the study it sent last

    def touch(self, study_uid: str, association: int | None = None) -> None:
        """An instance of ``study_uid`` arrived (on ``association``): restart its timer."""
        if association is not None:
            self._sending[association] = study_uid
        self._last[study_uid] = asyncio.get_running_loop().time()
        self._arm(study_uid, self.quiet_s)

    def association_ended(self, association: int) -> None:
        """``association`` closed: its study completes now if its quiet period is over."""
        study_uid = self._sending.pop(association, None)
        if study_uid is None or study_uid not in self._timers or self._held_open(study_uid):
            return
        if self._idle_s(study_uid) >= self.quiet_s:
            self._fire(study_uid)

    def _held_open(self, study_uid: str) -> bool:
        return study_uid in self._sending.values()

    def _idle_s(self, study_uid: str) -> float:
        return asyncio.get_running_loop().time() - self._last.get(study_uid, 0.0)

    def _arm(self, study_uid: str, delay_s: float) -> None:
        timer = self._timers.pop(study_uid, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[study_uid] = loop.call_later(delay_s, self._due, study_uid)

    def _due(self, study_uid: str) -> None:
        """The quiet period (or the open-association limit) passed since the last instance."""
        left = self.open_max_s - self._idle_s(study_uid)
        if self._held_open(study_uid) and left > 0:
            self._arm(study_uid, left)
            return
        self._fire(study_uid)

    def _fire(self, study_uid: str) -> None:
        timer = self._timers.pop(study_uid, None)
        if timer is not None:
            timer.cancel()
        self._last.pop(study_uid, None)
        for association in [a for a, s in self._sending.items() if s == study_uid]:
            del self._sending[association]  # a later instance on it starts a new job
        self.on_complete(study_uid)

    @property
    def waiting(self) -> int:
        """Studies still inside their quiet period."""
        return len(self._timers)

    def cancel_all(self) -> None:
        """Forget every timer (shutdown); the files stay and are re-armed on restart."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._last.clear()
        self._sending.clear()
