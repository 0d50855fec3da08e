"""Open-loop load test of the metadata service on PostgreSQL: fixed request rates, p50/p99, errors.

Starts a throwaway PostgreSQL cluster (or uses ``--database-url``), runs ``nexus api`` under uvicorn on a
free port, seeds a few rows, then sends reads at ``--read-rate`` and writes at ``--write-rate`` requests per
second for ``--seconds``. Requests are scheduled on a fixed clock (open loop), and latency is measured from
the scheduled send time, so a stalled server shows up in the tail instead of silently lowering the rate.

Example:
    python benchmarks/api_load.py --read-rate 200 --write-rate 50 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

ADMIN_PASSWORD = "bench-admin-password"
CONCURRENCY = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """initdb + pg_ctl start (as ``postgres`` when run as root) with fsync off; yields an asyncpg URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins:
        raise SystemExit("PostgreSQL not found: run scripts/install-services.sh or pass --database-url")
    bin_dir = bins[-1]
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="nexus-bench-pg-"))
    if run_as:
        shutil.chown(root, "postgres")
    port = free_port()
    data = root / "data"
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "--no-sync", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off "
        "-c max_connections=100"
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
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "nexus",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nexus"
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_service(database_url: str, home: Path, workers: int = 1) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "NEXUS_API_HOME": str(home),
        "NEXUS_API_DATABASE_URL": database_url,
        "NEXUS_API_SECRET_KEY": "bench-secret-0123456789-0123456789-0123",
        "NEXUS_API_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "NEXUS_API_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NEXUS_API_RATE_LIMIT_PER_USER": "1000000/minute",
        "NEXUS_API_RATE_LIMIT_PER_IP": "1000000/minute",
        "NEXUS_API_LOG_LEVEL": "WARNING",
        "NEXUS_API_DB_POOL_SIZE": "10",
    }
    nexus = Path(sys.executable).with_name("nexus")
    process = subprocess.Popen(
        [str(nexus), "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log = process.stderr.read().decode()[-2000:] if process.stderr else ""
                raise SystemExit(f"service did not start: {log}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def seed(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=10) as client:
        token = client.post("/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        for i in range(20):
            client.post("/datasets", json={"name": f"ds-{i}", "classes": ["car", "person"]}, headers=headers)
        client.post(
            "/datasets/1/versions",
            json={"version": "v1", "dvc_hash": "abc123", "splits": {"train": 10}},
            headers=headers,
        )
        video = client.post(
            "/videos",
            params={"name": "v.mp4"},
            content=b"\x00\x00\x00\x18ftypisom" + bytes(2000),
            headers=headers,
        ).json()
        rows = [
            {
                "frame": f,
                "timestamp_s": f / 25,
                "class_id": f % 2,
                "class_name": ("car", "person")[f % 2],
                "confidence": 0.9,
                "x1": 0,
                "y1": 0,
                "x2": 10,
                "y2": 10,
                "track_id": f % 7,
            }
            for f in range(2000)
        ]
        client.post(f"/videos/{video['id']}/detections", json={"detections": rows}, headers=headers)
        return headers


READS = [
    ("GET", "/datasets/1", None),
    ("GET", "/datasets?limit=20&sort=-created_at", None),
    ("GET", "/detections?video_id=1&t_from=10&t_to=12&class_name=car", None),
    ("GET", "/videos/1/tracks", None),
]


def write_request(i: int) -> tuple[str, str, dict]:
    if i % 2:
        return "POST", "/runs", {"pipeline": "train", "parameters": {"epochs": i % 50}}
    return "PATCH", f"/datasets/{1 + i % 20}", {"description": f"edit {i}"}


async def open_loop(base: str, headers: dict, rate: float, seconds: float, kind: str) -> dict:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    # Waiting on a semaphore is cheap; thousands of requests queued inside httpx's pool are not (and the
    # client shares the CPUs with the server).
    in_flight = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
        start = time.perf_counter() + 0.1
        count = int(rate * seconds)

        async def one(i: int) -> None:
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == "read":
                method, path, body = random.Random(i).choice(READS)
            else:
                method, path, body = write_request(i)
            async with in_flight:
                try:
                    response = await client.request(method, path, json=body)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if s.isdigit() and int(s) < 400)
    return {
        "kind": kind,
        "target_rps": rate,
        "requests": count,
        "achieved_rps": count / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p90_ms": 1000 * latencies[int(len(latencies) * 0.9)],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "errors": count - ok,
        "statuses": dict(statuses),
    }


async def run_load(base: str, headers: dict, args: argparse.Namespace) -> list[dict]:
    if args.warmup_seconds > 0:  # first requests pay for connections, prepared statements, caches
        await open_loop(base, headers, args.read_rate, args.warmup_seconds, "read")
        await open_loop(base, headers, args.write_rate, args.warmup_seconds, "write")
    results = [await open_loop(base, headers, args.read_rate, args.seconds, "read")]
    results.append(await open_loop(base, headers, args.write_rate, args.seconds, "write"))
    mixed = await asyncio.gather(
        open_loop(base, headers, args.read_rate, args.seconds, "read"),
        open_loop(base, headers, args.write_rate, args.seconds, "write"),
    )
    for result in mixed:
        result["kind"] = f"mixed-{result['kind']}"
    return results + list(mixed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read-rate", type=float, default=200.0)
    parser.add_argument("--write-rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1, help="nexus api --workers")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="unreported warm-up load")
    parser.add_argument(
        "--database-url", default=None, help="postgresql+asyncpg://... (default: temporary cluster)"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(temporary_postgres())
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nexus-bench-")))
        base = stack.enter_context(running_service(url, home, args.workers))
        headers = seed(base)
        results = asyncio.run(run_load(base, headers, args))
    print(
        f"{'phase':<12} {'target/s':>8} {'achieved/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>6}  statuses"
    )
    for r in results:
        print(
            f"{r['kind']:<12} {r['target_rps']:>8.0f} {r['achieved_rps']:>10.1f} {r['p50_ms']:>8.2f} "
            f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['errors']:>6}  {r['statuses']}"
        )
    reads = [r for r in results if r["kind"].endswith("read")]
    worst = max(r["p99_ms"] for r in reads)
    verdict = "met" if worst <= 50 and not any(r["errors"] for r in reads) else "NOT met"
    print(f"target: reads p99 <= 50 ms at 200 req/s, zero errors: {verdict} (worst read p99 {worst:.1f} ms)")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
