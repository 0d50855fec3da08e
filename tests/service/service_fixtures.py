"""Helpers shared by the metadata-service tests (imported by name; conftest modules are not importable)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_servers import Postgres

from nexus.service.settings import ServiceSettings

SECRET = "test-secret-0123456789-0123456789-abcdef"
ADMIN = ("admin", "admin-password-1")
BACKENDS = ["sqlite", "postgres"]


def database_url(request: pytest.FixtureRequest, backend: str, home: Path) -> str:
    """A fresh, empty database on ``backend``."""
    if backend == "postgres":
        server: Postgres = request.getfixturevalue("postgres")
        return server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return f"sqlite+aiosqlite:///{home / 'nexus.db'}"


def make_settings(home: Path, url: str, **overrides) -> ServiceSettings:
    """Test settings: explicit secret, a bootstrap admin, generous limits unless overridden."""
    values = {
        "env": "test",
        "home": home,
        "database_url": url,
        "secret_key": SECRET,
        "bootstrap_admin_username": ADMIN[0],
        "bootstrap_admin_password": ADMIN[1],
        "rate_limit_per_user": "100000/minute",
        "rate_limit_per_ip": "100000/minute",
        "max_upload_bytes": 1024 * 1024,
        **overrides,
    }
    return ServiceSettings(**values)


class Api:
    """A TestClient plus signed-in users of each role (created on first use)."""

    def __init__(self, client: TestClient, settings: ServiceSettings) -> None:
        self.client = client
        self.settings = settings
        self._headers: dict[str, dict[str, str]] = {}

    def login(self, username: str, password: str) -> dict[str, str]:
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def headers(self, role: str) -> dict[str, str]:
        """Authorization headers of a user with ``role``."""
        if role not in self._headers:
            if role == "admin":
                self._headers[role] = self.login(*ADMIN)
            else:
                password = f"{role}-password-1"
                response = self.client.post(
                    "/users",
                    json={"username": role, "password": password, "role": role},
                    headers=self.headers("admin"),
                )
                assert response.status_code == 201, response.text
                self._headers[role] = self.login(role, password)
        return self._headers[role]

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs):
        headers = {**(self.headers(role) if role else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, role: str | None = "admin", status: int = 200, **kwargs) -> dict:
        response = self.call(method, path, role, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()
