"""Pipeline runs, deployments (canary, promote, rollback, history) and A/B experiments."""

from __future__ import annotations


def test_runs_are_queued_and_move_through_statuses(api) -> None:
    run = api.ok("POST", "/runs", status=201, json={"pipeline": "train", "parameters": {"epochs": 30}})
    assert run["status"] == "queued" and run["started_at"] is None
    rid = run["id"]
    running = api.ok("PATCH", f"/runs/{rid}", json={"status": "running", "external_id": "kfp-123"})
    assert running["status"] == "running" and running["started_at"]
    api.ok("PATCH", f"/runs/{rid}", json={"metrics": {"map50": 0.5}, "artifacts": {"model": "s3://b/m.onnx"}})
    done = api.ok("PATCH", f"/runs/{rid}", json={"status": "succeeded", "metrics": {"map50_95": 0.4}})
    assert done["metrics"] == {"map50": 0.5, "map50_95": 0.4} and done["finished_at"]
    assert api.call("PATCH", f"/runs/{rid}", json={"status": "running"}).status_code == 409
    assert api.call("PATCH", f"/runs/{rid}", json={"status": "exploded"}).status_code == 422
    api.ok("POST", "/runs", status=201, json={"pipeline": "evaluate"})
    assert api.ok("GET", "/runs", params={"status": "queued"})["total"] == 1
    assert api.ok("GET", "/runs", params={"pipeline": "train"})["items"][0]["id"] == rid
    assert [r["pipeline"] for r in api.ok("GET", "/runs")["items"]] == ["evaluate", "train"]


def _model_versions(api, count: int) -> list[int]:
    model = api.ok("POST", "/models", status=201, json={"name": "detector"})
    return [
        api.ok("POST", f"/models/{model['id']}/versions", status=201, json={})["id"] for _ in range(count)
    ]


def test_deployment_canary_promote_rollback_history(api) -> None:
    v1, v2, v3 = _model_versions(api, 3)
    dep = api.ok(
        "POST",
        "/deployments",
        status=201,
        json={
            "name": "shapes-prod",
            "model_version_id": v1,
            "endpoint": "http://127.0.0.1:8080/v1/models/shapes",
        },
    )
    assert dep["status"] == "pending" and dep["canary_percent"] == 0
    did = dep["id"]
    assert api.ok("PATCH", f"/deployments/{did}", json={"status": "ready"})["status"] == "ready"
    assert api.call("POST", f"/deployments/{did}/events", json={"kind": "promote"}).status_code == 409
    assert api.call("POST", f"/deployments/{did}/events", json={"kind": "rollback"}).status_code == 409
    assert (
        api.call("POST", f"/deployments/{did}/events", json={"kind": "canary", "percent": 10}).status_code
        == 422
    )

    canary = api.ok(
        "POST",
        f"/deployments/{did}/events",
        status=201,
        json={"kind": "canary", "model_version_id": v2, "percent": 10},
    )
    assert (canary["canary_model_version_id"], canary["canary_percent"]) == (v2, 10)
    promoted = api.ok(
        "POST", f"/deployments/{did}/events", status=201, json={"kind": "promote", "reason": "mAP up"}
    )
    assert (
        promoted["model_version_id"],
        promoted["canary_model_version_id"],
        promoted["canary_percent"],
    ) == (v2, None, 0)

    api.ok(
        "POST",
        f"/deployments/{did}/events",
        status=201,
        json={"kind": "canary", "model_version_id": v3, "percent": 25},
    )
    dropped = api.ok("POST", f"/deployments/{did}/events", status=201, json={"kind": "rollback"})
    assert (dropped["model_version_id"], dropped["canary_model_version_id"]) == (v2, None)
    reverted = api.ok("POST", f"/deployments/{did}/events", status=201, json={"kind": "rollback"})
    assert reverted["model_version_id"] == v1

    history = api.ok("GET", f"/deployments/{did}/events")
    assert [e["kind"] for e in history["items"]] == [
        "rollback",
        "rollback",
        "canary",
        "promote",
        "canary",
        "create",
    ]
    assert (
        history["items"][3]["from_model_version_id"] == v1
        and history["items"][3]["to_model_version_id"] == v2
    )
    assert api.ok("GET", f"/deployments/{did}/events", params={"kind": "rollback"})["total"] == 2
    assert api.ok("GET", "/deployments", params={"model_version_id": v1})["total"] == 1
    assert api.ok("GET", "/deployments", params={"status": "retired"})["total"] == 0
    assert api.call("POST", "/deployments", json={"name": "x", "model_version_id": 9999}).status_code == 404


def test_experiment_traffic_split_and_outcomes(api) -> None:
    v1, v2 = _model_versions(api, 2)
    bad = {
        "name": "ab",
        "variants": [{"name": "a", "traffic_percent": 50}, {"name": "b", "traffic_percent": 40}],
    }
    assert api.call("POST", "/experiments", json=bad).status_code == 422
    exp = api.ok(
        "POST",
        "/experiments",
        status=201,
        json={
            "name": "ab-1",
            "variants": [
                {"name": "control", "model_version_id": v1, "traffic_percent": 90},
                {"name": "treatment", "model_version_id": v2, "traffic_percent": 10},
            ],
        },
    )
    eid = exp["id"]
    report = {"variant": "control", "counts": {"impressions": 100, "clicks": 7}}
    assert api.call("POST", f"/experiments/{eid}/outcomes", json=report).status_code == 409
    api.ok("PATCH", f"/experiments/{eid}", json={"status": "running"})
    api.ok("POST", f"/experiments/{eid}/outcomes", json=report)
    after = api.ok(
        "POST", f"/experiments/{eid}/outcomes", json={"variant": "control", "counts": {"clicks": 3}}
    )
    assert after["outcomes"]["control"] == {"impressions": 100, "clicks": 10}
    assert (
        api.call(
            "POST", f"/experiments/{eid}/outcomes", json={"variant": "zzz", "counts": {"a": 1}}
        ).status_code
        == 404
    )
    resplit = api.ok(
        "PATCH",
        f"/experiments/{eid}",
        json={
            "variants": [
                {"name": "control", "model_version_id": v1, "traffic_percent": 50},
                {"name": "treatment", "model_version_id": v2, "traffic_percent": 50},
            ]
        },
    )
    assert resplit["outcomes"]["control"]["clicks"] == 10
    dropped = api.call(
        "PATCH",
        f"/experiments/{eid}",
        json={
            "variants": [
                {"name": "treatment", "model_version_id": v2, "traffic_percent": 100},
                {"name": "other", "traffic_percent": 0},
            ]
        },
    )
    assert dropped.status_code == 409 and "control have recorded outcomes" in dropped.json()["detail"]
    assert api.ok("GET", f"/experiments/{eid}")["outcomes"]["control"]["clicks"] == 10
    zero = {"name": "control", "model_version_id": v1, "traffic_percent": 0}
    only_treatment = [zero, {"name": "treatment", "model_version_id": v2, "traffic_percent": 100}]
    kept = api.ok("PATCH", f"/experiments/{eid}", json={"variants": only_treatment})
    assert kept["outcomes"]["control"]["clicks"] == 10  # the counts stay with a 0% arm
    no_counts = [zero, {"name": "fresh", "traffic_percent": 100}]  # treatment has none: it may go
    assert set(api.ok("PATCH", f"/experiments/{eid}", json={"variants": no_counts})["outcomes"]) == {
        "control",
        "fresh",
    }
    assert api.ok("GET", "/experiments", params={"status": "running"})["total"] == 1
