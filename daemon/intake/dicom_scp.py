"""C-STORE SCP landing zone (pynetdicom): receive instances, hand arrivals to the event loop.

pynetdicom serves associations in its own threads.  The C-STORE handler writes the instance to
the :class:`LandingZone` in that thread and tells the event loop about the arrival with
``loop.call_soon_threadsafe``; the loop side (:class:`QuietTracker`) decides when a study is
complete (no new instance for the quiet period).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    evt,
)

from dxai.daemon.gateways.folder import is_uid
from dxai.daemon.intake.landing import LandingZone
from dxai.observability.logging import get_logger

log = get_logger(__name__)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


class StoreScp:
    """A Storage SCP accepting every storage SOP class in every known transfer syntax."""

    def __init__(
        self,
        zone: LandingZone,
        ae_title: str,
        on_instance: Callable[[str], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.zone = zone
        self.on_instance = on_instance
        self.loop = loop
        self.ae = AE(ae_title=ae_title)
        for cx in [*AllStoragePresentationContexts, *VerificationPresentationContexts]:
            if cx.abstract_syntax is not None:
                self.ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self._server: Any = None

    def start(self, host: str, port: int) -> int:
        """Start serving in pynetdicom's threads; return the bound port (``port`` 0: any)."""
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store)]
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
        uids = _store_uids(event)
        if uids is None:
            return STATUS_CANNOT_UNDERSTAND
        study_uid, sop_uid = uids
        try:
            self.zone.write(study_uid, sop_uid, event.encoded_dataset(include_meta=True))
        except OSError:
            log.exception("landing zone write failed", extra={"error_code": "landing_io"})
            return STATUS_OUT_OF_RESOURCES
        except (ValueError, TypeError, AttributeError, KeyError, EOFError):
            return STATUS_CANNOT_UNDERSTAND
        try:
            self.loop.call_soon_threadsafe(self.on_instance, study_uid)
        except RuntimeError:  # the loop is closing; the file is safe and recovered on restart
            return STATUS_SUCCESS
        return STATUS_SUCCESS


def _store_uids(event: Any) -> tuple[str, str] | None:
    """(Study, SOP Instance UID) of a C-STORE request; None when either is missing or invalid,
    or when the dataset cannot be decoded at all (pydicom raises OSError, RecursionError,
    NotImplementedError... on damaged data: not a landing-zone failure, not out of resources).
    """
    try:
        study_uid = str(event.dataset.get("StudyInstanceUID", ""))
        sop_uid = str(event.request.AffectedSOPInstanceUID or "")
    except Exception:  # noqa: BLE001 - any undecodable dataset is answered "cannot understand"
        return None
    if not (is_uid(study_uid) and is_uid(sop_uid)):
        return None
    return study_uid, sop_uid


class QuietTracker:
    """Event-loop side: a study is complete once ``quiet_s`` pass without a new instance."""

    def __init__(self, quiet_s: float, on_complete: Callable[[str], None]) -> None:
        self.quiet_s = quiet_s
        self.on_complete = on_complete
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def touch(self, study_uid: str) -> None:
        """An instance of ``study_uid`` arrived: restart its quiet-period timer."""
        timer = self._timers.pop(study_uid, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[study_uid] = loop.call_later(self.quiet_s, self._fire, study_uid)

    def _fire(self, study_uid: str) -> None:
        self._timers.pop(study_uid, None)
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
