"""KServe manifests validate against the real CRD schemas, the way ``kubectl apply --validate=strict`` would.

The schemas are pruned copies of KServe's CRDs (``kserve_schemas/``, see its README), so this runs offline.
The API server's strict field validation is reproduced on top of ``jsonschema``:

* ``type``, ``enum``, ``required``, ``pattern``, ``minimum``/``maximum`` come from the CRD (integer
  ``format``s such as int32 are not range-checked here);
* an object node that declares ``properties`` rejects any other field, unless it is marked
  ``x-kubernetes-preserve-unknown-fields: true`` (strict mode reports the fields pruning would drop);
* ``x-kubernetes-int-or-string: true`` accepts an integer or a string;
* ``metadata`` is only ``type: object`` in a CRD; the API server validates it as ``ObjectMeta``, and
  KServe's webhook wants an InferenceService name to be a DNS-1035 label, so that is added here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_manifests import CHECKED_IN

from nexus.serving.manifests import DeploymentSettings, inference_service_manifest, serving_runtime_manifest

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).parent / "kserve_schemas"
CHECKED_IN_FILES = sorted((REPO / "manifests" / "serving").glob("*.yaml"))

# The DeploymentSettings used in test_manifests.py: its parametrized cases, the CLI case, the checked-in ones.
SETTINGS = {
    "serverless-canary-gpu": DeploymentSettings("detector", "s3://models/d/v2", canary_percent=10, gpus=1),
    "raw-deployment": DeploymentSettings(
        "detector", "s3://models/d/v2", mode="RawDeployment", min_replicas=2
    ),
    "scale-to-zero": DeploymentSettings("cpu-only", "pvc://models/d", canary_percent=0, min_replicas=0),
    "cli-canary-gpu": DeploymentSettings("det", "s3://m/det", canary_percent=25, gpus=1),
    "split-canary-gpu": DeploymentSettings(
        "detector", "s3://models/d/v2", canary_percent=10, gpus=1, transformer=True
    ),
    "split-raw": DeploymentSettings("detector", "s3://models/d/v2", mode="RawDeployment", transformer=True),
    **{f"checked-in-{key}": DeploymentSettings(**kwargs) for key, kwargs in CHECKED_IN.items()},
}

DNS1035_LABEL = {"type": "string", "maxLength": 63, "pattern": r"^[a-z]([-a-z0-9]*[a-z0-9])?$"}
DNS1123_LABEL = {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
DNS1123_SUBDOMAIN = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META_FIELDS = (
    "annotations", "creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers",
    "generateName", "generation", "labels", "managedFields", "name", "namespace", "ownerReferences",
    "resourceVersion", "selfLink", "uid",
)  # fmt: skip
# metadata.name: KServe's webhook needs a DNS-1035 label for an InferenceService (it becomes a Service and
# host name); a ServingRuntime is held to the API server's generic rule, a DNS-1123 subdomain.
NAME_RULE = {"InferenceService": DNS1035_LABEL, "ServingRuntime": DNS1123_SUBDOMAIN}


def object_meta(kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {field: {} for field in OBJECT_META_FIELDS}
    # Label/annotation keys and values have more syntax rules in the API server; only types are checked.
    properties |= {
        "name": NAME_RULE[kind], "namespace": DNS1123_LABEL, "labels": STRING_MAP, "annotations": STRING_MAP,
    }  # fmt: skip
    return {"type": "object", "properties": properties, "additionalProperties": False, "required": ["name"]}


def strict(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD structural schema node as the API server applies it with ``fieldValidation=Strict``."""
    node = dict(node)
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [strict(sub) for sub in node[key]]
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if "properties" in node:
        node["properties"] = {name: strict(sub) for name, sub in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return node


def vendored(api_version: str, kind: str) -> dict[str, Any]:
    version = api_version.rsplit("/", 1)[-1]
    path = SCHEMAS / f"{kind.lower()}.{version}.json"
    assert path.is_file(), (
        f"no vendored schema for {kind} {api_version}: run scripts/vendor_kserve_schemas.py"
    )
    return json.loads(path.read_text())


@cache
def validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    """The strict validator for one kind. Draft 4 is the JSON Schema the API server's OpenAPI v3
    validation (go-openapi) follows."""
    raw = vendored(api_version, kind)
    (gvk,) = raw["x-kubernetes-group-version-kind"]
    assert (f"{gvk['group']}/{gvk['version']}", gvk["kind"]) == (api_version, kind)
    schema = strict(raw)
    schema["properties"]["metadata"] = object_meta(kind)
    schema["properties"]["apiVersion"] = {"enum": [api_version]}
    schema["properties"]["kind"] = {"enum": [kind]}
    schema["required"] = ["apiVersion", "kind", "metadata"]
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(manifest: dict[str, Any]) -> list[str]:
    """Every violation, as ``path: message`` (empty when the manifest would be accepted)."""
    found = validator(manifest["apiVersion"], manifest["kind"]).iter_errors(manifest)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found)


# ---------------------------------------------------------------------------------------------- positives


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_generated_manifests_validate(settings):
    isvc, runtime = inference_service_manifest(settings), serving_runtime_manifest(settings)
    assert errors(isvc) == []
    assert errors(runtime) == []


@pytest.mark.parametrize("path", CHECKED_IN_FILES, ids=[p.name for p in CHECKED_IN_FILES])
def test_checked_in_manifests_validate(path):
    (manifest,) = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert errors(manifest) == []


def test_every_checked_in_kind_has_a_schema():
    kinds = {
        (m["apiVersion"], m["kind"]) for p in CHECKED_IN_FILES for m in yaml.safe_load_all(p.read_text())
    }
    assert kinds == {
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),
    }


def _unvendored_paths(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths in ``value`` whose vendored schema was pruned to ``{}`` (unknown fields: see ``errors``)."""
    if schema == {}:
        return [path]
    if isinstance(value, dict) and "properties" in schema:
        children = [
            (f"{path}.{k}", v, schema["properties"][k]) for k, v in value.items() if k in schema["properties"]
        ]
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        children = [(f"{path}.{k}", v, schema["additionalProperties"]) for k, v in value.items()]
    elif isinstance(value, list) and "items" in schema:
        children = [(f"{path}[{i}]", v, schema["items"]) for i, v in enumerate(value)]
    else:
        children = []
    return [missing for child, v, sub in children for missing in _unvendored_paths(v, sub, child)]


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_every_manifest_field_has_a_vendored_schema(settings):
    """A field whose vendored schema is ``{}`` would pass unchecked: regenerate the schemas if this fails."""
    for manifest in (inference_service_manifest(settings), serving_runtime_manifest(settings)):
        raw = vendored(manifest["apiVersion"], manifest["kind"])
        assert _unvendored_paths(manifest, raw, manifest["kind"]) == [], (
            "re-run scripts/vendor_kserve_schemas.py (see tests/serving/kserve_schemas/README.md)"
        )


# ---------------------------------------------------------------------------------------------- negatives

BASE = DeploymentSettings(
    "detector", "s3://models/detector/v2", canary_percent=10, gpus=1, service_account="nexus-s3",
    s3_endpoint="minio.minio:9000",
)  # fmt: skip
SPLIT = dataclasses.replace(BASE, transformer=True, runtime_name=None)
PREDICTOR, MODEL, CONTAINER = "spec.predictor", "spec.predictor.model", "spec.containers.0"
HTTP_GET = f"{CONTAINER}.readinessProbe.httpGet"
TRANSFORMER, T_CONTAINER = "spec.transformer", "spec.transformer.containers.0"


def _node(manifest: Any, dotted: str) -> Any:
    for part in filter(None, dotted.split(".")):
        manifest = manifest[int(part)] if isinstance(manifest, list) else manifest[part]
    return manifest


# kind, node, edit (set / delete / rename), key, value, where the error is reported, words of the message.
# Each edit breaks exactly one rule of the real schema.
NEGATIVES = [
    pytest.param("isvc", PREDICTOR, "set", "canaryTrafficPercent", "10",
                 f"{PREDICTOR}.canaryTrafficPercent", "is not of type 'integer'", id="canary-percent-string"),
    pytest.param("isvc", PREDICTOR, "rename", "canaryTrafficPercent", "canaryTraficPercent",
                 PREDICTOR, "'canaryTraficPercent' was unexpected", id="canary-percent-misspelled"),
    pytest.param("isvc", PREDICTOR, "set", "minReplicas", "1",
                 f"{PREDICTOR}.minReplicas", "is not of type 'integer'", id="min-replicas-string"),
    pytest.param("isvc", MODEL, "rename", "storageUri", "storageURI",
                 MODEL, "'storageURI' was unexpected", id="storage-uri-misspelled"),
    pytest.param("isvc", f"{MODEL}.resources.limits", "set", "nvidia.com/gpu", "one",
                 f"{MODEL}.resources.limits.nvidia.com/gpu", "does not match", id="gpu-limit-not-a-quantity"),
    pytest.param("isvc", f"{MODEL}.modelFormat", "delete", "name", None,
                 f"{MODEL}.modelFormat", "'name' is a required property", id="model-format-without-name"),
    pytest.param("isvc", "spec", "delete", "predictor", None,
                 "spec", "'predictor' is a required property", id="no-predictor"),
    pytest.param("isvc", "", "set", "specs", {},
                 "<root>", "'specs' was unexpected", id="unknown-top-level-field"),
    pytest.param("isvc", "metadata", "set", "name", "Detector_1",
                 "metadata.name", "does not match", id="isvc-name-not-dns-1035"),
    pytest.param("runtime", CONTAINER, "delete", "name", None,
                 CONTAINER, "'name' is a required property", id="container-without-name"),
    pytest.param("runtime", f"{CONTAINER}.ports.0", "set", "containerPort", "8080",
                 f"{CONTAINER}.ports.0.containerPort", "is not of type 'integer'", id="port-string"),
    pytest.param("runtime", HTTP_GET, "delete", "port", None,
                 HTTP_GET, "'port' is a required property", id="probe-without-port"),
    pytest.param("runtime", f"{CONTAINER}.env.0", "rename", "value", "valeu",
                 f"{CONTAINER}.env.0", "'valeu' was unexpected", id="env-var-misspelled-value"),
    pytest.param("runtime", "spec.protocolVersions", "set", 1, 2,
                 "spec.protocolVersions.1", "is not of type 'string'", id="protocol-version-not-a-string"),
    pytest.param("runtime", "spec", "delete", "containers", None,
                 "spec", "'containers' is a required property", id="no-containers"),
    pytest.param("split", TRANSFORMER, "set", "maxReplicas", "3",
                 f"{TRANSFORMER}.maxReplicas", "is not of type 'integer'", id="t-max-replicas-string"),
    pytest.param("split", TRANSFORMER, "rename", "containers", "container",
                 TRANSFORMER, "'container' was unexpected", id="t-container-misspelled"),
    pytest.param("split", T_CONTAINER, "delete", "name", None,
                 T_CONTAINER, "'name' is a required property", id="t-container-without-name"),
    pytest.param("split", T_CONTAINER, "set", "args", "--mode transformer",
                 f"{T_CONTAINER}.args", "is not of type 'array'", id="t-args-not-a-list"),
    pytest.param("split", f"{T_CONTAINER}.resources.limits", "set", "memory", "two gigs",
                 f"{T_CONTAINER}.resources.limits.memory", "does not match", id="t-memory-not-quantity"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "node", "edit", "key", "value", "where", "words"), NEGATIVES)
def test_invalid_manifests_are_rejected(kind, node, edit, key, value, where, words):
    manifest = {
        "isvc": lambda: inference_service_manifest(BASE),
        "runtime": lambda: serving_runtime_manifest(BASE),
        "split": lambda: inference_service_manifest(SPLIT),
    }[kind]()
    assert errors(manifest) == []
    target = _node(manifest, node)
    if edit == "set":
        target[key] = value
    elif edit == "delete":
        del target[key]
    else:
        target[value] = target.pop(key)
    found = errors(manifest)
    assert len(found) == 1, found
    assert found[0].startswith(f"{where}: ") and words in found[0], found


def test_schema_does_not_bound_canary_percent():
    """KServe's CRD types canaryTrafficPercent as a plain int64, with no minimum or maximum. The API server
    accepts 150, so ``DeploymentSettings`` has to enforce [0, 100] itself
    (see test_manifests.py::test_invalid_settings_say_what_to_change)."""
    manifest = inference_service_manifest(BASE)
    manifest["spec"]["predictor"]["canaryTrafficPercent"] = 150
    assert errors(manifest) == []
    with pytest.raises(ValueError, match="canary_percent"):
        DeploymentSettings("detector", "s3://m/d", canary_percent=150)


# ------------------------------------------------------------------------------------- the pruning rule


@pytest.fixture(scope="module")
def generator():
    """``scripts/vendor_kserve_schemas.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "vendor_kserve_schemas", REPO / "scripts" / "vendor_kserve_schemas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pruning_keeps_used_nodes_whole_and_every_property_name(generator):
    schema = {
        "type": "object",
        "description": "dropped",
        "required": ["a"],
        "properties": {
            "a": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
            "b": {"type": "object", "properties": {"deep": {"type": "string"}}},
            "c": {"type": "array", "x-kubernetes-list-type": "map", "items": {
                "type": "object", "required": ["n"],
                "properties": {"n": {"type": "string"}, "v": {"enum": [1]}},
            }},
            "d": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True, "anyOf": [
                {"type": "integer"}, {"type": "string"},
            ]}},
        },
    }  # fmt: skip
    pruned = generator.prune(schema, [{"a": 1, "c": [{"n": "x"}], "d": {"cpu": "2"}}])
    assert pruned == {
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
            "b": {},
            "c": {"type": "array", "x-kubernetes-list-type": "map", "items": {
                "type": "object", "required": ["n"], "properties": {"n": {"type": "string"}, "v": {}},
            }},
            "d": schema["properties"]["d"],
        },
    }  # fmt: skip


def test_vendored_schemas_are_the_generator_fixed_point(generator):
    """Pruning the vendored files again against the checked-in manifests changes nothing: they hold exactly
    what the rule keeps, in the generator's deterministic form."""
    manifests = [doc for p in CHECKED_IN_FILES for doc in yaml.safe_load_all(p.read_text()) if doc]
    for path in sorted(SCHEMAS.glob("*.json")):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", path.name
        raw = json.loads(text)
        (gvk,) = raw["x-kubernetes-group-version-kind"]
        mine = [
            m
            for m in manifests
            if (m["apiVersion"], m["kind"]) == (f"{gvk['group']}/{gvk['version']}", gvk["kind"])
        ]
        assert mine, path.name
        assert generator.prune(raw, mine) == raw, path.name
