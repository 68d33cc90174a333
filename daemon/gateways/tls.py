"""Client TLS contexts from the ``tls_*`` keys of an endpoint (DICOMweb over https, DIMSE TLS)."""

from __future__ import annotations

import ssl

from dxai.configs.errors import ConfigError
from dxai.configs.schema.services import DimseEndpoint, TlsSettings


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A TLS client context: system CAs (or ``tls_ca_file``), client cert, verification.

    Unreadable or invalid files raise :class:`ConfigError` naming the key, not the contents.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_ca_file cannot be loaded ({type(exc).__name__})") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert_file is not None:
        try:
            ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_cert_file/tls_key_file cannot be loaded ({type(exc).__name__})"
            ) from exc
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dimse_tls_args(peer: DimseEndpoint) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's ``tls_args`` (context, server host name) for ``peer``; None without TLS."""
    if not peer.tls:
        return None
    return client_context(peer), peer.tls_server_hostname or peer.host
