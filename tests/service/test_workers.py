"""``nexus api --workers 2`` on PostgreSQL: shared startup, summed metrics, one background leader that
hands over when killed, streams refused with the reason, a clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
from service_servers import free_port

from nexus.service.workers import BackgroundLeadership

ADMIN = {"username": "admin", "password": "workers-admin-password"}
FAILING_RUN = {"pipeline": "training", "parameters": {"source": "/nonexistent", "epochs": 1}, "launch": True}


def worker_pids(parent: int) -> set[int]:
    """uvicorn's worker processes: the parent's children other than multiprocessing's resource tracker."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {
        int(pid)
        for pid in children
        if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    }


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_status(client: httpx.Client, run_id: int) -> dict | None:
    run = client.get(f"/runs/{run_id}").json()
    return run if run["status"] in {"failed", "succeeded", "cancelled"} else None


def count_rows(url: str, sql: str) -> int:
    import asyncio

    async def query() -> int:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    return asyncio.run(query())


def test_leadership_lock_is_exclusive_across_processes(tmp_path):
    lock = tmp_path / "background.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from nexus.service.workers import BackgroundLeadership as B; "
            "assert B(Path(sys.argv[1])).try_acquire(); print('held', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        ours = BackgroundLeadership(lock)
        assert ours.try_acquire() is False and not ours.held
        holder.kill()  # a dead holder's lock is free at once
        holder.wait()
        assert ours.try_acquire() is True and ours.held
        assert lock.read_text() == str(os.getpid())
    finally:
        holder.kill()


def test_two_workers_share_startup_metrics_and_background_work(tmp_path, postgres):
    url = postgres.create_database("workers")
    port = free_port()
    env = {
        **os.environ,
        "NEXUS_API_HOME": str(tmp_path / "home"),
        "NEXUS_API_DATABASE_URL": url,
        "NEXUS_API_SECRET_KEY": "w" * 40,
        "NEXUS_API_BOOTSTRAP_ADMIN_USERNAME": ADMIN["username"],
        "NEXUS_API_BOOTSTRAP_ADMIN_PASSWORD": ADMIN["password"],
        "NEXUS_API_RUN_POLL_SECONDS": "0.2",
        "NEXUS_HOME": str(tmp_path / "nexus-home"),
    }
    nexus = Path(sys.executable).with_name("nexus")
    server = subprocess.Popen(
        [str(nexus), "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert server.poll() is None, "the service exited while starting"
            try:
                return httpx.get(f"{base}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "the service to start")
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 30, "two workers")
        # The parent migrated and created the admin once; the workers found both done.
        assert count_rows(url, "SELECT count(*) FROM users WHERE username = 'admin'") == 1
        assert count_rows(url, "SELECT count(*) FROM alembic_version") == 1

        token = httpx.post(f"{base}/auth/token", json=ADMIN).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        requests = 30
        for _ in range(requests):  # a new connection each: either worker may accept it
            assert httpx.get(f"{base}/datasets", headers=headers).status_code == 200
        metrics = httpx.get(f"{base}/metrics", headers=headers).text
        served = re.search(
            r'nexus_api_requests_total\{method="GET",route="/datasets",status="200"\} (\S+)', metrics
        )
        assert served and float(served.group(1)) == requests, metrics[-1500:]

        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            refused = client.post("/streams", json={"source": "rtsp://127.0.0.1:1/cam"})
            assert refused.status_code == 503 and "--workers 1" in refused.json()["detail"]

            first = client.post("/runs", json=FAILING_RUN).json()["id"]
            ended = wait_until(lambda: run_status(client, first), 90, "the first run to end")
            assert ended["status"] == "failed" and "dataset folder not found" in ended["message"]

            lock = Path(env["NEXUS_API_HOME"]) / "background.lock"
            leader = int(lock.read_text())
            assert leader in worker_pids(server.pid)
            os.kill(leader, signal.SIGKILL)
            # A new connection (the kept-alive one may have been the dead worker's): the survivor answers.
            second = httpx.post(f"{base}/runs", json=FAILING_RUN, headers=headers).json()["id"]
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            ended = wait_until(lambda: run_status(client, second), 90, "a run after the leader died")
        assert ended["status"] == "failed" and "dataset folder not found" in ended["message"]
        new_leader = int(lock.read_text())
        assert new_leader != leader and new_leader in worker_pids(server.pid)
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 30, "uvicorn to replace the dead worker")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output.decode()[-3000:]
    log = output.decode()
    assert log.count("runs the background work") >= 2
    assert "rate limits are counted per worker" in log


def test_launched_runs_do_not_write_into_the_workers_metrics(monkeypatch, tmp_path):
    from nexus.service.run_launcher import child_environment

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("KFP_HOST", "http://kfp.example")
    env = child_environment()
    assert "PROMETHEUS_MULTIPROC_DIR" not in env and "KFP_HOST" not in env
    assert Path(env["NEXUS_HOME"]).is_absolute()
