"""Client TLS contexts from the ``tls_*`` keys of an endpoint (DICOMweb over https, DIMSE TLS).

A context is built once per distinct settings (and state of the files they name) and shared:
building one loads the CA store, about 10 ms of CPU, and every job's DICOMweb client and every
health probe asked for a fresh one.  A changed CA, certificate or key file (its size or
modification time) builds a new context at the next client.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path

from dxai.configs.errors import ConfigError
from dxai.configs.schema.services import DimseEndpoint, TlsSettings

_FileState = tuple[str, int, int] | None
_Key = tuple[_FileState, _FileState, _FileState, bool]


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A TLS client context: system CAs (or ``tls_ca_file``), client cert, verification.

    Unreadable or invalid files raise :class:`ConfigError` naming the key, not the contents.
    """
    files = (settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
    ca, cert, key = (_file_state(path) for path in files)
    return _context((ca, cert, key, settings.tls_verify))


def http_verify(url: str, settings: TlsSettings) -> ssl.SSLContext:
    """httpx's ``verify`` for a client of ``url``: the settings' context for ``https``, the
    shared system-store context otherwise (httpx would build one per client)."""
    if url.lower().startswith("https:"):
        return client_context(settings)
    return _context((None, None, None, True))


def _file_state(path: str | None) -> _FileState:
    """``path`` with its size and modification time (a changed file is a new cache key)."""
    if path is None:
        return None
    try:
        info = Path(path).stat()
    except OSError:
        return (path, -1, -1)  # building the context reports it
    return (path, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=32)
def _context(key: _Key) -> ssl.SSLContext:
    """The context for one cache key (a failure is not cached: it raises again next time)."""
    ca, cert, private, verify = key
    ca_file, cert_file = (ca[0] if ca else None), (cert[0] if cert else None)
    key_file = private[0] if private else None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_ca_file cannot be loaded ({type(exc).__name__})") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_cert_file/tls_key_file cannot be loaded ({type(exc).__name__})"
            ) from exc
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dimse_tls_args(peer: DimseEndpoint) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's ``tls_args`` (context, server host name) for ``peer``; None without TLS."""
    if not peer.tls:
        return None
    return client_context(peer), peer.tls_server_hostname or peer.host
