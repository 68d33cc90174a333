"""The in-process InferenceClient: one engine and one DynamicBatcher per enabled model."""

from __future__ import annotations

import asyncio

from dxai.batching.batcher import BatcherRouter, DynamicBatcher
from dxai.batching.client import enabled_models
from dxai.configs.errors import UnknownModelError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.inference import InferenceConfig
from dxai.engines.base import Engine, EngineInfo
from dxai.engines.factory import load_engine
from dxai.engines.registry import ModelRegistry
from dxai.observability.metrics import Sensor, default_sensor


class InProcessClient(BatcherRouter, AsyncLifecycle):
    """Engines loaded in this process, fed by asyncio dynamic batchers."""

    def __init__(
        self, config: InferenceConfig, registry: ModelRegistry, *, sensor: Sensor | None = None
    ) -> None:
        self._config = config
        self._registry = registry
        self._sensor = sensor or default_sensor()
        self._engines: dict[str, Engine] = {}
        self._batchers: dict[str, DynamicBatcher] = {}
        self._lock = asyncio.Lock()
        self._started = False

    def engine_info(self, model_name: str) -> EngineInfo:
        """What actually runs ``model_name`` (backend, device, precision, providers)."""
        return self._engine(model_name).info

    def _engine(self, model_name: str) -> Engine:
        engine = self._engines.get(model_name)
        if engine is None:
            raise UnknownModelError(f"model {model_name!r} is not enabled on this node")
        return engine

    async def start(self) -> None:
        """Verify, load and start every enabled model (off the loop); idempotent."""
        async with self._lock:
            if self._started:
                return
            try:
                for name in enabled_models(self._config, self._registry):
                    await self._start_model(name)
            except BaseException:
                await self._teardown()
                raise
            self._started = True

    async def _start_model(self, name: str) -> None:
        spec = self._registry.get(name)
        batching = self._config.batching_for(name)
        engine = await asyncio.to_thread(
            load_engine,
            spec,
            self._config.engine_for(name),
            batching.max_batch_size,
            base_dir=self._registry.base_dir,
            sensor=self._sensor,
        )
        self._engines[name] = engine
        exact = self._config.exact_shapes_for(name)
        batcher = DynamicBatcher(spec, engine, batching, sensor=self._sensor, exact_shapes=exact)
        await batcher.start()
        self._batchers[name] = batcher

    async def stop(self) -> None:
        """Drain and stop every batcher, close every engine; idempotent."""
        async with self._lock:
            await self._teardown()
            self._started = False

    async def _teardown(self) -> None:
        batchers, self._batchers = self._batchers, {}
        async with asyncio.TaskGroup() as group:
            for batcher in batchers.values():
                group.create_task(batcher.stop())
        engines, self._engines = self._engines, {}
        for name, engine in engines.items():
            await asyncio.to_thread(engine.close)
            info = engine.info
            labels = {"model": name, "backend": info.backend, "device": info.device}
            self._sensor.set_gauge("engine_loaded", 0.0, labels)
