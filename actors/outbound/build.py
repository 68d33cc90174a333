"""Build the per-instance pipeline from the validated configuration (CLI and daemon alike)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dxai.actors.deid import Deidentifier, load_or_create_key
from dxai.actors.deid.reid import ReidentificationStore
from dxai.actors.outbound.instance import InstancePipeline, ReidRecorder
from dxai.actors.outbound.pixel_step import PixelActor, PixelStep, build_cpu_pixel_actor
from dxai.configs.errors import ConfigError
from dxai.configs.schema.deid import PixelMode
from dxai.configs.schema.root import DxaiConfig


@dataclass(frozen=True)
class PipelineChoice:
    """What a caller may choose over ``config.deid`` (the CLI's flags); None keeps the config."""

    profile: str | None = None
    key_file: Path | None = None
    pixels: PixelMode | None = None


@dataclass(frozen=True)
class KeyInfo:
    """Where the de-identification key came from (never the key itself)."""

    path: Path
    created: bool


def build_pipeline(
    config: DxaiConfig,
    pixel_actor: PixelActor | None = None,
    *,
    choice: PipelineChoice | None = None,
    cpu_fallback: bool = True,
    reid: ReidRecorder | None = None,
) -> tuple[InstancePipeline, KeyInfo]:
    """The pipeline for ``config.deid`` with the configured (or generated) key.

    With pixels other than ``never`` one pixel actor serves every worker thread: ``pixel_actor``
    when given (the daemon's batched one), else the CPU OCR redactor when ``cpu_fallback`` (else
    none: instances with pixel data are held).  ``deid.reidentification_map`` records passed
    instances in ``reid`` when given (the daemon's encrypted map), else opens the plain map in
    the state folder's SQLite file.  ``choice.pixels`` overrides ``deid.pixels`` (a policy's).
    Blocking (reads the key, may load OCR models).
    """
    choice = choice or PipelineChoice()
    name = choice.profile or config.deid.profile
    if name not in config.deid.profiles:
        raise ConfigError(f"unknown profile {name!r}; known: {sorted(config.deid.profiles)}")
    data_dir = Path(config.state.data_dir)
    key_file = choice.key_file or (Path(config.deid.key_file) if config.deid.key_file else None)
    key, key_path, created = load_or_create_key(key_file, data_dir)
    deidentifier = Deidentifier(
        config.deid.profiles[name],
        key,
        profile_name=name,
        date_shift_max_days=config.deid.date_shift_max_days,
    )
    if not config.deid.reidentification_map:
        reid = None
    elif reid is None:
        reid = ReidentificationStore(data_dir / config.state.sqlite_file)
    mode = choice.pixels or config.deid.pixels
    step = None
    if mode != "never":
        actor = pixel_actor
        if actor is None and cpu_fallback:
            actor = build_cpu_pixel_actor(config.deid.pixel_policy)
        step = PixelStep(actor, mode, config.deid.pixel_policy)
    return InstancePipeline(deidentifier, step, reid), KeyInfo(key_path, created)
