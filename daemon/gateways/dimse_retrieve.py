"""What C-GET and C-MOVE share: transfer syntaxes, presentation contexts, handing files over.

An acceptor picks *one* transfer syntax per proposed presentation context (Orthanc prefers
Explicit VR Little Endian whenever it is offered), so a context carrying several syntaxes still
leaves an archive that cannot decompress (JPEG 2000, HTJ2K) nothing to send an instance over.
C-GET therefore proposes, for each SOP class of the series, one context of the uncompressed
syntaxes and one context per compressed syntax, within the 128 contexts an association may
propose.

The association thread writes each received instance to a file and hands its path to the event
loop (:func:`stream_received`), which reads the files one by one as they arrive and deletes
them: memory holds one instance, the work folder at most the series.  The archive is never
slowed down by the consumer (its C-STORE sub-operations would time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import pydicom.uid
from pynetdicom import StoragePresentationContexts

MAX_REQUESTED_CONTEXTS = 128
UNCOMPRESSED: tuple[str, ...] = (
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRBigEndian,
)
# most common in archives first: when contexts run short the rarer ones are left out
_COMPRESSED_NAMES = (
    "JPEG2000Lossless",
    "JPEGLosslessSV1",
    "JPEGBaseline8Bit",
    "JPEG2000",
    "JPEGLSLossless",
    "RLELossless",
    "JPEGExtended12Bit",
    "JPEGLossless",
    "JPEGLSNearLossless",
    "DeflatedExplicitVRLittleEndian",
    "HTJ2KLossless",
    "HTJ2KLosslessRPCL",
    "HTJ2K",
)
COMPRESSED: tuple[str, ...] = tuple(
    str(uid) for name in _COMPRESSED_NAMES if (uid := getattr(pydicom.uid, name, None))
)
_CANCEL_WAIT_S = 10.0

ContextPlan = list[tuple[str, list[str]]]


def storage_contexts(sop_classes: Sequence[str], room: int, compressed: bool = True) -> ContextPlan:
    """Presentation contexts (abstract syntax, transfer syntaxes) for receiving instances.

    Known SOP classes: one uncompressed context each, then one context per compressed syntax,
    round-robin over the classes until ``room`` is used.  Unknown (an archive that does not
    return SOP Class UID at IMAGE level): every common storage class with all syntaxes in one
    context each (the acceptor then chooses; a failed sub-operation still raises).
    """
    extra = list(COMPRESSED) if compressed else []
    if not sop_classes:
        common = [cx.abstract_syntax for cx in StoragePresentationContexts if cx.abstract_syntax]
        return [(str(sop), [*UNCOMPRESSED, *extra]) for sop in common[:room]]
    classes = sorted(set(sop_classes))[:room]
    plan: ContextPlan = [(sop, list(UNCOMPRESSED)) for sop in classes]
    for syntax in extra:
        for sop in classes:
            if len(plan) >= room:
                return plan
            plan.append((sop, [syntax]))
    return plan


class RetrieveControl:
    """Lets the event loop stop a retrieve that runs in a worker thread.

    ``stop`` tells the receiving handler to refuse further instances; :meth:`cancel` also
    aborts the requesting association once :meth:`attach` named it.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._assoc: Any = None
        self._lock = threading.Lock()

    def attach(self, assoc: Any) -> None:
        """Remember the association to abort on :meth:`cancel` (abort now if already asked)."""
        with self._lock:
            self._assoc = assoc
        if self.stop.is_set():
            _abort(assoc)

    def cancel(self) -> None:
        """Refuse further instances and abort the association (any thread)."""
        self.stop.set()
        with self._lock:
            assoc = self._assoc
        if assoc is not None:
            _abort(assoc)


def _abort(assoc: Any) -> None:
    """Abort ``assoc`` and wake the thread waiting for its next DIMSE message.

    pynetdicom's response loop would otherwise wait out the DIMSE timeout after an abort; an
    empty message in its queue reads as 'no response' and ends ``send_c_get`` at once.
    """
    with contextlib.suppress(Exception):
        if assoc.is_established:
            assoc.abort()
    with contextlib.suppress(Exception):
        assoc.dimse.msg_queue.put((None, None))


def take_file(path: Path) -> bytes:
    """Read a received file and delete it (blocking)."""
    data = path.read_bytes()
    path.unlink(missing_ok=True)
    return data


RetrieveRun = Callable[[Callable[[Path], None], RetrieveControl], object]


async def stream_received(run: RetrieveRun, folder: Path) -> AsyncGenerator[bytes, None]:
    """Run ``run(on_file, control)`` in a worker thread; yield each file's bytes as it lands.

    ``run`` writes instances under ``folder`` and calls ``on_file`` with each complete file;
    its exception is raised after the last file.  A consumer that stops early cancels the
    retrieve (waiting a bounded time for the thread); ``folder`` is removed once the thread
    is done (otherwise the source's ``aclose`` removes it).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Path | None] = asyncio.Queue()
    control = RetrieveControl()

    def hand_over(item: Path | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody reads any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            run(hand_over, control)
        finally:
            hand_over(None)

    task = asyncio.ensure_future(asyncio.to_thread(work))
    task.add_done_callback(_retrieved)
    try:
        while (path := await queue.get()) is not None:
            yield await anyio.to_thread.run_sync(take_file, path)
        await task
    finally:
        if not task.done():
            control.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_WAIT_S)
        if task.done():
            await anyio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))


def _retrieved(task: asyncio.Future[None]) -> None:
    """Mark a worker's exception as seen (it is raised to the consumer or dropped on cancel)."""
    if not task.cancelled():
        task.exception()
