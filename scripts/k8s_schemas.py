"""Offline JSON schemas for kubeconform: Kubernetes' own OpenAPI plus the CRDs the chart uses.

kubeconform fetches its schemas from GitHub by default, which CI cannot reach.  The same facts
ship inside Go modules that the Go module proxy serves (``scripts/install_k8s_tools.sh``
downloads them with ``go mod download``):

- ``k8s.io/kubernetes`` carries ``api/openapi-spec/swagger.json``, the API server's OpenAPI v2
  document (every built-in kind);
- ``github.com/prometheus-operator/prometheus-operator`` carries the ServiceMonitor and
  PrometheusRule CRDs (``example/prometheus-operator-crd/``);
- ``github.com/ray-project/kuberay/ray-operator`` carries the RayService CRD
  (``config/crd/bases/``).

This script turns them into the layout kubeconform's ``-schema-location`` templates read:

- ``<out>/v<K8S>-standalone-strict/<kind>-<group>-<version>.json`` (``<kind>-<version>.json``
  for the core group): one self-contained file per kind, the definitions it reaches embedded
  (``#/definitions/...`` references, no network);
- ``<out>/crds/<group>/<kind>_<version>.json`` for every CRD version.

Strict, like kubectl's validation and the schemas kubeconform uses by default: an object
with declared properties admits no other key (``additionalProperties: false``) unless it
preserves unknown fields; ``int-or-string`` and ``Quantity`` accept a number or a string.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]
_REF = "#/definitions/"
_INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": _QUANTITY,
}


def strict(node: Any) -> Any:
    """A copy of ``node`` with closed objects and number-or-string formats (recursively)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return dict(_INT_OR_STRING)
    out = {key: strict(value) for key, value in node.items()}
    open_ended = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not open_ended:
        out["additionalProperties"] = False
    return out


def _refs(node: Any) -> Iterator[str]:
    """Every definition name ``node`` refers to (directly)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            yield ref[len(_REF) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def reachable(definitions: dict[str, Schema], root: str) -> dict[str, Schema]:
    """``root`` and every definition it reaches, transitively."""
    seen: dict[str, Schema] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen[name] = definitions[name]
        todo.extend(_refs(definitions[name]))
    return seen


def kind_file(group: str, version: str, kind: str) -> str:
    """kubeconform's file name of a kind: ``deployment-apps-v1.json``, ``configmap-v1.json``."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def _gvks(schema: Schema) -> Iterable[tuple[str, str, str]]:
    for gvk in schema.get("x-kubernetes-group-version-kind", []):
        yield gvk.get("group", ""), gvk["version"], gvk["kind"]


def write_core(swagger: Path, out: Path, k8s_version: str) -> int:
    """One standalone strict schema per built-in kind; returns how many files."""
    definitions: dict[str, Schema] = json.loads(swagger.read_text(encoding="utf-8"))["definitions"]
    definitions = {name: _SPECIAL.get(name, strict(body)) for name, body in definitions.items()}
    folder = out / f"v{k8s_version.lstrip('v')}-standalone-strict"
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, schema in sorted(definitions.items()):
        for group, version, kind in _gvks(schema):
            if kind.endswith("List") or version == "__internal":
                continue
            document = {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "$ref": _REF + name,
                "definitions": reachable(definitions, name),
            }
            (folder / kind_file(group, version, kind)).write_text(
                json.dumps(document, separators=(",", ":")), encoding="utf-8"
            )
            count += 1
    return count


def write_crds(files: Iterable[Path], out: Path) -> int:
    """One strict schema per CRD version (``crds/<group>/<kind>_<version>.json``)."""
    count = 0
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            folder = out / "crds" / spec["group"]
            folder.mkdir(parents=True, exist_ok=True)
            for version in spec["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema is None:
                    continue
                name = f"{spec['names']['kind'].lower()}_{version['name']}.json"
                document = {"$schema": "http://json-schema.org/draft-04/schema#", **strict(schema)}
                (folder / name).write_text(
                    json.dumps(document, separators=(",", ":")), encoding="utf-8"
                )
                count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """Command line: swagger.json, CRD files, output folder, Kubernetes version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swagger", type=Path, required=True, help="Kubernetes swagger.json")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="a CRD YAML")
    parser.add_argument("--out", type=Path, required=True, help="schema folder to write")
    parser.add_argument("--kubernetes-version", required=True, help="e.g. 1.34.4")
    args = parser.parse_args(argv)
    core = write_core(args.swagger, args.out, args.kubernetes_version)
    crds = write_crds(args.crd, args.out)
    print(f"k8s_schemas: {core} built-in kind schemas, {crds} CRD schemas under {args.out}")
    return 0 if core and (crds or not args.crd) else 1


if __name__ == "__main__":
    sys.exit(main())
