"""Load / soak: a sustained stream of studies through two daemons of one Kafka consumer group.

Needs the test services (``bash scripts/services/up.sh``: Kafka, the source and dest Orthancs).
The run gets its own topics (input with ``--partitions`` partitions, decisions, results, dead
letters) and consumer group; ``--daemons`` ``dxai run`` subprocesses (production mode, each its
own data dir, ``client_id`` and metrics port, ``deid.pixels: auto`` so OCR runs on the burned-in
images, transactional outputs unless ``--no-transactional``) share the group.  For ``--minutes``
a study is stored in the source Orthanc and its event produced every ``60 / --rate-per-min``
seconds: CT series with PHI burned into one slice, ultrasound and secondary captures with text on
every image (``dxai.synth``, fresh UIDs each time).  Then the run waits for every job's outputs
(``--drain-timeout-s``), stops the daemons with SIGTERM, and deletes what it stored (its source
studies, their de-identified copies in dest, its topics).

One JSON object (stdout and ``--out``, default bench/results/soak.json), a short summary on
stderr:

- ``throughput``: finished studies per minute and instances per second, from the first event
  produced to the last results event;
- ``decision_latency_s`` / ``e2e_latency_s``: p50, p90, p99, max of (final decision record time
  - event record time) and (results record time - event record time), read_committed;
- ``consumer_lag``: the group's lag on the input topic (end offsets minus committed offsets, an
  admin client sampled every ``--sample-s``): max, last, slope, samples;
- ``daemons``: per daemon RSS over time from /proc (first, last, max, slope in MiB/min over the
  run and its second half, samples), CPU seconds while sampled, exit code, its ``/metrics``
  counters (decisions, events consumed, dead letters, errors) and its log's warnings/errors;
- ``outcomes``: lost (no results or final decision), duplicated and contradicting jobs, decision,
  state and reason counts, pixel PHI totals; ``errors``: dead letters by code;
- ``cleanup``: studies deleted in source and dest (``gone``: someone emptied the shared Orthanc
  first), topics deleted.

The RSS ``first`` sample is taken when the daemons are ready, before the OCR models load on first
use: judge flatness by ``slope_second_half_mib_per_min``.

The exit status is 0 when no job was lost, duplicated or contradicted and every daemon exited 0.
There are no timed assertions: the figures are for people to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _services import REPO, orthanc_url, service
from _soak_daemons import Daemon, DaemonSettings, free_port, scrape_all, stop_all, wait_ready
from _soak_kafka import LagProbe, OutputReader, Topics, create_topics, delete_topics
from _soak_load import Loader, Template, Workload, delete_orthanc_studies, orthanc_ids_of, templates
from _soak_report import daemon_report, human, lag_summary, latencies, outcomes, percentiles
from _soak_report import throughput as throughput_of

DEFAULT_OUT = REPO / "bench" / "results" / "soak.json"


async def sample_loop(
    probe: LagProbe,
    daemons: list[Daemon],
    lags: list[tuple[float, dict[int, int]]],
    started: float,
    stop: asyncio.Event,
    interval_s: float,
) -> None:
    """Every ``interval_s`` until ``stop`` (and once more then): daemons' /proc, group lag."""
    while True:
        t = time.monotonic() - started
        for daemon in daemons:
            daemon.sample(t)
        lag = await probe.sample()
        if lag is not None:
            lags.append((t, lag))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def drain(
    loader: Loader, reader: OutputReader, daemons: list[Daemon], timeout_s: float
) -> bool:
    """Wait until every sent job has results and a final decision; False at the timeout or when
    every daemon has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        if {s.job_id for s in loader.sent} <= reader.finished():
            return True
        alive = [d for d in daemons if d.proc is not None and d.proc.poll() is None]
        if not alive or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


async def soak(
    args: argparse.Namespace,
    daemons: list[Daemon],
    loader: Loader,
    reader: OutputReader,
    items: list[Template],
) -> dict[str, Any]:
    """Start sampling and reading, stream for ``--minutes``, drain, scrape; the raw figures."""
    probe = LagProbe(reader.bootstrap, reader.topics, args.partitions)
    await probe.start()
    stop_reader, stop_sampler, stop_load = asyncio.Event(), asyncio.Event(), asyncio.Event()
    lags: list[tuple[float, dict[int, int]]] = []
    started = time.monotonic()
    reading = asyncio.create_task(reader.run(stop_reader))
    sampling = asyncio.create_task(
        sample_loop(probe, daemons, lags, started, stop_sampler, args.sample_s)
    )
    try:
        await loader.stream(items, args.rate_per_min, args.minutes * 60, stop_load)
        streamed_s = time.monotonic() - started
        drained = await drain(loader, reader, daemons, args.drain_timeout_s)
        await scrape_all(daemons)
    finally:
        stop_sampler.set()
        await sampling
        stop_reader.set()
        await reading
        await probe.close()
    return {"lags": lags, "streamed_s": streamed_s, "drained": drained}


def workload_of(args: argparse.Namespace) -> Workload:
    """The template parameters from the command line."""
    return Workload(
        seed=args.seed,
        ct_slices=args.ct_slices,
        ct_size=args.ct_size,
        patients=args.patients,
        small=args.small,
    )


def build_report(
    args: argparse.Namespace,
    raw: dict[str, Any],
    daemons: list[Daemon],
    loader: Loader,
    reader: OutputReader,
) -> dict[str, Any]:
    """The JSON report from what was sent, read and sampled."""
    decided, finished = latencies(loader.sent, reader)
    dead = Counter(d["error_code"] for d in reader.dead_letters)
    return {
        "benchmark": "soak",
        "config": config_facts(args, loader),
        "studies": {
            "scheduled": math.ceil(args.minutes * args.rate_per_min),
            "produced": len(loader.sent),
            "instances_produced": sum(s.instances for s in loader.sent),
            "by_kind": dict(Counter(s.kind for s in loader.sent)),
            "by_partition": {
                str(k): v for k, v in sorted(Counter(s.partition for s in loader.sent).items())
            },
            "streamed_s": round(raw["streamed_s"], 1),
            "drained": raw["drained"],
        },
        "throughput": throughput_of(loader.sent, reader),
        "decision_latency_s": percentiles(decided),
        "e2e_latency_s": percentiles(finished),
        "consumer_lag": lag_summary(raw["lags"]),
        "daemons": [daemon_report(d) for d in daemons],
        "outcomes": outcomes(loader.sent, reader),
        "errors": {
            "dead_letters": len(reader.dead_letters),
            "dead_letter_codes": dict(dead),
            "unparsed_outputs": reader.unparsed,
            "daemon_errors_total": sum(
                v for d in daemons for k, v in d.counters.items() if k.startswith("dxai_errors")
            ),
        },
    }


def config_facts(args: argparse.Namespace, loader: Loader) -> dict[str, Any]:
    """The run's settings for the report."""
    return {
        "minutes": args.minutes,
        "rate_per_min": args.rate_per_min,
        "daemons": args.daemons,
        "partitions": args.partitions,
        "pixels": args.pixels,
        "transactional": args.transactional,
        "cpu_workers": args.workers,
        "max_in_flight_jobs": args.max_in_flight,
        "input_topic": loader.topic,
        "workload": workload_of(args).describe(),
        "cpus": os.cpu_count(),
    }


async def cleanup(
    loader: Loader, reader: OutputReader, dest: str, topics: Topics
) -> dict[str, Any]:
    """Delete what the run stored: source studies, their de-identified copies, the topics."""
    outputs = {
        str(r["deidentified_study_uid"])
        for job in reader.jobs.values()
        for r in job.results
        if r.get("deidentified_study_uid")
    }
    dest_ids, missing = await orthanc_ids_of(dest, outputs)
    return {
        "source_studies": await loader.delete_sources(),
        "dest_studies": {**await delete_orthanc_studies(dest, dest_ids), "not_found": missing},
        "topics_deleted": await delete_topics(reader.bootstrap, topics),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Topics, daemons, stream, drain, stop, report, clean up."""
    bootstrap, src, dst = service("kafka", "bootstrap"), orthanc_url("source"), orthanc_url("dest")
    items = await asyncio.to_thread(templates, workload_of(args))
    run_id = f"{int(time.time())}-{os.getpid()}"
    topics = Topics(f"bench.soak.{run_id}")
    await create_topics(bootstrap, topics, args.partitions)
    loader = Loader(src, bootstrap, topics.input, run_id)
    reader = OutputReader(bootstrap, topics, args.partitions)
    settings = DaemonSettings(
        bootstrap,
        topics,
        src,
        dst,
        args.pixels,
        args.workers,
        args.transactional,
        args.max_in_flight,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dxai-soak-") as tmp:
            daemons = [
                Daemon(f"soak-{n}", Path(tmp) / f"daemon{n}", free_port())
                for n in range(args.daemons)
            ]
            try:
                for daemon in daemons:
                    daemon.start(settings)
                ready_s = await wait_ready(daemons, args.ready_timeout_s)
                raw = await soak(args, daemons, loader, reader, items)
            finally:
                await asyncio.to_thread(stop_all, daemons, args.stop_grace_s)
            report = build_report(args, raw, daemons, loader, reader)
            report["daemons_ready_s"] = round(ready_s, 1)
    finally:
        cleaned = None if args.keep else await cleanup(loader, reader, dst, topics)
    report["cleanup"] = cleaned
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--minutes", type=float, default=3.0, help="how long studies are streamed")
    add("--rate-per-min", type=float, default=4.0, help="studies sent per minute")
    add("--daemons", type=int, default=2, help="daemons in the consumer group")
    add("--partitions", type=int, default=4, help="partitions of the input topic (>= 2)")
    add("--out", type=Path, default=DEFAULT_OUT, help="where the JSON report is written")
    add("--pixels", choices=("never", "auto", "always"), default="auto")
    add("--workers", type=int, default=2, help="pipeline.cpu_workers of each daemon")
    add("--max-in-flight", type=int, default=8, help="kafka.max_in_flight_jobs of each daemon")
    add("--transactional", action=argparse.BooleanOptionalAction, default=True)
    add("--ct-slices", type=int, default=8)
    add("--ct-size", type=int, default=512)
    add("--patients", type=int, default=2, help="template patients (CT, US and SC each)")
    add("--small", action="store_true", help="small US/SC images (synth small=True)")
    add("--seed", type=int, default=11)
    add("--sample-s", type=float, default=2.0, help="lag / RSS sampling interval")
    add("--drain-timeout-s", type=float, default=600.0)
    add("--ready-timeout-s", type=float, default=240.0)
    add("--stop-grace-s", type=float, default=60.0)
    add("--keep", action="store_true", help="keep the topics and Orthanc studies")
    args = parser.parse_args(argv)
    if args.partitions < 2 or args.daemons < 1 or args.rate_per_min <= 0:
        parser.error("need --partitions >= 2, --daemons >= 1 and --rate-per-min > 0")
    return args


def clean(report: dict[str, Any]) -> bool:
    """No job lost, duplicated or contradicted, and every daemon stopped cleanly."""
    out = report["outcomes"]
    exits = [d["exit_code"] for d in report["daemons"]]
    return out["lost"] == out["duplicates"] == out["contradictions"] == 0 and exits == [0] * len(
        exits
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print and save the JSON (and the summary on stderr)."""
    args = parse(argv)
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    print(human(report), file=sys.stderr)
    return 0 if clean(report) else 1


if __name__ == "__main__":
    sys.exit(main())
