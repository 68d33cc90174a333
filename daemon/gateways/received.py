"""Instances this process receives by C-STORE (the landing zone's SCP, the C-MOVE destination,
the C-GET SCP role) go to disk as they arrive, never whole into memory.

pynetdicom keeps a received dataset in memory, and a handler that asks for it as bytes or as a
dataset makes one or two more copies: a 2 GiB instance cost 4-6 GiB.  With pynetdicom's
``STORE_RECV_CHUNKED_DATASET`` each P-DATA fragment is appended to a temporary Part 10 file
instead (the file meta pynetdicom writes from the request: SOP class, instance, the context's
transfer syntax), and the handler moves that file where it belongs.  The setting is one for the
whole process; importing this module turns it on, and every C-STORE handler of the daemon takes
its dataset through :func:`take_received` and ends with :func:`discard_received`, so no
temporary file is left behind (pynetdicom removes it after a Storage SCP's handler, not after a
C-GET's).  A handler that runs without the setting (an event built elsewhere) still works: the
dataset is then written from memory.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pynetdicom import _config

from dxai.configs.atomic import move_file_atomic, write_bytes_atomic

_config.STORE_RECV_CHUNKED_DATASET = True


def received_path(event: Any) -> Path | None:
    """The temporary file holding the dataset of C-STORE ``event``; None when it is held in
    memory (the setting off) or already moved away."""
    try:
        path = Path(event.dataset_path)
    except (AttributeError, TypeError):
        return None
    return path if path.is_file() else None


def take_received(event: Any, target: Path, *, durable: bool = True) -> None:
    """Put the dataset of C-STORE ``event`` at ``target`` as a Part 10 file, atomically (the
    temporary file moved, else the bytes written); ``durable``: fsynced."""
    source = received_path(event)
    if source is not None:
        move_file_atomic(source, target, durable=durable)
    else:
        write_bytes_atomic(target, event.encoded_dataset(include_meta=True), durable=durable)


def discard_received(event: Any) -> None:
    """Close the temporary file of C-STORE ``event`` and remove what is left of it (a refused
    or failed instance's).  pynetdicom closes it after a Storage SCP's handler only: a C-GET
    would otherwise keep one open file per instance until the request is collected."""
    handle = getattr(getattr(event, "request", None), "_dataset_file", None)
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    source = received_path(event)
    if source is not None:
        source.unlink(missing_ok=True)
