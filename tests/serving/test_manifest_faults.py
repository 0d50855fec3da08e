"""Faults on the cluster side of serving: KServe manifests for every accepted combination of options
validate against the CRD schemas, values Kubernetes or KServe would refuse are refused when the YAML is
generated, and ``kserve_apply``/``kserve_guard`` report a missing, refused or malformed InferenceService
(against the Kubernetes API stand-in of ``kube_api.py``) as one line, never a traceback."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
import yaml
from test_crd_schemas import errors

from nexus.cli.main import main
from nexus.errors import DeploymentError
from nexus.serving.kserve_apply import deploy_to_kserve, get_inference_service, set_canary_traffic
from nexus.serving.kserve_guard import CanaryGuardPolicy, canary_state, guard_canary, health_queries
from nexus.serving.manifests import (
    DeploymentSettings,
    inference_service_manifest,
    serving_runtime_manifest,
    write_manifests,
)

API = "/apis/serving.kserve.io"
ISVC = f"{API}/v1beta1/namespaces/vision/inferenceservices/detector"
RUNTIME = f"{API}/v1alpha1/namespaces/vision/servingruntimes/nexus-yolo-runtime"
CHAMPION, CHALLENGER = "detector-predictor-00001", "detector-predictor-00002"

# ------------------------------------------------------------------ every accepted combination validates

STORAGE_URIS = [
    "s3://models/detector/v2",
    "gs://bucket/detector",
    "pvc://claim/detector",
    "hf://org/detector",
]
COMBINATIONS = [
    (mode, canary, gpus, transformer, uri)
    for mode, canary, gpus, transformer, uri in itertools.product(
        ("Serverless", "RawDeployment"), (None, 0, 10, 100), (0, 2), (False, True), STORAGE_URIS
    )
    if canary is None or mode == "Serverless"
]


@pytest.mark.parametrize(("mode", "canary", "gpus", "transformer", "uri"), COMBINATIONS)
def test_every_accepted_combination_validates_against_the_crds(mode, canary, gpus, transformer, uri):
    settings = DeploymentSettings(
        "detector", uri, mode=mode, canary_percent=canary, gpus=gpus, transformer=transformer,
        s3_endpoint="minio.minio:9000", service_account="nexus-s3",
    )  # fmt: skip
    isvc, runtime = inference_service_manifest(settings), serving_runtime_manifest(settings)
    assert errors(isvc) == [] and errors(runtime) == []
    assert isvc["spec"]["predictor"].get("canaryTrafficPercent") == canary
    assert ("transformer" in isvc["spec"]) == transformer


@pytest.mark.parametrize("uri", ["models:/detector@champion", "/srv/models/detector", "detector.onnx"])
def test_registry_and_local_model_uris_are_refused_for_a_cluster(uri):
    with pytest.raises(ValueError, match="must be a remote URI"):
        DeploymentSettings("detector", uri)


@pytest.mark.parametrize(
    ("kwargs", "emitted"),
    [
        ({"cpu": 2, "memory": "4Gi"}, "2"),  # an int quantity is written as a string
        ({"cpu": 0.5}, "0.5"),  # a float one too: the CRD takes an integer or a string, not 0.5
        ({"cpu": ".5"}, ".5"),  # Kubernetes' own spelling of half a core
    ],
)
def test_numeric_quantities_are_written_as_strings(kwargs, emitted):
    settings = DeploymentSettings("detector", "s3://m/d", **kwargs)
    isvc = inference_service_manifest(settings)
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] == emitted
    assert errors(isvc) == [] and errors(serving_runtime_manifest(settings)) == []


def test_names_at_the_host_name_limit_are_accepted():
    # RawDeployment: "<name>-predictor-<namespace>" is one DNS label of KServe's default domain template
    name = "d" * (63 - len("-predictor-vision"))
    raw = DeploymentSettings(name, "s3://m/d", namespace="vision", mode="RawDeployment")
    assert errors(inference_service_manifest(raw)) == []
    serverless = DeploymentSettings("d" * (63 - len("-transformer")), "s3://m/d", transformer=True)
    assert errors(inference_service_manifest(serverless)) == []


# ------------------------------------------------------------------- refused when generating, not emitted


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"gpus": 1.5}, "gpus must be a whole number .Kubernetes allocates whole GPUs., got 1.5"),
        ({"gpus": True}, "gpus must be a whole number"),  # used to be written as nvidia.com/gpu: 'True'
        ({"canary_percent": 10.5}, "canary_percent must be a whole number, got 10.5"),
        ({"canary_percent": True}, "canary_percent must be a whole number"),
        ({"min_replicas": 1.5}, "min_replicas must be a whole number"),
        ({"max_replicas": True}, "max_replicas must be a whole number"),
        ({"max_batch_size": 2.5}, "max_batch_size must be a whole number"),  # --max-batch-size 2.5 crashes
        ({"max_request_bytes": 1.5}, "max_request_bytes must be a whole number"),
        ({"transformer": "no"}, "transformer must be True or False"),  # "no" is truthy: it split
        ({"full_decode": 1}, "full_decode must be True or False"),
        ({"cpu": True}, "cpu True is not a Kubernetes quantity"),
        ({"service_account": "Nexus S3"}, "service_account 'Nexus S3' must be a DNS-1123 subdomain"),
        ({"service_account": ""}, "omit it to use the namespace's default"),
        ({"runtime_name": "My_Runtime"}, "runtime_name 'My_Runtime' must be a DNS-1123 subdomain"),
        ({"name": "d" * 54}, "host name label 'd{54}-predictor' .64 characters, at most 63.: shorten"),
        ({"name": "d" * 52, "transformer": True}, "'d{52}-transformer' .64 characters"),
        ({"name": "d" * 40, "namespace": "n" * 23}, "'d{40}-n{23}' .64 characters"),
        ({"name": "d" * 45, "namespace": "vision-team", "mode": "RawDeployment"},
         "'d{45}-predictor-vision-team' .67 characters"),
        ({"memory": "512m"}, "512 thousandths of a byte .'m' is milli.; write 512Mi"),
        ({"transformer_memory": "2m"}, "transformer_memory '2m'"),
        ({"cpu": "0"}, "cpu '0' must be above zero"),
        ({"memory": "0Gi"}, "memory '0Gi' must be above zero .e.g. '4Gi', '512Mi'."),
        ({"cpu": "2 cores"}, "cpu '2 cores' is not a Kubernetes quantity"),
        ({"s3_endpoint": "minio:99999"}, "port within 1..65535"),
        ({"s3_endpoint": "minio:0"}, "port within 1..65535"),
        ({"s3_endpoint": "..."}, "must be host\\[:port\\]"),
        ({"s3_endpoint": "https://minio:9000"}, "without a scheme"),
        ({"storage_uri": "s3://models/my detector"}, "contains whitespace or control characters"),
        ({"storage_uri": "s3://models/detector\n"}, "contains whitespace"),
        ({"image": "Nexus/Serving:1"}, "repository in lowercase"),  # the kubelet: InvalidImageName
        ({"image": "nexus-serving:"}, "must be an image reference"),
        ({"namespace": "Vision"}, "namespace 'Vision' must be a DNS-1123 label"),
        ({"canary_percent": -1}, "canary_percent must be within \\[0, 100\\]"),
        ({"canary_percent": 5, "mode": "RawDeployment"}, "drop --canary-percent"),
    ],
)  # fmt: skip
def test_values_kubernetes_would_refuse_are_refused_when_generating(kwargs, words):
    with pytest.raises(ValueError, match=words):
        DeploymentSettings(**{"name": "detector", "storage_uri": "s3://m/d", **kwargs})


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/nexus-ai/nexus-serving:0.1.0",
        "localhost:5000/nexus-serving",
        "nexus_serving",
        "registry.example.com/team/nexus-serving@sha256:" + "a" * 64,
        "Registry.Example.com/nexus:v1.2-rc_3",
    ],
)
def test_image_references_the_kubelet_accepts_are_accepted(image):
    settings = DeploymentSettings("detector", "s3://m/d", image=image)
    assert serving_runtime_manifest(settings)["spec"]["containers"][0]["image"] == image


# ------------------------------------------------------------------------------ nexus deploy manifests

MANIFESTS = ["deploy", "manifests", "--name", "det", "--storage-uri", "s3://m/det"]


def test_cli_with_every_option_writes_valid_yaml(tmp_path):
    argv = [
        *MANIFESTS, "--out", str(tmp_path), "--namespace", "vision", "--canary-percent", "20",
        "--mode", "Serverless", "--gpus", "2", "--image", "registry.local:5000/nexus/serving:1",
        "--s3-endpoint", "minio.minio:9000", "--service-account", "nexus-s3", "--max-batch-size", "16",
        "--max-delay-ms", "2.5", "--transformer", "--transformer-cpu", "500m", "--transformer-memory",
        "1Gi", "--max-request-bytes", "1000000", "--full-decode",
    ]  # fmt: skip
    assert main(argv) == 0
    for path in tmp_path.iterdir():
        (manifest,) = list(yaml.safe_load_all(path.read_text()))
        assert errors(manifest) == [], path.name
    isvc = yaml.safe_load((tmp_path / "det-inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert isvc["spec"]["transformer"]["containers"][0]["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "1Gi",
    }


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--image", ""], "image '' must be an image reference"),  # used to fall back to the default image
        (["--service-account", ""], "service_account '' must be a DNS-1123 subdomain"),
        (["--service-account", "S3 Creds"], "service_account 'S3 Creds'"),
        (["--canary-percent", "10", "--mode", "RawDeployment"], "drop --canary-percent"),
        (["--canary-percent", "101"], "canary_percent must be within [0, 100]"),
        (["--gpus", "-1"], "gpus must be >= 0"),
        (["--transformer-memory", "512m"], "write 512Mi"),
        (["--transformer-cpu", "2 cores"], "transformer_cpu '2 cores' is not a Kubernetes quantity"),
        (["--namespace", "Vision"], "DNS-1123 label"),
        (["--s3-endpoint", "http://minio:9000"], "without a scheme"),
        (["--max-delay-ms", "nan"], "max_delay_ms must be within"),
        (["--mode", "serverless"], "mode must be one of"),
        (["--name", "d" * 60], "shorten the name or the namespace by 7"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(tmp_path, capsys, extra, words):
    assert main([*MANIFESTS, "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_typed_options_refuse_fractions(tmp_path, capsys):
    for option in ("--gpus", "--canary-percent", "--max-batch-size", "--max-request-bytes"):
        assert main([*MANIFESTS, "--out", str(tmp_path), option, "1.5"]) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_write_manifests_into_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main([*MANIFESTS, "--out", str(tmp_path / "taken")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        write_manifests(DeploymentSettings("det", "s3://m/det"), tmp_path / "taken")


# ------------------------------------------------------------------------------------ kserve_apply


def test_a_redeploy_removes_what_the_new_settings_leave_out(kube_api):
    """A merge patch keeps what it does not name: a redeploy without the transformer, the canary or the
    service account has to delete them, or the old transformer keeps calling a predictor that now
    expects images (and the old canary share stays)."""
    kube_api.existing = {ISVC, RUNTIME}
    deploy_to_kserve(DeploymentSettings("detector", "s3://models/detector/2", namespace="vision"))
    ((_, _, patch, content_type),) = [call for call in kube_api.calls if call[1] == ISVC]
    assert content_type == "application/merge-patch+json"
    assert patch["spec"]["transformer"] is None
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert patch["spec"]["predictor"]["serviceAccountName"] is None
    assert patch["spec"]["predictor"]["model"]["storageUri"] == "s3://models/detector/2"

    kube_api.calls.clear()
    kept = DeploymentSettings(
        "detector", "s3://m/d", namespace="vision", canary_percent=10, service_account="nexus-s3"
    )
    deploy_to_kserve(kept)
    ((_, _, patch, _),) = [call for call in kube_api.calls if call[1] == ISVC]
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patch["spec"]["predictor"]["serviceAccountName"] == "nexus-s3"


def test_a_first_deploy_creates_objects_without_nulls(kube_api):
    deploy_to_kserve(DeploymentSettings("detector", "s3://m/d", namespace="vision"))
    (post,) = [
        body for method, path, body, _ in kube_api.calls if method == "POST" and "inferenceservices" in path
    ]
    assert post == inference_service_manifest(DeploymentSettings("detector", "s3://m/d", namespace="vision"))
    assert "null" not in json.dumps(post)


@pytest.mark.parametrize(
    ("name", "namespace", "words"),
    [
        ("", "vision", "name '' must be a DNS-1035 label"),
        ("Detector_1", "vision", "name 'Detector_1'"),
        ("detector", "../kube-system", "namespace '../kube-system' must be a DNS-1123 label"),
        ("a/b", "vision", "name 'a/b'"),
    ],
)
def test_bad_names_are_refused_before_asking_the_cluster(kube_api, name, namespace, words):
    for call in (
        lambda: set_canary_traffic(name, namespace, 0),
        lambda: get_inference_service(name, namespace),
    ):
        with pytest.raises(DeploymentError, match=words):
            call()
    assert kube_api.calls == []


@pytest.mark.parametrize("command", [["promote"], ["rollback"], ["traffic", "20"]])
def test_cli_empty_kserve_name_is_refused_not_sent_to_the_router(kube_api, capsys, monkeypatch, command):
    from nexus.serving.launcher import free_port

    router = f"http://127.0.0.1:{free_port()}"  # nothing there: reaching for it would say so
    assert main(["deploy", *command, "--kserve", "", "--router", router]) == 2
    err = capsys.readouterr().err
    assert "name '' must be a DNS-1035 label" in err and "router" not in err
    assert kube_api.calls == []


@pytest.mark.parametrize("status", [403, 500])
@pytest.mark.parametrize(
    "command", [["promote"], ["rollback"], ["traffic", "20"], ["guard", "--prometheus", "http://x"]]
)
def test_cli_reports_an_api_refusal(kube_api, capsys, status, command):
    kube_api.refuse = status
    assert main(["deploy", *command, "--kserve", "detector", "--namespace", "vision"]) == 2
    err = capsys.readouterr().err
    assert f"the cluster refused the InferenceService 'detector' in namespace 'vision': {status}" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", [["rollback"], ["traffic", "20"], ["guard", "--prometheus", "http://x"]])
def test_cli_reports_a_missing_inference_service(kube_api, capsys, command):
    assert main(["deploy", *command, "--kserve", "detector", "--namespace", "vision"]) == 2
    assert "the cluster has no InferenceService 'detector' in namespace 'vision'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kubeconfig",
    ["clusters: [", "[1, 2]", "clusters: 5", "current-context: 7\ncontexts: {a: 1}"],
    ids=["not-yaml", "a-list", "clusters-not-a-list", "contexts-not-a-list"],
)
def test_a_malformed_kubeconfig_is_one_line(kube_api, tmp_path, capsys, kubeconfig):
    (tmp_path / "kubeconfig").write_text(kubeconfig)
    assert main(["deploy", "promote", "--kserve", "detector", "--namespace", "vision"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Kubernetes cluster configured (kubeconfig: ") and err.count("\n") == 1, (
        err
    )
    assert kube_api.calls == []


@pytest.mark.parametrize("answer", ["not an object", [1, 2], None])
def test_an_answer_that_is_not_an_object_is_reported(kube_api, answer):
    kube_api.objects = {ISVC: answer}
    with pytest.raises(DeploymentError, match="not an object: is the kubeconfig's server a Kubernetes API"):
        get_inference_service("detector", "vision")


# ------------------------------------------------------------------------------------- kserve_guard


def isvc_with(traffic) -> dict:
    return {"metadata": {"name": "detector"}, "status": {"components": {"predictor": {"traffic": traffic}}}}


CANARY = [
    {"revisionName": CHALLENGER, "percent": 10, "latestRevision": True},
    {"revisionName": CHAMPION, "percent": 90, "latestRevision": False},
]


@pytest.mark.parametrize(
    ("inference_service", "words"),
    [
        ({"status": {"components": []}}, "status.components is list"),
        ({"status": "Ready"}, "status is str 'Ready', not an object"),
        (isvc_with("all"), "traffic is 'all', not a list of routes"),
        (isvc_with([None]), "not a list of routes"),
        (isvc_with([{"percent": 10, "latestRevision": True}, CANARY[1]]), "10% without a revisionName"),
        (isvc_with([{**CANARY[0], "percent": "ten"}, CANARY[1]]), "percent 'ten', not a whole number"),
        (isvc_with([{**CANARY[0], "percent": 150}, CANARY[1]]), "percent 150"),
    ],
)  # fmt: skip
def test_guard_reports_a_malformed_status(kube_api, capsys, inference_service, words):
    kube_api.objects = {ISVC: inference_service}
    with pytest.raises(DeploymentError, match="cannot read the canary of the InferenceService 'detector'"):
        guard_canary("detector", "vision", "http://127.0.0.1:9")
    argv = ["deploy", "guard", "--kserve", "detector", "--namespace", "vision", "--prometheus", "http://x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "inference_service",
    [
        {"metadata": {"name": "detector"}},  # KServe has not reconciled it yet
        {"metadata": {"name": "detector"}, "status": None},
        {"status": {"components": {"predictor": {}}}},
        isvc_with([{"revisionName": CHALLENGER, "percent": 100, "latestRevision": True}]),
        isvc_with([{**CANARY[0], "percent": 0}, {**CANARY[1], "percent": 100}]),  # rolled back
        isvc_with([{"revisionName": CHALLENGER, "percent": 100, "latestRevision": True}, {"tag": "prev"}]),
    ],
)
def test_guard_without_a_canary_only_reads(kube_api, inference_service):
    from nexus.serving.launcher import free_port

    kube_api.objects = {ISVC: inference_service}
    decision = guard_canary("detector", "vision", f"http://127.0.0.1:{free_port()}")  # never queried
    assert not decision.state.active and not decision.rolled_back and decision.health == {}
    assert [(method, path) for method, path, *_ in kube_api.calls] == [("GET", ISVC)]


def test_canary_state_reads_a_canary():
    state = canary_state(isvc_with(CANARY))
    assert (state.champion, state.challenger, state.percent, state.active) == (CHAMPION, CHALLENGER, 10, True)


def prometheus_answers(kube_api, window: str, samples: dict[str, dict[str, float]]) -> str:
    """The stand-in answering the guard's three PromQL queries as Prometheus would (``samples``:
    query kind -> version -> value); returns its URL to use as the Prometheus URL."""
    for kind, expr in health_queries("detector", window).items():
        path = httpx.URL(f"{kube_api.url}/api/v1/query", params={"query": expr}).raw_path.decode()
        result = [{"metric": {"version": v}, "value": [0, str(x)]} for v, x in samples.get(kind, {}).items()]
        kube_api.objects[path] = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return kube_api.url


def test_guard_rolls_back_and_says_so_when_the_rollback_fails(kube_api):
    kube_api.objects = {ISVC: isvc_with(CANARY)}
    failing = {"requests": {CHAMPION: 100, CHALLENGER: 50}, "errors": {CHALLENGER: 25}}
    prometheus = prometheus_answers(kube_api, "5m", failing)
    kube_api.existing = {ISVC}
    decision = guard_canary("detector", "vision", prometheus)
    assert decision.rolled_back and "error rate 50.0%" in decision.reason
    assert [body for method, _, body, _ in kube_api.calls if method == "PATCH"] == [
        {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    ]
    kube_api.existing = set()  # deleted between the read and the rollback
    with pytest.raises(DeploymentError) as raised:
        guard_canary("detector", "vision", prometheus)
    message = str(raised.value)
    assert f"the challenger {CHALLENGER} needs a rollback (" in message and "error rate 50.0%" in message
    assert "no InferenceService 'detector'" in message
    assert "nexus deploy rollback --kserve detector --namespace vision" in message


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "success", "data": {}},
        {"status": "success", "data": {"result": [{"metric": {"version": "a"}, "value": []}]}},
        {"status": "success", "data": {"result": [{"metric": {"version": "a"}, "value": [0, "many"]}]}},
        [1, 2],
    ],
)
def test_guard_reports_a_malformed_prometheus_answer(kube_api, answer):
    kube_api.objects = {ISVC: isvc_with(CANARY)}
    prometheus = prometheus_answers(kube_api, "5m", {})
    path = httpx.URL(
        f"{kube_api.url}/api/v1/query", params={"query": health_queries("detector", "5m")["requests"]}
    ).raw_path.decode()
    kube_api.objects[path] = answer
    with pytest.raises(DeploymentError, match="Prometheus"):
        guard_canary("detector", "vision", prometheus)
    assert [method for method, *_ in kube_api.calls].count("PATCH") == 0


def test_guard_policy_refuses_a_nan_latency_margin():
    with pytest.raises(ValueError, match="max_p95_margin must be above -1"):
        CanaryGuardPolicy(max_p95_margin=float("nan"))


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--interval", "-1"], "--interval must be a positive number of seconds, got -1.0"),
        (["--interval", "nan"], "--interval must be a positive number"),
        (["--max-p95-margin", "nan"], "max_p95_margin must be above -1"),
        (["--kserve", "Detector"], "name 'Detector' must be a DNS-1035 label"),
    ],
)
def test_guard_cli_refuses_bad_options_before_asking_anyone(kube_api, capsys, extra, words):
    argv = ["deploy", "guard", "--kserve", "detector", "--namespace", "vision", "--prometheus", "http://x"]
    assert main([*argv, *extra]) == 2
    assert words in capsys.readouterr().err
    assert kube_api.calls == []
