"""The chart's RayService runs the batching deployments the daemon attaches to (local Ray).

The serveConfigV2 that ``helm template`` renders (RayService on, Serve autoscaling on) is
deployed on a local Ray (2 CPUs) the way KubeRay deploys it; the daemon's configuration from
the chart's ConfigMap, made CPU-only (ONNX Runtime, no GPU per replica: this machine has none),
is what the applications are built from.  A ``RayServeClient`` with ``ray.applications:
attach`` then runs the real detector through them, leaves them deployed when it stops, and
refuses a model whose application is not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from helm_helpers import RAY_VALUES, k8s_tools, one, render

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 480
CPU_ONLY = {
    "engine": {"kind": "onnxruntime", "device": "cpu", "precision": "fp32"},
    "ray_serve": {"num_replicas": 1, "num_gpus": 0, "num_cpus": 0.25, "shared_memory_dir": None},
}


def _cpu_config(manifests: list[dict[str, Any]], tmp: Path) -> Path:
    config = yaml.safe_load(one(manifests, "ConfigMap")["data"]["dxai.yaml"])
    config["inference"].update(CPU_ONLY)
    config["state"]["data_dir"] = str(tmp / "state")
    path = tmp / "dxai.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _serve_config(manifests: list[dict[str, Any]], config: Path, keep: set[str]) -> dict[str, Any]:
    serve = yaml.safe_load(one(manifests, "RayService")["spec"]["serveConfigV2"])
    serve["applications"] = [a for a in serve["applications"] if a["args"]["model"] in keep]
    for app in serve["applications"]:
        app["args"]["config"] = str(config)  # the pods mount it at /etc/dxai/config
    serve["proxy_location"] = "Disabled"  # no HTTP proxy on this machine's port 8000
    return dict(serve)


def test_rayservice_applications_run_and_the_daemon_attaches(tmp_path: Path) -> None:
    manifests = render(k8s_tools(), RAY_VALUES)
    config = _cpu_config(manifests, tmp_path)
    serve = _serve_config(manifests, config, {"ppocr_det", "ppocr_rec"})
    deployments = [d for app in serve["applications"] for d in app["deployments"]]
    assert all(d["autoscaling_config"]["max_replicas"] == 3 for d in deployments)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "serve_config": serve,
                "config": str(config),
                "model": "ppocr_det",
                "missing": "ppocr_cls",
            }
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DXAI_")}
    done = subprocess.run(
        [sys.executable, str(HERE / "rayservice_check.py"), str(spec)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [x for x in done.stdout.splitlines() if x.startswith("RAYSERVICE_REPORT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(lines[-1].removeprefix("RAYSERVICE_REPORT "))
    assert report["states"] == {"dxai_ppocr_det": "RUNNING", "dxai_ppocr_rec": "RUNNING"}
    assert report["shape"] == [1, 64, 96]  # the detector's map, cropped back to the item
    assert report["kept"] == ["dxai_ppocr_det", "dxai_ppocr_rec"]  # attach never deletes
    assert "dxai_ppocr_cls" in report["refused"]
