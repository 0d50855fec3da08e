#!/usr/bin/env python
"""Vendor pruned KServe CRD schemas for the offline manifest tests (tests/serving/test_crd_schemas.py).

The upstream CRDs are ~1 MB (InferenceService) and ~190 KB (ServingRuntime) of OpenAPI v3; this keeps only
what validating *our* manifests needs, following one rule:

* take ``spec.versions[<v>].schema.openAPIV3Schema`` for every served version a manifest uses;
* walk it alongside the manifests: a node on a path some manifest uses is kept with all its keywords
  (``type``, ``format``, ``enum``, ``pattern``, ``minimum``/``maximum``, ``required``, ``default``,
  ``anyOf``, every ``x-kubernetes-*``), only ``description`` is dropped;
* at every kept node with ``properties`` the complete list of property names is kept, and the schema of
  each property no manifest uses becomes ``{}`` -- so unknown fields are still detectable;
* ``items`` / ``additionalProperties`` of a kept node are pruned the same way against the list elements /
  map values.

Output is deterministic (sorted keys): ``<out>/<kind>.<version>.json``.

Usage (download the CRDs to /tmp, never into the repo; see tests/serving/kserve_schemas/README.md)::

    python scripts/vendor_kserve_schemas.py \\
        /tmp/kserve-crds/serving.kserve.io_inferenceservices.yaml \\
        /tmp/kserve-crds/serving.kserve.io_servingruntimes.yaml

By default the manifests walked are ``manifests/serving/*.yaml``; pass ``--manifest`` to use others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFESTS = sorted((REPO / "manifests" / "serving").glob("*.yaml"))
DEFAULT_OUT = REPO / "tests" / "serving" / "kserve_schemas"
CHILD_KEYS = ("properties", "items", "additionalProperties")
DROPPED_KEYS = ("description",)


def prune(schema: dict[str, Any], instances: list[Any]) -> dict[str, Any]:
    """``schema`` restricted to what ``instances`` (the values found at this node) use."""
    out = {key: value for key, value in schema.items() if key not in CHILD_KEYS + DROPPED_KEYS}
    if "properties" in schema:
        used: dict[str, list[Any]] = {}
        for instance in instances:
            if isinstance(instance, dict):
                for key, value in instance.items():
                    used.setdefault(key, []).append(value)
        out["properties"] = {
            name: prune(sub, used[name]) if name in used else {} for name, sub in schema["properties"].items()
        }
    if "items" in schema:
        elements = [element for instance in instances if isinstance(instance, list) for element in instance]
        out["items"] = prune(schema["items"], elements)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        values = [
            value for instance in instances if isinstance(instance, dict) for value in instance.values()
        ]
        out["additionalProperties"] = prune(extra, values)
    elif extra is not None:
        out["additionalProperties"] = extra
    return out


def load_crd(path: Path) -> dict[str, Any]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise SystemExit(f"{path}: expected exactly one CustomResourceDefinition, found {len(crds)}")
    return crds[0]


def vendor(crd: dict[str, Any], manifests: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    generator = crd["metadata"].get("annotations", {}).get("controller-gen.kubebuilder.io/version", "?")
    written = []
    for version in crd["spec"]["versions"]:
        api_version = f"{group}/{version['name']}"
        mine = [m for m in manifests if (m.get("apiVersion"), m.get("kind")) == (api_version, kind)]
        if not mine:
            continue
        if not version.get("served", False):
            raise SystemExit(f"{kind} {version['name']} is not served by this CRD; manifests use it")
        schema = prune(version["schema"]["openAPIV3Schema"], mine)
        schema["$comment"] = (
            f"Pruned from CRD {crd['metadata']['name']} (controller-gen {generator}) by "
            "scripts/vendor_kserve_schemas.py: properties no manifest uses are {}; provenance in README.md"
        )
        schema["x-kubernetes-group-version-kind"] = [
            {"group": group, "kind": kind, "version": version["name"]}
        ]
        path = out_dir / f"{kind.lower()}.{version['name']}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    if not written:
        raise SystemExit(f"no manifest uses {kind} ({group}); nothing to vendor")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crds", nargs="+", type=Path, help="downloaded CRD YAML files")
    parser.add_argument(
        "--manifest",
        action="append",
        type=Path,
        dest="manifests",
        help="manifest YAML whose fields are kept (repeatable; default: manifests/serving/*.yaml)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    manifests = [
        doc
        for path in (args.manifests or DEFAULT_MANIFESTS)
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    for crd_path in args.crds:
        for path in vendor(load_crd(crd_path), manifests, args.out):
            print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
