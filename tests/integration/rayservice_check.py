"""Deploy a RayService's serveConfigV2 on a local Ray the way KubeRay does, then attach to it.

Run as a script (its own process, so its Ray never meets another test's):
``python rayservice_check.py SPEC.json`` prints one ``RAYSERVICE_REPORT <json>`` line: the
applications' statuses, the output shape of one inference through an attached
``RayServeClient``, whether the applications outlived the client, and the error attaching to
a model not deployed.
KubeRay hands serveConfigV2 to the dashboard's ``PUT /api/serve/applications/``, which
validates it as a ``ServeDeploySchema``, starts Serve and calls ``deploy_apps``: so does this.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEADLINE_S = 240.0


def _deploy(serve_config: dict[str, Any]) -> None:
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(serve_config)
    client = serve_start(proxy_location=schema.proxy_location)
    client.deploy_apps(schema)


def _wait_running(names: list[str]) -> dict[str, str]:
    from ray import serve

    end = time.monotonic() + DEADLINE_S
    while True:
        apps = serve.status().applications
        states = {n: str(getattr(apps.get(n), "status", "MISSING")) for n in names}
        states = {n: s.rsplit(".", 1)[-1] for n, s in states.items()}
        if all(s == "RUNNING" for s in states.values()) or time.monotonic() > end:
            return states
        if any(s == "DEPLOY_FAILED" for s in states.values()):
            return states
        time.sleep(0.5)


async def _attach(config_path: Path, model: str, missing: str) -> dict[str, Any]:
    from dxai.batching.ray_serve import RayServeClient
    from dxai.configs.errors import BackendUnavailableError
    from dxai.configs.schema import load_config
    from dxai.engines import load_registry

    config = load_config(config_path, environ={})
    assert config.ray is not None and config.ray.applications == "attach"
    registry = load_registry(config.inference.models_file)
    inference = config.inference.model_copy(update={"models": (model,)})
    item = np.random.default_rng(1).uniform(-1, 1, (3, 64, 96)).astype(np.float32)
    async with RayServeClient(inference, registry, ray_config=config.ray) as client:
        out = await client.infer(model, item)
    refused = ""
    absent = config.inference.model_copy(update={"models": (missing,)})
    try:
        async with RayServeClient(absent, registry, ray_config=config.ray):
            pass
    except BackendUnavailableError as exc:
        refused = str(exc)
    return {"shape": list(out.shape), "refused": refused}


def main(path: str) -> int:
    """Deploy the config, attach, report."""
    import ray
    from ray import serve

    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    serve_config, model, missing = spec["serve_config"], spec["model"], spec["missing"]
    names = [app["name"] for app in serve_config["applications"]]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _deploy(serve_config)
        states = _wait_running(names)
        report: dict[str, Any] = {"states": states}
        if all(s == "RUNNING" for s in states.values()):
            report |= asyncio.run(_attach(Path(spec["config"]), model, missing))
            report["kept"] = sorted(serve.status().applications)
        print("RAYSERVICE_REPORT " + json.dumps(report), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
