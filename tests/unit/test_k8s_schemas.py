"""scripts/k8s_schemas.py: strict, self-contained schemas in kubeconform's file layout."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "k8s_schemas.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["k8s_schemas"] = module
    spec.loader.exec_module(module)
    return module


def test_objects_are_closed_unless_they_keep_unknown_fields() -> None:
    k8s = _module()
    schema = {
        "type": "object",
        "properties": {
            "port": {"type": "string", "format": "int-or-string"},
            "free": {
                "type": "object",
                "properties": {},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    out = k8s.strict(schema)
    assert out["additionalProperties"] is False
    assert out["properties"]["port"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "string"}


def test_file_names_follow_kubeconform_templates(tmp_path: Path) -> None:
    k8s = _module()
    assert k8s.kind_file("apps", "v1", "Deployment") == "deployment-apps-v1.json"
    assert k8s.kind_file("", "v1", "ConfigMap") == "configmap-v1.json"
    assert (
        k8s.kind_file("policy", "v1", "PodDisruptionBudget") == "poddisruptionbudget-policy-v1.json"
    )
    swagger = {
        "definitions": {
            "io.k8s.api.core.v1.ConfigMap": {
                "type": "object",
                "properties": {"data": {"$ref": "#/definitions/m"}},
                "x-kubernetes-group-version-kind": [
                    {"group": "", "version": "v1", "kind": "ConfigMap"}
                ],
            },
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
            "unused": {"type": "string"},
        }
    }
    (tmp_path / "swagger.json").write_text(json.dumps(swagger), encoding="utf-8")
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "ray.io",
            "names": {"kind": "RayService"},
            "versions": [
                {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {}}}}
            ],
        },
    }
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd), encoding="utf-8")
    out = tmp_path / "schemas"
    argv = ["--swagger", str(tmp_path / "swagger.json"), "--crd", str(tmp_path / "crd.yaml")]
    assert k8s.main([*argv, "--out", str(out), "--kubernetes-version", "1.34.4"]) == 0
    configmap = json.loads((out / "v1.34.4-standalone-strict" / "configmap-v1.json").read_text())
    assert set(configmap["definitions"]) == {"io.k8s.api.core.v1.ConfigMap", "m"}
    rayservice = json.loads((out / "crds" / "ray.io" / "rayservice_v1.json").read_text())
    assert rayservice["additionalProperties"] is False
