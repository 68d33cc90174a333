"""Load the configuration from YAML, apply ``DXAI_...`` environment overrides, validate.

Environment overrides use ``__`` between levels: ``DXAI_KAFKA__BOOTSTRAP_SERVERS=host:9092``
sets ``kafka.bootstrap_servers``.  Values are parsed as YAML scalars (``true``, ``3``, ``[a, b]``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dxai.configs.errors import ConfigError
from dxai.configs.schema.root import DxaiConfig

ENV_PREFIX = "DXAI_"
_SECRET_WORDS = ("password", "secret", "token", "key")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Return ``data`` with every ``DXAI_A__B=value`` variable set at key path ``a.b``."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == "DXAI_CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return data


def _shown(key: str, value: Any) -> str:
    if any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_file"):
        return "<redacted>"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: dotted.key = value: rule``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "<root>"
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            rule = "unknown key (not allowed here; check the spelling)"
        lines.append(f"{source}: {key} = {_shown(key, err.get('input'))}: {rule}")
    return "\n".join(lines)


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> DxaiConfig:
    """Read, override and validate the configuration; raise :class:`ConfigError` if invalid."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    data = apply_env_overrides(data, env)
    source = str(path) if path is not None else "<defaults>"
    try:
        return DxaiConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc
