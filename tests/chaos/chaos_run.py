"""One chaos run: studies flow through the daemon while the plan's faults land, then the checks.

Parameters come from the environment (none starts with ``DXAI_``): ``CHAOS_KILLS`` (daemon
kills, default 3), ``CHAOS_STUDIES`` (default 12), ``CHAOS_SEED`` (replay a run; the short
variant's default is fixed, the long one draws one), ``CHAOS_REPORT`` (write the figures there as
JSON), ``CHAOS_RSS_MAX_MIB`` (the daemon's RSS bound, default 2048), ``CHAOS_SETTLE_S`` (how long
the jobs may take to finish once the faults stop; default 150, long 900), ``CHAOS_KEEP=1``
(keep the evidence even when every check passes; it is always kept when a job or destination
check fails) and ``CHAOS_KEEP_DIR`` (where; default ``/tmp/chaos-keep-<seed>``), see
``chaos_evidence.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_checks import (
    check_destination,
    final_decisions,
    read_outputs,
    released_by_job,
    tally_jobs,
)
from chaos_daemon import Daemon, StagingDisk
from chaos_evidence import evidence, keep_run
from chaos_faults import (
    SIGNALS,
    Fault,
    Study,
    make_plan,
    plan_json,
    send_one,
    stream_events,
    upload_studies,
)
from chaos_services import PrivateServices, free_port

SHORT_SEED = 20261207
ENGINE_PROBE_TIMEOUT_S = 90.0
FIGURES: dict[str, Any] = {}


@dataclass(frozen=True)
class Params:
    """The run's size and seed."""

    kills: int
    studies: int
    seed: int
    long: bool
    settle_s: float
    rss_max_mib: float
    report: str | None
    keep: bool = False
    keep_dir: str = ""

    @classmethod
    def from_env(cls) -> Params:
        """Read the CHAOS_* variables (see the module docstring)."""
        env = os.environ
        long = "CHAOS_KILLS" in env or "CHAOS_STUDIES" in env
        seed_text = env.get("CHAOS_SEED")
        seed = int(seed_text) if seed_text else (random.randrange(2**31) if long else SHORT_SEED)
        return cls(
            kills=max(2, int(env.get("CHAOS_KILLS", "3"))),
            studies=max(1, int(env.get("CHAOS_STUDIES", "12"))),
            seed=seed,
            long=long,
            settle_s=float(env.get("CHAOS_SETTLE_S", "900" if long else "150")),
            rss_max_mib=float(env.get("CHAOS_RSS_MAX_MIB", "2048")),
            report=env.get("CHAOS_REPORT") or None,
            keep=env.get("CHAOS_KEEP", "") not in ("", "0"),
            keep_dir=env.get("CHAOS_KEEP_DIR") or f"/tmp/chaos-keep-{seed}",
        )

    def timeout_s(self) -> int:
        """A generous bound for the whole test (pytest-timeout)."""
        return int(600 + self.settle_s + 40 * self.kills + 2 * self.studies)


def inject(fault: Fault, services: PrivateServices, daemon: Daemon, disk: StagingDisk) -> None:
    """Make one fault happen (blocking: outages last their duration)."""
    if fault.kind == "kill":
        daemon.restart("base")
    elif fault.kind == "kafka":
        services.restart_kafka(SIGNALS[fault.hard], fault.duration_s)
    elif fault.kind in ("source", "dest"):
        services.orthanc_down(fault.kind)
        time.sleep(fault.duration_s)  # the outage (chaos), not a synchronisation
        services.orthanc_up(fault.kind)
    elif fault.kind == "disk" and disk.mounted:
        disk.fill()
        time.sleep(fault.duration_s)  # the disk stays full this long (chaos)
        disk.free()
    elif fault.kind == "disk":  # no tmpfs: the daemon's staging budget refuses instead
        daemon.restart("staging_full")
        time.sleep(fault.duration_s)
        daemon.restart("base")
    else:
        raise AssertionError(f"unknown fault {fault.kind}")


async def _engine_phase(services: PrivateServices, daemon: Daemon, probe: Study) -> float:
    """Restart the daemon with the failing pixel engine, send it ``probe``, poll until the
    probe concluded (results event) or ENGINE_PROBE_TIMEOUT_S, then SIGKILL and restart with
    the base config; seconds the phase lasted."""
    t0 = time.monotonic()
    end = t0 + ENGINE_PROBE_TIMEOUT_S
    await asyncio.to_thread(daemon.restart, "engine")
    await send_one(services.bootstrap, daemon.topic, probe, end)
    while time.monotonic() < end:
        outputs = await read_outputs(services.bootstrap, daemon.topic, end + 60)
        if probe.job_id in {r["exchange_job_id"] for r in outputs["results"]}:
            break
        await asyncio.sleep(1.0)  # poll pace
    await asyncio.to_thread(daemon.restart, "base")
    return round(time.monotonic() - t0, 1)


async def _faults(
    plan: list[Fault],
    services: PrivateServices,
    daemon: Daemon,
    disk: StagingDisk,
    probes: list[Study],
    t0: float,
) -> list[dict[str, Any]]:
    timeline = []
    for n, fault in enumerate(plan):
        await asyncio.sleep(fault.wait_s)  # a random wait before the fault: the chaos itself
        await asyncio.to_thread(daemon.check_alive, f"before fault {n} ({fault.kind})")
        start = time.monotonic() - t0
        entry: dict[str, Any] = {"fault": fault.kind, "at_s": round(start, 1)}
        if fault.kind == "engine":
            entry["lasted_s"] = await _engine_phase(services, daemon, probes.pop())
        else:
            await asyncio.to_thread(inject, fault, services, daemon, disk)
            entry |= {"hard": fault.hard} if fault.kind == "kafka" else {}
        timeline.append(entry)
    return timeline


async def _settle(
    services: PrivateServices, daemon: Daemon, topic: str, jobs: set[str], s: float
) -> float:
    """Poll the results topic until every job has results (or the deadline); seconds taken."""
    t0 = time.monotonic()
    end = t0 + s
    while time.monotonic() < end:
        await asyncio.to_thread(daemon.check_alive, "while settling")
        outputs = await read_outputs(services.bootstrap, topic, end + 60)
        if jobs <= {r["exchange_job_id"] for r in outputs["results"]}:
            break
        await asyncio.sleep(2.0)  # poll pace
    return round(time.monotonic() - t0, 1)


async def run_chaos(params: Params, services: PrivateServices, tmp: Path) -> dict[str, Any]:
    """The whole run; returns its figures (also kept in FIGURES for the session summary)."""
    rng = random.Random(params.seed)
    print(f"\nchaos seed {params.seed} (replay with CHAOS_SEED={params.seed})", flush=True)
    t0 = time.monotonic()
    urls = {n: f"{services.orthanc_url(n)}/dicom-web" for n in ("source", "dest")}
    tag = f"{params.seed}"
    plan = make_plan(rng, params.kills, (2.0, 5.0))
    engines = sum(1 for f in plan if f.kind == "engine")
    count = params.studies + engines
    uploaded = await upload_studies(services.orthanc_url("source"), rng, count, tag)
    studies, probes = uploaded[: params.studies], uploaded[params.studies :]
    topic = f"chaos.{tag}"
    daemon = Daemon(tmp, services.bootstrap, topic, urls, free_port())
    disk = StagingDisk(daemon.data_dir / "staging")
    figures: dict[str, Any] = {"seed": params.seed, "variant": "long" if params.long else "short"}
    figures |= {"studies": len(studies), "engine_probes": [p.job_id for p in probes]}
    figures["plan"] = plan_json(plan)
    figures["staging_disk"] = "tmpfs" if disk.mount() else "staging_max_bytes (no tmpfs)"
    stop = asyncio.Event()
    daemon.start("base")
    sampler = asyncio.create_task(daemon.sample_rss(stop))
    try:
        figures |= await _stream_and_faults(
            params, services, daemon, disk, studies, (plan, list(probes)), t0
        )
        jobs = {s.job_id for s in uploaded}
        figures["settle_s"] = await _settle(services, daemon, topic, jobs, params.settle_s)
        figures["daemon_ready_at_end"] = await asyncio.to_thread(daemon.wait_ready, 120.0)
        outputs = await read_outputs(services.bootstrap, topic, time.monotonic() + 120)
    finally:
        stop.set()
        await sampler
        figures["graceful_exit_code"] = daemon.stop_gracefully()
        disk.unmount()
    figures |= _daemon_figures(daemon)
    figures["jobs"] = tally_jobs(sorted(jobs), outputs)
    figures["engine_probe_decisions"] = final_decisions(outputs, [p.job_id for p in probes])
    phi = {s.uid: s.phi for s in uploaded}
    dest = services.orthanc_url("dest")
    released = released_by_job(outputs)
    figures["destination"] = await asyncio.to_thread(check_destination, dest, released, phi)
    studies_by_uid = {s.uid: s.job_id for s in uploaded}
    await asyncio.to_thread(
        _keep_evidence, params, figures, (outputs, released), studies_by_uid, (dest, tmp)
    )
    figures["duration_s"] = round(time.monotonic() - t0, 1)
    _publish(params, figures)
    return figures


async def _stream_and_faults(
    params: Params,
    services: PrivateServices,
    daemon: Daemon,
    disk: StagingDisk,
    studies: list[Study],
    faults: tuple[list[Fault], list[Study]],
    t0: float,
) -> dict[str, Any]:
    plan, probes = faults
    planned_s = sum(f.wait_s + f.duration_s for f in plan) + 10.0 * len(probes)
    interval = planned_s / max(1, len(studies))
    deadline = time.monotonic() + planned_s + params.settle_s
    stream = asyncio.create_task(
        stream_events(services.bootstrap, f"chaos.{params.seed}", studies, interval, deadline)
    )
    timeline = await _faults(plan, services, daemon, disk, probes, t0)
    sent = await stream
    return {"timeline": timeline, "stream": sent}


def _keep_evidence(
    params: Params,
    figures: dict[str, Any],
    seen: tuple[dict[str, list[Any]], dict[str, dict[str, Any]]],
    studies: dict[str, str],
    where: tuple[str, Path],
) -> None:
    """On a failed job or destination check (or with CHAOS_KEEP): which destination studies
    no released results account for, their jobs' stories, and a copy of the run folder."""
    outputs, released = seen
    dest, tmp = where
    failed = bool(figures["destination"]["violations"] or figures["jobs"]["violations"])
    if not (failed or params.keep):
        return
    found = evidence(dest, outputs, released, studies, tmp)
    figures["evidence"] = {"unexpected_studies": found["unexpected_studies"]}
    figures["kept_at"] = str(keep_run(tmp, Path(params.keep_dir), outputs, found))
    print(f"chaos evidence kept at {figures['kept_at']}", flush=True)


def _daemon_figures(daemon: Daemon) -> dict[str, Any]:
    return {
        "daemon_kills": daemon.kills,
        "daemon_kills_with_jobs_running": daemon.kills_mid_job,
        "daemon_starts": daemon.starts,
        "unplanned_exits": daemon.unplanned_exits,
        "rss_peak_mib": round(max(daemon.rss_peaks_mib, default=0.0), 1),
        "rss_peaks_per_start_mib": [round(x, 1) for x in daemon.rss_peaks_mib],
        "rss_last_mib": round(daemon.rss_last_mib, 1),
    }


def _publish(params: Params, figures: dict[str, Any]) -> None:
    FIGURES.clear()
    FIGURES.update(figures)
    if params.report:
        Path(params.report).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
