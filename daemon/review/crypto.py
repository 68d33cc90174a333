"""Encryption at rest of the review store: AES-256-GCM, a random nonce per blob.

Every blob is ``MAGIC || nonce (12 bytes) || ciphertext+tag`` and is bound to where it belongs
by its associated data (the job key and the blob's name): a blob changed, truncated, swapped
with another job's or instance's, or read with another key fails to open
(:class:`ReviewTamperedError`).  The key is 32 random bytes stored as 64 hex digits in a file
created with mode 0600 when missing; a key file others may read is refused.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dxai.configs.errors import ConfigError
from dxai.daemon.review.errors import ReviewTamperedError

KEY_BYTES = 32
NONCE_BYTES = 12
MAGIC = b"DXR1"


def default_key_path(data_dir: Path) -> Path:
    """Where the generated review key lives: ``<data_dir>/keys/review.key``."""
    return data_dir / "keys" / "review.key"


def load_or_create_key(path: Path, label: str = "review.key_file") -> tuple[bytes, bool]:
    """The key in ``path`` and whether it was created now (mode 0600, folder 0700; blocking).

    ConfigError (naming ``label``) when the file is not 64 hex digits or group/others may
    access it.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return read_key(path, label), False
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        return read_key(path, label), True
    return read_key(path, label), False


def read_key(path: Path, label: str = "review.key_file") -> bytes:
    """Read a key file (64 hex digits); refuse one that group or others may access."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label} {path}: cannot be read") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{label} {path}: mode must be 0600 (group/others have access)")
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(f"{label} {path}: not 64 hex digits") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{label} {path}: not 64 hex digits")
    return key


class Sealer:
    """Seals and opens blobs under one key, each bound to its job and name."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, data: bytes, job_key: str, name: str) -> bytes:
        """``data`` encrypted with a fresh random nonce, bound to ``job_key``/``name``."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, _aad(job_key, name))

    def open(self, blob: bytes, job_key: str, name: str) -> bytes:
        """The plaintext of ``blob``; ReviewTamperedError when it does not authenticate."""
        head = len(MAGIC) + NONCE_BYTES
        if len(blob) < head + 16 or not blob.startswith(MAGIC):
            raise ReviewTamperedError(f"review {job_key[:16]}: blob {name} is not a sealed blob")
        nonce = blob[len(MAGIC) : head]
        try:
            return self._aead.decrypt(nonce, blob[head:], _aad(job_key, name))
        except InvalidTag as exc:
            raise ReviewTamperedError(
                f"review {job_key[:16]}: blob {name} failed authentication"
            ) from exc


def _aad(job_key: str, name: str) -> bytes:
    return f"dxai-review\x1f{job_key}\x1f{name}".encode()
