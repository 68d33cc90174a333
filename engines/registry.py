"""The model registry: ``configs/models.yaml`` → :class:`ModelSpec`, with sha256 checks at load.

The registry file is found by path (``inference.models_file``) or, by default, as the package
resource ``dxai.configs/models.yaml``.  Model files are package resources (e.g. the PP-OCRv4
ONNX files inside ``rapidocr_onnxruntime``) or paths relative to the registry file.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dxai.configs.errors import ConfigError, ModelIntegrityError, UnknownModelError
from dxai.engines.spec import ModelSpec

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelRegistry:
    """The models this node knows, by name; ``base_dir`` anchors relative model paths."""

    models: Mapping[str, ModelSpec]
    base_dir: Path = field(default_factory=Path.cwd)

    def get(self, name: str) -> ModelSpec:
        """The spec of ``name``; :class:`UnknownModelError` if it is not registered."""
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(f"model {name!r} is not in the model registry") from None

    def names(self) -> tuple[str, ...]:
        """Registered model names, sorted."""
        return tuple(sorted(self.models))

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models[name] for name in self.names())

    def resolve_path(self, spec: ModelSpec) -> Path:
        """The filesystem path of ``spec``'s model file (not yet verified)."""
        return resolve_model_path(spec, self.base_dir)


def _read_registry_text(path: str | Path | None) -> tuple[str, Path, str]:
    if path is not None:
        file = Path(path)
        try:
            return file.read_text(encoding="utf-8"), file.resolve().parent, str(file)
        except OSError as exc:
            raise ConfigError(f"cannot read model registry {file}: {exc.strerror}") from exc
    res = importlib.resources.files("dxai.configs").joinpath("models.yaml")
    return res.read_text(encoding="utf-8"), Path.cwd(), "dxai.configs/models.yaml"


def load_registry(path: str | Path | None = None) -> ModelRegistry:
    """Read and validate the model registry; :class:`ConfigError` names the bad key."""
    text, base_dir, source = _read_registry_text(path)
    data: Any = yaml.safe_load(text) or {}
    raw = data.get("models") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must have a 'models' mapping")
    models: dict[str, ModelSpec] = {}
    for name, body in raw.items():
        try:
            models[name] = ModelSpec.model_validate({"name": name, **(body or {})})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{source}: models.{name}.{key}: {first['msg']}") from exc
    return ModelRegistry(models=models, base_dir=base_dir)


@lru_cache(maxsize=1)
def packaged_registry() -> ModelRegistry:
    """The packaged registry (``dxai.configs/models.yaml``), read once per process."""
    return load_registry()


def resolve_model_path(spec: ModelSpec, base_dir: Path | None = None) -> Path:
    """Where ``spec``'s file is; :class:`ModelIntegrityError` if the package is missing."""
    src = spec.source
    if src.path is not None:
        file = Path(src.path)
        return file if file.is_absolute() else (base_dir or Path.cwd()) / file
    assert src.package is not None and src.resource is not None
    try:
        root = importlib.resources.files(src.package)
    except ModuleNotFoundError as exc:
        raise ModelIntegrityError(
            f"model {spec.name}: package {src.package!r} providing it is not installed"
        ) from exc
    return Path(str(root.joinpath(src.resource)))


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_file(spec: ModelSpec, base_dir: Path | None = None) -> Path:
    """Resolve ``spec``'s file and check its sha256; raise :class:`ModelIntegrityError`."""
    path = resolve_model_path(spec, base_dir)
    if not path.is_file():
        raise ModelIntegrityError(f"model {spec.name} v{spec.version}: file missing at {path}")
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelIntegrityError(
            f"model {spec.name} v{spec.version}: sha256 mismatch for {path}: "
            f"registry has {spec.sha256[:16]}…, file has {actual[:16]}…; refusing to load"
        )
    return path
