"""Atomic, durable file writes: the one implementation every room uses.

A file is written to a temporary file in the same folder (created exclusively, mode 0600), its
bytes are flushed to disk (``fsync``), and it is moved into place with ``os.replace``, which is
atomic within one folder; the folder is synced too, so the new name survives a power loss.  On
any failure the temporary file is removed: the target is either the complete new file or
untouched, never partial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _create_temp(dst: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to ``dst`` (created exclusively) and its descriptor.

    The name is predictable (``dst``'s name, the process and the thread), which makes one
    ``os.open`` with ``O_CREAT | O_EXCL`` enough; should that fail for any other reason than a
    missing folder (a stale file of that name left by a killed process, a name too long), a
    random name from ``tempfile.mkstemp`` is used instead.
    """
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.dxai-part")
    try:
        return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
    except FileNotFoundError:
        raise
    except OSError:
        fd, name = tempfile.mkstemp(prefix=".dxai-", suffix=".part", dir=dst.parent)
        return fd, Path(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(dst: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``dst`` atomically; ``durable`` also fsyncs the file and its folder.

    The parent folder is created when it is missing.  Blocking: call it from a worker thread.
    """
    try:
        fd, tmp = _create_temp(dst)
    except FileNotFoundError:  # the folder is created only when it is missing
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(dst)

    def fill() -> None:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    _commit(tmp, dst, fill, durable)


def _commit(tmp: Path, dst: Path, fill: Callable[[], None], durable: bool) -> None:
    """``fill()`` the temporary file ``tmp``, then rename it to ``dst`` (``durable``: and sync
    the folder); on any failure ``tmp`` is removed and ``dst`` left untouched."""
    try:
        fill()
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _sync_folder(dst.parent)


def move_file_atomic(src: Path, dst: Path, *, durable: bool = True) -> None:
    """Move the file ``src`` to ``dst`` atomically: renamed within a filesystem, else copied
    (streamed, never whole in memory) to a temporary file beside ``dst`` and renamed into place;
    ``durable`` also fsyncs the file and its folder.  ``src`` is gone afterwards unless the move
    failed.  Blocking: call it from a worker thread.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.dxai-part")

    def fill() -> None:
        shutil.move(src, tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    _commit(tmp, dst, fill, durable)
