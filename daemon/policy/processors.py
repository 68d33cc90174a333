"""The daemon's per-instance processors: the default one (``deid``) and one per (profile,
pixels) the policy names, built at start off the event loop, sharing one pixel actor and the
encrypted re-identification map.
"""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio.to_thread

from dxai.actors.outbound import InstancePipeline, PipelineChoice, build_pipeline
from dxai.actors.outbound.pixel_step import PixelActor
from dxai.actors.outbound.series import InstanceProcessor
from dxai.batching.client import InferenceClient
from dxai.configs.schema.policy import PolicyDecision
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.gateways.resolve import Routes
from dxai.daemon.pipeline.inference import open_inference, pixel_actor_on
from dxai.daemon.policy.consent import make_consent_source
from dxai.daemon.policy.engine import PolicyEngine
from dxai.daemon.policy.governance import Governance, ProcessorKey
from dxai.daemon.review.reid import SealedReidMap, open_reid_map
from dxai.observability.metrics import Sensor


@dataclass(frozen=True)
class Processors:
    """What the daemon processes with: the default processor, the policy (None without
    rules), the pixel actor (None: not loaded) and the configuration the actor was opened for."""

    default: InstancePipeline
    governance: Governance | None
    actor: PixelActor | None
    actor_config: DxaiConfig
    client: InferenceClient | None = None


def actor_config(config: DxaiConfig) -> DxaiConfig:
    """``config`` with ``deid.pixels`` set to a policy's pixel mode when the default is
    ``never`` but a rule wants pixels: the OCR models are loaded for it."""
    if config.deid.pixels != "never":
        return config
    modes = [
        d.pixels for d in config.policy.decisions().values() if d.pixels not in (None, "never")
    ]
    if not modes:
        return config
    deid = config.deid.model_copy(update={"pixels": modes[0]})
    return config.model_copy(update={"deid": deid})


async def open_processors(config: DxaiConfig, sensor: Sensor, stack: AsyncExitStack) -> Processors:
    """Load the pixel actor (when any processor needs it), open the re-identification map,
    build every processor; all closed when ``stack`` closes (after the pipeline drained)."""
    wanted = actor_config(config)
    client = await open_inference(wanted, sensor, stack)
    actor = await pixel_actor_on(wanted, client, sensor)
    reid = await anyio.to_thread.run_sync(open_reid_map, config)
    if reid is not None:
        stack.callback(reid.close)
    build = functools.partial(_build_all, config, actor, reid)
    default, built = await anyio.to_thread.run_sync(build)
    for pipeline in built.values():
        stack.callback(pipeline.close)
    governance = None
    if config.policy.rules or config.policy.default != PolicyDecision():
        engine = PolicyEngine(config.policy, config.deid)
        consent = make_consent_source(config.policy.consent_source)
        routes = Routes(config)
        processors: dict[ProcessorKey, InstanceProcessor] = dict(built)
        governance = Governance(engine, processors, consent, routes.source_name, actor)
    return Processors(default, governance, actor, wanted, client)


def _build_all(
    config: DxaiConfig, actor: PixelActor | None, reid: SealedReidMap | None
) -> tuple[InstancePipeline, dict[ProcessorKey, InstancePipeline]]:
    """The default processor and one per (profile, pixels) of the policy (blocking)."""
    default = _build(config, actor, reid, None)
    built: dict[ProcessorKey, InstancePipeline] = {
        (config.deid.profile, config.deid.pixels): default
    }
    engine = PolicyEngine(config.policy, config.deid)
    for resolution in engine.all_resolutions():
        if resolution.key not in built:
            built[resolution.key] = _build(config, actor, reid, resolution.key)
    return default, built


def _build(
    config: DxaiConfig,
    actor: PixelActor | None,
    reid: SealedReidMap | None,
    key: ProcessorKey | None,
) -> InstancePipeline:
    choice = PipelineChoice(profile=key[0], pixels=key[1]) if key else None  # type: ignore[arg-type]
    pipeline, _info = build_pipeline(config, actor, choice=choice, cpu_fallback=False, reid=reid)
    return pipeline
