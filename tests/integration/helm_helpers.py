"""The chart under deploy/helm/dxai rendered by the helm that scripts/install_k8s_tools.sh built.

The tools are an external dependency like the services: when they are missing the tests fail
with the command that builds them (never skip).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "dxai"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RAY_VALUES = CHART / "ci" / "rayservice-values.yaml"
HINT = "build them with `bash scripts/install_k8s_tools.sh` (repo root)"
Manifest = dict[str, Any]


def k8s_tools() -> dict[str, str]:
    """HELM, KUBECONFORM, K8S_VERSION and K8S_SCHEMAS of the cached tools."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_k8s_tools.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"helm/kubeconform are not built: {done.stderr.strip()}; {HINT}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def helm(tools: dict[str, str], *args: str) -> str:
    """Run helm; its standard output (the test fails with helm's message on an error)."""
    done = subprocess.run(
        [tools["HELM"], *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def render(tools: dict[str, str], values: Path | None = None, *sets: str) -> list[Manifest]:
    """The manifests of ``helm template`` (release ``t`` in namespace ``dxai``)."""
    args = ["template", "t", str(CHART), "--namespace", "dxai"]
    args += ["--kube-version", tools["K8S_VERSION"]]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(tools, *args)) if doc]


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single manifest of ``kind`` (and ``name``)."""
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} manifests named {name}"
    return found[0]
