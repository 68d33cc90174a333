"""Embedded mode intake: C-STORE landing zone, webhook and MLLP listener feeding one pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from dxai.configs.errors import ConfigError, DxaiError
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.routes import DEFAULT_ROUTE, is_loopback
from dxai.configs.schema.services import DicomWebSourceSpec
from dxai.daemon.intake.dicom_scp import QuietTracker, StoreScp
from dxai.daemon.intake.landing import LandingZone
from dxai.daemon.intake.landing_sweep import sweep_forever
from dxai.daemon.intake.mllp import MllpListener
from dxai.daemon.intake.submit import Submit
from dxai.daemon.intake.webhook import Webhook
from dxai.daemon.intake.webhook_auth import WebhookAuth
from dxai.daemon.jobs import JobStore
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from dxai.daemon.pipeline.inbound_prefetch import PriorPrefetcher

log = get_logger(__name__)
EMBEDDED_EVENT_TYPE = "study_scheduled_for_exchange"


@dataclass(frozen=True)
class EmbeddedPorts:
    """The ports the listeners are bound to (useful when the configuration asked for 0)."""

    dicom: int
    http: int
    mllp: int


def landing_job_id(study_uid: str) -> str:
    """A fresh job id for a sealed landing-zone study: time plus a hash of the study UID."""
    digest = hashlib.sha256(study_uid.encode()).hexdigest()[:12]
    return f"scp-{time.time_ns() // 1_000_000}-{digest}"


class EmbeddedIntake:
    """Starts the three listeners; ``await run(stop)`` serves until ``stop`` is set."""

    def __init__(
        self, config: DxaiConfig, submit: Submit, sensor: Sensor, store: JobStore | None = None
    ) -> None:
        self.config = config
        self.store = store
        self._sweeper: asyncio.Task[None] | None = None
        self.submit = submit
        self.sensor = sensor
        self.zone = LandingZone(Path(config.state.data_dir) / "landing")
        emb = config.embedded
        self.tracker = QuietTracker(
            emb.study_quiet_period_s, self._complete, emb.study_open_association_max_s
        )
        self.webhook = Webhook(submit, sensor, WebhookAuth.from_config(config.embedded))
        kind = "study_received" if config.inbound.enabled else "study_scheduled_for_exchange"
        self.prefetcher: PriorPrefetcher | None = None
        if config.inbound.enabled and config.inbound.priors.enabled:
            from dxai.daemon.pipeline.inbound import open_prefetcher

            self.prefetcher = open_prefetcher(config, sensor)
        on_adt = self.prefetcher.on_message if self.prefetcher is not None else None
        self.mllp = MllpListener(submit, sensor, self._order_source(), kind, on_adt)
        self._scp: StoreScp | None = None
        self._jobs: set[asyncio.Task[str | None]] = set()
        self.ports: EmbeddedPorts | None = None

    def _order_source(self) -> dict[str, Any]:
        default = self.config.source_routes().get(DEFAULT_ROUTE)
        if isinstance(default, DicomWebSourceSpec):
            return {"kind": "dicomweb"}
        return {"kind": "local", "path": str(self.zone.batches.resolve())}

    async def start(self) -> EmbeddedPorts:
        """Bind every listener and re-arm studies left in the landing zone by a restart."""
        emb = self.config.embedded
        await self._check_webhook_auth()
        loop = asyncio.get_running_loop()
        self._scp = StoreScp(
            self.zone, emb.ae_title, self._arrived, loop, self.tracker.association_ended
        )
        dicom = await anyio.to_thread.run_sync(self._scp.start, emb.bind_host, emb.dicom_port)
        http = await self.webhook.start(emb.bind_host, emb.http_port)
        mllp = await self.mllp.start(emb.bind_host, emb.mllp_port)
        for study_uid in await anyio.to_thread.run_sync(self.zone.pending):
            self.tracker.touch(study_uid)
        for raw in await anyio.to_thread.run_sync(self.zone.sealed_events):
            await self.submit(raw, None, "scp")
        self._start_sweeper()
        self.ports = EmbeddedPorts(dicom=dicom, http=http, mllp=mllp)
        return self.ports

    async def _check_webhook_auth(self) -> None:
        """Refuse to start an open webhook off loopback, or one whose credentials are unreadable."""
        auth = self.webhook.auth
        if auth is None and not is_loopback(self.config.embedded.bind_host):
            raise ConfigError("embedded.bind_host: an unauthenticated webhook must bind loopback")
        if auth is not None:
            await anyio.to_thread.run_sync(auth.check)

    def _start_sweeper(self) -> None:
        """Clean finished landing batches (needs the job store and a retention)."""
        retention = self.config.embedded.landing_retention_s
        if self.store is None or retention is None:
            return
        self._sweeper = asyncio.create_task(
            sweep_forever(
                self.zone,
                self.store,
                self.config.pipeline.version,
                retention,
                self.config.embedded.landing_sweep_interval_s,
            )
        )

    async def stop(self) -> None:
        """Close listeners, forget quiet timers, wait for submissions in flight."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._scp is not None:
            await anyio.to_thread.run_sync(self._scp.stop)
            self._scp = None
        await self.webhook.stop()
        await self.mllp.stop()
        if self.prefetcher is not None:
            await self.prefetcher.stop()
        self.tracker.cancel_all()
        if self._jobs:
            await asyncio.wait(set(self._jobs))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def _arrived(self, study_uid: str, association: int) -> None:
        self.sensor.count("instances", {"component": "scp", "status": "received"})
        self.tracker.touch(study_uid, association)

    def _complete(self, study_uid: str) -> None:
        task = asyncio.create_task(self.seal_and_submit(study_uid))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def seal_and_submit(self, study_uid: str) -> str | None:
        """Seal the arrived instances of ``study_uid`` as a batch and submit its job."""
        job_id = landing_job_id(study_uid)
        event = {
            "event_type": EMBEDDED_EVENT_TYPE,
            "study_uid": study_uid,
            "destination": "default",
            "exchange_job_id": job_id,
            "source": {"kind": "local", "path": str(self.zone.batch_path(job_id))},
        }
        raw = json.dumps(event).encode()
        if not await anyio.to_thread.run_sync(self.zone.seal, study_uid, job_id, raw):
            return None
        try:
            admission = await self.submit(raw, None, "scp")
        except DxaiError as exc:
            log.exception("landing job not admitted", extra={"error_code": exc.code})
            return None
        log.info("landing study sealed", extra={"status": admission})
        return job_id
