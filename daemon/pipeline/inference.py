"""The daemon's InferenceClient and the pixel actor that sends its OCR through it (the batcher).

The client (in-process ONNX Runtime batcher or Ray Serve, by ``inference.backend``) lives as
long as the daemon: started before intake, stopped after the pipeline has drained.  The pixel
actor (:func:`dxai.actors.pixels.inference.build_batched_redactor`) submits each detection
image and each recognition crop to the client on the daemon's event loop and waits in the CPU
worker thread; the loop never blocks.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from dxai.configs.errors import ConfigError, DxaiError
from dxai.configs.schema.root import DxaiConfig
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from dxai.actors.outbound.pixel_step import PixelActor
    from dxai.batching.client import InferenceClient
    from dxai.configs.schema.pixels import PixelPolicyConfig

log = get_logger(__name__)
_LOAD_ERRORS = (DxaiError, ImportError, OSError, RuntimeError)


def make_daemon_client(config: DxaiConfig, sensor: Sensor) -> InferenceClient:
    """The configured InferenceClient (not started); reads the model registry (blocking)."""
    from dxai.batching import make_inference_client
    from dxai.engines import load_registry

    registry = load_registry(config.inference.models_file)
    return make_inference_client(config.inference, registry, ray_config=config.ray, sensor=sensor)


def needs_inference(config: DxaiConfig) -> bool:
    """Whether anything infers: the pixel step, or the inbound workflow's model tasks."""
    inbound = config.inbound
    return config.deid.pixels != "never" or (inbound.enabled and bool(inbound.ai.models))


async def open_inference(
    config: DxaiConfig, sensor: Sensor, stack: AsyncExitStack
) -> InferenceClient | None:
    """Start the daemon's client and stop it when ``stack`` closes; None if it cannot start.

    None when nothing infers (:func:`needs_inference`); on a start failure the error is
    logged (type only): the pixel step holds every instance with pixel data and the inbound
    model tasks report ``failed`` (fail closed).
    """
    if not needs_inference(config):
        return None
    try:
        client = await asyncio.to_thread(make_daemon_client, config, sensor)
        await client.start()
    except _LOAD_ERRORS as exc:
        log.error("inference client unavailable", extra={"error_code": type(exc).__name__})
        return None
    stack.push_async_callback(client.stop)
    log.info("inference client started", extra={"state": config.inference.backend})
    return client


def batched_pixel_actor(
    policy: PixelPolicyConfig,
    client: InferenceClient,
    loop: asyncio.AbstractEventLoop,
    sensor: Sensor | None = None,
) -> PixelActor | None:
    """The redactor whose OCR runs through ``client`` (call from a thread); None on failure.

    None (instances with pixel data are held) when the recogniser's charset cannot be read.
    A configuration error (a site's known-regions script that does not parse) is raised: the
    daemon refuses to start with the message naming the key and line.
    """
    try:
        from dxai.actors.pixels.inference import build_batched_redactor

        return build_batched_redactor(policy, client, loop, sensor)
    except ConfigError:
        raise
    except _LOAD_ERRORS as exc:
        log.error("pixel actor unavailable", extra={"error_code": type(exc).__name__})
        return None


async def open_pixel_actor(
    config: DxaiConfig, sensor: Sensor, stack: AsyncExitStack
) -> PixelActor | None:
    """The pixel actor of ``dxai deid`` and the daemon alike: OCR through the configured client.

    None when ``deid.pixels`` is ``never`` or the client or models cannot load (instances with
    pixel data are then held).  The client stops when ``stack`` closes.
    """
    client = await open_inference(config, sensor, stack)
    return await pixel_actor_on(config, client, sensor)


async def pixel_actor_on(
    config: DxaiConfig, client: InferenceClient | None, sensor: Sensor
) -> PixelActor | None:
    """The pixel actor on an opened ``client`` (None without one or with ``pixels: never``)."""
    if client is None or config.deid.pixels == "never":
        return None
    loop = asyncio.get_running_loop()
    policy = config.deid.pixel_policy
    return await asyncio.to_thread(batched_pixel_actor, policy, client, loop, sensor)
