"""Datasets, models and their versions on SQLite and PostgreSQL, with audit entries for every write."""

from __future__ import annotations

import json

import pytest


def test_datasets_and_versions(api) -> None:
    created = api.ok(
        "POST", "/datasets", status=201, json={"name": "shapes", "classes": ["circle", "square"]}
    )
    assert created["created_by"] == 1
    api.ok("POST", "/datasets", status=201, json={"name": "traffic", "task": "track"})
    assert api.call("POST", "/datasets", json={"name": "shapes"}).status_code == 409

    page = api.ok("GET", "/datasets", params={"sort": "-name", "limit": 1})
    assert page["total"] == 2 and [d["name"] for d in page["items"]] == ["traffic"]
    assert api.ok("GET", "/datasets", params={"task": "track"})["total"] == 1
    assert api.ok("GET", "/datasets", params={"name": "hap"})["items"][0]["name"] == "shapes"
    assert api.ok("GET", "/datasets", params={"name": "%"})["total"] == 0

    ds = created["id"]
    updated = api.ok("PATCH", f"/datasets/{ds}", json={"description": "synthetic shapes"})
    assert updated["description"] == "synthetic shapes" and updated["classes"] == ["circle", "square"]

    version = api.ok(
        "POST",
        f"/datasets/{ds}/versions",
        status=201,
        json={
            "version": "v1",
            "dvc_hash": "abc123def456",
            "splits": {"train": 300, "val": 60},
            "stats": {"boxes": 900},
        },
    )
    assert version["num_images"] == 360
    api.ok("POST", f"/datasets/{ds}/versions", status=201, json={"version": "v2", "dvc_hash": "ffff0000aaaa"})
    assert (
        api.call("POST", f"/datasets/{ds}/versions", json={"version": "v1", "dvc_hash": "abcdef"}).status_code
        == 409
    )
    versions = api.ok("GET", f"/datasets/{ds}/versions")
    assert [v["version"] for v in versions["items"]] == ["v2", "v1"]
    assert api.ok("GET", f"/datasets/{ds}/versions", params={"dvc_hash": "abc123def456"})["total"] == 1
    stats = api.ok("PATCH", f"/datasets/{ds}/versions/{version['id']}", json={"stats": {"boxes": 901}})
    assert stats["stats"] == {"boxes": 901}
    assert api.call("GET", f"/datasets/999/versions/{version['id']}").status_code == 404
    assert api.call("GET", "/datasets/424242").json()["detail"] == "dataset 424242 not found"

    audit = api.ok("GET", "/audit", params={"entity": "dataset", "entity_id": str(ds)})
    actions = [entry["action"] for entry in audit["items"]]
    assert actions == ["update", "create"]
    update = audit["items"][0]
    assert update["before"]["description"] == "" and update["after"]["description"] == "synthetic shapes"
    assert update["actor"] == "admin" and update["request_id"]


def test_models_versions_and_aliases(api) -> None:
    model = api.ok("POST", "/models", status=201, json={"name": "yolo-shapes"})
    mid = model["id"]
    v1 = api.ok(
        "POST",
        f"/models/{mid}/versions",
        status=201,
        json={"mlflow_run_id": "abc123", "metrics": {"map50": 0.95}, "aliases": ["champion"]},
    )
    assert v1["version"] == 1
    v2 = api.ok("POST", f"/models/{mid}/versions", status=201, json={"aliases": ["challenger"]})
    assert v2["version"] == 2
    promoted = api.ok("PATCH", f"/models/{mid}/versions/{v2['id']}", json={"aliases": ["champion"]})
    assert promoted["aliases"] == ["champion"]
    assert api.ok("GET", f"/models/{mid}/versions/{v1['id']}")["aliases"] == []
    champions = api.ok("GET", f"/models/{mid}/versions", params={"alias": "champion"})
    assert [v["version"] for v in champions["items"]] == [2]
    assert api.ok("GET", f"/models/{mid}/versions", params={"mlflow_run_id": "abc123"})["total"] == 1
    assert api.call("POST", f"/models/{mid}/versions", json={"version": 1}).status_code == 409
    assert api.call("POST", f"/models/{mid}/versions", json={"dataset_version_id": 77}).status_code == 404
    assert api.call("POST", f"/models/{mid}/versions", json={"metrics": {"map": "high"}}).status_code == 422


# Free-form JSON (stats, run parameters, video extra) with a lone surrogate escape used to be stored, and
# then every answer showing it (the row, its listing, the audit log) failed with a 500.
UNPAIRED_SURROGATES = [
    ("POST", "/datasets/{ds}/versions", {"version": "v9", "dvc_hash": "abcdef", "stats": {"k": "\ud800"}}),
    ("PATCH", "/datasets/{ds}/versions/{v}", {"stats": {"k": ["ok", "\udfff"]}}),
    ("PATCH", "/datasets/{ds}/versions/{v}", {"stats": {"nested": {"\ud800": 1}}}),
    ("POST", "/runs", {"pipeline": "train", "parameters": {"note": "a\ud800b"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), UNPAIRED_SURROGATES)
def test_json_fields_refuse_unpaired_surrogates(sqlite_api, method, path, body) -> None:
    ds = sqlite_api.ok("POST", "/datasets", status=201, json={"name": "shapes"})["id"]
    v = sqlite_api.ok(
        "POST", f"/datasets/{ds}/versions", status=201, json={"version": "v1", "dvc_hash": "abcdef"}
    )
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as a \ud800 escape
    answer = sqlite_api.call(
        method, path.format(ds=ds, v=v["id"]), content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "surrogate" in answer.json()["detail"][0]["msg"]
    assert sqlite_api.ok("GET", f"/datasets/{ds}/versions")["total"] == 1
    assert sqlite_api.ok("GET", "/runs")["total"] == 0
    assert sqlite_api.ok("GET", "/audit")["total"] == 2  # the dataset and its version, readable


def test_model_version_numbers_stop_at_the_largest_id(sqlite_api) -> None:
    mid = sqlite_api.ok("POST", "/models", status=201, json={"name": "last"})["id"]
    sqlite_api.ok("POST", f"/models/{mid}/versions", status=201, json={"version": 2_147_483_647})
    answer = sqlite_api.call("POST", f"/models/{mid}/versions", json={})
    assert answer.status_code == 409 and "explicit free version number" in answer.json()["detail"]
    assert sqlite_api.ok("POST", f"/models/{mid}/versions", status=201, json={"version": 3})["version"] == 3
