"""Assemble and run the daemon from a validated configuration (Kafka or embedded mode)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dxai.configs.errors import ConfigError, ServiceUnavailableError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.audit import FILE_NAME as AUDIT_FILE
from dxai.daemon.audit import AuditLog
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways import StudySource
from dxai.daemon.gateways.resolve import Routes
from dxai.daemon.health import RouteProbes, models_check, staging_check
from dxai.daemon.intake.embedded import EmbeddedIntake, EmbeddedPorts
from dxai.daemon.intake.kafka import KafkaIntake
from dxai.daemon.jobs import JobStore
from dxai.daemon.outputs import FolderPublisher, Publisher
from dxai.daemon.outputs.kafka import KafkaPublisher
from dxai.daemon.outputs.kafka_txn import TransactionalPublisher, reconcile_pending
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.daemon.pipeline.staging import Staging
from dxai.daemon.policy.processors import open_processors
from dxai.daemon.review import ReviewComponent, open_review, open_review_store
from dxai.daemon.telemetry import sample_forever
from dxai.observability.health import CheckResult, HealthState
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor, default_sensor
from dxai.observability.metrics_http import MetricsServer, monitor_loop_lag
from dxai.observability.tracing import Tracer

log = get_logger(__name__)


def make_source_factory(config: DxaiConfig) -> Callable[[StudyEvent], StudySource]:
    """A function from event to its study source: only what the config names (see Routes)."""
    return Routes(config).source_for


def results_dir(config: DxaiConfig) -> Path:
    """Embedded outputs: ``<data_dir>/results`` (decisions/, results/, dlq/, instances/)."""
    return config.results_folder()


def make_routes(config: DxaiConfig) -> Routes:
    """The configured sources and destinations, checked: a destination exists, TLS files load."""
    routes = Routes(config)
    if not routes.destinations:
        raise ConfigError(
            "no destination: set destinations, destination_dicomweb or destination_dimse"
        )
    routes.check_tls()
    return routes


def _kafka_mode(config: DxaiConfig) -> bool:
    return config.kafka is not None and config.mode == "production"


@dataclass(frozen=True)
class DaemonHandle:
    """What a running daemon exposes to its embedder (tests, ``dxai demo``).

    ``metrics_port``: where ``/metrics``, ``/healthz`` and ``/readyz`` answer (None: disabled).
    """

    pipeline: Pipeline
    store: JobStore
    ports: EmbeddedPorts | None
    results: Path
    health: HealthState | None = None
    metrics_port: int | None = None
    review: ReviewComponent | None = None


async def run_daemon(
    config: DxaiConfig,
    stop: asyncio.Event | None = None,
    sensor: Sensor | None = None,
    ready: Callable[[DaemonHandle], None] | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT): resume unfinished jobs, then consume.

    ``ready`` is called once every listener is bound (embedded) or the consumer is starting.
    On stop, intake stops first; running jobs get ``pipeline.drain_grace_s`` to finish, the
    rest are cancelled (unfinished in the store, resumed at the next start); then it returns.
    """
    stop = stop or asyncio.Event()
    sensor = sensor or default_sensor()
    _install_signals(stop)
    given = sensor.tracer
    owned = _install_tracer(config, sensor)
    lag = asyncio.create_task(monitor_loop_lag(sensor))
    try:
        await _serve(config, stop, sensor, ready)
    finally:
        lag.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag
        if owned is not None:  # export what is queued (bounded by the export timeout)
            sensor.tracer = given
            await asyncio.to_thread(owned.shutdown)


def _install_tracer(config: DxaiConfig, sensor: Sensor) -> Tracer | None:
    """Give ``sensor`` the configured tracer, unless its embedder gave it an exporting one
    (tests); the tracer this call made (shut down when the daemon stops), else None."""
    if sensor.tracer.exporting or not config.tracing.enabled:
        return None
    sensor.tracer = Tracer.from_config(config.tracing)
    log.info("tracing on", extra={"kind": config.tracing.exporter})
    return sensor.tracer


async def _serve(
    config: DxaiConfig,
    stop: asyncio.Event,
    sensor: Sensor,
    ready: Callable[[DaemonHandle], None] | None,
) -> None:
    data_dir = Path(config.state.data_dir)
    health = HealthState(config.health.loop_timeout_s)
    async with AsyncExitStack() as stack:
        metrics = await stack.enter_async_context(MetricsServer(config.metrics, sensor, health))
        processors = await open_processors(config, sensor, stack)
        loaded = processors.actor is not None
        health.add("models", models_check(processors.actor_config, loaded))
        store = await stack.enter_async_context(JobStore(data_dir / config.state.sqlite_file))
        audit = await stack.enter_async_context(AuditLog(data_dir / AUDIT_FILE))
        await audit.append("config_loaded", "", _config_facts(config))
        routes = make_routes(config)
        stack.push_async_callback(routes.aclose)
        _watch_routes(config, health, stop, stack)
        staging = Staging(
            data_dir / "staging",
            config.pipeline.staging_max_bytes,
            config.pipeline.staging_memory_max_bytes,
        )
        health.add("staging", staging_check(staging, config.health.staging_ready_max_fraction))
        outputs = await _publisher_when_broker_answers(config, store, stack, health, stop)
        if outputs is None:
            return  # stopped while waiting for the broker
        publisher, txn = outputs
        review_keeper = await open_review_store(config, audit)
        inbound = None
        if config.inbound.enabled:  # imported only then: triage loads spaCy
            from dxai.daemon.pipeline.inbound import open_inbound

            inbound = await asyncio.to_thread(open_inbound, config, processors.client)
        parts = PipelineParts(
            store,
            routes.source_for,
            routes.fallback_sink(),
            processors.default,
            publisher,
            sensor,
            RetryPolicy.from_config(config.kafka),
            staging=staging,
            sinks=routes.sink_for,
            audit=audit,
            review=review_keeper,
            governance=processors.governance,
            inbound=inbound,
            sink_named=routes.sink_named,
        )
        pipeline = await stack.enter_async_context(Pipeline(parts, config.pipeline))
        review = await open_review(config, review_keeper, store, audit, pipeline, stack)
        _sample_metrics(config, store, sensor, stop, stack)
        resumed = await _resume(config, pipeline, store)
        log.info("daemon started", extra={"count": resumed, "state": config.mode})
        handle = DaemonHandle(pipeline, store, None, results_dir(config), health, metrics.port)
        handle = dataclasses.replace(handle, review=review)
        try:
            await _intake(config, handle, txn, sensor, stop, ready)
        finally:
            health.set_phase("draining")
            log.info("daemon draining", extra={"count": pipeline.in_flight})


async def _intake(
    config: DxaiConfig,
    handle: DaemonHandle,
    txn: TransactionalPublisher | None,
    sensor: Sensor,
    stop: asyncio.Event,
    ready: Callable[[DaemonHandle], None] | None,
) -> None:
    """Take events until ``stop``: the Kafka consumer, or the embedded listeners."""
    health = handle.health
    assert health is not None
    if _kafka_mode(config):
        assert config.kafka is not None
        kafka = KafkaIntake(config.kafka, handle.pipeline, sensor, txn, config.health)
        health.add("kafka", kafka.check)
        health.set_phase("serving")
        if ready is not None:
            ready(handle)
        await kafka.run(stop)
        return
    intake = EmbeddedIntake(config, handle.pipeline.submit, sensor, handle.store)
    ports = await intake.start()
    try:
        health.set_phase("serving")
        if ready is not None:
            ready(dataclasses.replace(handle, ports=ports))
        await stop.wait()
    finally:
        await intake.stop()


async def _resume(config: DxaiConfig, pipeline: Pipeline, store: JobStore) -> int:
    """Resume unfinished jobs.  Kafka with ``commit_policy: watermark``: only reviewed jobs'
    unsent outputs; every other unfinished job comes back with its input event, to whichever
    daemon owns its partition now (docs/scaleout.md): resuming it here could run it twice."""
    if not _kafka_mode(config) or config.kafka is None or config.kafka.commit_policy != "watermark":
        return await pipeline.resume_unfinished()
    keys = await store.reviewed_unsent()
    for key in keys:
        pipeline.send_outputs(key)
    return len(keys)


def _sample_metrics(
    config: DxaiConfig, store: JobStore, sensor: Sensor, stop: asyncio.Event, stack: AsyncExitStack
) -> None:
    """Sample the job store's gauges in the background until the daemon stops."""
    interval = config.metrics.sample_interval_s
    task = asyncio.create_task(sample_forever(store, sensor, interval, stop), name="sampler")
    stack.push_async_callback(_cancel, task)


def _watch_routes(
    config: DxaiConfig, health: HealthState, stop: asyncio.Event, stack: AsyncExitStack
) -> None:
    """Probe the configured routes in the background until the daemon stops."""
    probes = RouteProbes(config)
    probes.register(health)
    task = asyncio.create_task(probes.run(stop), name="route-probes")
    stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _config_facts(config: DxaiConfig) -> dict[str, Any]:
    """What the audit log keeps of the configuration a daemon starts with: its hash, no values."""
    text = config.model_dump_json()
    return {
        "config_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "mode": config.mode,
        "pipeline_version": config.pipeline.version,
        "profile": config.deid.profile,
        "pixels": config.deid.pixels,
        "policy_rules": [rule.name for rule in config.policy.rules],
    }


async def _publisher_when_broker_answers(
    config: DxaiConfig,
    store: JobStore,
    stack: AsyncExitStack,
    health: HealthState,
    stop: asyncio.Event,
) -> tuple[Publisher, TransactionalPublisher | None] | None:
    """The publisher, retried with backoff while the broker does not answer (alive, not ready:
    a pod started before its broker waits instead of crashing); None if stopped first."""
    retry = RetryPolicy.from_config(config.kafka)
    delay = retry.initial_s
    while not stop.is_set():
        try:
            async with AsyncExitStack() as attempt:
                outputs = await _publisher(config, store, attempt)
                stack.push_async_callback(attempt.pop_all().aclose)
                return outputs
        except ServiceUnavailableError as exc:
            _broker_down(health, type(exc.__cause__ or exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, retry.max_s)
    return None


def _broker_down(health: HealthState, cause: str) -> None:
    result = CheckResult(False, f"broker not connected ({cause})")
    health.add("kafka", lambda: result)
    log.warning("kafka broker unreachable", extra={"error_code": cause})


async def _publisher(
    config: DxaiConfig, store: JobStore, stack: AsyncExitStack
) -> tuple[Publisher, TransactionalPublisher | None]:
    """Folder (embedded), Kafka, or transactional Kafka with pending outputs settled."""
    if not _kafka_mode(config):
        return FolderPublisher(results_dir(config)), None
    assert config.kafka is not None
    if not config.kafka.transactional:
        return await stack.enter_async_context(KafkaPublisher(config.kafka)), None
    txn = await stack.enter_async_context(TransactionalPublisher(config.kafka, store))
    await reconcile_pending(store, config.kafka)
    return txn, txn


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
