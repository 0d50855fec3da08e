"""Per-user and per-IP limits answer 429 with Retry-After, in memory and on Redis."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from service_fixtures import Api, make_settings

from nexus.service.app import create_app


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_per_user_limit(storage, request, tmp_path) -> None:
    uri = request.getfixturevalue("redis_url") if storage == "redis" else "memory://"
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'n.db'}",
        rate_limit_per_user="5/minute",
        rate_limit_storage=uri,
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        admin = api.headers("admin")
        answers = [client.get("/datasets", headers=admin) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        limited = answers[-1]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["detail"] == "rate limit exceeded" and limited.json()["request_id"]
        # the limit is per user; logging in is only limited per IP
        assert (
            client.post("/auth/token", json={"username": "admin", "password": "admin-password-1"}).status_code
            == 200
        )
        if storage == "redis":
            assert api.client.app.state.limiter.storage.base_exceptions


def test_per_ip_limit(tmp_path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", rate_limit_per_ip="3/minute"
    )
    with TestClient(create_app(settings)) as client:
        codes = [client.get("/datasets").status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        assert client.get("/health").status_code == 200  # probes are never limited
        limited = client.get("/openapi.json")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
