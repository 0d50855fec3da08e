"""KServe manifests: built with the SDK, round-trip through its models, carry the fields KServe needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nexus.cli.main import main as nexus_main
from nexus.serving.manifests import (
    DeploymentSettings,
    inference_service_manifest,
    serving_runtime_manifest,
    write_manifests,
)

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = {
    "detector": dict(
        name="detector",
        storage_uri="s3://models/detector/v2",
        canary_percent=10,
        gpus=1,
        s3_endpoint="minio.minio:9000",
        service_account="nexus-s3",
    ),
    "detector-raw": dict(name="detector-raw", storage_uri="s3://models/detector/v1", mode="RawDeployment"),
    "detector-split": dict(
        name="detector-split",
        storage_uri="s3://models/detector/v2",
        canary_percent=10,
        gpus=1,
        s3_endpoint="minio.minio:9000",
        service_account="nexus-s3",
        transformer=True,
    ),
}


@pytest.fixture
def k8s_types_visible_to_kserve(monkeypatch):
    """kserve's ApiClient looks model classes up in ``kserve.models`` only; the Kubernetes ones
    (``V1ObjectMeta``, ``V1ResourceRequirements``, ...) live in ``kubernetes.client``: show them there."""
    import kserve.models
    import kubernetes.client

    for name in dir(kubernetes.client):
        if name.startswith("V1") and not hasattr(kserve.models, name):
            monkeypatch.setattr(kserve.models, name, getattr(kubernetes.client, name), raising=False)


def round_trip(manifest: dict, klass: str):
    """Deserialize into the SDK model classes and serialize again (what ``kubectl apply`` would send)."""
    from kserve import ApiClient

    client = ApiClient()
    model = client._ApiClient__deserialize(manifest, klass)
    return client.sanitize_for_serialization(model)


@pytest.mark.parametrize(
    "settings",
    [
        DeploymentSettings("detector", "s3://models/d/v2", canary_percent=10, gpus=1),
        DeploymentSettings("detector", "s3://models/d/v2", mode="RawDeployment", min_replicas=2),
        DeploymentSettings("cpu-only", "pvc://models/d", canary_percent=0, min_replicas=0),
        DeploymentSettings("detector", "s3://models/d/v2", canary_percent=10, gpus=1, transformer=True),
        DeploymentSettings("detector", "s3://models/d/v2", mode="RawDeployment", transformer=True),
    ],
    ids=["serverless-canary-gpu", "raw-deployment", "scale-to-zero", "split-canary-gpu", "split-raw"],
)
def test_manifests_round_trip_and_carry_required_fields(settings, k8s_types_visible_to_kserve):
    isvc = inference_service_manifest(settings)
    runtime = serving_runtime_manifest(settings)
    assert round_trip(isvc, "V1beta1InferenceService") == isvc
    assert round_trip(runtime, "V1alpha1ServingRuntime") == runtime

    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert isvc["metadata"]["name"] == settings.name
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == settings.mode
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations.get("serving.kserve.io/enable-metric-aggregation") == (
        "true" if settings.mode == "Serverless" else None
    )
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == settings.storage_uri
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
    assert predictor["model"]["modelFormat"]["name"] == runtime["spec"]["supportedModelFormats"][0]["name"]
    assert predictor.get("canaryTrafficPercent") == settings.canary_percent
    assert predictor["minReplicas"] == settings.min_replicas
    limits = predictor["model"]["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == (str(settings.gpus) if settings.gpus else None)

    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["command"] == ["python", "-m", "serving"]
    assert container["args"][container["args"].index("--model") + 1] == "/mnt/models"
    assert container["args"][container["args"].index("--device") + 1] == ("0" if settings.gpus else "cpu")
    assert set(runtime["spec"]["protocolVersions"]) == ({"v2"} if settings.transformer else {"v1", "v2"})
    assert "snake_case" not in str(isvc) and "storage_uri" not in str(isvc)
    assert ("transformer" in isvc["spec"]) == settings.transformer


@pytest.mark.parametrize("gpus", [0, 1])
def test_split_deployment_puts_the_model_on_the_predictor_and_the_cpu_work_on_the_transformer(gpus):
    settings = DeploymentSettings(
        "detector", "s3://models/d/v2", gpus=gpus, transformer=True, transformer_cpu="4", max_replicas=5
    )
    isvc, runtime = inference_service_manifest(settings), serving_runtime_manifest(settings)
    (runtime_container,) = runtime["spec"]["containers"]
    assert runtime_container["args"][:2] == ["--mode", "tensor-predictor"]
    assert runtime["metadata"]["name"] == isvc["spec"]["predictor"]["model"]["runtime"]
    assert runtime["metadata"]["name"] != DeploymentSettings("detector", "s3://m/d").runtime_name
    # only our transformer can use this runtime: KServe must not pick it for other nexus-yolo models
    assert runtime["spec"]["supportedModelFormats"][0]["autoSelect"] is False

    transformer = isvc["spec"]["transformer"]
    (container,) = transformer["containers"]
    assert container["name"] == "kserve-container" and container["image"] == settings.image
    assert container["command"] == ["python", "-m", "serving"]
    assert container["args"] == ["--mode", "transformer", "--host", "0.0.0.0"]
    # KServe's controller supplies these; a value here would override what it computes
    assert not {"--model_name", "--predictor_host", "--http_port"} & set(container["args"])
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "2Gi"}
    assert (transformer["minReplicas"], transformer["maxReplicas"]) == (1, 5)
    limits = isvc["spec"]["predictor"]["model"]["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == ("1" if gpus else None)
    assert "canaryTrafficPercent" not in transformer  # a canary rolls out the predictor's model


def test_runtime_name_defaults_follow_the_deployment_kind_and_an_explicit_one_wins():
    assert DeploymentSettings("d", "s3://m/d").runtime_name == "nexus-yolo-runtime"
    assert DeploymentSettings("d", "s3://m/d", transformer=True).runtime_name == "nexus-yolo-tensor-runtime"
    assert DeploymentSettings("d", "s3://m/d", transformer=True, runtime_name="mine").runtime_name == "mine"


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"name": "Detector_1"}, "DNS-1035"),
        ({"storage_uri": "/local/path"}, "storage_uri"),
        ({"mode": "Knative"}, "mode"),
        ({"canary_percent": 120}, "canary_percent"),
        ({"canary_percent": 10, "mode": "RawDeployment"}, "Serverless"),
        ({"gpus": -1}, "gpus"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas"),
        ({"min_replicas": 0, "mode": "RawDeployment"}, "scale to zero"),
        ({"namespace": "Team_A"}, "namespace 'Team_A' must be a DNS-1123 label"),
        ({"storage_uri": "s3://"}, "storage_uri 's3://'"),
        ({"storage_uri": "ftp://host/model"}, "s3://bucket/prefix"),
        ({"image": "my image:1"}, "image reference"),
        ({"image": ""}, "image reference"),
        ({"s3_endpoint": "http://minio:9000"}, "without a scheme"),
        ({"s3_endpoint": "minio:9000/bucket"}, "host\\[:port\\]"),
        ({"cpu": "two"}, "cpu 'two' is not a Kubernetes quantity"),
        ({"memory": "4 GB"}, "memory '4 GB' is not a Kubernetes quantity"),
        ({"transformer_cpu": "-1"}, "transformer_cpu"),
        ({"transformer_memory": "2GiB"}, "transformer_memory"),
        ({"max_batch_size": 0}, "max_batch_size must be within"),
        ({"max_delay_ms": -1.0}, "max_delay_ms must be within"),
        ({"max_request_bytes": 0}, "max_request_bytes must be at least 1"),
    ],
)
def test_invalid_settings_say_what_to_change(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DeploymentSettings(**{"name": "detector", "storage_uri": "s3://m/d", **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cpu": "500m", "memory": "512Mi"},
        {"cpu": "1.5", "memory": "4G"},
        {"namespace": "team-a", "s3_endpoint": "minio.minio:9000"},
        {"s3_endpoint": "10.0.0.5"},
        {"storage_uri": "pvc://claim/models/d"},
    ],
)
def test_valid_settings_pass(kwargs):
    DeploymentSettings(**{"name": "detector", "storage_uri": "s3://m/d", **kwargs})


def test_cli_writes_manifests(tmp_path):
    argv = ["deploy", "manifests", "--name", "det", "--storage-uri", "s3://m/det", "--out", str(tmp_path)]
    assert nexus_main([*argv, "--canary-percent", "25", "--gpus", "1"]) == 0
    isvc = yaml.safe_load((tmp_path / "det-inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert nexus_main([*argv, "--canary-percent", "25", "--mode", "RawDeployment"]) == 2
    assert nexus_main([*argv, "--transformer", "--transformer-memory", "3Gi"]) == 0
    isvc = yaml.safe_load((tmp_path / "det-inferenceservice.yaml").read_text())
    assert isvc["spec"]["transformer"]["containers"][0]["resources"]["limits"]["memory"] == "3Gi"
    runtime = yaml.safe_load((tmp_path / "det-servingruntime.yaml").read_text())
    assert runtime["spec"]["containers"][0]["args"][:2] == ["--mode", "tensor-predictor"]
    assert nexus_main([*argv, "--max-request-bytes", "5000"]) == 0
    runtime = yaml.safe_load((tmp_path / "det-servingruntime.yaml").read_text())
    assert runtime["spec"]["containers"][0]["args"][-2:] == ["--max-request-bytes", "5000"]
    assert nexus_main([*argv, "--max-request-bytes", "0"]) == 2
    assert nexus_main([*argv, "--full-decode"]) == 0
    runtime = yaml.safe_load((tmp_path / "det-servingruntime.yaml").read_text())
    assert runtime["spec"]["containers"][0]["args"][-1] == "--full-decode"


@pytest.mark.parametrize(
    ("transformer", "limit", "full_decode", "predictor_args", "transformer_args"),
    [
        (False, None, False, [], None),
        (False, 1000, False, ["--max-request-bytes", "1000"], None),
        (False, None, True, ["--full-decode"], None),
        (True, None, False, [], []),
        # the transformer is what clients call, and what decodes their images
        (True, 1000, False, [], ["--max-request-bytes", "1000"]),
        (True, 1000, True, [], ["--max-request-bytes", "1000", "--full-decode"]),
    ],
)
def test_the_body_limit_and_decoding_go_to_the_container_clients_call(
    transformer, limit, full_decode, predictor_args, transformer_args
):
    settings = DeploymentSettings(
        "det", "s3://m/det", transformer=transformer, max_request_bytes=limit, full_decode=full_decode
    )
    (runtime_container,) = serving_runtime_manifest(settings)["spec"]["containers"]
    args = runtime_container["args"]
    assert args[len(args) - len(predictor_args) :] == predictor_args
    assert ("--max-request-bytes" in args) == ("--max-request-bytes" in predictor_args)
    assert ("--full-decode" in args) == ("--full-decode" in predictor_args)
    isvc = inference_service_manifest(settings)
    if transformer_args is None:
        assert "transformer" not in isvc["spec"]
    else:
        (container,) = isvc["spec"]["transformer"]["containers"]
        assert container["args"] == ["--mode", "transformer", "--host", "0.0.0.0", *transformer_args]


@pytest.mark.parametrize("key", sorted(CHECKED_IN))
def test_checked_in_manifests_are_current(key, tmp_path):
    """``manifests/serving/`` holds what the generator writes (regenerate with ``nexus deploy manifests``)."""
    settings = DeploymentSettings(**CHECKED_IN[key])
    for generated in write_manifests(settings, tmp_path):
        checked_in = REPO / "manifests" / "serving" / generated.name
        assert checked_in.is_file(), f"missing {checked_in}; write it with nexus deploy manifests"
        assert yaml.safe_load(checked_in.read_text()) == yaml.safe_load(generated.read_text()), generated.name
