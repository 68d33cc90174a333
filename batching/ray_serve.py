"""The Ray Serve InferenceClient: one deployment per model, batched on both sides.

The client batches like the in-process backend (the same ``DynamicBatcher``, with a
``ServeRunner`` that sends each batch as one ``SubBatch`` call: see ``ray_runner``), so Serve's
per-call cost is shared by the batch.  Replicas load their engine from the registry spec
(sha256 checked in the replica); their ``@serve.batch`` merges sub-batches queued from one or
more daemons (up to ``max_batch_size`` items, without waiting again: the client already
did; payloads in same-host shared memory are mapped, not copied: see ``shm``), runs them
off the event loop in engine-sized chunks and returns one outcome per item: the
output or that item's own DxaiError, which the client re-raises.  Calls go through handles
tuned for latency (router on the caller's loop, Serve's direct gRPC channel when the
sub-batch fits: see ``ray_handles``).  ``ray`` is imported lazily (an optional extra).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dxai.batching.batcher import BatcherRouter, DynamicBatcher
from dxai.batching.buckets import FloatArray, bucket_for
from dxai.batching.client import enabled_models
from dxai.batching.ray_handles import (
    REPLICA_ENV,
    ModelHandles,
    Transport,
    close_handles,
    keep_large_buffers_mapped,
    make_handles,
)
from dxai.batching.ray_runner import ServeRunner
from dxai.batching.shm import Attachments, Reply, run_requests
from dxai.batching.subbatch import Outcome, run_sub_batches
from dxai.configs.errors import BackendUnavailableError, UnknownModelError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.inference import (
    BatchingConfig,
    EngineConfig,
    InferenceConfig,
    RayServeModelConfig,
)
from dxai.configs.schema.services import RayConfig
from dxai.engines.factory import load_engine
from dxai.engines.registry import ModelRegistry
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor, default_sensor

_log = get_logger(__name__)
APP_PREFIX = "dxai_"


class ModelReplica:
    """What one Serve replica holds: a loaded engine and its model spec."""

    def __init__(self, spec_json: str, engine_json: str, max_batch: int, base_dir: str) -> None:
        self.model = ModelSpec.model_validate_json(spec_json)
        config = EngineConfig.model_validate_json(engine_json)
        self.max_batch = max_batch
        self.engine = load_engine(self.model, config, max_batch, base_dir=Path(base_dir))
        self._attachments = Attachments()

    def run(self, batches: list[Any]) -> list[Reply]:
        """One reply per request: an outcome per item, or ShmUnavailable (blocking)."""
        return run_requests(self._attachments, batches, self._run_subs)

    def _run_subs(self, subs: Sequence[object]) -> list[list[Outcome]]:
        return run_sub_batches(self.engine, self.model, subs, self.max_batch)


def _items_in(batches: list[Any]) -> int:
    """Items in a list of sub-batches (``@serve.batch``'s batch size; malformed ones: 1)."""
    return sum(max(1, len(getattr(b, "sizes", ()))) for b in batches)


def _import_serve() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise BackendUnavailableError(
            "inference.backend ray requires ray[serve] (pip install 'dicom-exchange-ai[ray]')"
        ) from exc
    return serve


def build_application(
    spec: ModelSpec,
    engine: EngineConfig,
    batching: BatchingConfig,
    serve_cfg: RayServeModelConfig,
    base_dir: Path,
) -> Any:
    """A bound Serve application serving ``spec`` (one deployment, batched)."""
    serve = _import_serve()

    @serve.deployment(
        name=f"{APP_PREFIX}{spec.name}",
        num_replicas=serve_cfg.num_replicas,
        ray_actor_options={
            "num_cpus": serve_cfg.num_cpus,
            "num_gpus": serve_cfg.num_gpus,
            "runtime_env": {"env_vars": dict(REPLICA_ENV)},
        },
        max_ongoing_requests=serve_cfg.max_ongoing_requests,
        max_queued_requests=batching.queue_capacity,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    class ModelDeployment:
        async def __init__(self, spec_json: str, engine_json: str, base: str) -> None:  # type: ignore[misc]
            keep_large_buffers_mapped()
            self._replica = await asyncio.to_thread(
                ModelReplica, spec_json, engine_json, batching.max_batch_size, base
            )

        @serve.batch(  # type: ignore[untyped-decorator]
            max_batch_size=batching.max_batch_size,
            batch_wait_timeout_s=0.0,
            max_concurrent_batches=batching.max_concurrent_batches,
            batch_size_fn=_items_in,
        )
        async def __call__(self, batches: list[Any]) -> list[Reply]:
            return await asyncio.to_thread(self._replica.run, batches)

    deployment: Any = ModelDeployment
    return deployment.bind(spec.model_dump_json(), engine.model_dump_json(), str(base_dir))


class RayServeClient(BatcherRouter, AsyncLifecycle):
    """InferenceClient over Ray Serve deployment handles, batching on the caller's side too.

    Same-host payloads go through files in ``ray_serve.shared_memory_dir`` (per model); None
    sends every payload through Ray (direct channel or object store).
    """

    def __init__(
        self,
        config: InferenceConfig,
        registry: ModelRegistry,
        *,
        ray_config: RayConfig | None = None,
        sensor: Sensor | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._ray_config = ray_config or RayConfig()
        self._sensor = sensor or default_sensor()
        self._handles: dict[str, ModelHandles] = {}
        self._batchers: dict[str, DynamicBatcher] = {}
        self._runners: dict[str, ServeRunner] = {}
        self._deployed: list[str] = []
        self._owns_ray = False
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        """Connect to (or start) Ray, deploy every enabled model; idempotent."""
        async with self._lock:
            if self._started:
                return
            try:
                await asyncio.to_thread(self._start_sync)
                for name in self._deployed:
                    await self._start_batcher(name)
            except BaseException:
                await self._teardown()
                raise
            self._started = True

    async def _start_batcher(self, name: str) -> None:
        handles = make_handles(*_app_names(name))
        self._handles[name] = handles
        batching = self._config.batching_for(name)
        serve_cfg = self._config.ray_serve_for(name)
        folder = serve_cfg.shared_memory_dir
        spec = self._registry.get(name)
        runner = ServeRunner(
            spec,
            handles,
            batching.max_batch_size,
            serve_cfg.num_replicas,
            shared_memory=Path(folder) if folder else None,
        )
        self._runners[name] = runner
        exact = self._config.exact_shapes_for(name)
        batcher = DynamicBatcher(spec, runner, batching, sensor=self._sensor, exact_shapes=exact)
        await batcher.start()
        self._batchers[name] = batcher

    def _start_sync(self) -> None:
        import ray

        serve = _import_serve()
        keep_large_buffers_mapped()
        rc = self._ray_config
        if not ray.is_initialized():
            ray.init(
                address=rc.address,
                namespace=rc.namespace,
                num_cpus=rc.num_cpus if rc.address is None else None,
                include_dashboard=False,
            )
            self._owns_ray = True
        attach = rc.applications == "attach"
        if not attach:
            serve.start(proxy_location="Disabled")
        for name in enabled_models(self._config, self._registry):
            self._deployed.append(name)
            if attach:  # a RayService deployed them (see serve_app): check they run
                _check_running(serve, name)
            else:
                self._deploy(serve, name)

    def _deploy(self, serve: Any, name: str) -> None:
        spec = self._registry.get(name)
        app = build_application(
            spec,
            self._config.engine_for(name),
            self._config.batching_for(name),
            self._config.ray_serve_for(name),
            self._registry.base_dir,
        )
        serve.run(app, name=_app_names(name)[1], route_prefix=None)
        engine = self._config.engine_for(name)
        _log.info(
            "ray serve deployment ready: model=%s backend=%s device=%s",
            name,
            engine.kind,
            engine.device,
            extra={"model": name, "backend": engine.kind, "device": engine.device},
        )
        labels = {"model": name, "backend": engine.kind, "device": engine.device}
        self._sensor.set_gauge("engine_loaded", 1.0, labels)

    async def stop(self) -> None:
        """Delete this client's applications (and Ray, if this client started it); idempotent."""
        async with self._lock:
            if not self._started and not self._deployed:
                return
            await self._teardown()
            self._started = False

    async def _teardown(self) -> None:
        batchers, self._batchers = list(self._batchers.values()), {}
        self._runners = {}
        async with asyncio.TaskGroup() as group:
            for batcher in batchers:
                group.create_task(batcher.stop())
        handles, self._handles = list(self._handles.values()), {}
        for handles_of_model in handles:
            await close_handles(handles_of_model)
        await asyncio.to_thread(self._stop_sync)

    def _stop_sync(self) -> None:
        import ray

        serve = _import_serve()
        names, self._deployed = list(self._deployed), []
        if self._ray_config.applications == "attach":
            names = []  # not ours to delete
        if ray.is_initialized():
            for name in names:
                serve.delete(f"{APP_PREFIX}{name}")
        if self._owns_ray and ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
            self._owns_ray = False

    def transport_for(self, model_name: str, item: FloatArray) -> Transport:
        """How a call carrying ``item`` alone travels when not through shared memory."""
        handles = self._handles.get(model_name)
        if handles is None:
            raise UnknownModelError(f"model {model_name!r} is not deployed by this client")
        spec = self._registry.get(model_name)
        runner = ServeRunner(spec, handles, 1, 1, shared_memory=None)
        exact = self._config.exact_shapes_for(model_name)
        bucket = bucket_for(spec, item.shape[1], item.shape[2], exact=exact)
        return runner.transport([item], bucket)

    def uses_shared_memory(self, model_name: str) -> bool:
        """True while ``model_name``'s payloads travel through same-host shared memory."""
        runner = self._runners.get(model_name)
        if runner is None:
            raise UnknownModelError(f"model {model_name!r} is not deployed by this client")
        return runner.shared_memory


def _check_running(serve: Any, model_name: str) -> None:
    """BackendUnavailableError unless ``model_name``'s Serve application is RUNNING."""
    app = _app_names(model_name)[1]
    overview = serve.status().applications.get(app)
    status = getattr(overview, "status", None) or "MISSING"
    state = str(getattr(status, "value", status))
    if state != "RUNNING":
        raise BackendUnavailableError(f"ray serve application {app} is {state}, not RUNNING")


def _app_names(model_name: str) -> tuple[str, str]:
    """(deployment name, application name) of ``model_name``'s Serve application."""
    return f"{APP_PREFIX}{model_name}", f"{APP_PREFIX}{model_name}"
