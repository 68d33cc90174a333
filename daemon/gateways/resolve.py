"""Event -> configured source and destination: an event selects, the configuration supplies.

Nothing an event says can widen what the daemon may reach or send.  The rules (``docs/events.md``):

- ``{"name": N}`` (with or without ``kind``): the configured source ``N``; a ``kind`` or any
  peer value the event adds must agree with it.
- ``dicomweb`` without ``name``: ``base_url`` absent means the ``default`` source; present, it
  must equal (scheme, host, port, path without trailing slash) a configured source's
  ``base_url``.  The configured endpoint, credentials and TLS settings are used.
- ``dimse`` without ``name``: (``ae_title``, ``host``, ``port``) must equal a configured
  source's; method and C-MOVE destination come from the configuration (an event value is
  accepted only when it equals the configured one).
- ``local``: the path, resolved with its symbolic links, must lie inside a configured
  ``local`` root (also resolved) or, in embedded mode, the landing zone's ``landing/batches``.
- ``destination``: with ``destinations`` configured, the event must name one of them (or the
  ``default`` one); without, every job goes to the ``default`` destination.

Anything else raises :class:`SourceNotAllowedError` (permanent: the job is blocked and its event
dead-lettered).  Messages never repeat what the event said.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from dxai.configs.errors import ConfigError, SourceNotAllowedError
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.routes import DEFAULT_ROUTE
from dxai.configs.schema.services import (
    DicomWebDestinationSpec,
    DicomWebEndpoint,
    DicomWebSourceSpec,
    DimseDestinationSpec,
    DimseEndpoint,
    DimseSourceSpec,
    LocalSourceSpec,
    SourceSpec,
)
from dxai.daemon.events import DicomWebSource, DimseSource, LocalSource, StudyEvent
from dxai.daemon.gateways.base import StoreReport, StudySink, StudySource
from dxai.daemon.gateways.dicomweb import DicomWebGateway
from dxai.daemon.gateways.dimse import DimseSink
from dxai.daemon.gateways.dimse import DimseSource as DimseGateway
from dxai.daemon.gateways.dimse_move import MoveTarget
from dxai.daemon.gateways.folder import FolderSink
from dxai.daemon.gateways.local import LocalFolderSource
from dxai.daemon.gateways.tls import client_context, dimse_tls_args

_DEFAULT_PORTS = {"http": 80, "https": 443}
UrlKey = tuple[str, str, int, str]


def url_key(url: str) -> UrlKey | None:
    """(scheme, host, port, path without trailing slash) of an http(s) URL; None if not one.

    A URL with credentials, a query or a fragment has no key (it never matches).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/")


def landing_batches(config: DxaiConfig) -> Path:
    """The embedded landing zone's sealed batches (``intake/embedded.py`` puts them there)."""
    return Path(config.state.data_dir) / "landing" / "batches"


def _refuse(why: str) -> SourceNotAllowedError:
    return SourceNotAllowedError(why)


class Routes:
    """The configured sources and destinations, and the one place an event is matched to them."""

    def __init__(self, config: DxaiConfig) -> None:
        self.config = config
        self.sources = config.source_routes()
        self.destinations = config.destination_routes()
        self.local_roots = {
            name: Path(spec.root).resolve()
            for name, spec in self.sources.items()
            if isinstance(spec, LocalSourceSpec)
        }
        self.landing = landing_batches(config).resolve() if config.mode == "embedded" else None
        self._sinks: dict[str, StudySink] = {}

    def check_tls(self) -> None:
        """Build every configured TLS context once: a bad ``tls_*`` file fails at start."""
        for spec in [*self.sources.values(), *self.destinations.values()]:
            if isinstance(spec, DicomWebEndpoint) and spec.base_url.lower().startswith("https:"):
                client_context(spec)
            elif isinstance(spec, DimseEndpoint):
                dimse_tls_args(spec)

    # -- sources ---------------------------------------------------------------------------

    def source_for(self, event: StudyEvent) -> StudySource:
        """The study source of ``event`` (its destination checked first: refuse before fetching)."""
        self.destination_name(event)
        src = event.source
        if isinstance(src, DicomWebSource):
            return DicomWebGateway(self._dicomweb(src))
        if isinstance(src, DimseSource):
            return self._dimse_gateway(self._dimse(src))
        if isinstance(src, LocalSource):
            return LocalFolderSource(*self._local(src))
        spec = self._named(src.name)
        if isinstance(spec, DicomWebSourceSpec):
            return DicomWebGateway(spec)
        if isinstance(spec, DimseSourceSpec):
            return self._dimse_gateway(spec)
        root = self.local_roots[src.name]
        return LocalFolderSource(*self._inside(root, [root]))

    def source_name(self, event: StudyEvent) -> str | None:
        """The configured source name ``event`` resolves to (``landing`` for the embedded
        landing zone); None when it resolves to none (the job will be refused)."""
        src = event.source
        try:
            if isinstance(src, LocalSource):
                _real, root = self._local(src)
                names = [n for n, r in self.local_roots.items() if r == root]
                return names[0] if names else "landing"
            if isinstance(src, DicomWebSource):
                spec: SourceSpec = self._dicomweb(src)
            elif isinstance(src, DimseSource):
                spec = self._dimse(src)
            else:
                spec = self._named(src.name)
        except (SourceNotAllowedError, ConfigError):
            return None
        return next((name for name, s in self.sources.items() if s is spec), None)

    def _named(self, name: str, kind: str | None = None) -> SourceSpec:
        spec = self.sources.get(name)
        if spec is None:
            raise _refuse("the event names a source that is not configured")
        if kind is not None and spec.kind != kind:
            raise _refuse(f"the named source is not of kind {kind}")
        return spec

    def _dicomweb(self, src: DicomWebSource) -> DicomWebSourceSpec:
        if src.name is not None:
            spec = self._named(src.name, "dicomweb")
            assert isinstance(spec, DicomWebSourceSpec)
            if src.base_url is not None and url_key(src.base_url) != url_key(spec.base_url):
                raise _refuse("the event's base_url is not the named source's")
            return spec
        if src.base_url is None:
            default = self.sources.get(DEFAULT_ROUTE)
            if not isinstance(default, DicomWebSourceSpec):
                raise _refuse("no default dicomweb source is configured")
            return default
        key = url_key(src.base_url)
        for _name, spec in sorted(self.sources.items()):
            if isinstance(spec, DicomWebSourceSpec) and key == url_key(spec.base_url):
                return spec
        raise _refuse("the event's base_url is not a configured dicomweb source")

    def _dimse(self, src: DimseSource) -> DimseSourceSpec:
        if src.name is not None:
            spec = self._named(src.name, "dimse")
            assert isinstance(spec, DimseSourceSpec)
        else:
            spec = self._dimse_by_peer(src)
        given = (src.ae_title, (src.host or "").lower() or None, src.port)
        own = (spec.ae_title, spec.host.lower(), spec.port)
        if any(g is not None and g != o for g, o in zip(given, own, strict=True)):
            raise _refuse("the event's DIMSE peer is not the named source")
        if src.method not in (None, spec.method):
            raise _refuse("the event's retrieve method is not the configured one")
        target = self.move_target(spec)
        wanted = (src.move_destination_ae, src.move_destination_port)
        allowed = (target.ae_title, target.port) if target else (None, None)
        if any(w is not None and w != a for w, a in zip(wanted, allowed, strict=True)):
            raise _refuse("the event's move destination is not the configured one")
        return spec

    def _dimse_by_peer(self, src: DimseSource) -> DimseSourceSpec:
        peer = (src.ae_title, (src.host or "").lower(), src.port)
        for _name, spec in sorted(self.sources.items()):
            if isinstance(spec, DimseSourceSpec) and peer == (
                spec.ae_title,
                spec.host.lower(),
                spec.port,
            ):
                return spec
        raise _refuse("the event's DIMSE peer is not a configured source")

    def move_target(self, spec: DimseSourceSpec) -> MoveTarget | None:
        """Where ``spec``'s C-MOVE sends (our SCP) and whom it accepts; None for C-GET."""
        if spec.method != "c-move":
            return None
        emb = self.config.embedded
        port = spec.move_destination_port or emb.dicom_port
        if self.config.mode == "embedded" and port == emb.dicom_port:
            raise ConfigError("C-MOVE destination port is the embedded landing zone's")
        return MoveTarget(
            ae_title=spec.move_destination_ae or emb.ae_title,
            port=port,
            host=emb.bind_host,
            sender_ae=spec.move_sender_ae or spec.ae_title,
        )

    def _dimse_gateway(self, spec: DimseSourceSpec) -> DimseGateway:
        work = Path(self.config.state.data_dir) / "moves"
        target = self.move_target(spec)
        return DimseGateway(spec, self.config.embedded.ae_title, spec.method, target, work)

    def _local(self, src: LocalSource) -> tuple[Path, Path]:
        if src.name is not None:
            self._named(src.name, "local")
            root = self.local_roots[src.name]
            # a relative path is taken inside the root; an absolute one must lie inside it
            return self._inside(root / src.path if src.path is not None else root, [root])
        assert src.path is not None
        roots = list(self.local_roots.values())
        if self.landing is not None:
            roots.append(self.landing)
        return self._inside(Path(src.path), roots)

    @staticmethod
    def _inside(path: Path, roots: Sequence[Path]) -> tuple[Path, Path]:
        """``path`` with its symbolic links resolved and the root it lies in; refused if none."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError, ValueError) as exc:  # ValueError: a NUL in the path
            raise _refuse("the local source path cannot be resolved") from exc
        for root in roots:
            if real.is_relative_to(root):
                return real, root
        raise _refuse("the local source path lies outside every allowed local root")

    # -- destinations ----------------------------------------------------------------------

    def destination_name(self, event: StudyEvent) -> str:
        """The destination route of ``event`` (``default`` when no ``destinations`` are set)."""
        if not self.config.destinations:
            return DEFAULT_ROUTE
        if event.destination in self.destinations:
            return event.destination
        raise _refuse("the event names a destination that is not configured")

    def sink_for(self, event: StudyEvent) -> StudySink:
        """The destination of ``event``'s job (one sink per route, kept until :meth:`aclose`)."""
        return self.sink_named(self.destination_name(event))

    def sink_named(self, name: str) -> StudySink:
        """The sink of the destination route ``name`` (created on first use)."""
        sink = self._sinks.get(name)
        if sink is None:
            sink = self._sinks[name] = self._new_sink(name)
        return sink

    def _new_sink(self, name: str) -> StudySink:
        spec = self.destinations.get(name)
        if spec is None:
            raise ConfigError(
                "no destination: set destinations, destination_dicomweb or destination_dimse"
            )
        if isinstance(spec, DicomWebDestinationSpec):
            return DicomWebGateway(spec)
        if isinstance(spec, DimseDestinationSpec):
            return DimseSink(spec, self.config.embedded.ae_title)
        return FolderSink(spec.path)

    def fallback_sink(self) -> StudySink:
        """The ``default`` destination's sink, or one that refuses (every route is named)."""
        if DEFAULT_ROUTE in self.destinations:
            return self.sink_named(DEFAULT_ROUTE)
        return RefusingSink()

    async def aclose(self) -> None:
        """Close every sink created so far."""
        sinks, self._sinks = list(self._sinks.values()), {}
        for sink in sinks:
            await sink.aclose()


class RefusingSink:
    """A sink for jobs no configured destination takes: stores nothing, raises."""

    async def store(self, instances: Sequence[object]) -> StoreReport:
        """Refuse."""
        raise SourceNotAllowedError("no default destination is configured")

    async def aclose(self) -> None:
        """Nothing held."""
