"""``nexus api``: migrate, create-user, production refusal, and serving with uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_servers import free_port

from nexus.cli.main import main
from nexus.service.settings import ServiceSettings


def test_migrate_create_user_and_downgrade(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("NEXUS_API_HOME", str(tmp_path))
    assert main(["api", "migrate"]) == 0
    assert "revision 0002" in capsys.readouterr().out
    assert (
        main(["api", "create-user", "--username", "ana", "--password", "ana-password", "--role", "analyst"])
        == 0
    )
    assert main(["api", "create-user", "--username", "ana", "--password", "ana-password"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["api", "create-user", "--username", "x", "--password", "short"]) == 2
    assert main(["api", "downgrade"]) == 0
    assert "revision None" in capsys.readouterr().out
    assert main(["api", "explode"]) == 2


def test_production_without_secret_refuses_to_start(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("NEXUS_API_HOME", str(tmp_path))
    monkeypatch.setenv("NEXUS_API_ENV", "production")
    monkeypatch.delenv("NEXUS_API_SECRET_KEY", raising=False)
    assert main(["api"]) == 2
    assert "NEXUS_API_SECRET_KEY" in capsys.readouterr().err


def test_serve_with_uvicorn(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "NEXUS_API_HOME": str(tmp_path), "NEXUS_API_SECRET_KEY": "s" * 40}
    nexus = Path(sys.executable).with_name("nexus")
    process = subprocess.Popen(
        [str(nexus), "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(
                    f"http://127.0.0.1:{port}/ready", headers={"X-Request-ID": "cli-1"}, timeout=1
                )
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, "service did not start"
                time.sleep(0.2)
        assert ready.status_code == 200 and ready.headers["x-request-id"] == "cli-1"
        assert httpx.get(f"http://127.0.0.1:{port}/datasets").status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    log_lines = [line for line in output.decode().splitlines() if '"request_id": "cli-1"' in line]
    assert log_lines, output.decode()[-2000:]


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--port", "0"], "port (NEXUS_API_PORT): Input should be greater than or equal to 1, got 0"),
        (
            {"NEXUS_API_DATABASE_URL": "mysql://db/nexus"},
            ["migrate"],
            "database_url (NEXUS_API_DATABASE_URL): database scheme 'mysql' is not supported; use sqlite:///",
        ),
        ({"NEXUS_API_DATABASE_URL": "nexus.db"}, ["migrate"], "'nexus.db' is not a database URL"),
        (
            {"NEXUS_API_PROCESSING_WORKERS": "many"},
            ["migrate"],
            "processing_workers (NEXUS_API_PROCESSING_WORKERS): Input should be a valid integer",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable(tmp_path, monkeypatch, capsys, env, argv, message):
    monkeypatch.setenv("NEXUS_API_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["api", *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "nexus.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/nexus", "postgresql+asyncpg://u:p@db:5432/nexus"),
        ("postgres://u:p@db/nexus", "postgresql+asyncpg://u:p@db/nexus"),
        ("postgresql+psycopg2://u@db/nexus", "postgresql+asyncpg://u@db/nexus"),
        ("postgresql+asyncpg://u@db/nexus", "postgresql+asyncpg://u@db/nexus"),
    ],
)
def test_plain_database_urls_get_the_async_driver(url, expected):
    assert ServiceSettings(database_url=url).database_url == expected


def test_a_plain_sqlite_url_migrates_and_an_unknown_revision_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEXUS_API_HOME", str(tmp_path))
    monkeypatch.setenv("NEXUS_API_DATABASE_URL", f"sqlite:///{tmp_path / 'plain.db'}")
    assert main(["api", "migrate"]) == 0
    assert "revision 0002" in capsys.readouterr().out
    assert main(["api", "migrate", "--revision", "nope"]) == 2
    error = capsys.readouterr().err
    assert "cannot migrate to 'nope'" in error and "(revisions: 0001, 0002, head, base)" in error
    assert main(["api", "downgrade", "--revision", "0001"]) == 0
    assert "revision 0001" in capsys.readouterr().out
