"""The encrypted review store: ``<data_dir>/review/<job_key>/``.

Per held study: ``manifest.json`` (plain JSON without PHI, see :mod:`.manifest`, with an HMAC
under the review key so that an edit by other means is detected) and ``blobs/<n>.<kind>``,
each instance's bytes sealed with AES-256-GCM (:mod:`.crypto`): ``out`` the pipeline's output
(passed, or held: redacted as far as possible), ``before`` the fetched original a reviewer
compares it with, ``after`` the output again once a reviewer's boxes were filled and verified.
A study is written to a temporary folder and renamed into place, so a crash never leaves half
of one; a job run again replaces it.  Folders 0700, files 0600.  Blocking: call from threads
(the async :meth:`ReviewStore.keep` does).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dxai.configs.atomic import write_bytes_atomic
from dxai.daemon.review.crypto import Sealer
from dxai.daemon.review.errors import ReviewNotFoundError, ReviewTamperedError
from dxai.daemon.review.manifest import BoxModel, KeptEntry, Manifest

if TYPE_CHECKING:
    from dxai.daemon.audit import Auditor
    from dxai.daemon.jobs import JobRecord
    from dxai.daemon.pipeline.outcome import KeptInstance, StudyTally

FOLDER = "review"
MANIFEST = "manifest.json"
BLOB_KINDS = ("out", "before", "after")
_JOB_KEY = re.compile(r"^[0-9a-f]{64}$")


def _mkdir(path: Path) -> None:
    """Create ``path`` (and parents) private: 0700 whatever the umask."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


class ReviewStore:
    """Held studies kept for review, sealed under one key (see the module doc)."""

    def __init__(self, root: Path, key: bytes, audit: Auditor | None = None) -> None:
        self.root = root
        self.sealer = Sealer(key)
        self._mac_key = hmac.new(key, b"dxai-review-manifest", hashlib.sha256).digest()
        self.audit = audit

    # -- the pipeline's side -------------------------------------------------------------
    async def keep(self, job: JobRecord, tally: StudyTally) -> None:
        """Keep what a study concluding ``hold`` needs for review (before the hold is
        recorded; replaces what an earlier run of the job kept)."""
        from dxai.daemon.pipeline.outcome import decide

        reasons = [r.code for r in decide(tally)[2]]
        timeout = tally.policy.review_timeout_s if tally.policy is not None else None
        manifest = await asyncio.to_thread(
            self.keep_blocking, job.key, tally.kept, reasons, tally.study_uid_out, timeout
        )
        if self.audit is not None:
            held = manifest.held
            data = {
                "instances_held": sum(e.status == "held" for e in held),
                "instances_failed": sum(e.status == "failed" for e in held),
                "instances_passed": len(manifest.instances) - len(held),
                "reasons": reasons,
            }
            await self.audit.append("review_kept", job.key, data)

    def keep_blocking(
        self,
        job_key: str,
        kept: Sequence[KeptInstance],
        reasons: Sequence[str],
        study_uid_out: str | None = None,
        timeout_s: float | None = None,
    ) -> Manifest:
        """Write one held study (sealed) under a temporary name, then move it into place;
        ``timeout_s``: the policy's review time-out (None: ``review.retention_s``)."""
        _check_key(job_key)
        _mkdir(self.root)
        tmp = self.root / f".tmp-{job_key[:32]}-{secrets.token_hex(4)}"
        _mkdir(tmp)
        _mkdir(tmp / "blobs")
        try:
            entries = [self._keep_one(tmp, job_key, n, k) for n, k in enumerate(kept, start=1)]
            manifest = Manifest(
                job_key=job_key,
                kept_at=time.time(),
                study_uid_out=study_uid_out,
                reasons=list(reasons),
                instances=entries,
                timeout_s=timeout_s,
            )
            self._write_manifest(tmp, manifest)
            final = self.folder(job_key)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return manifest

    def _keep_one(self, folder: Path, job_key: str, n: int, kept: KeptInstance) -> KeptEntry:
        pixel = kept.pixel or {}
        entry = KeptEntry(
            n=n,
            status=kept.status,  # type: ignore[arg-type]
            sop_uid_out=kept.sop_uid_out,
            reason=kept.reason,
            releasable=kept.output is not None,
            pixel_status=str(pixel.get("status") or ""),
            boxes=_boxes(pixel.get("boxes")),
            held_boxes=_boxes(pixel.get("held_boxes")),
            held_reasons=[str(r) for r in pixel.get("held_reasons") or ()],
        )
        for kind, data in (("out", kept.output), ("before", kept.before)):
            if data is not None:
                raw = data.read_bytes() if isinstance(data, Path) else data
                self._write_blob(folder, job_key, n, kind, raw)
        return entry

    # -- manifests -----------------------------------------------------------------------
    def folder(self, job_key: str) -> Path:
        """The folder of one job's review."""
        _check_key(job_key)
        return self.root / job_key

    def job_keys(self) -> list[str]:
        """Every job with a kept review (folders only; temporary ones are not counted)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _JOB_KEY.match(p.name) and p.is_dir())

    def load(self, job_key: str) -> Manifest | None:
        """The manifest of ``job_key``, or None; ReviewTamperedError when its MAC fails."""
        path = self.folder(job_key) / MANIFEST
        try:
            wrapper = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ReviewTamperedError(f"review {job_key[:16]}: manifest unreadable") from exc
        body = json.dumps(wrapper.get("manifest"), sort_keys=True, separators=(",", ":"))
        if not hmac.compare_digest(str(wrapper.get("mac", "")), self._mac(body.encode())):
            raise ReviewTamperedError(f"review {job_key[:16]}: manifest MAC does not match")
        try:
            return Manifest.model_validate(wrapper["manifest"])
        except ValidationError as exc:
            raise ReviewTamperedError(f"review {job_key[:16]}: manifest invalid") from exc

    def require(self, job_key: str) -> Manifest:
        """The manifest of ``job_key``; ReviewNotFoundError when none is kept."""
        manifest = self.load(job_key)
        if manifest is None:
            raise ReviewNotFoundError(f"review {job_key[:16]}: nothing kept")
        return manifest

    def save(self, manifest: Manifest) -> None:
        """Write ``manifest`` (atomically) over the one kept."""
        self._write_manifest(self.folder(manifest.job_key), manifest)

    def _write_manifest(self, folder: Path, manifest: Manifest) -> None:
        body = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        text = json.dumps({"manifest": json.loads(body), "mac": self._mac(body.encode())})
        write_bytes_atomic(folder / MANIFEST, text.encode("utf-8"))

    def _mac(self, body: bytes) -> str:
        return hmac.new(self._mac_key, body, hashlib.sha256).hexdigest()

    # -- blobs ---------------------------------------------------------------------------
    def _write_blob(self, folder: Path, job_key: str, n: int, kind: str, data: bytes) -> None:
        name = _blob_name(n, kind)
        write_bytes_atomic(folder / "blobs" / name, self.sealer.seal(data, job_key, name))

    def write_blob(self, job_key: str, n: int, kind: str, data: bytes) -> None:
        """Seal and write one blob of a kept study."""
        self._write_blob(self.folder(job_key), job_key, n, kind, data)

    def has_blob(self, job_key: str, n: int, kind: str) -> bool:
        """Whether the blob exists."""
        return (self.folder(job_key) / "blobs" / _blob_name(n, kind)).is_file()

    def read_blob(self, job_key: str, n: int, kind: str) -> bytes:
        """The plaintext of one blob; ReviewNotFoundError / ReviewTamperedError."""
        name = _blob_name(n, kind)
        try:
            sealed = (self.folder(job_key) / "blobs" / name).read_bytes()
        except FileNotFoundError as exc:
            raise ReviewNotFoundError(f"review {job_key[:16]}: no blob {name}") from exc
        return self.sealer.open(sealed, job_key, name)

    def output(self, job_key: str, entry: KeptEntry) -> bytes:
        """What would be released for ``entry``: the reviewed output, else the pipeline's."""
        kind = "after" if self.has_blob(job_key, entry.n, "after") else "out"
        return self.read_blob(job_key, entry.n, kind)

    def drop_blobs(self, job_key: str) -> None:
        """Delete every sealed blob of a review (decided or expired); the manifest stays."""
        shutil.rmtree(self.folder(job_key) / "blobs", ignore_errors=True)

    def remove(self, job_key: str) -> None:
        """Delete a review entirely."""
        shutil.rmtree(self.folder(job_key), ignore_errors=True)

    def sweep_temporary(self) -> int:
        """Remove temporary folders a crash left (they may hold sealed PHI); how many."""
        if not self.root.is_dir():
            return 0
        stale = [p for p in self.root.glob(".tmp-*") if p.is_dir()]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)

    # -- comments ------------------------------------------------------------------------
    def seal_text(self, job_key: str, text: str) -> str:
        """A comment sealed for the manifest (base64)."""
        blob = self.sealer.seal(text.encode("utf-8"), job_key, "comment")
        return base64.b64encode(blob).decode("ascii")

    def open_text(self, job_key: str, sealed: str) -> str:
        """A sealed comment's text."""
        try:
            blob = base64.b64decode(sealed.encode("ascii"), validate=True)
        except ValueError as exc:
            raise ReviewTamperedError(f"review {job_key[:16]}: comment unreadable") from exc
        return self.sealer.open(blob, job_key, "comment").decode("utf-8", errors="replace")


def _blob_name(n: int, kind: str) -> str:
    if kind not in BLOB_KINDS:
        raise ValueError(f"unknown blob kind {kind}")
    return f"{n:06d}.{kind}"


def _boxes(values: object) -> list[BoxModel]:
    if not isinstance(values, list):
        return []
    return [box for box in (BoxModel.from_report(v) for v in values) if box is not None]


def _check_key(job_key: str) -> None:
    if not _JOB_KEY.match(job_key):
        raise ReviewNotFoundError("not a job key")
