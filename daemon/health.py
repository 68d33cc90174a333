"""The daemon's readiness checks: routes reachable, models loaded, staging below its limit.

Probes of the configured sources and destinations run in the background every
``health.probe_interval_s`` (each gives up after ``probe_timeout_s``); the readiness checks only
read their last results.  A probe never sends credentials and never reads or writes a study:

- DICOMweb: one ``GET`` of the ``base_url`` with the endpoint's TLS settings; any HTTP answer
  below 500 (401 and 404 included) means the service answers.
- DIMSE: a TCP connection to ``host:port`` (no association is opened).
- local source / folder destination: the folder (or, for a folder not made yet, its nearest
  existing parent) exists and is readable / writable.

Details name the failure by a fixed phrase or an exception class, never by URL, path or message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from dxai.configs.errors import ConfigError
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import (
    DestinationSpec,
    DicomWebEndpoint,
    DimseEndpoint,
    FolderDestinationSpec,
    HealthConfig,
    LocalSourceSpec,
    SourceSpec,
)
from dxai.daemon.gateways.tls import http_verify
from dxai.daemon.pipeline.staging import Staging
from dxai.observability.health import CheckResult, HealthState
from dxai.observability.logging import get_logger

log = get_logger(__name__)
Probe = Callable[[], Awaitable[CheckResult]]
_NOT_PROBED = CheckResult(False, "not probed yet")


class RouteProbes:
    """Background reachability of every configured source and destination."""

    def __init__(self, config: DxaiConfig) -> None:
        self.health = config.health
        self._probes: dict[str, Probe] = {}
        for name, src in sorted(config.source_routes().items()):
            self._probes[f"source:{name}"] = route_probe(src, config.health)
        for name, dest in sorted(config.destination_routes().items()):
            self._probes[f"destination:{name}"] = route_probe(dest, config.health)
        self._last: dict[str, CheckResult] = dict.fromkeys(self._probes, _NOT_PROBED)

    @property
    def names(self) -> list[str]:
        """The check names: ``source:<route>`` and ``destination:<route>``."""
        return list(self._probes)

    def register(self, state: HealthState) -> None:
        """Add one readiness check per route to ``state``."""
        for name in self._probes:
            state.add(name, self._reader(name))

    def _reader(self, name: str) -> Callable[[], CheckResult]:
        return lambda: self._last[name]

    async def probe_all(self) -> dict[str, CheckResult]:
        """Probe every route once, concurrently; keep and return the results."""
        names = list(self._probes)
        results = await asyncio.gather(*(self._probe_one(n) for n in names))
        for name, result in zip(names, results, strict=True):
            if self._last[name].ok and not result.ok:
                log.warning("route unreachable", extra={"state": name, "reason": result.detail})
            self._last[name] = result
        return dict(self._last)

    async def _probe_one(self, name: str) -> CheckResult:
        try:
            return await asyncio.wait_for(self._probes[name](), self.health.probe_timeout_s)
        except TimeoutError:
            return CheckResult(False, f"no answer within {self.health.probe_timeout_s:g} s")

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every ``probe_interval_s`` until ``stop`` is set (or the task is cancelled)."""
        while not stop.is_set():
            await self.probe_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.health.probe_interval_s)


def route_probe(spec: SourceSpec | DestinationSpec, health: HealthConfig) -> Probe:
    """The probe for one configured route (see the module docstring)."""
    if isinstance(spec, DicomWebEndpoint):
        return lambda: probe_http(spec, health.probe_timeout_s)
    if isinstance(spec, DimseEndpoint):
        return lambda: probe_tcp(spec.host, spec.port)
    if isinstance(spec, LocalSourceSpec):
        return lambda: asyncio.to_thread(probe_folder, Path(spec.root), os.R_OK)
    assert isinstance(spec, FolderDestinationSpec)
    return lambda: asyncio.to_thread(probe_folder, Path(spec.path), os.W_OK)


async def probe_http(endpoint: DicomWebEndpoint, timeout_s: float) -> CheckResult:
    """GET the endpoint's base URL without credentials; an answer below 500 is reachable.

    Only the status is read: the body (an archive's start page, or a broken peer's endless
    stream) is never downloaded."""
    try:
        verify = http_verify(endpoint.base_url, endpoint)
    except ConfigError:
        return CheckResult(False, "TLS settings cannot be loaded")
    try:
        async with (
            httpx.AsyncClient(verify=verify, timeout=timeout_s) as client,
            client.stream("GET", endpoint.base_url) as response,
        ):
            status = response.status_code
    except httpx.HTTPError as exc:
        return CheckResult(False, f"unreachable ({type(exc).__name__})")
    if status >= 500:
        return CheckResult(False, f"answers HTTP {status}")
    return CheckResult(True, f"answers HTTP {status}")


async def probe_tcp(host: str, port: int) -> CheckResult:
    """Open and close a TCP connection to ``host:port``."""
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return CheckResult(False, f"unreachable ({type(exc).__name__})")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CheckResult(True, "accepts TCP connections")


def probe_folder(folder: Path, mode: int) -> CheckResult:
    """The folder (else its nearest existing parent) exists with ``mode`` access (blocking)."""
    what = "writable" if mode == os.W_OK else "readable"
    path = folder
    while not path.exists() and path.parent != path:
        path = path.parent
    if not path.is_dir():
        return CheckResult(False, "folder missing")
    if not os.access(path, mode | os.X_OK):
        return CheckResult(False, f"folder not {what}")
    return CheckResult(True, f"folder {what}")


def staging_check(staging: Staging, max_fraction: float) -> Callable[[], CheckResult]:
    """Ready while bytes staged on disk stay below ``max_fraction`` of the staging limit."""
    limit = staging.max_bytes * max_fraction

    def check() -> CheckResult:
        used = staging.used_bytes
        share = f"{100.0 * used / staging.max_bytes:.1f}% of staging_max_bytes used"
        return CheckResult(used < limit, share)

    return check


def models_check(config: DxaiConfig, loaded: bool) -> Callable[[], CheckResult]:
    """Ready when the pixel step's models loaded (or the configuration needs none)."""
    if config.deid.pixels == "never":
        result = CheckResult(True, "no models needed (deid.pixels: never)")
    elif loaded:
        result = CheckResult(True, f"pixel models loaded ({config.inference.backend})")
    else:
        result = CheckResult(False, "pixel models not loaded: instances with pixels are held")
    return lambda: result
