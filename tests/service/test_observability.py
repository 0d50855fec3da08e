"""Request ids, JSON errors and logs, Prometheus metrics, health/readiness, CORS and GZip."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient
from service_fixtures import make_settings

from nexus.service.app import create_app
from nexus.service.logs import JsonFormatter, RequestIdFilter


def test_request_id_on_every_response_and_error(sqlite_api) -> None:
    client = sqlite_api.client
    health = client.get("/health")
    assert health.status_code == 200 and len(health.headers["x-request-id"]) == 32
    echoed = client.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert echoed.headers["x-request-id"] == "trace-abc.123"
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    missing = sqlite_api.call("GET", "/nope")
    assert missing.status_code == 404 and set(missing.json()) == {"detail", "request_id"}
    invalid = sqlite_api.call("POST", "/datasets", json={"name": ""}, headers={"X-Request-ID": "req-1"})
    assert invalid.status_code == 422
    assert invalid.json()["request_id"] == "req-1" and invalid.json()["detail"][0]["loc"] == ["body", "name"]
    not_json = sqlite_api.call(
        "POST", "/datasets", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "Traceback" not in not_json.text
    wrong_method = client.delete("/health")
    assert wrong_method.status_code == 405 and wrong_method.json()["request_id"]


def test_json_logs_carry_the_request_id(sqlite_api) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("nexus.service.access"), logging.getLogger("nexus.service.errors")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        sqlite_api.call("POST", "/datasets", json={"name": "dup"})
        sqlite_api.call("POST", "/datasets", json={"name": "dup"}, headers={"X-Request-ID": "log-me-1"})
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line["request_id"] == "log-me-1"]
    assert {line["logger"] for line in mine} == {"nexus.service.access", "nexus.service.errors"}
    access = next(line for line in mine if line["logger"] == "nexus.service.access")
    assert access["status"] == 409 and access["path"] == "/datasets" and access["level"] == "INFO"
    assert all(line["request_id"] not in (None, "-") for line in lines)


def test_metrics_by_route_template_and_pool_gauges(api) -> None:
    created = api.ok("POST", "/datasets", status=201, json={"name": "m"})
    api.ok("GET", f"/datasets/{created['id']}")
    api.call("GET", "/datasets/999")
    text = api.call("GET", "/metrics", role="analyst").text
    assert 'nexus_api_requests_total{method="GET",route="/datasets/{dataset_id}",status="200"} 1.0' in text
    assert 'nexus_api_requests_total{method="GET",route="/datasets/{dataset_id}",status="404"} 1.0' in text
    assert 'nexus_api_request_duration_seconds_bucket{le="0.5",method="POST",route="/datasets"}' in text
    assert 'nexus_api_db_pool{state="checkedout"}' in text
    assert api.call("GET", "/metrics", role="viewer").status_code == 403
    assert api.client.get("/metrics").status_code == 401


def test_ready_reports_database_and_storage(api) -> None:
    ready = api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "storage": True}}


def test_ready_is_503_when_storage_is_gone(tmp_path) -> None:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'n.db'}")
    with TestClient(create_app(settings)) as client:
        settings.storage_dir.rename(tmp_path / "moved")
        answer = client.get("/ready")
        assert answer.status_code == 503 and answer.json()["checks"] == {"database": True, "storage": False}


def test_cors_and_gzip(tmp_path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'n.db'}",
        cors_origins=["https://ui.example"],
        gzip_minimum_size=100,
    )
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/datasets",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        docs = client.get(
            "/openapi.json", headers={"Accept-Encoding": "gzip", "Origin": "https://ui.example"}
        )
        assert docs.headers["content-encoding"] == "gzip" and docs.json()["info"]["title"]
        assert "x-request-id" in docs.headers["access-control-expose-headers"].lower()
        assert client.get("/docs").status_code == 200


# Raw JSON bodies: Python's json module reads NaN, Infinity, 1e400 (= inf) and lone surrogate escapes,
# which a validation error echoes back as its "input" (strict JSON and UTF-8 cannot carry them).
UNENCODABLE_INPUTS = [
    ("/auth/token", b'{"username": NaN, "password": "x"}', "valid string", "NaN"),
    ("/auth/token", b'{"username": "admin", "password": -Infinity}', "valid string", "-Infinity"),
    ("/datasets", b"1e400", "valid dictionary", "Infinity"),
    ("/auth/token", b'{"username": "\\ud800", "password": "x"}', "unicode", "\\ud800"),
    ("/datasets", b'{"name": "x", "classes": ["a\\udfff"]}', "unicode", "a\\udfff"),
    ("/datasets", b'{"name": "x", "\\ud800": 1}', "unicode", "\\ud800"),
]


@pytest.mark.parametrize(("path", "body", "message", "echoed"), UNENCODABLE_INPUTS)
def test_validation_errors_echo_unencodable_input_as_text(sqlite_api, path, body, message, echoed) -> None:
    answer = sqlite_api.call("POST", path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"][0]
    assert message in error["msg"] and error["input"] == echoed
