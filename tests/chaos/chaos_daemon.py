"""The production-mode daemon under chaos: configs, start, SIGKILL, RSS sampling, and the
staging disk that can be filled.

The daemon runs as ``dxai run`` in a child process (as in ``test_daemon_sigkill.py``) with an
environment from which every ``DXAI_*`` variable is removed (those are config overrides).
Config variants (same ``pipeline.version``, so a job keeps its key across them):

- ``base``: Kafka intake, ``kafka.transactional: true``, DICOMweb source and destination, staged
  on disk only (``staging_memory_max_bytes: 0``), retries tuned so a short outage is ridden out;
- ``engine``: ``deid.pixels: always`` with a pixel model that is too slow for its deadline:
  every item may take ``default_deadline_s: 0.001`` (a detector pass takes tens of ms), and
  while one batch runs the others wait ``max_queue_delay_ms: 2000`` for batches of 64 that never
  fill, so every detector item times out (``DeadlineExceededError``) -- the daemon has no
  fault-injection hook, this is a config.  (An idle batcher dispatches at once: a deadline
  longer than one detector pass no longer makes the engine fail);
- ``staging_full``: ``pipeline.staging_max_bytes`` at its minimum (1 MiB): only used when no
  tmpfs can be mounted for the staging folder (the harness then cannot fill a real disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kafka_helpers import kafka_section

STAGING_TMPFS_BYTES = 48 * 1024 * 1024
FILLER = "zz-chaos-filler.bin"


def daemon_config(
    variant: str, data_dir: Path, bootstrap: str, topic: str, urls: Any, metrics_port: int
) -> Any:
    """The daemon's configuration for ``variant`` (see the module docstring)."""
    config: dict[str, Any] = {
        "mode": "production",
        "state": {"data_dir": str(data_dir)},
        "deid": {"pixels": "never"},
        "pipeline": {
            "decision_deadline_s": 4.0,
            "cpu_workers": 1,
            "staging_memory_max_bytes": 0,
            "outbox_retry_max_s": 4.0,
        },
        "kafka": kafka_section(
            bootstrap,
            topic,
            transactional=True,
            session_timeout_ms=6000,
            request_timeout_ms=10_000,
            max_retries=6,
            retry_backoff_initial_s=0.5,
            retry_backoff_max_s=4.0,
        ),
        "source_dicomweb": {"base_url": urls["source"]},
        "destination_dicomweb": {"base_url": urls["dest"]},
        "metrics": {"enabled": True, "host": "127.0.0.1", "port": metrics_port},
    }
    if variant == "engine":
        config["deid"] = {"pixels": "always"}
        config["inference"] = {
            "batching": {
                "max_batch_size": 64,
                "max_queue_delay_ms": 2000.0,
                "default_deadline_s": 0.001,
            }
        }
    elif variant == "staging_full":
        config["pipeline"]["staging_max_bytes"] = 1024 * 1024
    return config


class StagingDisk:
    """A small tmpfs mounted on the daemon's staging folder, which the harness can fill.

    ``mounted`` is False where mounting is not allowed (not root): the disk-full fault then
    uses the ``staging_full`` config variant instead.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mounted = False

    def mount(self) -> bool:
        """Mount a tmpfs of STAGING_TMPFS_BYTES on the folder; whether it worked."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.geteuid() != 0:
            return False
        size = f"size={STAGING_TMPFS_BYTES},mode=0700"
        cmd = ["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(self.folder)]
        self.mounted = subprocess.run(cmd, capture_output=True, check=False).returncode == 0
        return self.mounted

    def fill(self) -> int:
        """Fill the free space with one file (its name is no job's folder); bytes written."""
        written = 0
        with contextlib.suppress(OSError), (self.folder / FILLER).open("wb") as out:
            block = b"\0" * (1024 * 1024)
            while True:
                out.write(block)
                out.flush()
                written += len(block)
        return written

    def free(self) -> None:
        """Remove the filler file."""
        (self.folder / FILLER).unlink(missing_ok=True)

    def unmount(self) -> None:
        """Unmount (lazily: a killed daemon may leave nothing open, but never block teardown)."""
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True, check=False)
            self.mounted = False


def _active_jobs(db: Path) -> int:
    """Jobs the store says are running (received, fetching, processing); 0 when unreadable."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            query = "SELECT COUNT(*) FROM jobs WHERE state IN ('received','fetching','processing')"
            return int(con.execute(query).fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _status_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


@dataclass
class Daemon:
    """The daemon child process across its incarnations (kills, restarts, variants)."""

    tmp: Path
    bootstrap: str
    topic: str
    urls: dict[str, str]
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    variant: str = "base"
    kills: int = 0
    kills_mid_job: int = 0
    starts: int = 0
    unplanned_exits: list[dict[str, Any]] = field(default_factory=list)
    rss_peaks_mib: list[float] = field(default_factory=list)
    rss_last_mib: float = 0.0

    @property
    def data_dir(self) -> Path:
        """The daemon's ``state.data_dir``."""
        return self.tmp / "state"

    @property
    def log(self) -> Path:
        """Where every incarnation's stdout and stderr go."""
        return self.tmp / "daemon.log"

    def start(self, variant: str = "base") -> None:
        """Write the variant's config and start a new incarnation."""
        config = daemon_config(
            variant, self.data_dir, self.bootstrap, self.topic, self.urls, self.metrics_port
        )
        path = self.tmp / f"daemon-{variant}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DXAI_")}
        code = "from dxai.daemon.cli import entry; entry()"
        with self.log.open("ab") as out:
            out.write(f"\n===== start #{self.starts + 1} variant={variant}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "run", "--config", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.variant = variant
        self.starts += 1
        self.rss_peaks_mib.append(0.0)

    def kill(self) -> None:
        """SIGKILL the running incarnation and reap it (counting the jobs it had running)."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            active = _active_jobs(self.data_dir / "dxai.sqlite3")
            os.kill(proc.pid, signal.SIGKILL)
            self.kills += 1
            self.kills_mid_job += active > 0
        proc.wait(30)

    def restart(self, variant: str = "base") -> None:
        """SIGKILL, then start again with ``variant``."""
        self.kill()
        self.start(variant)

    def check_alive(self, when: str) -> None:
        """Record an exit the harness did not cause (a crash) and start the daemon again."""
        proc = self.proc
        if proc is not None and proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            self.unplanned_exits.append({"when": when, "exit_code": proc.returncode, "log": tail})
            self.start(self.variant)

    async def sample_rss(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Sample the running incarnation's RSS (``/proc/<pid>/status``) until ``stop``."""
        while not stop.is_set():
            proc = self.proc
            kib = _status_kib(proc.pid) if proc is not None and proc.poll() is None else None
            if kib is not None:
                self.rss_last_mib = kib / 1024
                self.rss_peaks_mib[-1] = max(self.rss_peaks_mib[-1], self.rss_last_mib)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    def wait_ready(self, timeout_s: float) -> bool:
        """Poll ``/readyz`` until the running incarnation answers 200; whether it did."""
        end = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return True
            time.sleep(0.2)  # poll pace
        return False

    def stop_gracefully(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the running incarnation; its exit code (None: it had to be killed)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout_s
        try:
            return proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            return None
