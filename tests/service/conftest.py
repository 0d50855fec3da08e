"""Fixtures of the metadata-service tests: real PostgreSQL / Redis / S3 servers and an app per backend."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis.configuration import set_hypothesis_home_dir
from service_fixtures import BACKENDS, Api, database_url, make_settings
from service_servers import Postgres, S3Server, postgres_server, redis_server, weed_s3_server

from nexus.service.app import create_app

# Hypothesis (used by schemathesis) keeps caches in ./.hypothesis by default; keep the checkout clean.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "nexus-service-hypothesis")


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> Iterator[None]:
    """Argon2 with test-sized cost (production keeps pwdlib's defaults, ~0.35 s per hash here)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    from nexus.service import security

    original = security._HASHER
    security._HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    yield
    security._HASHER = original


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (each app gets its own database on it)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the session."""
    with weed_s3_server(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """One Redis server for the session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def api(request, backend: str, tmp_path: Path) -> Iterator[Api]:
    """The app on SQLite and on PostgreSQL, local object storage."""
    settings = make_settings(tmp_path, database_url(request, backend, tmp_path))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    """The app on SQLite only (for tests that do not touch the database dialect)."""
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'nexus.db'}")
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)
