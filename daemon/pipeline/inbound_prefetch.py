"""Prior prefetch on ADT^A04 / A01 (a patient registered or admitted): search the archive for
the patient's priors and, with ``inbound.priors.retrieve``, fetch them under
``<data_dir>/priors/adt/<patient digest>/`` so that they are ready when the study arrives.

Runs beside intake, never in the way of the ACK: a prefetch that fails (the archive down) is
logged by code and counted; it is a convenience, the study's own priors search still runs.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date
from pathlib import Path

import anyio.to_thread

from dxai.actors.inbound.adt import demographics_of_adt
from dxai.actors.inbound.patient_match import Demographics
from dxai.actors.inbound.priors import CurrentStudy, Prior
from dxai.configs.errors import DxaiError
from dxai.configs.schema.priors import PriorsConfig
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.priors import retrieve_prior, search_priors
from dxai.daemon.gateways.priors_local import search_local_priors
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

log = get_logger(__name__)


class PriorPrefetcher:
    """Starts one prefetch per announced patient; ``stop`` waits for those in flight.

    ``archive``: the DICOMweb endpoint or the local folder priors are searched in; ``folder``:
    where ``priors.retrieve`` puts what it fetches (None: nothing is fetched).
    """

    def __init__(
        self,
        archive: DicomWebEndpoint | Path,
        config: PriorsConfig,
        folder: Path | None,
        sensor: Sensor,
    ) -> None:
        self.archive, self.config, self.folder, self.sensor = archive, config, folder, sensor
        self._tasks: set[asyncio.Task[int]] = set()

    async def on_message(self, text: str) -> None:
        """Start the prefetch an ADT^A04 / A01 asks for (other messages: nothing)."""
        target = await anyio.to_thread.run_sync(demographics_of_adt, text)
        if target is None:
            return
        task = asyncio.create_task(self.prefetch(target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def prefetch(self, target: Demographics) -> int:
        """Search (and fetch) the patient's priors; how many were found (0 on failure)."""
        try:
            priors = await self._search(target)
            if self.config.retrieve and priors:
                await self._retrieve(target, priors)
        except DxaiError as exc:
            log.warning("prior prefetch failed", extra={"error_code": exc.code})
            self.sensor.count("errors", {"component": "prefetch", "error_code": exc.code})
            return 0
        log.info("prior prefetch done", extra={"count": len(priors)})
        return len(priors)

    async def _search(self, target: Demographics) -> tuple[Prior, ...]:
        current = CurrentStudy(study_uid="", study_date=date.today())
        if isinstance(self.archive, DicomWebEndpoint):
            return await search_priors(self.archive, target, current, self.config)
        return await search_local_priors(self.archive, target, current, self.config)

    async def _retrieve(self, target: Demographics, priors: tuple[Prior, ...]) -> None:
        archive, folder = self.archive, self.folder
        if not isinstance(archive, DicomWebEndpoint) or folder is None:
            return  # a local archive folder is already at hand
        digest = hashlib.sha256(f"{target.issuer}|{target.patient_id}|{target.name}".encode())
        for prior in priors:
            await retrieve_prior(archive, prior, folder / "adt" / digest.hexdigest()[:24])

    async def stop(self) -> None:
        """Wait for the prefetches in flight (each bounded by the archive's timeouts)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))
