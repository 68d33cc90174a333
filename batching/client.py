"""The InferenceClient protocol and the factory that picks its implementation by config alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dxai.batching.buckets import FloatArray
from dxai.configs.schema.inference import InferenceConfig
from dxai.engines.registry import ModelRegistry
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from types import TracebackType

    from dxai.configs.schema.services import RayConfig


@runtime_checkable
class InferenceClient(Protocol):
    """Run one item through a registered model: ``await client.infer(name, item)``.

    Items are float32 CHW arrays; the result is the model output for that item alone, cropped
    back to the item's own size.  Implementations are async context managers whose ``start``
    and ``stop`` are idempotent.
    """

    async def infer(
        self, model_name: str, item: FloatArray, *, deadline_s: float | None = None
    ) -> FloatArray:
        """The output for ``item``; raises a DxaiError subclass on failure."""
        ...

    async def start(self) -> None:
        """Load models / deployments; idempotent."""
        ...

    async def stop(self) -> None:
        """Finish or fail every queued item, release resources; idempotent."""
        ...

    async def __aenter__(self) -> InferenceClient: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def make_inference_client(
    config: InferenceConfig,
    registry: ModelRegistry,
    *,
    ray_config: RayConfig | None = None,
    sensor: Sensor | None = None,
) -> InferenceClient:
    """The in-process batcher client or the Ray Serve client, as ``config.backend`` says."""
    if config.backend == "ray":
        from dxai.batching.ray_serve import RayServeClient

        return RayServeClient(config, registry, ray_config=ray_config, sensor=sensor)
    from dxai.batching.inprocess import InProcessClient

    return InProcessClient(config, registry, sensor=sensor)


def enabled_models(config: InferenceConfig, registry: ModelRegistry) -> tuple[str, ...]:
    """The models this node serves: ``config.models``, else every registered model."""
    names = config.models if config.models is not None else registry.names()
    for name in names:
        registry.get(name)
    return tuple(names)
