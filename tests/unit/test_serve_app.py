"""The RayService application builder refuses arguments it cannot use (before touching Ray)."""

from __future__ import annotations

import pytest

from dxai.batching.serve_app import app_name, build
from dxai.configs.errors import ConfigError
from dxai.configs.schema.services import RayConfig


@pytest.mark.parametrize("args", [{}, {"config": "x.yaml"}, {"model": "ppocr_det"}, {"config": 1}])
def test_builder_needs_a_config_file_and_a_model(args: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="needs args"):
        build(args)


def test_application_names_are_what_the_daemon_attaches_to() -> None:
    assert app_name("ppocr_det") == "dxai_ppocr_det"
    assert RayConfig().applications == "deploy"  # the daemon deploys unless told to attach
    with pytest.raises(ValueError, match="applications"):
        RayConfig.model_validate({"applications": "borrow"})
