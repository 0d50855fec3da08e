"""Several worker processes for one service (``nexus api --workers N``).

The parent does the once-only startup work (migrations, the bootstrap admin, the object-store bucket)
before uvicorn forks the workers, so they never race on it. Every worker answers requests; background
work (starting and following pipeline runs, video processing jobs and their crash recovery) runs in
one worker at a time, the holder of an exclusive lock on ``<home>/background.lock``. The others retry
the lock, so a worker that dies hands the background work to another within a poll interval.
Prometheus metrics are aggregated across workers through ``PROMETHEUS_MULTIPROC_DIR``.

Limits of the multi-worker mode: live streams live in one process's memory, so ``/streams`` answers
503 (run them in a single-worker service); in-memory rate limits count per worker (configure Redis
with ``NEXUS_API_RATE_LIMIT_STORAGE`` for exact limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path

from fastapi import FastAPI

from nexus.service.settings import ServiceSettings

logger = logging.getLogger("nexus.service.workers")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class BackgroundLeadership:
    """An exclusive ``flock`` on a file: held by the one worker that runs the background work.

    The lock dies with its process, so a killed leader never blocks the others.

    Example:
        >>> import tempfile
        >>> lock = Path(tempfile.mkdtemp()) / "background.lock"
        >>> first, second = BackgroundLeadership(lock), BackgroundLeadership(lock)
        >>> first.try_acquire(), second.try_acquire()
        (True, False)
        >>> first.release(); second.try_acquire()
        True
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when held (now or already)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    async def hold(self, acquired: asyncio.Event, poll_seconds: float) -> None:
        """Retry the lock every ``poll_seconds`` until held, then set ``acquired``."""
        while not self.try_acquire():
            await asyncio.sleep(poll_seconds)
        logger.info("worker %s runs the background work (runs, processing jobs)", os.getpid())
        acquired.set()

    def release(self) -> None:
        """Give the lock up (also happens when the process exits)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def prepare_workers(settings: ServiceSettings) -> None:
    """The startup work done once, before the workers start: migrations, admin account, bucket."""
    from nexus.service.app import ensure_admin
    from nexus.service.db import create_engine, session_factory
    from nexus.service.migrate import migrate
    from nexus.service.storage import create_store

    assert settings.database_url is not None
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        if settings.migrate_on_startup:
            await migrate(engine)
        await create_store(settings)
        if settings.bootstrap_admin_username and settings.bootstrap_admin_password:
            await ensure_admin(
                session_factory(engine),
                settings.bootstrap_admin_username,
                settings.bootstrap_admin_password.get_secret_value(),
            )
    finally:
        await engine.dispose()


def worker_environment(settings: ServiceSettings) -> dict[str, str]:
    """Environment for the worker processes: no migrations of their own, a fresh shared metrics folder.

    Also warns about per-worker rate limits with in-memory storage.
    """
    metrics_dir = settings.home / "prometheus-multiproc"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # files of earlier runs would be summed in
    metrics_dir.mkdir(parents=True)
    if settings.rate_limit_storage.startswith("memory"):
        logger.warning(
            "rate limits are counted per worker with in-memory storage (%s workers: up to %sx the "
            "configured rate); set NEXUS_API_RATE_LIMIT_STORAGE=redis://... for exact limits",
            settings.workers,
            settings.workers,
        )
    return {
        "NEXUS_API_MIGRATE_ON_STARTUP": "false",
        "NEXUS_API_WORKERS": str(settings.workers),
        MULTIPROC_ENV: str(metrics_dir),
    }


def create_worker_app() -> FastAPI:
    """The app factory each worker process imports (settings from ``NEXUS_API_*``)."""
    from nexus.service.app import create_app
    from nexus.service.logs import configure_logging
    from nexus.service.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_app(settings, freeze_gc_after_startup=True)


def mark_worker_dead() -> None:
    """Drop this process's live gauges from the shared metrics (at worker shutdown)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        with contextlib.suppress(Exception):
            multiprocess.mark_process_dead(os.getpid())
