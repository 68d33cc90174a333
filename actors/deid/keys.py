"""The de-identification key: from a secret file, or generated once under the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dxai.configs.errors import ConfigError

KEY_BYTES = 32
_MIN_KEY_BYTES = 16


def read_key(path: Path) -> bytes:
    """Read a key file: hex text (64 hex digits, the generated form) or raw bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read de-identification key file {path}: {exc.strerror}") from exc
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = text
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigError(f"de-identification key in {path} is shorter than {_MIN_KEY_BYTES} bytes")
    return key


def default_key_path(data_dir: Path) -> Path:
    """Where the generated key lives: ``<data_dir>/keys/deid.key``."""
    return data_dir / "keys" / "deid.key"


def load_or_create_key(key_file: Path | None, data_dir: Path) -> tuple[bytes, Path, bool]:
    """Return ``(key, path, created)``; a missing default key is generated with mode 0600."""
    if key_file is not None:
        return read_key(key_file), key_file, False
    path = default_key_path(data_dir)
    if path.exists():
        return read_key(path), path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return read_key(path), path, False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    path.chmod(0o600)
    return read_key(path), path, True
