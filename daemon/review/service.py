"""The review service: list, show, comment, edit boxes, verify, approve, reject, expire.

One service behind the HTTP API, the web page and the CLI's queued actions.  Every action is
recorded in the audit log with its user (actor ``user:<name>``) before it takes effect; the
records hold job keys, de-identified UIDs, codes and counts, never a comment's text.  Actions
on one job are serialised.  Approval releases the kept study to the job's destination (the
same sink routing as the pipeline) and then replaces the held conclusion with ``proceed`` /
``released``, sent like every output; rejection (and a review past ``retention_s``) concludes
``block`` / ``blocked``.  The sealed instances are deleted once a review is decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydicom import dcmread

from dxai.actors.outbound.pixel_step import PixelActor
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.base import StudySink
from dxai.daemon.pipeline.finish import ReviewConclusion
from dxai.daemon.review import views
from dxai.daemon.review.errors import (
    ReviewConflictError,
    ReviewNotFoundError,
    ReviewUnavailableError,
)
from dxai.daemon.review.imaging import VerifyOutcome, fill_and_verify, render_png
from dxai.daemon.review.manifest import (
    BoxModel,
    CommentEntry,
    KeptEntry,
    Manifest,
    ReviewerBox,
    VerifyState,
)
from dxai.daemon.review.store import ReviewStore

if TYPE_CHECKING:
    from dxai.daemon.audit import Auditor
    from dxai.daemon.jobs import JobRecord, JobStore

HELD = "held_for_review"
PASSING = frozenset({"clean", "redacted"})
Which = Literal["before", "after"]
MAX_COMMENT_CHARS = 4000


class Releaser(Protocol):
    """What approval needs of the daemon: the job's destination and the new conclusion."""

    def sink_for(self, event: StudyEvent) -> StudySink:
        """The destination of the job of ``event``."""
        ...

    async def conclude_review(self, key: str, review: ReviewConclusion) -> JobRecord:
        """Record and send the reviewer's conclusion."""
        ...


@dataclass(frozen=True)
class Prepared:
    """A kept study decrypted for its release: files, their SHA-256, the de-identified UID."""

    files: list[Path]
    sha256: list[str]
    study_uid_out: str | None


class ReviewService:
    """See the module doc.  ``releaser`` None (the CLI): read-only, nothing can be decided."""

    def __init__(
        self,
        store: ReviewStore,
        jobs: JobStore,
        audit: Auditor | None = None,
        releaser: Releaser | None = None,
        actor: PixelActor | None = None,
        max_boxes: int = 64,
    ) -> None:
        self.store, self.jobs, self.audit = store, jobs, audit
        self.releaser, self.actor, self.max_boxes = releaser, actor, max_boxes
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def _locked(self, job_key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(job_key, asyncio.Lock())
        async with lock:
            yield

    async def _audit(self, kind: str, job_key: str, user: str, data: dict[str, Any]) -> None:
        if self.audit is not None:
            await self.audit.append(kind, job_key, data, actor=f"user:{user}")

    async def _load(self, job_key: str) -> Manifest | None:
        return await asyncio.to_thread(self.store.load, job_key)

    async def _job(self, job_key: str) -> JobRecord:
        job = await self.jobs.get(job_key) if len(job_key) == 64 else None
        if job is None:
            raise ReviewNotFoundError(f"no job {job_key[:16]}")
        return job

    # -- reading -------------------------------------------------------------------------
    async def list_held(self) -> list[dict[str, Any]]:
        """One summary per job held for review, oldest first."""
        out = []
        for job in await self.jobs.in_state(HELD):
            out.append(views.summary(job, await self._load(job.key)))
        return out

    async def show(self, job_key: str, user: str | None = None) -> dict[str, Any]:
        """One job's review in full (comments opened); audited as ``review_view`` for ``user``."""
        job = await self._job(job_key)
        manifest = await self._load(job_key)
        if job.state != HELD and manifest is None:
            raise ReviewNotFoundError(f"job {job_key[:16]} was not held for review")
        comments = await asyncio.to_thread(self._comments, job_key, manifest)
        if user is not None:
            await self._audit("review_view", job_key, user, {})
        return views.detail(job, manifest, comments)

    def _comments(self, job_key: str, manifest: Manifest | None) -> list[dict[str, Any]]:
        if manifest is None:
            return []
        return [
            {"user": c.user, "at": c.at, "text": self.store.open_text(job_key, c.sealed)}
            for c in manifest.comments
        ]

    async def image(self, job_key: str, sop_uid: str, which: Which) -> bytes:
        """``before`` (the original) or ``after`` (what would be released) as PNG, boxes drawn."""
        manifest = await asyncio.to_thread(self.store.require, job_key)
        entry = _reviewable(manifest, sop_uid)
        return await asyncio.to_thread(self._render, job_key, entry, which)

    def _render(self, job_key: str, entry: KeptEntry, which: Which) -> bytes:
        if which == "before":
            data = self.store.read_blob(job_key, entry.n, "before")
        else:
            data = self.store.output(job_key, entry)
        boxes = [(b, "filled") for b in entry.boxes]
        held = entry.verify.held_boxes if entry.verify else entry.held_boxes
        boxes += [(b, "held") for b in held] + [(b, "reviewer") for b in entry.review_boxes]
        return render_png(data, boxes)

    async def header_facts(self, job_key: str, sop_uid: str) -> dict[str, str]:
        """The patient name before and after de-identification (for the signed-in reviewer's
        page only: never logged, never in a URL)."""
        manifest = await asyncio.to_thread(self.store.require, job_key)
        entry = _reviewable(manifest, sop_uid)
        return await asyncio.to_thread(self._facts, job_key, entry)

    def _facts(self, job_key: str, entry: KeptEntry) -> dict[str, str]:
        out = {}
        for label, data in (
            ("before", self.store.read_blob(job_key, entry.n, "before")),
            ("after", self.store.output(job_key, entry)),
        ):
            ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            out[label] = str(ds.get("PatientName", ""))
        return out

    # -- editing -------------------------------------------------------------------------
    async def comment(self, job_key: str, user: str, text: str) -> None:
        """Add a comment (its text sealed; the audit records its length only)."""
        text = text.strip()[:MAX_COMMENT_CHARS]
        if not text:
            raise ReviewConflictError("empty comment")
        async with self._locked(job_key):
            manifest = await asyncio.to_thread(self.store.require, job_key)
            await self._audit("review_comment", job_key, user, {"chars": len(text)})
            self._add_comment(manifest, user, text)
            await asyncio.to_thread(self.store.save, manifest)

    def _add_comment(self, manifest: Manifest, user: str, text: str) -> None:
        sealed = self.store.seal_text(manifest.job_key, text)
        manifest.comments.append(CommentEntry(user=user, at=time.time(), sealed=sealed))

    async def add_box(self, job_key: str, sop_uid: str, user: str, box: BoxModel) -> ReviewerBox:
        """Add a redaction box to a held instance (filled by the next verify)."""
        if box.x1 <= box.x0 or box.y1 <= box.y0:
            raise ReviewConflictError("a box needs x1 > x0 and y1 > y0")
        async with self._locked(job_key):
            manifest = await self._pending(job_key)
            entry = _reviewable(manifest, sop_uid)
            if len(entry.review_boxes) >= self.max_boxes:
                raise ReviewConflictError(f"at most {self.max_boxes} boxes per instance")
            added = ReviewerBox(
                **box.model_dump(exclude={"reason"}),
                reason="reviewer",
                id=manifest.next_box_id,
                added_by=user,
                added_at=time.time(),
            )
            data = {"sop_uid": sop_uid, "box": [box.x0, box.y0, box.x1, box.y1], "id": added.id}
            await self._audit("review_box_added", job_key, user, data)
            entry.review_boxes.append(added)
            manifest.next_box_id += 1
            entry.stale = True
            await asyncio.to_thread(self.store.save, manifest)
        return added

    async def remove_box(self, job_key: str, sop_uid: str, user: str, box_id: int) -> None:
        """Remove a reviewer's box (the next verify starts again from the pipeline's output)."""
        async with self._locked(job_key):
            manifest = await self._pending(job_key)
            entry = _reviewable(manifest, sop_uid)
            kept = [b for b in entry.review_boxes if b.id != box_id]
            if len(kept) == len(entry.review_boxes):
                raise ReviewNotFoundError(f"no box {box_id}")
            data = {"sop_uid": sop_uid, "id": box_id}
            await self._audit("review_box_removed", job_key, user, data)
            entry.review_boxes, entry.stale = kept, True
            await asyncio.to_thread(self.store.save, manifest)

    async def verify(self, job_key: str, sop_uid: str, user: str) -> VerifyState:
        """Fill the reviewer's boxes on the pipeline's output and run the pixel pass again."""
        async with self._locked(job_key):
            manifest = await self._pending(job_key)
            entry = _reviewable(manifest, sop_uid)
            outcome = await asyncio.to_thread(self._verify_blocking, job_key, entry)
            state = VerifyState(
                status=outcome.status,
                held_reasons=outcome.held_reasons,
                held_boxes=outcome.held_boxes,
                by=f"user:{user}",
                at=time.time(),
            )
            data = {"sop_uid": sop_uid, "status": state.status, "held": len(state.held_boxes)}
            await self._audit("review_verify", job_key, user, data)
            entry.verify, entry.stale = state, False
            await asyncio.to_thread(self.store.save, manifest)
        return state

    def _verify_blocking(self, job_key: str, entry: KeptEntry) -> VerifyOutcome:
        before = self.store.read_blob(job_key, entry.n, "before")
        output = self.store.read_blob(job_key, entry.n, "out")
        outcome = fill_and_verify(before, output, entry.review_boxes, self.actor)
        self.store.write_blob(job_key, entry.n, "after", outcome.data)
        return outcome

    async def _pending(self, job_key: str) -> Manifest:
        job = await self._job(job_key)
        manifest = await asyncio.to_thread(self.store.require, job_key)
        if job.state != HELD or manifest.status != "pending":
            raise ReviewConflictError(f"review {job_key[:16]} is decided already")
        return manifest

    # -- deciding ------------------------------------------------------------------------
    async def approve(
        self, job_key: str, user: str, comment: str = "", via: str = "api"
    ) -> dict[str, Any]:
        """Release the kept study to its destination and conclude ``proceed``."""
        async with self._locked(job_key):
            job, found = await self._decidable(job_key)
            manifest = _check_releasable(found)
            releaser = self._releaser()
            await self._audit("review_approve", job_key, user, _action_data(manifest, comment, via))
            if comment.strip():
                self._add_comment(manifest, user, comment.strip()[:MAX_COMMENT_CHARS])
            event = StudyEvent.model_validate_json(job.event_json)
            stored, prepared = await self._release(releaser.sink_for(event), job_key, manifest)
            await self._audit(
                "release", job_key, user,
                {"instances_stored": stored, "instances_refused": 0,
                 "destination": event.destination, "via": "review"},
            )  # fmt: skip
            review = ReviewConclusion(
                approved=True,
                reason="review_approved",
                actor=f"user:{user}",
                released=stored,
                instances_sha256=tuple(prepared.sha256),
                study_uid_out=prepared.study_uid_out or manifest.study_uid_out,
                verified=_all_verified(manifest),
                counts=_counts(manifest),
            )
            await releaser.conclude_review(job_key, review)
            await self._decided(manifest, "approved", user)
        return {"status": "approved", "instances_released": stored}

    async def reject(
        self, job_key: str, user: str, comment: str = "", via: str = "api"
    ) -> dict[str, Any]:
        """Conclude ``block``: nothing of the study is released."""
        async with self._locked(job_key):
            _job, manifest = await self._decidable(job_key, need_manifest=False)
            releaser = self._releaser()
            data = _action_data(manifest, comment, via) if manifest else {"via": via}
            await self._audit("review_reject", job_key, user, data)
            if manifest is not None and comment.strip():
                self._add_comment(manifest, user, comment.strip()[:MAX_COMMENT_CHARS])
            counts = _counts(manifest) if manifest else {}
            review = ReviewConclusion(False, "review_rejected", f"user:{user}", counts=counts)
            await releaser.conclude_review(job_key, review)
            if manifest is not None:
                await self._decided(manifest, "rejected", user)
        return {"status": "rejected"}

    async def expire(self, job_key: str) -> None:
        """A held study nobody decided within ``retention_s``: ``block`` (review_expired)."""
        async with self._locked(job_key):
            job = await self.jobs.get(job_key)
            manifest = await self._load(job_key)
            if job is not None and job.state == HELD and self.releaser is not None:
                if self.audit is not None:
                    await self.audit.append("review_expired", job_key, {}, actor="system:review")
                review = ReviewConclusion(False, "review_expired", "system:review")
                await self.releaser.conclude_review(job_key, review)
            if manifest is not None:
                await self._decided(manifest, "expired", "system")

    async def _decidable(
        self, job_key: str, need_manifest: bool = True
    ) -> tuple[JobRecord, Manifest | None]:
        job = await self._job(job_key)
        if job.state != HELD:
            raise ReviewConflictError(f"job {job_key[:16]} is not held for review")
        manifest = await self._load(job_key)
        if manifest is not None and manifest.status != "pending":
            raise ReviewConflictError(f"review {job_key[:16]} is decided already")
        if manifest is None and need_manifest:
            raise ReviewConflictError(f"job {job_key[:16]}: nothing was kept to release")
        return job, manifest

    def _releaser(self) -> Releaser:
        if self.releaser is None:
            raise ReviewUnavailableError("decisions are taken by the running daemon")
        return self.releaser

    async def _decided(self, manifest: Manifest, status: str, user: str) -> None:
        manifest.status = status  # type: ignore[assignment]
        manifest.decided_at = time.time()
        manifest.decided_by = f"user:{user}" if user != "system" else "system:review"
        manifest.blobs_dropped = True
        await asyncio.to_thread(self.store.save, manifest)
        await asyncio.to_thread(self.store.drop_blobs, manifest.job_key)

    async def _release(
        self, sink: StudySink, job_key: str, manifest: Manifest
    ) -> tuple[int, Prepared]:
        """Decrypt the kept outputs to a private folder, store them, remove the folder."""
        folder = Path(tempfile.mkdtemp(prefix=".release-", dir=self.store.folder(job_key)))
        try:
            prepared = await asyncio.to_thread(self._prepare, job_key, manifest, folder)
            report = await sink.store(prepared.files)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        if report.failed_uids or report.stored != len(prepared.files):
            refused = len(prepared.files) - report.stored
            raise ReviewUnavailableError(f"the destination refused {refused} instance(s)")
        return report.stored, prepared

    def _prepare(self, job_key: str, manifest: Manifest, folder: Path) -> Prepared:
        files, digests, study = [], [], None
        for entry in manifest.instances:
            data = self.store.output(job_key, entry)
            path = folder / f"{entry.n:06d}.dcm"
            path.write_bytes(data)
            files.append(path)
            digests.append(hashlib.sha256(data).hexdigest())
            if study is None:
                head = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
                study = str(head.get("StudyInstanceUID", "")) or None
        return Prepared(files, digests, study)

    async def denied(self, job_key: str, user: str, action: str) -> None:
        """Record a refused action (the user's role may not do it)."""
        await self._audit("review_denied", job_key, user, {"action": action})


def _reviewable(manifest: Manifest, sop_uid: str) -> KeptEntry:
    entry = manifest.entry(sop_uid)
    if entry is None or not entry.reviewable:
        raise ReviewNotFoundError("no held instance with that UID in this review")
    if manifest.blobs_dropped:
        raise ReviewConflictError(f"review {manifest.job_key[:16]} is decided: nothing kept")
    return entry


def _check_releasable(manifest: Manifest | None) -> Manifest:
    """``manifest`` when every instance can be released now, else ReviewConflictError."""
    if manifest is None:
        raise ReviewConflictError("nothing was kept to release")
    missing = [e for e in manifest.instances if not e.releasable]
    if missing:
        raise ReviewConflictError(
            f"{len(missing)} instance(s) have no releasable output (header PHI or failed): "
            "the study cannot be released complete; reject it"
        )
    stale = [e for e in manifest.instances if e.stale]
    if stale:
        raise ReviewConflictError(f"{len(stale)} instance(s) have boxes not verified yet")
    return manifest


def _all_verified(manifest: Manifest) -> bool:
    held = [e for e in manifest.instances if e.status != "passed"]
    return all(e.verify is not None and e.verify.status in PASSING for e in held)


def _counts(manifest: Manifest) -> dict[str, int]:
    held = [e for e in manifest.instances if e.status != "passed"]
    return {
        "instances_reviewed": len(held),
        "boxes_added": sum(len(e.review_boxes) for e in held),
        "verified": sum(1 for e in held if e.verify and e.verify.status in PASSING),
        "comments": len(manifest.comments),
    }


def _action_data(manifest: Manifest | None, comment: str, via: str) -> dict[str, Any]:
    held = manifest.held if manifest else []
    return {
        "via": via,
        "instances": len(manifest.instances) if manifest else 0,
        "instances_held": len(held),
        "sop_uids": [e.sop_uid_out for e in held if e.sop_uid_out],
        "comment_chars": len(comment.strip()),
    }
