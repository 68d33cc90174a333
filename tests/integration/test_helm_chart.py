"""The Helm chart renders what the daemon needs: lint, the config it runs, probes, GPUs, drain.

helm lint --strict and helm template for the default values and each ci/*-values.yaml (the
CI script also pipes them through kubeconform -strict); the rendered configuration validates
as the daemon's own; the Deployment shares one consumer group with per-pod client ids, probes
/healthz and /readyz on the metrics port, waits for the drain; the RayService serves the
models the daemon calls; the alerts use metrics the daemon exports.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_helpers import CHART, CI_VALUES, RAY_VALUES, Manifest, helm, k8s_tools, one, render

from dxai.batching.client import enabled_models
from dxai.configs.schema.loader import load_config
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.engines import load_registry
from dxai.observability.metrics import Sensor

REPO = Path(__file__).resolve().parents[2]
POD = "t-dxai-5d8f7c9b6-x2k4q"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return k8s_tools()


@pytest.fixture(scope="module")
def default(tools: dict[str, str]) -> list[Manifest]:
    return render(tools)


@pytest.fixture(scope="module")
def with_ray(tools: dict[str, str]) -> list[Manifest]:
    return render(tools, RAY_VALUES)


def _config(manifests: list[Manifest], tmp: Path, env: dict[str, str]) -> DxaiConfig:
    """The daemon configuration a pod loads: the ConfigMap's file plus the pod's DXAI_ env."""
    path = tmp / "dxai.yaml"
    path.write_text(one(manifests, "ConfigMap")["data"]["dxai.yaml"], encoding="utf-8")
    return load_config(path, environ=env)


def _pod_env(deployment: Manifest) -> dict[str, str]:
    """The container's DXAI_ variables as a pod named POD sees them."""
    env: dict[str, str] = {}
    for var in _daemon(deployment)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
            env[var["name"]] = POD
    return env


def _daemon(deployment: Manifest) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return dict(next(c for c in containers if c["name"] == "dxai"))


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "default")
def test_helm_lint_strict(tools: dict[str, str], values: Path | None) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", tools["K8S_VERSION"]]
    out = helm(tools, *args, *(["-f", str(values)] if values else []))
    assert "0 chart(s) failed" in out


def test_values_config_is_the_production_config() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    production = yaml.safe_load((REPO / "configs" / "production.yaml").read_text("utf-8"))
    assert values["config"] == production, (
        "deploy/helm/dxai/values.yaml `config:` must be configs/production.yaml verbatim"
    )


def test_daemon_runs_the_rendered_config_in_one_group_with_own_client_ids(
    default: list[Manifest], with_ray: list[Manifest], tmp_path: Path
) -> None:
    production = load_config(REPO / "configs" / "production.yaml", environ={})
    for manifests, backend in ((default, "inprocess"), (with_ray, "ray")):
        deployment = one(manifests, "Deployment")
        config = _config(manifests, tmp_path, _pod_env(deployment))
        assert config.kafka is not None and production.kafka is not None
        assert config.kafka.group_id == production.kafka.group_id
        assert config.kafka.client_id == POD  # each replica its own client id
        assert config.inference.backend == backend
        assert config.metrics.host == "0.0.0.0"
        assert config.deid == production.deid and config.sources == production.sources
    ray_config = _config(with_ray, tmp_path, {})
    assert ray_config.ray is not None and ray_config.ray.applications == "attach"
    assert ray_config.ray.address == "auto"


def test_probes_ports_mounts_and_security(default: list[Manifest], tmp_path: Path) -> None:
    deployment = one(default, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    daemon = _daemon(deployment)
    config = _config(default, tmp_path, {})
    ports = {p["name"]: p["containerPort"] for p in daemon["ports"]}
    assert ports == {"metrics": config.metrics.port}
    assert daemon["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert daemon["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert daemon["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    config_arg = daemon["args"][daemon["args"].index("--config") + 1]
    mounts = {m["mountPath"]: m for m in daemon["volumeMounts"]}
    assert str(Path(config_arg).parent) in mounts
    assert config.deid.key_file is not None
    secrets = mounts[str(Path(config.deid.key_file).parent)]
    assert secrets["readOnly"] is True
    projected = next(v for v in pod["volumes"] if v["name"] == secrets["name"])["projected"]
    paths = {i["path"] for s in projected["sources"] for i in s["secret"]["items"]}
    assert Path(config.deid.key_file).name in paths
    assert mounts[config.state.data_dir]["name"] == "data"
    assert daemon["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 0, "maxUnavailable": 1}


def test_termination_grace_covers_the_drain(default: list[Manifest], tools: dict[str, str]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    extra = values["terminationGraceExtraSeconds"]
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == PipelineConfig().drain_grace_s + extra
    longer = render(tools, None, "config.pipeline.drain_grace_s=300")
    pod = one(longer, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 300 + extra


def test_gpus_go_to_the_daemon_without_ray_and_to_ray_workers_with_it(
    default: list[Manifest], with_ray: list[Manifest]
) -> None:
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert _daemon(one(default, "Deployment"))["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    ray_pod = one(with_ray, "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in _daemon(one(with_ray, "Deployment"))["resources"]["limits"]
    sidecar = ray_pod["initContainers"][0]
    assert (
        sidecar["restartPolicy"] == "Always"
        and "--address=t-dxai-ray-head-svc:6379" in (sidecar["args"])
    )
    shared = {m["mountPath"] for m in sidecar["volumeMounts"]}
    daemon_mounts = {m["mountPath"] for m in _daemon(one(with_ray, "Deployment"))["volumeMounts"]}
    assert {"/tmp/ray", "/dev/shm"} <= shared & daemon_mounts


def test_disruption_budget_service_and_monitor_select_the_daemon(default: list[Manifest]) -> None:
    labels = one(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = one(default, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    service = one(default, "Service", "t-dxai-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["name"] == "metrics"
    monitor = one(default, "ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] == "metrics"


def test_alerts_use_metrics_the_daemon_exports(default: list[Manifest]) -> None:
    exported: set[str] = set()
    for metric in Sensor().registry.collect():
        exported |= {metric.name, f"{metric.name}_total", f"{metric.name}_bucket"}
        exported |= {f"{metric.name}_sum", f"{metric.name}_count"}
    rules = one(default, "PrometheusRule")["spec"]["groups"][0]["rules"]
    used = {m for r in rules for m in re.findall(r"\bdxai_[a-z_]+", r["expr"])}
    assert used and used <= exported, used - exported


def test_rayservice_serves_every_model_the_daemon_calls(
    with_ray: list[Manifest], tmp_path: Path
) -> None:
    config = _config(with_ray, tmp_path, {})
    models = enabled_models(config.inference, load_registry(config.inference.models_file))
    service = one(with_ray, "RayService")
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    apps = {app["name"]: app for app in serve["applications"]}
    assert set(apps) == {f"dxai_{m}" for m in models}
    module, _, func = next(iter(apps.values()))["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    worker = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    config_mount = str(Path(next(iter(apps.values()))["args"]["config"]).parent)
    for pod in (head, worker["template"]["spec"]):
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert config_mount in mounts
    gpus_per_worker = worker["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"
    ]
    most = max(
        d.get("autoscaling_config", {}).get("max_replicas", d.get("num_replicas", 1))
        for app in apps.values()
        for d in app["deployments"]
    )
    needed = len(models) * most * config.inference.ray_serve.num_gpus
    assert worker["maxReplicas"] * gpus_per_worker >= needed


def test_default_ray_workers_hold_the_configured_replicas(tools: dict[str, str]) -> None:
    manifests = render(tools, None, "rayService.enabled=true")
    production = load_config(REPO / "configs" / "production.yaml", environ={})
    serve = production.inference.ray_serve
    models = enabled_models(production.inference, load_registry())
    worker = one(manifests, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    gpus = worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    needed = math.ceil(len(models) * serve.num_replicas * serve.num_gpus / gpus)
    assert worker["replicas"] >= needed


def test_ray_dashboard_service_selects_the_head(with_ray: list[Manifest]) -> None:
    service = one(with_ray, "Service", "t-dxai-ray-dashboard")["spec"]
    head = one(with_ray, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    labels = {**head["template"]["metadata"]["labels"], "ray.io/node-type": "head"}
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == 8265
    assert service["type"] == "LoadBalancer"
