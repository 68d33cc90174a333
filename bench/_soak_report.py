"""The soak benchmark's report: latency percentiles, throughput, lag and RSS series, outcomes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from _soak_daemons import Daemon
from _soak_kafka import OutputReader
from _soak_load import Sent

AGREE = {"proceed": {"released"}, "hold": {"held_for_review"}, "block": {"blocked", "failed"}}


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of ``values`` (nearest rank), in seconds rounded to ms."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "p50": rank(0.5),
        "p90": rank(0.9),
        "p99": rank(0.99),
        "max": rank(1.0),
        "n": len(ordered),
    }


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, per minute (None under 3 points)."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 60, 3)


def thin(points: list[tuple[float, float]], keep: int = 120) -> list[list[float]]:
    """At most ``keep`` evenly spaced points (first and last kept), rounded, for the JSON."""
    if len(points) > keep:
        step = (len(points) - 1) / (keep - 1)
        points = [points[round(i * step)] for i in range(keep)]
    return [[round(t, 1), round(v, 1)] for t, v in points]


def rss_summary(daemon: Daemon) -> dict[str, Any]:
    """First/last/max RSS, slope over the whole run and over its second half (MiB/min)."""
    points = daemon.rss
    if not points:
        return {"first_mib": None, "last_mib": None, "max_mib": None, "slope_mib_per_min": None}
    half = [p for p in points if p[0] >= points[-1][0] / 2]
    return {
        "first_mib": round(points[0][1], 1),
        "last_mib": round(points[-1][1], 1),
        "max_mib": round(max(v for _, v in points), 1),
        "slope_mib_per_min": slope_per_min(points),
        "slope_second_half_mib_per_min": slope_per_min(half),
        "samples": thin(points),
    }


def daemon_report(daemon: Daemon) -> dict[str, Any]:
    """One daemon: RSS, CPU seconds, exit code, counters, log warnings and errors."""
    cpu = daemon.cpu[-1][1] - daemon.cpu[0][1] if len(daemon.cpu) > 1 else None
    return {
        "client_id": daemon.client_id,
        "rss": rss_summary(daemon),
        "cpu_s": round(cpu, 1) if cpu is not None else None,
        "cpu_s_total": round(daemon.cpu[-1][1], 1) if daemon.cpu else None,
        "exit_code": daemon.exit_code,
        "counters": daemon.counters,
        "log": daemon.log_levels(),
    }


def latencies(sent: list[Sent], reader: OutputReader) -> tuple[list[float], list[float]]:
    """Per finished job: final decision time and results time minus the event's produce time."""
    decided, finished = [], []
    for item in sent:
        out = reader.jobs.get(item.job_id)
        if out is None:
            continue
        finals = out.final_decisions()
        if finals:
            decided.append(finals[0][1] - item.produced_at)
        if out.results_at:
            finished.append(out.results_at[0] - item.produced_at)
    return decided, finished


def outcomes(sent: list[Sent], reader: OutputReader) -> dict[str, Any]:
    """Lost, duplicated and contradicting jobs; decision, state and reason counts; pixel totals."""
    decisions: Counter[str] = Counter()
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    pixels: Counter[str] = Counter()
    lost = duplicates = contradictions = deferred = 0
    for item in sent:
        out = reader.jobs.get(item.job_id)
        finals = out.final_decisions() if out else []
        if out is None or not out.results or not finals:
            lost += 1
            continue
        duplicates += len(out.results) > 1 or len(finals) > 1
        deferred += sum(1 for d, _ in out.decisions if d == "deferred")
        state = str(out.results[0]["state"])
        contradictions += state not in AGREE.get(finals[-1][0], set())
        decisions[finals[-1][0]] += 1
        states[state] += 1
        reasons.update(set(out.reasons))
        for task in out.results[0].get("tasks") or []:
            if task.get("task") == "pixels":
                pixels.update({k: int(v) for k, v in (task.get("counts") or {}).items()})
    return {
        "lost": lost,
        "duplicates": duplicates,
        "contradictions": contradictions,
        "deferred_decisions": deferred,
        "decisions": dict(decisions),
        "states": dict(states),
        "reason_codes": dict(reasons.most_common()),
        "pixels": dict(pixels),
    }


def throughput(sent: list[Sent], reader: OutputReader) -> dict[str, Any]:
    """Finished studies per minute and instances per second, first produce to last results."""
    done = [s for s in sent if s.job_id in reader.finished()]
    if not done:
        return {"studies_per_min": 0.0, "instances_per_s": 0.0, "wall_s": None}
    first = min(s.produced_at for s in sent)
    last = max(max(reader.jobs[s.job_id].results_at) for s in done)
    wall = max(last - first, 1e-6)
    instances = sum(s.instances for s in done)
    return {
        "studies_finished": len(done),
        "instances_finished": instances,
        "wall_s": round(wall, 1),
        "studies_per_min": round(len(done) / wall * 60, 2),
        "instances_per_s": round(instances / wall, 3),
    }


def lag_summary(samples: list[tuple[float, dict[int, int]]]) -> dict[str, Any]:
    """Total lag over time, its max, last value and slope (events/min)."""
    totals = [(t, float(sum(v.values()))) for t, v in samples]
    if not totals:
        return {"max": None, "last": None, "mean": None, "samples": []}
    return {
        "max": int(max(v for _, v in totals)),
        "last": int(totals[-1][1]),
        "mean": round(sum(v for _, v in totals) / len(totals), 2),
        "slope_per_min": slope_per_min(totals),
        "partitions_max": {
            str(p): max(v.get(p, 0) for _, v in samples) for p in sorted(samples[-1][1])
        },
        "samples": thin(totals),
    }


def human(report: dict[str, Any]) -> str:
    """A few lines for a person: throughput, latencies, lag, RSS, losses."""
    thr, out, lag = report["throughput"], report["outcomes"], report["consumer_lag"]
    dec, e2e = report["decision_latency_s"], report["e2e_latency_s"]
    lines = [
        f"soak: {report['studies']['produced']} studies produced in "
        f"{report['config']['minutes']} min, {thr.get('studies_finished', 0)} finished, "
        f"{out['lost']} lost, {out['duplicates']} duplicated, "
        f"{report['errors']['dead_letters']} dead letters",
        f"throughput: {thr['studies_per_min']} studies/min, {thr['instances_per_s']} instances/s",
        f"decision latency s: p50 {dec['p50']} p90 {dec['p90']} p99 {dec['p99']} max {dec['max']}",
        f"end-to-end latency s: p50 {e2e['p50']} p90 {e2e['p90']} p99 {e2e['p99']} "
        f"max {e2e['max']}",
        f"consumer lag: max {lag['max']} last {lag['last']} slope {lag.get('slope_per_min')}/min",
        f"outcomes: {out['decisions']}",
    ]
    for d in report["daemons"]:
        rss = d["rss"]
        lines.append(
            f"{d['client_id']}: RSS {rss['first_mib']} -> {rss['last_mib']} MiB "
            f"(max {rss['max_mib']}, slope {rss['slope_mib_per_min']} MiB/min, second half "
            f"{rss.get('slope_second_half_mib_per_min')}), CPU {d['cpu_s']} s, "
            f"exit {d['exit_code']}"
        )
    return "\n".join(lines)
