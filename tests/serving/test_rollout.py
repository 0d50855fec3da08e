"""Local deployments: deploy as champion or canary, promote, roll back, serve in the background."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from serving_client import b64

from nexus.cli.main import main
from nexus.errors import DeploymentError, RegistryError
from nexus.registry import CHALLENGER, CHAMPION, Lineage, ModelRegistry
from nexus.serving.deployment import LocalDeployment, stop_server
from nexus.serving.launcher import free_port
from nexus.serving.rollout import (
    deploy_version,
    persist_router_change,
    promote_deployment,
    rollback_deployment,
)
from nexus.settings import NexusSettings

NAME = "detector"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> NexusSettings:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEXUS_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return NexusSettings.from_env()


def register(settings: NexusSettings, root: Path, content: bytes | Path) -> str:
    folder = root / f"export-{len(list(root.glob('export-*')))}"
    folder.mkdir(parents=True)
    if isinstance(content, Path):
        shutil.copyfile(content, folder / "model.onnx")
        (folder / "salt.txt").write_text(folder.name)  # a different version of the same weights
    else:
        (folder / "model.onnx").write_bytes(content)
    return ModelRegistry(settings, NAME).register(folder, Lineage()).version


def test_first_deploy_is_champion_then_canary_promote_and_rollback(settings, tmp_path):
    v1 = register(settings, tmp_path, b"one")
    record = deploy_version(settings, NAME, v1, 10, registered_model=NAME)
    assert (record.champion, record.challenger) == (v1, None)
    assert ModelRegistry(settings, NAME).require(CHAMPION).version == v1

    v2 = register(settings, tmp_path, b"two")
    record = deploy_version(settings, NAME, v2, 25, registered_model=NAME)
    assert (record.champion, record.challenger, record.canary_percent) == (v1, v2, 25.0)
    assert deploy_version(settings, NAME, v2, 25, registered_model=NAME).history == record.history  # re-run

    record = promote_deployment(settings, NAME)
    assert (record.champion, record.challenger) == (v2, None)
    registry = ModelRegistry(settings, NAME)
    assert registry.require(CHAMPION).version == v2 and registry.get(CHALLENGER) is None

    record = rollback_deployment(settings, NAME)  # after a promotion: the previous champion returns
    assert record.champion == v1 and registry.require(CHAMPION).version == v1
    actions = [entry["action"] for entry in LocalDeployment.load(settings, NAME).history]
    assert actions == ["deploy", "deploy", "promote", "rollback"]


def test_rollback_during_canary_keeps_the_champion(settings, tmp_path):
    v1 = register(settings, tmp_path, b"a")
    deploy_version(settings, NAME, v1, registered_model=NAME)
    v2 = register(settings, tmp_path, b"b")
    deploy_version(settings, NAME, v2, registered_model=NAME)
    record = rollback_deployment(settings, NAME)
    assert (record.champion, record.challenger) == (v1, None)
    assert ModelRegistry(settings, NAME).require(v2).tags["nexus.status"] == "rolled-back"


@pytest.mark.parametrize(
    ("event", "changed", "champion", "challenger"),
    [
        ({"action": "rollback", "challenger": "v2", "automatic": True, "reason": "errors"}, True, "1", None),
        ({"action": "promote", "champion": "v2", "previous": "v1"}, True, "2", None),
        ({"action": "rollback", "challenger": "v7", "automatic": True}, False, "1", "2"),  # not this canary
        ({"action": "promote", "champion": "v1"}, False, "1", "2"),
    ],
)
def test_a_change_made_by_the_router_moves_the_registry_and_the_record(
    settings, tmp_path, event, changed, champion, challenger
):
    v1 = register(settings, tmp_path, b"one")
    deploy_version(settings, NAME, v1, registered_model=NAME)
    v2 = register(settings, tmp_path, b"two")
    deploy_version(settings, NAME, v2, 30, registered_model=NAME)
    assert (v1, v2) == ("1", "2")
    assert persist_router_change(settings, NAME, event) is changed
    record = LocalDeployment.load(settings, NAME)
    registry = ModelRegistry(settings, NAME)
    assert (record.champion, record.challenger) == (champion, challenger)
    assert registry.require(CHAMPION).version == champion
    alias = registry.get(CHALLENGER)
    assert (None if alias is None else alias.version) == challenger
    if changed:
        assert record.history[-1]["action"] == event["action"]
    assert persist_router_change(settings, NAME, event) is False  # the record already shows it


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_automatic_rollback_outlives_a_restart(settings, tmp_path, detect_onnx, jpegs):
    """The router drops a failing challenger on its own: the registry and the record follow, so a
    restarted deployment serves the champion alone."""
    v1 = register(settings, tmp_path, detect_onnx)
    deploy_version(settings, NAME, v1, registered_model=NAME)
    v2 = register(settings, tmp_path, detect_onnx)
    deploy_version(settings, NAME, v2, 50, registered_model=NAME)
    assert main(["deploy", "up", NAME]) == 0
    record = LocalDeployment.load(settings, NAME)
    try:
        (challenger,) = [
            child
            for child in psutil.Process(record.pid).children(recursive=True)
            if "nexus.serving.entrypoint" in " ".join(child.cmdline()) and f"v{v2}" in child.cmdline()
        ]
        challenger.kill()  # it stays a zombie until the serve process reaps it: poll its state
        deadline = time.monotonic() + 10
        while _alive(challenger):
            assert time.monotonic() < deadline, "the challenger survived SIGKILL"
            time.sleep(0.05)
        body = {"instances": [{"b64": b64(jpegs[0])}]}
        for _ in range(200):  # random split: both versions reach the policy's 20 requests
            httpx.post(f"{record.url}/v1/models/{NAME}:predict", json=body, timeout=30)
            if httpx.get(f"{record.url}/admin/status", timeout=10).json()["challenger"] is None:
                break
        else:
            pytest.fail("the router never rolled the dead challenger back")
        deadline = time.monotonic() + 30
        while LocalDeployment.load(settings, NAME).challenger is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        saved = LocalDeployment.load(settings, NAME)
        assert (saved.champion, saved.challenger) == (v1, None)
        assert saved.history[-1]["action"] == "rollback" and saved.history[-1]["automatic"] is True
        assert "error rate" in saved.history[-1]["reason"]
        assert ModelRegistry(settings, NAME).get(CHALLENGER) is None
        assert main(["deploy", "up", NAME]) == 0  # a restart serves what the router served
        restarted = LocalDeployment.load(settings, NAME)
        response = httpx.post(f"{restarted.url}/v1/models/{NAME}:predict", json=body, timeout=30)
        assert response.status_code == 200 and response.json()["model_version"] == f"v{v1}"
    finally:
        stop_server(LocalDeployment.load(settings, NAME))


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (lambda s: promote_deployment(s, NAME), DeploymentError, "no challenger to promote"),
        (lambda s: rollback_deployment(s, NAME), DeploymentError, "nothing deployed"),
        (lambda s: deploy_version(s, NAME, "1", 0, registered_model=NAME), DeploymentError, "canary percent"),
        (lambda s: deploy_version(s, NAME, "9", 10, registered_model=NAME), RegistryError, "no version"),
        (lambda s: LocalDeployment(name="bad name!"), DeploymentError, "letters, digits"),
    ],
)
def test_bad_requests_leave_the_record_unchanged(settings, action, error, message):
    with pytest.raises(error, match=message):
        action(settings)
    assert not LocalDeployment.path_for(settings, NAME).exists()


def test_served_canary_labels_versions_and_follows_promotion(
    settings, tmp_path, detect_onnx, jpegs, capsys, monkeypatch
):
    v1 = register(settings, tmp_path, detect_onnx)
    deploy_version(settings, NAME, v1, registered_model=NAME)
    v2 = register(settings, tmp_path, detect_onnx)
    deploy_version(settings, NAME, v2, 50, registered_model=NAME)
    monkeypatch.setenv("NEXUS_ROUTER_ADMIN_TOKEN", "s3cret")  # the router started below asks for it
    assert main(["deploy", "up", NAME]) == 0
    record = LocalDeployment.load(settings, NAME)
    try:
        assert json.loads(capsys.readouterr().out)["running"] is True
        seen = set()
        for user in range(12):
            response = httpx.post(
                f"{record.url}/v1/models/{NAME}:predict",
                json={"instances": [{"b64": b64(jpegs[0])}]},
                headers={"X-User-Id": f"user-{user}"},
                timeout=30,
            )
            assert response.status_code == 200
            seen.add(response.headers["X-Model-Version"])
        assert seen == {f"v{v1}", f"v{v2}"}
        assert httpx.post(f"{record.url}/admin/promote", timeout=10).status_code == 401
        with socket.socket() as taken:  # 'up' on a port in use fails before it stops the running server
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            assert main(["deploy", "up", NAME, "--port", str(taken.getsockname()[1])]) == 2
        assert "pick another --port" in capsys.readouterr().err
        assert LocalDeployment.load(settings, NAME).pid == record.pid
        assert httpx.get(f"{record.url}/v2/health/ready", timeout=10).status_code == 200
        assert main(["registry", "promote", "--deployment", NAME]) == 0
        assert LocalDeployment.load(settings, NAME).pid == record.pid  # promoted live, not restarted
        for user in range(4):
            response = httpx.post(
                f"{record.url}/v1/models/{NAME}:predict",
                json={"instances": [{"b64": b64(jpegs[0])}]},
                headers={"X-User-Id": f"user-{user}"},
                timeout=30,
            )
            assert response.headers["X-Model-Version"] == f"v{v2}"
    finally:
        assert stop_server(LocalDeployment.load(settings, NAME)) is True
    assert not LocalDeployment.load(settings, NAME).is_running()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{record.url}/v2/health/ready", timeout=2)
    capsys.readouterr()
    assert main(["deploy", "down", NAME]) == 0  # twice: nothing to stop, nothing lost
    assert capsys.readouterr().out.strip() == f"{NAME}: was not running"
    assert LocalDeployment.load(settings, NAME).champion == v2


def test_cli_show_and_errors(settings, capsys):
    assert main(["deploy", "show", NAME]) == 2  # nothing deployed under that name yet
    error = capsys.readouterr().err
    assert f"no deployment named {NAME!r}" in error and "nexus pipeline run training" in error
    LocalDeployment(name="other", registered_model="m", home=settings.home).save()
    assert main(["deploy", "show", "other"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] is None
    assert main(["deploy", "show", "othre"]) == 2
    assert "(deployments: other)" in capsys.readouterr().err
    assert main(["deploy", "up", NAME]) == 2
    assert "has no champion yet" in capsys.readouterr().err
    assert main(["deploy", "down", "othre"]) == 2  # a typo is not 'was not running'
    assert "no deployment named 'othre' (deployments: other)" in capsys.readouterr().err
    assert main(["registry", "rollback", "--deployment", NAME]) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "Expecting value"),
        (b'{"name": "detector", ', "Expecting"),
        (b"\xff\xfe", "'utf-8' codec can't decode"),
        (b"[]", "a JSON object expected, got list"),
        (b"{}", "no field 'name'"),
        (b'{"name": 5}', "field 'name' has the wrong type: 5"),
        (b'{"name": "detector", "canary_percent": "x"}', "field 'canary_percent' has the wrong type"),
        (b'{"name": "detector", "canary_percent": 500}', "canary percent must be within [0, 100]"),
        (b'{"name": "detector", "extra": 1}', "unknown field(s) 'extra'"),
        (b'{"name": "other"}', "it names deployment 'other'"),
        (b'{"name": "detector", "history": 3}', "field 'history' has the wrong type"),
        (b'{"name": "detector", "history": [1]}', "field 'history' must be a list of objects"),
        (b'{"name": "detector", "pid": 1}', "pid 1 is no server's"),  # kill(-1) would end every process
        (b'{"name": "detector", "pid": true}', "field 'pid' has the wrong type"),
    ],
)
def test_an_unreadable_record_is_reported_and_kept(settings, capsys, content, problem):
    path = LocalDeployment.path_for(settings, NAME)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    for argv in (["deploy", "show", NAME], ["deploy", "down", NAME], ["deploy", "up", NAME]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert f"{path}: unreadable deployment record ({problem}" in error, error
        assert "repair the file, or move it aside" in error
    assert path.read_bytes() == content
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_pid_taken_by_another_program_is_not_the_server(settings, capsys):
    """A record whose server is gone, its pid since taken by another program: down must not end that."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        LocalDeployment(name=NAME, pid=other.pid, url="http://127.0.0.1:1", home=settings.home).save()
        assert not LocalDeployment.load(settings, NAME).is_running()
        assert main(["deploy", "down", NAME]) == 0
        assert capsys.readouterr().out.strip() == f"{NAME}: was not running"
        assert other.poll() is None  # still running
        assert LocalDeployment.load(settings, NAME).pid is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("name", ["../../etc/x", "a/b", ""])
def test_a_deployment_name_is_never_a_path(settings, capsys, name):
    assert main(["deploy", "show", name]) == 2
    assert "must be letters, digits, '-' or '_'" in capsys.readouterr().err


def test_kserve_target_needs_remote_storage_and_a_cluster(settings, tmp_path, monkeypatch):
    from nexus.serving.kserve_apply import deploy_to_kserve, kserve_settings_for
    from nexus.serving.manifests import DeploymentSettings

    version = register(settings, tmp_path, b"local-files")
    assert kserve_settings_for(settings, NAME, version, NAME, 10) is None  # file:// artifacts
    with pytest.raises(DeploymentError, match="needs them on S3/MinIO"):
        deploy_to_kserve(None)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cluster = DeploymentSettings(name="detector", storage_uri="s3://models/detector/1", canary_percent=10)
    with pytest.raises(DeploymentError, match="no Kubernetes cluster configured"):
        deploy_to_kserve(cluster)


@pytest.mark.parametrize("transformer", [False, True])
def test_kserve_target_builds_the_inference_service_of_a_version_on_s3(settings, transformer):
    """A version whose artifacts are on S3 gets cluster settings; the pipeline's ``kserve_transformer``
    turns them into the split deployment."""
    from nexus.serving.kserve_apply import kserve_settings_for
    from nexus.serving.manifests import inference_service_manifest

    client = ModelRegistry(settings, NAME).client
    client.create_registered_model(NAME)
    version = str(client.create_model_version(NAME, source="s3://models/nexus-detector/7").version)
    cluster = kserve_settings_for(settings, NAME, version, "detector", 25.0, "vision", transformer)
    assert (cluster.storage_uri, cluster.namespace, cluster.canary_percent) == (
        "s3://models/nexus-detector/7", "vision", 25,
    )  # fmt: skip
    isvc = inference_service_manifest(cluster)
    assert ("transformer" in isvc["spec"]) == transformer
    assert isvc["spec"]["predictor"]["model"]["runtime"] == (
        "nexus-yolo-tensor-runtime" if transformer else "nexus-yolo-runtime"
    )


def test_kserve_target_creates_the_runtime_before_the_inference_service(kube_api):
    from nexus.serving.kserve_apply import deploy_to_kserve
    from nexus.serving.manifests import DeploymentSettings

    cluster = DeploymentSettings("detector", "s3://models/detector/1", namespace="vision", transformer=True)
    applied = deploy_to_kserve(cluster)
    assert [(method, path) for method, path, *_ in kube_api.calls] == [
        (
            "PATCH",
            "/apis/serving.kserve.io/v1alpha1/namespaces/vision/servingruntimes/nexus-yolo-tensor-runtime",
        ),
        ("POST", "/apis/serving.kserve.io/v1alpha1/namespaces/vision/servingruntimes"),
        ("PATCH", "/apis/serving.kserve.io/v1beta1/namespaces/vision/inferenceservices/detector"),
        ("POST", "/apis/serving.kserve.io/v1beta1/namespaces/vision/inferenceservices"),
    ]
    assert kube_api.calls[1][2]["kind"] == "ServingRuntime" and "transformer" in applied["spec"]


def test_kserve_target_reports_a_refusal_and_an_unreachable_cluster(kube_api, tmp_path, monkeypatch):
    from nexus.serving.kserve_apply import deploy_to_kserve
    from nexus.serving.manifests import DeploymentSettings

    cluster = DeploymentSettings("detector", "s3://models/detector/1", namespace="vision")
    kube_api.refuse = 403
    with pytest.raises(
        DeploymentError, match="refused the ServingRuntime 'nexus-yolo-runtime' in namespace 'vision': 403"
    ):
        deploy_to_kserve(cluster)
    kubeconfig = json.loads((tmp_path / "kubeconfig").read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    with pytest.raises(DeploymentError, match="cannot reach the Kubernetes API server"):
        deploy_to_kserve(cluster)

    kube_api.refuse, kube_api.serves = None, False  # a cluster without KServe
    kubeconfig["clusters"][0]["cluster"]["server"] = kube_api.url
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    with pytest.raises(
        DeploymentError, match="serves no servingruntimes in namespace 'vision': is KServe installed"
    ):
        deploy_to_kserve(cluster)


ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/vision/inferenceservices/detector"


@pytest.mark.parametrize(
    ("argv", "percent"),
    [
        (["deploy", "promote"], 100),
        (["deploy", "rollback"], 0),
        (["deploy", "traffic", "30"], 30),
    ],
)
def test_cli_steers_a_kserve_canary(kube_api, capsys, argv, percent):
    kube_api.existing = {ISVC_PATH}
    assert main([*argv, "--kserve", "detector", "--namespace", "vision"]) == 0
    ((method, path, body, content_type),) = kube_api.calls
    assert (method, path) == ("PATCH", ISVC_PATH)
    assert body == {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
    assert content_type == "application/merge-patch+json"  # other predictor fields stay as they are
    assert json.loads(capsys.readouterr().out)["canaryTrafficPercent"] == percent


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "promote", "--kserve", "detector", "--namespace", "vision"],
         "no InferenceService 'detector' in namespace 'vision'"),
        (["deploy", "traffic", "12.5", "--kserve", "detector"], "whole number"),
        (["deploy", "traffic", "150", "--kserve", "detector"], "within [0, 100]"),
    ],
)  # fmt: skip
def test_cli_kserve_errors_name_the_problem(kube_api, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_promote_and_rollback_components_steer_a_kserve_canary(kube_api):
    from components.deploy import promote, rollback

    kube_api.existing = {ISVC_PATH}
    promoted = json.loads(promote.python_func(deployment="detector", target="kserve", namespace="vision"))
    rolled_back = json.loads(rollback.python_func(deployment="detector", target="kserve", namespace="vision"))
    assert (promoted["canaryTrafficPercent"], rolled_back["canaryTrafficPercent"]) == (100, 0)
    assert [(method, path) for method, path, *_ in kube_api.calls] == [("PATCH", ISVC_PATH)] * 2
    with pytest.raises(ValueError, match="target must be 'local' or 'kserve'"):
        promote.python_func(deployment="detector", target="cluster")
