"""The Ray Serve InferenceClient: one deployment per model, batched with ``@serve.batch``.

Replicas load their engine from the registry spec (sha256 checked in the replica), run the
batch off their event loop and return one outcome per item: the output or that item's own
DxaiError, which the client re-raises.  Calls go through handles tuned for latency (router on
the caller's loop, small items over Serve's direct gRPC channel: see ``ray_handles``).  ``ray``
is imported lazily (it is an optional extra).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from dxai.batching.buckets import FloatArray, validate_item
from dxai.batching.client import enabled_models
from dxai.batching.execute import Outcome, infer_items
from dxai.batching.ray_handles import (
    REPLICA_ENV,
    ModelHandles,
    Transport,
    close_handles,
    keep_large_buffers_mapped,
    make_handles,
)
from dxai.daemon.config.inference import (
    BatchingConfig,
    EngineConfig,
    InferenceConfig,
    RayServeModelConfig,
)
from dxai.daemon.config.services import RayConfig
from dxai.daemon.errors import (
    BackendUnavailableError,
    BatcherStoppedError,
    DeadlineExceededError,
    DxaiError,
    QueueFullError,
    ServiceUnavailableError,
    UnknownModelError,
)
from dxai.daemon.lifecycle import AsyncLifecycle
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

    def run(self, items: list[Any], deadlines: list[float]) -> list[Outcome]:
        """One outcome per item (blocking)."""
        return infer_items(self.engine, self.model, items, deadlines, self.max_batch)


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
            batch_wait_timeout_s=batching.max_queue_delay_ms / 1000.0,
            max_concurrent_batches=batching.max_concurrent_batches,
        )
        async def __call__(self, items: list[Any], deadlines: list[float]) -> list[Outcome]:
            return await asyncio.to_thread(self._replica.run, items, deadlines)

    deployment: Any = ModelDeployment
    return deployment.bind(spec.model_dump_json(), engine.model_dump_json(), str(base_dir))


class RayServeClient(AsyncLifecycle):
    """InferenceClient over Ray Serve deployment handles."""

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
                    self._handles[name] = make_handles(*_app_names(name))
            except BaseException:
                await self._teardown()
                raise
            self._started = True

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
        serve.start(proxy_location="Disabled")
        for name in enabled_models(self._config, self._registry):
            self._deployed.append(name)
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
        handles, self._handles = list(self._handles.values()), {}
        for handles_of_model in handles:
            await close_handles(handles_of_model)
        await asyncio.to_thread(self._stop_sync)

    def _stop_sync(self) -> None:
        import ray

        serve = _import_serve()
        names, self._deployed = list(self._deployed), []
        if ray.is_initialized():
            for name in names:
                serve.delete(f"{APP_PREFIX}{name}")
        if self._owns_ray and ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
            self._owns_ray = False

    def transport_for(self, model_name: str, item: FloatArray) -> Transport:
        """How ``item`` would travel to ``model_name``'s replicas (after ``start``)."""
        handles = self._handles.get(model_name)
        if handles is None:
            raise UnknownModelError(f"model {model_name!r} is not deployed by this client")
        return handles.transport(self._registry.get(model_name), item)

    async def infer(
        self, model_name: str, item: FloatArray, *, deadline_s: float | None = None
    ) -> FloatArray:
        """Send ``item`` to the model's deployment and await its own outcome."""
        handles = self._handles.get(model_name)
        if handles is None:
            if not self._started:
                raise BatcherStoppedError("inference client is not started")
            raise UnknownModelError(f"model {model_name!r} is not enabled on this node")
        spec = self._registry.get(model_name)
        validate_item(spec, item)
        budget = self._config.batching_for(model_name).default_deadline_s
        budget = budget if deadline_s is None else deadline_s
        response = handles.pick(spec, item).remote(item, time.time() + budget)
        try:
            async with asyncio.timeout(budget):
                outcome = await response
        except TimeoutError:
            response.cancel()
            raise DeadlineExceededError(
                f"model {model_name}: item deadline of {budget:.3f}s passed"
            ) from None
        except DxaiError:
            raise
        except Exception as exc:
            raise _map_ray_error(model_name, exc) from exc
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]


def _app_names(model_name: str) -> tuple[str, str]:
    """(deployment name, application name) of ``model_name``'s Serve application."""
    return f"{APP_PREFIX}{model_name}", f"{APP_PREFIX}{model_name}"


def _map_ray_error(model_name: str, exc: Exception) -> DxaiError:
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, BackPressureError):
        return QueueFullError(f"model {model_name}: ray serve queue full")
    return ServiceUnavailableError(
        f"model {model_name}: ray serve call failed ({type(exc).__name__})"
    )
