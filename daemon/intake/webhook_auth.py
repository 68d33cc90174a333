"""Webhook authentication: a bearer token and/or an HMAC-SHA256 signature of the raw body.

``embedded.webhook_bearer_token_file``: the request needs ``Authorization: Bearer <token>``.
``embedded.webhook_hmac_secret_file``: it needs ``X-Dxai-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes under the secret.  With both configured, both are required.
The files are read again on every request (a sidecar may rotate them; surrounding whitespace is
ignored) and compared in constant time.  Nothing of a request's credentials is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from dxai.configs.errors import ConfigError, ServiceUnavailableError
from dxai.configs.schema.root import EmbeddedIntakeConfig

SIGNATURE_HEADER = "x-dxai-signature"
_SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True)
class WebhookAuth:
    """The credentials ``POST /events`` must carry."""

    token_file: Path | None = None
    hmac_secret_file: Path | None = None

    @classmethod
    def from_config(cls, emb: EmbeddedIntakeConfig) -> WebhookAuth | None:
        """The configured authentication, or None when the webhook is open (loopback only)."""
        if not emb.webhook_authenticated():
            return None
        token = emb.webhook_bearer_token_file
        secret = emb.webhook_hmac_secret_file
        return cls(Path(token) if token else None, Path(secret) if secret else None)

    def _read(self) -> tuple[bytes | None, bytes | None]:
        """(token, secret), stripped; raise OSError when a configured file cannot be read."""
        token = self.token_file.read_bytes().strip() if self.token_file else None
        secret = self.hmac_secret_file.read_bytes().strip() if self.hmac_secret_file else None
        return token, secret

    def check(self) -> None:
        """At start: every configured file is readable and not empty (blocking)."""
        try:
            token, secret = self._read()
        except OSError as exc:
            raise ConfigError(f"webhook credential file cannot be read: {exc.strerror}") from exc
        if token == b"" or secret == b"":
            raise ConfigError("webhook credential file is empty")

    async def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """True when the request carries every configured credential, each valid."""
        try:
            token, secret = await anyio.to_thread.run_sync(self._read)
        except OSError as exc:
            raise ServiceUnavailableError("webhook credential file cannot be read") from exc
        ok = True
        if token is not None:
            ok = _bearer_ok(headers.get("authorization", ""), token) and ok
        if secret is not None:
            ok = _signature_ok(headers.get(SIGNATURE_HEADER, ""), secret, body) and ok
        return ok


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Dxai-Signature`` value of ``body`` under ``secret``."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _bearer_ok(header: str, token: bytes) -> bool:
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token)


def _signature_ok(header: str, secret: bytes, body: bytes) -> bool:
    if not secret:
        return False
    given = header.strip().lower().encode("utf-8")
    return hmac.compare_digest(given, sign(secret, body).encode("ascii"))
