"""Pipeline runs launched through the API: real child processes, their status, log, cancel and restart.

One real training run succeeds (launched before the other tests, which run while it trains, and checked
by the last one); the other runs fail fast, are cancelled within seconds, or never leave the queue.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_fixtures import Api, database_url, make_settings

from nexus.service.app import create_app
from nexus.service.run_launcher import RESTARTED, group_alive

TINY = {"synth_images": 24, "imgsz": 64, "epochs": 1, "batch": 8, "min_map50": 0.0}
MISSING = {**TINY, "source": "/nonexistent"}
ENDED = {"succeeded", "failed", "cancelled"}


def launcher_settings(home: Path, url: str, **overrides):
    return make_settings(home, url, run_poll_seconds=0.1, run_cancel_grace_seconds=3.0, **overrides)


def launch(api: Api, parameters: dict, role: str = "admin", pipeline: str = "training") -> dict:
    body = {"pipeline": pipeline, "parameters": parameters, "launch": True}
    return api.ok("POST", "/runs", role, status=201, json=body)


def wait_for(api: Api, run_id: int, statuses: set[str], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = api.ok("GET", f"/runs/{run_id}")
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run['message']}"
        time.sleep(0.1)


def pid_of(run: dict) -> int:
    assert run["external_id"].startswith("pid:"), run
    return int(run["external_id"].removeprefix("pid:"))


@pytest.fixture(scope="module", autouse=True)
def nexus_home(tmp_path_factory) -> Iterator[Path]:
    """Child runs inherit the service's environment: a scratch NEXUS_HOME (MLflow store, deployments)."""
    home = tmp_path_factory.mktemp("launcher-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXUS_HOME", str(home))
        for name in ("MLFLOW_TRACKING_URI", "NEXUS_MLFLOW_TRACKING_URI", "KFP_HOST"):
            patch.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[tuple[Api, int]]:
    """The module's one real training run, launched on first use in its own app (cancelled if the
    module ends before it does)."""
    home = tmp_path_factory.mktemp("launcher-trained")
    settings = launcher_settings(home, f"sqlite+aiosqlite:///{home / 'nexus.db'}")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        run_id = launch(api, TINY, role="analyst")["id"]
        yield api, run_id
        if api.ok("GET", f"/runs/{run_id}")["status"] not in ENDED:
            api.call("POST", f"/runs/{run_id}/cancel")


@pytest.fixture(scope="module", autouse=True)
def train_while_the_others_run(request) -> None:
    """Without pytest-xdist, launch the training run before the other tests so they run meanwhile
    (with it, the test that needs the run launches it: one training per test run either way)."""
    selected = [item for item in request.session.items if item.module is request.module]
    if not os.environ.get("PYTEST_XDIST_WORKER") and any("trained" in i.fixturenames for i in selected):
        request.getfixturevalue("trained")


@pytest.fixture
def launch_api(request, backend: str, tmp_path: Path) -> Iterator[Api]:
    """The app on SQLite and PostgreSQL, following runs every 0.1 s."""
    settings = launcher_settings(tmp_path, database_url(request, backend, tmp_path))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def test_bad_pipeline_or_parameters_are_rejected_before_anything_runs(launch_api) -> None:
    api = launch_api
    for body, loc in (
        ({"pipeline": "trainig", "launch": True}, ["body", "pipeline"]),
        (
            {"pipeline": "training", "parameters": {"epoch": 1}, "launch": True},
            ["body", "parameters", "epoch"],
        ),
        (
            {"pipeline": "training", "parameters": {**TINY, "epochs": "many"}, "launch": True},
            ["body", "parameters", "epochs"],
        ),
        (
            {"pipeline": "training", "parameters": {"imgsz": [64]}, "launch": True},
            ["body", "parameters", "imgsz"],
        ),
    ):
        response = api.call("POST", "/runs", json=body)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc and loc[-1] in error["msg"], error
    assert "must be of type Integer" in response.json()["detail"][0]["msg"]
    assert api.ok("GET", "/runs")["total"] == 0
    assert not (api.settings.home / "pipeline-runs").exists()
    # Without launch, any name is recorded for an outside launcher, as before.
    assert api.ok("POST", "/runs", status=201, json={"pipeline": "trainig"})["artifacts"] == {}


def test_a_run_with_a_missing_dataset_fails_with_the_reason(launch_api) -> None:
    api = launch_api
    run = launch(api, {**MISSING, "epochs": 1.0})  # an integral float is accepted, stored as int
    assert run["status"] == "queued" and run["parameters"]["epochs"] == 1
    failed = wait_for(api, run["id"], ENDED, timeout=60)
    assert failed["status"] == "failed" and failed["finished_at"], failed
    assert "dataset folder not found" in failed["message"] and "ingest" in failed["message"]
    assert failed["metrics"] == {}
    assert "dataset folder not found" in api.call("GET", f"/runs/{run['id']}/log").text
    statuses = [
        (e["actor"], e["after"]["status"])
        for e in api.ok("GET", "/audit", params={"entity": "run", "entity_id": str(run["id"])})["items"]
    ]
    assert statuses[:2] == [("run-launcher", "failed"), ("run-launcher", "running")]
    # The launcher owns the run's status and handle.
    patch = api.call("PATCH", f"/runs/{run['id']}", json={"status": "succeeded"})
    assert patch.status_code == 409 and "/cancel" in patch.json()["detail"]
    assert api.call("PATCH", f"/runs/{run['id']}", json={"external_id": "pid:1"}).status_code == 409
    assert api.call("POST", f"/runs/{run['id']}/cancel").status_code == 409
    other = api.ok("POST", "/runs", status=201, json={"pipeline": "train"})
    link = api.call("PATCH", f"/runs/{other['id']}", json={"artifacts": {"log": "/etc/passwd"}})
    assert link.status_code == 409
    assert api.call("GET", f"/runs/{other['id']}/log").status_code == 404


def test_cancel_stops_the_process_group_and_the_next_queued_run_starts(tmp_path) -> None:
    settings = launcher_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        first = launch(api, {**TINY, "seed": 5})
        second = launch(api, MISSING)  # one slot (NEXUS_API_MAX_RUNNING_PIPELINES=1): waits
        running = wait_for(api, first["id"], {"running", *ENDED})
        assert running["status"] == "running", running["message"]
        assert running["parameters"] == {**TINY, "seed": 5} and running["started_at"]
        root = settings.home / "pipeline-runs" / str(first["id"])
        assert running["artifacts"] == {"root": str(root), "log": str(root / "run.log")}
        pid = pid_of(running)
        assert group_alive(pid)
        deadline = time.monotonic() + 60
        while not list(root.glob("training-*/ingest")):  # the steps' processes have started
            assert time.monotonic() < deadline
            time.sleep(0.1)
        while "ingest" not in (log := api.call("GET", f"/runs/{first['id']}/log", "viewer")).text:
            assert time.monotonic() < deadline, log.text
            time.sleep(0.1)
        assert log.headers["content-type"].startswith("text/plain") and "\x1b[" not in log.text
        tail = api.call("GET", f"/runs/{first['id']}/log", params={"lines": 3}).text
        assert 1 <= len(tail.splitlines()) <= 3
        assert api.ok("GET", f"/runs/{second['id']}")["status"] == "queued"

        cancelled = api.ok("POST", f"/runs/{first['id']}/cancel", "analyst")
        assert cancelled["status"] == "cancelled" and cancelled["message"] == "cancelled by analyst"
        assert cancelled["finished_at"] and not group_alive(pid)
        again = api.call("POST", f"/runs/{first['id']}/cancel")
        assert again.status_code == 409 and "cancelled" in again.json()["detail"]
        time.sleep(0.5)
        assert api.ok("GET", f"/runs/{first['id']}")["status"] == "cancelled"  # not turned into failed

        failed = wait_for(api, second["id"], ENDED, timeout=60)
        assert failed["status"] == "failed" and "dataset folder not found" in failed["message"]

        api.settings.max_running_pipelines = 0  # paused: stays queued, and is cancelled from the queue
        queued = launch(api, MISSING)
        time.sleep(0.3)
        assert api.ok("POST", f"/runs/{queued['id']}/cancel")["status"] == "cancelled"


def test_a_restart_adopts_live_runs_and_fails_runs_whose_process_is_gone(tmp_path) -> None:
    settings = launcher_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}", max_running_pipelines=2
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        alive, gone = launch(api, {**TINY, "seed": 6}), launch(api, {**TINY, "seed": 7})
        alive_pid = pid_of(wait_for(api, alive["id"], {"running"}))
        gone_pid = pid_of(wait_for(api, gone["id"], {"running"}))
    os.killpg(gone_pid, signal.SIGKILL)  # dies while the service is down
    deadline = time.monotonic() + 10
    while group_alive(gone_pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert group_alive(alive_pid)

    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        failed = wait_for(api, gone["id"], ENDED, timeout=30)
        assert failed["status"] == "failed" and failed["message"] == RESTARTED
        time.sleep(0.3)
        adopted = api.ok("GET", f"/runs/{alive['id']}")
        assert adopted["status"] == "running" and pid_of(adopted) == alive_pid
        assert api.ok("POST", f"/runs/{alive['id']}/cancel")["status"] == "cancelled"
        assert not group_alive(alive_pid)


def test_roles_for_launching_cancelling_and_reading_logs(request, backend, tmp_path) -> None:
    settings = launcher_settings(tmp_path, database_url(request, backend, tmp_path), max_running_pipelines=0)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        body = {"pipeline": "training", "parameters": TINY, "launch": True}
        assert api.call("POST", "/runs", None, json=body).status_code == 401
        assert api.call("POST", "/runs", "viewer", json=body).status_code == 403
        runs = [launch(api, TINY, role) for role in ("analyst", "admin")]
        assert all(run["status"] == "queued" for run in runs)  # paused: nothing starts
        for run in runs:
            assert api.call("POST", f"/runs/{run['id']}/cancel", None).status_code == 401
            assert api.call("POST", f"/runs/{run['id']}/cancel", "viewer").status_code == 403
            assert api.call("GET", f"/runs/{run['id']}/log", None).status_code == 401
            for role in ("viewer", "analyst", "admin"):
                log = api.call("GET", f"/runs/{run['id']}/log", role)
                assert (log.status_code, log.text) == (200, "")
        assert api.ok("POST", f"/runs/{runs[0]['id']}/cancel", "admin")["status"] == "cancelled"
        assert api.ok("POST", f"/runs/{runs[1]['id']}/cancel", "analyst")["status"] == "cancelled"
        assert api.call("POST", "/runs/999/cancel").status_code == 404
        assert api.call("GET", "/runs/999/log").status_code == 404
        assert not (settings.home / "pipeline-runs").exists()


def test_an_unreachable_kubeflow_host_fails_the_run_with_the_reason(tmp_path) -> None:
    """Following a real Kubeflow host cannot be tested here; refusing an unreachable one can."""
    from nexus.serving.launcher import free_port

    host = f"http://127.0.0.1:{free_port()}"
    settings = launcher_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}", kfp_host=host)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        refused = launch(api, TINY)
        assert refused["status"] == "failed"
        assert f"cannot submit 'training' to Kubeflow at {host}" in refused["message"]
        assert api.call("GET", f"/runs/{refused['id']}/log").status_code == 404
    assert not (tmp_path / "pipeline-runs").exists()


def test_the_launched_training_run_succeeds_with_metrics_and_links(trained) -> None:
    api, run_id = trained
    run = wait_for(api, run_id, ENDED, timeout=300)
    assert run["status"] == "succeeded", run["message"] + api.call("GET", f"/runs/{run_id}/log").text[-3000:]
    assert run["message"] == "" and run["finished_at"] >= run["started_at"]
    assert {"evaluate.AP50", "evaluate.AP", "train.mAP50", "gate.decision"} <= set(run["metrics"])
    links = run["artifacts"]
    assert links["model_version"] == "models:/nexus-detector/1"
    assert {"step.ingest", "step.train", "step.evaluate", "step.register", "pipeline_run"} <= set(links)
    assert Path(links["step.evaluate"], "metrics").is_file()
    assert Path(links["pipeline_run"]).parent == Path(links["root"])
    assert "pipeline 'training' finished" in api.call("GET", f"/runs/{run_id}/log").text
    assert not group_alive(pid_of(run))
    audit = api.ok("GET", "/audit", params={"entity": "run", "entity_id": str(run_id)})["items"]
    changes = [(e["actor"], e["action"], e["after"]["status"]) for e in audit]
    assert changes == [
        ("run-launcher", "update", "succeeded"),
        ("run-launcher", "update", "running"),
        ("analyst", "create", "queued"),
    ]
