"""The Serve application builder for a RayService (KubeRay ``serveConfigV2``): one per model.

A RayService declares each model's application by import path, with the daemon's own config
file as argument, so the Ray cluster runs exactly the deployment the daemon would deploy itself
(``RayServeClient._deploy``: same name ``dxai_<model>``, engine, batching, replicas, GPUs per
replica) and the daemon attaches to it (``ray.applications: attach``)::

    applications:
      - name: dxai_ppocr_det
        import_path: dxai.batching.serve_app:build
        route_prefix: null            # called through handles only, no HTTP route
        args: {config: /etc/dxai/config/dxai.yaml, model: ppocr_det}
        deployments:
          - name: dxai_ppocr_det
            autoscaling_config: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 2}

``deployments`` in the RayService may override replicas or autoscaling; resources per replica
(``num_gpus``, ``num_cpus``) come from the config file (``inference.ray_serve`` or
``per_model``), as on the daemon.
"""

from __future__ import annotations

from typing import Any

from dxai.batching.ray_serve import APP_PREFIX, build_application
from dxai.configs.errors import ConfigError
from dxai.configs.schema import load_config
from dxai.engines import load_registry


def app_name(model: str) -> str:
    """The application (and deployment) name of ``model``: what the daemon's handles call."""
    return f"{APP_PREFIX}{model}"


def build(args: dict[str, Any]) -> Any:
    """The bound Serve application of ``args['model']``, configured by ``args['config']``."""
    config_path, model = args.get("config"), args.get("model")
    if not isinstance(config_path, str) or not isinstance(model, str):
        raise ConfigError("serve_app.build needs args {config: <file>, model: <name>}")
    config = load_config(config_path)
    registry = load_registry(config.inference.models_file)
    inference = config.inference
    return build_application(
        registry.get(model),
        inference.engine_for(model),
        inference.batching_for(model),
        inference.ray_serve_for(model),
        registry.base_dir,
    )
