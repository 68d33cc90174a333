"""The typed configuration: shipped configs validate, bad ones name the key and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from dxai.configs.errors import ConfigError
from dxai.configs.schema import load_config
from dxai.daemon.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["local.yaml", "production.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(CONFIGS / name, environ={})
    assert cfg.mode in {"embedded", "production"}


def test_local_is_embedded_without_kafka_or_ray() -> None:
    cfg = load_config(CONFIGS / "local.yaml", environ={})
    assert cfg.mode == "embedded"
    assert cfg.kafka is None and cfg.ray is None
    assert cfg.inference.backend == "inprocess"


def test_misspelt_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: embedded\ninference:\n  batching:\n    max_batch_sise: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, environ={})
    text = str(info.value)
    assert "inference.batching.max_batch_sise" in text
    assert "unknown key" in text


def test_bad_value_names_key_value_and_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("inference:\n  batching:\n    max_batch_size: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, environ={})
    text = str(info.value)
    assert "inference.batching.max_batch_size = 0" in text
    assert "greater than or equal to 1" in text


def test_env_override_applies_and_is_validated(tmp_path: Path) -> None:
    cfg = load_config(
        CONFIGS / "local.yaml", environ={"DXAI_INFERENCE__BATCHING__MAX_BATCH_SIZE": "16"}
    )
    assert cfg.inference.batching.max_batch_size == 16
    with pytest.raises(ConfigError, match=r"inference\.batching\.max_batch_size"):
        load_config(
            CONFIGS / "local.yaml", environ={"DXAI_INFERENCE__BATCHING__MAX_BATCH_SIZE": "x"}
        )


def test_production_requires_kafka(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("mode: production\n")
    with pytest.raises(ConfigError, match="requires a kafka section"):
        load_config(bad, environ={})


def test_cli_config_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(CONFIGS / "local.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("modee: embedded\n")
    assert main(["config", "check", str(bad)]) == 1
    assert "modee" in capsys.readouterr().err
