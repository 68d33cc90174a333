"""A real Prometheus scrapes a daemon while jobs flow; every Grafana panel's PromQL answers.

Prometheus (Debian's ``prometheus``, scripts/install_system.sh) runs with the project's rules
(configs/prometheus/dxai-rules.yml) and a 1 s scrape of the daemon's metrics port; each panel
query of configs/grafana/dxai.json, with Grafana's variables filled in, is evaluated through
Prometheus' HTTP API and must return series.  The daemon runs in Kafka mode fed from a local
folder (no Orthanc).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from obs_helpers import (
    REPO,
    collect,
    kafka_daemon,
    obs_config,
    output_topics,
    produce,
    sample_study,
    study_event,
)

from dxai.observability.metrics import Sensor

pytestmark = pytest.mark.integration

DASHBOARD = REPO / "configs" / "grafana" / "dxai.json"
RULES = REPO / "configs" / "prometheus" / "dxai-rules.yml"
SCRAPE_CONFIG = REPO / "configs" / "prometheus" / "prometheus.yml"
#: What Grafana would put in place of its variables.
VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$job": ".+"}
DEADLINE_S = 90.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/install_system.sh")
    return path


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) of every panel target."""
    out: list[tuple[str, str]] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = str(target["expr"])
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unknown variable in {panel['title']}: {expr}"
            out.append((str(panel["title"]), expr))
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prometheus_config(tmp: Path, metrics_port: int) -> Path:
    config = tmp / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "dxai",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    return config


@asynccontextmanager
async def prometheus(tmp: Path, metrics_port: int) -> AsyncIterator[str]:
    """A Prometheus scraping ``metrics_port``; its base URL (stopped at the end)."""
    port = _free_port()
    log = (tmp / "prometheus.log").open("wb")
    args = [
        _tool("prometheus"),
        f"--config.file={_prometheus_config(tmp, metrics_port)}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    proc = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await _until(lambda: _ready(base), "prometheus ready", proc)
        yield base
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


async def _ready(base: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{base}/-/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def _until(check: Any, what: str, proc: asyncio.subprocess.Process | None = None) -> None:
    """Poll the async predicate ``check`` until true (fails at the deadline)."""
    end = time.monotonic() + DEADLINE_S
    while not await check():
        if proc is not None and proc.returncode is not None:
            pytest.fail(f"{what}: prometheus exited with {proc.returncode}")
        if time.monotonic() > end:
            pytest.fail(f"{what}: not before the deadline")
        await asyncio.sleep(0.25)  # poll interval


async def query(base: str, expr: str) -> list[dict[str, Any]]:
    """The instant-query result of ``expr`` (fails on an API error)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base}/api/v1/query", params={"query": expr})
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _empty_panels(base: str, queries: list[tuple[str, str]]) -> list[str]:
    empty = []
    for title, expr in queries:
        if not await query(base, expr):
            empty.append(f"{title}: {expr}")
    return empty


@contextmanager
def _keep(tmp: Path) -> Iterator[None]:
    """On failure, show the end of Prometheus' log."""
    try:
        yield
    except BaseException:
        log = tmp / "prometheus.log"
        if log.exists():
            print(log.read_text(errors="replace")[-4000:])
        raise


async def test_every_dashboard_panel_answers_from_a_real_prometheus(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    queries = panel_queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 20
    study = sample_study(tmp_path)
    metrics = {"enabled": True, "host": "127.0.0.1", "port": 0, "sample_interval_s": 0.5}
    config = obs_config(tmp_path, kafka_bootstrap, kafka_topic, metrics=metrics)
    decisions, results, dlq = output_topics(kafka_topic)
    with _keep(tmp_path):
        async with kafka_daemon(config, Sensor()) as handle:
            assert handle.metrics_port is not None
            async with prometheus(tmp_path, handle.metrics_port) as base:
                await _until(lambda: _scraped(base), "first scrape of the daemon")
                events = [
                    (study_event(study, "p-released"), []),
                    (study_event(study, "p-held", destination="review-desk"), []),
                    (b"[1, 2]", []),
                ]
                await produce(kafka_bootstrap, kafka_topic, events)
                await collect(
                    kafka_bootstrap,
                    [decisions, results, dlq],
                    lambda s: len(s[results]) >= 2 and len(s[dlq]) >= 1,
                )
                more = [(study_event(study, "p-again"), [])]  # jobs keep flowing meanwhile
                await produce(kafka_bootstrap, kafka_topic, more)
                await _until(lambda: _all_answer(base, queries), "every panel query answers")
                await _until(lambda: _rules_healthy(base), "every rule evaluates")


async def _scraped(base: str) -> bool:
    return bool(await query(base, 'up{job="dxai"} == 1'))


async def _all_answer(base: str, queries: list[tuple[str, str]]) -> bool:
    return not await _empty_panels(base, queries)


async def _rules_healthy(base: str) -> bool:
    """Every alert rule was evaluated without error (recording rules: none failed)."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"{base}/api/v1/rules")).json()
    rules = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert len(rules) >= 16
    assert not [r["name"] for r in rules if r.get("health") == "err"], rules
    return all(r.get("health") == "ok" for r in rules if r["type"] == "alerting")


def test_rules_scrape_config_and_alert_tests_pass_promtool() -> None:
    promtool = _tool("promtool")
    checks = (
        ["check", "rules", str(RULES)],
        ["check", "config", str(SCRAPE_CONFIG)],
        ["test", "rules", str(RULES.with_name("dxai-rules.test.yml"))],
    )
    for args in checks:
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_covers_what_an_operator_acts_on() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(expr for _title, expr in panel_queries(dashboard))
    for metric in (
        "dxai_events_consumed_total",
        "dxai_decision_latency_seconds_bucket",
        "dxai_kafka_consumer_lag",
        "dxai_batch_fill_ratio",
        "dxai_errors_total",
        "dxai_review_backlog_age_seconds",
        "dxai_holds_total",
        "dxai_dead_letters_total",
        "process_resident_memory_bytes",
    ):
        assert metric in text, metric
    assert dashboard["uid"] == "dxai-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
