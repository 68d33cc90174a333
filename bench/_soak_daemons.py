"""The soak benchmark's daemons: ``dxai run`` subprocesses in production mode, one consumer
group, each with its own data dir, ``client_id`` and metrics port; their RSS and CPU from /proc,
their counters from ``/metrics`` and their log levels from the JSON log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from _soak_kafka import Topics
from prometheus_client.parser import text_string_to_metric_families

COUNTERS = (
    "dxai_decisions_total",
    "dxai_events_consumed_total",
    "dxai_dead_letters_total",
    "dxai_errors_total",
    "dxai_events_produced_total",
)


@dataclass(frozen=True)
class DaemonSettings:
    """What every daemon of the run shares."""

    bootstrap: str
    topics: Topics
    source: str
    dest: str
    pixels: str = "auto"
    cpu_workers: int = 2
    transactional: bool = True
    max_in_flight_jobs: int = 8
    decision_deadline_s: float = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, client_id: str, port: int, s: DaemonSettings) -> Path:
    """The YAML of one daemon of the group (its own data dir, client id and metrics port)."""
    data = {
        "mode": "production",
        "state": {"data_dir": str(folder / "state")},
        "deid": {"pixels": s.pixels},
        "pipeline": {"cpu_workers": s.cpu_workers, "decision_deadline_s": s.decision_deadline_s},
        "kafka": {
            "bootstrap_servers": s.bootstrap,
            "group_id": s.topics.group,
            "client_id": client_id,
            "input_topic": s.topics.input,
            "decisions_topic": s.topics.decisions,
            "results_topic": s.topics.results,
            "dlq_topic": s.topics.dlq,
            "session_timeout_ms": 10_000,
            "transactional": s.transactional,
            "max_in_flight_jobs": s.max_in_flight_jobs,
        },
        "source_dicomweb": {"base_url": f"{s.source}/dicom-web", "timeout_s": 120},
        "destination_dicomweb": {"base_url": f"{s.dest}/dicom-web", "timeout_s": 120},
        "metrics": {"enabled": True, "port": port},
    }
    path = folder / "dxai.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def read_proc(pid: int) -> tuple[float, float] | None:
    """(VmRSS in MiB, user + system CPU seconds) of ``pid``; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    rss = next((int(x.split()[1]) / 1024 for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float(rss), cpu


@dataclass
class Daemon:
    """One ``dxai run`` child process and what is sampled from it."""

    client_id: str
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t, MiB)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (t, CPU s)
    counters: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def log(self) -> Path:
        """The daemon's stdout + stderr (JSON log lines)."""
        return self.folder / "daemon.log"

    def start(self, settings: DaemonSettings) -> None:
        """Write the config and start the process."""
        self.folder.mkdir(parents=True, exist_ok=True)
        config = write_config(self.folder, self.client_id, self.port, settings)
        code = "from dxai.daemon.cli import entry; entry()"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def sample(self, t: float) -> None:
        """Record RSS and CPU seconds at ``t`` (seconds since the run started)."""
        if self.proc is None:
            return
        got = read_proc(self.proc.pid)
        if got is not None:
            self.rss.append((t, got[0]))
            self.cpu.append((t, got[1]))

    async def ready(self, http: httpx.AsyncClient) -> bool:
        """``/readyz`` answers 200 (broker connected, partitions assigned, routes up)."""
        try:
            return (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def scrape(self, http: httpx.AsyncClient) -> None:
        """Keep the counters of ``COUNTERS`` (by ``name{label=value,...}``) from ``/metrics``."""
        try:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.HTTPError:
            return
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in COUNTERS and sample.value:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    self.counters[f"{sample.name}{{{labels}}}"] = sample.value

    def terminate(self) -> None:
        """Send SIGTERM (the daemon drains: intake stops, running jobs get their grace)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the exit (then SIGKILL); keep the exit code."""
        if self.proc is None:
            return
        try:
            self.exit_code = self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait(30)

    def log_levels(self) -> dict[str, Any]:
        """Warning and error lines of the log: counts by level and the most common messages
        (the daemon's log is PHI-safe: messages are templates, codes and counts)."""
        levels: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        if not self.log.exists():
            return {"levels": {}, "top": []}
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                levels["unstructured"] += 1
                continue
            level = str(record.get("level", "")) if isinstance(record, dict) else ""
            if level in ("warning", "error", "critical"):
                levels[level] += 1
                messages[f"{level}: {record.get('msg')}"] += 1
        return {"levels": dict(levels), "top": messages.most_common(8)}


async def wait_ready(daemons: list[Daemon], timeout_s: float) -> float:
    """Poll until every daemon is ready; the seconds it took (RuntimeError past the timeout)."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            states = [await d.ready(http) for d in daemons]
            if all(states):
                return time.monotonic() - started
            dead = [d.client_id for d in daemons if d.proc is None or d.proc.poll() is not None]
            if dead or time.monotonic() - started > timeout_s:
                raise RuntimeError(f"daemons not ready (exited: {dead}); see their daemon.log")
            await asyncio.sleep(0.5)


def stop_all(daemons: list[Daemon], grace_s: float) -> None:
    """SIGTERM every daemon at once, then wait for each (SIGKILL past ``grace_s``)."""
    for daemon in daemons:
        daemon.terminate()
    for daemon in daemons:
        daemon.wait(grace_s)


async def scrape_all(daemons: list[Daemon]) -> None:
    """Read every daemon's counters."""
    async with httpx.AsyncClient(timeout=10) as http:
        for daemon in daemons:
            await daemon.scrape(http)
