"""The review queue inside the daemon: the store the pipeline keeps held studies in, the
service, the CLI's queued actions, the retention purge and (when configured) the HTTP API.

:func:`open_review_store` runs before the pipeline is built (it is the pipeline's keeper);
:class:`ReviewComponent` starts after the pipeline and stops before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dxai.configs.errors import ConfigError, DxaiError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.base import StudySink
from dxai.daemon.jobs import FINAL_STATES, JobRecord, JobStore
from dxai.daemon.pipeline.finish import ReviewConclusion
from dxai.daemon.review.actions import FILE_NAME as ACTIONS_FILE
from dxai.daemon.review.actions import ActionQueue, QueuedAction
from dxai.daemon.review.auth import Authenticator, Principal
from dxai.daemon.review.crypto import default_key_path, load_or_create_key
from dxai.daemon.review.errors import (
    ReviewConflictError,
    ReviewForbiddenError,
    ReviewTamperedError,
)
from dxai.daemon.review.manifest import Manifest
from dxai.daemon.review.reid import ReidLookup, open_reid_map
from dxai.daemon.review.service import HELD, ReviewService
from dxai.daemon.review.store import FOLDER, ReviewStore
from dxai.observability.logging import get_logger

if TYPE_CHECKING:
    from dxai.daemon.audit import Auditor
    from dxai.daemon.pipeline import Pipeline
    from dxai.daemon.review.server import ReviewServer

log = get_logger(__name__)


def reid_seal_name(action_id: int) -> str:
    """What a queued lookup's sealed answer is bound to (its action)."""
    return f"reid-action-{action_id}"


def review_root(config: DxaiConfig) -> Path:
    """``<data_dir>/review``."""
    return Path(config.state.data_dir) / FOLDER


def key_path(config: DxaiConfig) -> Path:
    """The configured review key file, or the default under the data dir."""
    configured = config.review.key_file
    return Path(configured) if configured else default_key_path(Path(config.state.data_dir))


def make_store(
    config: DxaiConfig, audit: Auditor | None = None, *, create: bool = True
) -> ReviewStore:
    """The review store with its key (created 0600 when missing unless ``create`` is false:
    the CLI, which must not make a key of its own; blocking)."""
    path = key_path(config)
    if not create and not path.exists():
        raise ConfigError(f"no review key at {path}: give --config with review.key_file")
    key, created = load_or_create_key(path)
    if created:
        log.info("review key generated", extra={"component": "review"})
    return ReviewStore(review_root(config), key, audit)


async def open_review_store(config: DxaiConfig, audit: Auditor | None) -> ReviewStore | None:
    """The pipeline's keeper of held studies; None when ``review.enabled`` is false."""
    if not config.review.enabled:
        return None
    store = await asyncio.to_thread(make_store, config, audit)
    await asyncio.to_thread(store.sweep_temporary)
    return store


class PipelineReleaser:
    """What approval needs of the pipeline: the job's sink and the new conclusion."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def sink_for(self, event: StudyEvent) -> StudySink:
        """The destination of ``event``'s job (the pipeline's routing)."""
        return self.pipeline.parts.sink_for(event)

    async def conclude_review(self, key: str, review: ReviewConclusion) -> JobRecord:
        """Record the reviewer's conclusion and send it."""
        return await self.pipeline.conclude_review(key, review)


class ReviewComponent(AsyncLifecycle):
    """Runs the review queue beside the pipeline (see the module doc)."""

    def __init__(
        self,
        config: DxaiConfig,
        store: ReviewStore,
        jobs: JobStore,
        audit: Auditor | None,
        pipeline: Pipeline,
    ) -> None:
        self.config, self.settings = config, config.review
        self.store, self.jobs, self.audit = store, jobs, audit
        pixels = pipeline.parts.processor.pixels
        actor = pixels.actor if pixels is not None else None
        governance = pipeline.parts.governance
        if actor is None and governance is not None:  # a rule's pixel mode loaded the OCR
            actor = governance.actor
        self.service = ReviewService(
            store,
            jobs,
            audit,
            PipelineReleaser(pipeline),
            actor=actor,
            max_boxes=config.review.max_boxes_per_instance,
        )
        self.auth = Authenticator(self.settings.users, self.settings.session_ttl_s)
        self.queue = ActionQueue(review_root(config) / ACTIONS_FILE)
        self.reid = ReidLookup(None, audit)  # the map is opened at start (when it is on)
        self.server: ReviewServer | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def http_port(self) -> int | None:
        """The port the review API listens on (None: not configured)."""
        return self.server.port if self.server is not None else None

    async def start(self) -> None:
        """Check the token files, start the API (if configured), the poller and the purge."""
        if self._tasks:
            return
        await asyncio.to_thread(self.auth.check)
        reid_map = await asyncio.to_thread(open_reid_map, self.config)
        self.reid = ReidLookup(reid_map, self.audit)
        if self.settings.http_port is not None:
            from dxai.daemon.review.api import ReviewApp
            from dxai.daemon.review.server import ReviewServer

            app = ReviewApp(self.service, self.auth, self.purge_now, self.reid)
            server = ReviewServer(app.app, self.settings.bind_host, self.settings.http_port)
            await server.start()
            self.server = server
        self._tasks = [
            asyncio.create_task(self._every(self.settings.poll_interval_s, self.take_actions)),
            asyncio.create_task(self._every(self.settings.purge_interval_s, self.purge_now)),
        ]

    async def stop(self) -> None:
        """Stop the API, the poller and the purge (idempotent)."""
        self._stop.set()
        if self.server is not None:
            await self.server.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.reid.map is not None:
            self.reid.map.close()

    async def _every(self, interval_s: float, call: Callable[[], Awaitable[object]]) -> None:
        while not self._stop.is_set():
            try:
                await call()
            except DxaiError as exc:
                log.error("review task failed", extra={"error_code": exc.code})
            except Exception as exc:  # noqa: BLE001 - a periodic task must outlive one failure
                log.error("review task failed", extra={"error_code": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval_s)

    # -- the CLI's queued actions --------------------------------------------------------
    async def take_actions(self) -> int:
        """Carry out the actions ``dxai review approve|reject`` queued; how many."""
        actions = await asyncio.to_thread(self.queue.pending)
        for action in actions:
            status, code, result = "done", "", ""
            try:
                result = await self._carry_out(action)
            except DxaiError as exc:
                status, code = "failed", exc.code
            except Exception as exc:  # noqa: BLE001 - an action that fails is never retried
                status, code = "failed", "internal_error"
                log.error("review action crashed", extra={"error_code": type(exc).__name__})
            await asyncio.to_thread(self.queue.finish, action.id, status, code, result)
            log.info("review action", extra={"job": action.job_key[:16], "status": status})
        return len(actions)

    async def _carry_out(self, action: QueuedAction) -> str:
        """Carry out one queued action; its result for the CLI (sealed), if any."""
        if action.action == "reid":
            return await self._reid(action)
        user = self.settings.users.get(action.user)
        if user is not None and not Principal(action.user, user.role).may("reviewer"):
            await self.service.denied(action.job_key, action.user, action.action)
            raise ReviewForbiddenError(f"role {user.role} may not {action.action}")
        comment = ""
        if action.comment:
            comment = await asyncio.to_thread(self.store.open_text, action.job_key, action.comment)
        if action.action == "approve":
            await self.service.approve(action.job_key, action.user, comment, via="cli")
        else:
            await self.service.reject(action.job_key, action.user, comment, via="cli")
        return ""

    async def _reid(self, action: QueuedAction) -> str:
        """A re-identification lookup queued by ``dxai review reid``: only a user configured
        with the ``admin`` role; audited; the answer sealed for the CLI under this action."""
        user = self.settings.users.get(action.user)
        if user is None or not Principal(action.user, user.role).may("admin"):
            await self.service.denied("", action.user, "reid_lookup")
            raise ReviewForbiddenError("only a review.users admin may look up originals")
        kind, _, key = action.comment.partition(":")
        if kind not in ("uid", "patient") or not key:
            raise ReviewConflictError("not a lookup")
        original = await self.reid.lookup(kind, key, action.user, via="cli")  # type: ignore[arg-type]
        return await asyncio.to_thread(self.store.seal_text, reid_seal_name(action.id), original)

    # -- retention -----------------------------------------------------------------------
    def _timeout(self, manifest: Manifest) -> float:
        """How long a held study waits for a decision: the policy's time-out, else
        ``review.retention_s``."""
        return manifest.timeout_s or self.settings.retention_s

    async def purge_now(self) -> dict[str, int]:
        """Expire held studies past ``retention_s`` (concluded ``block``), remove decided
        reviews past it, and kept studies whose job ended otherwise; the counts."""
        counts = {"expired": 0, "removed": 0}
        now = time.time()
        for key in await asyncio.to_thread(self.store.job_keys):
            try:
                manifest = await asyncio.to_thread(self.store.load, key)
            except ReviewTamperedError:
                log.error("review manifest failed its check", extra={"job": key[:16]})
                continue
            if manifest is None:
                continue
            job = await self.jobs.get(key)
            if manifest.status == "pending":
                if job is None or (job.state in FINAL_STATES and job.state != HELD):
                    await asyncio.to_thread(self.store.remove, key)
                    counts["removed"] += 1
                elif job.state == HELD and now - manifest.kept_at > self._timeout(manifest):
                    await self.service.expire(key)
                    counts["expired"] += 1
            elif now - (manifest.decided_at or manifest.kept_at) > self.settings.retention_s:
                await asyncio.to_thread(self.store.remove, key)
                counts["removed"] += 1
        if (counts["expired"] or counts["removed"]) and self.audit is not None:
            await self.audit.append("review_purge", "", counts, actor="system:review")
        return counts


async def open_review(
    config: DxaiConfig,
    store: ReviewStore | None,
    jobs: JobStore,
    audit: Auditor | None,
    pipeline: Pipeline,
    stack: contextlib.AsyncExitStack,
) -> ReviewComponent | None:
    """Start the review component on ``stack`` (stopped before the pipeline); None when off."""
    if store is None:
        return None
    component = ReviewComponent(config, store, jobs, audit, pipeline)
    return await stack.enter_async_context(component)
