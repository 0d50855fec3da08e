"""The application factory: settings → engine, migrations, storage, limits, middleware and routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nexus.service.db import create_engine, session_factory
from nexus.service.error_handlers import install_error_handlers
from nexus.service.jobs import ProcessingWorker
from nexus.service.live import StreamManager
from nexus.service.metrics import ServiceMetrics
from nexus.service.middleware import RequestContextMiddleware
from nexus.service.migrate import migrate
from nexus.service.processing import DetectorCache
from nexus.service.ratelimit import RateLimiter
from nexus.service.routers import (
    api_keys,
    artifacts,
    audit,
    auth,
    datasets,
    deployments,
    detections,
    experiments,
    health,
    models,
    runs,
    streams,
    tracks,
    users,
    videos,
)
from nexus.service.security import hash_password
from nexus.service.settings import ServiceSettings, get_settings
from nexus.service.storage import create_store
from nexus.service.tables import User
from nexus.service.workers import BackgroundLeadership, mark_worker_dead

logger = logging.getLogger("nexus.service")
ROUTERS = (
    health.router,
    auth.router,
    users.router,
    api_keys.router,
    datasets.router,
    models.router,
    runs.router,
    deployments.router,
    experiments.router,
    videos.router,
    streams.router,
    artifacts.router,
    detections.router,
    tracks.router,
    audit.router,
)


async def ensure_admin(sessionmaker: async_sessionmaker[AsyncSession], username: str, password: str) -> None:
    """Create the bootstrap admin account if no user of that name exists."""
    async with sessionmaker() as session:
        existing = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
        if existing is None:
            session.add(User(username=username, role="admin", password_hash=hash_password(password)))
            await session.commit()
            logger.info("created admin user %s", username)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServiceSettings = app.state.settings
    settings.jwt_secret  # noqa: B018 - refuse to start in production without a secret
    assert settings.database_url is not None
    app.state.engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pre_ping=settings.db_pool_pre_ping,
    )
    app.state.sessionmaker = session_factory(app.state.engine)
    # GET/HEAD requests only read: without a transaction they save the BEGIN and ROLLBACK round trips
    # (each statement still sees committed data, as under the default READ COMMITTED).
    app.state.read_sessionmaker = session_factory(
        app.state.engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    try:
        if settings.migrate_on_startup:
            await migrate(app.state.engine)
        app.state.store = await create_store(settings)
        if settings.bootstrap_admin_username and settings.bootstrap_admin_password:
            await ensure_admin(
                app.state.sessionmaker,
                settings.bootstrap_admin_username,
                settings.bootstrap_admin_password.get_secret_value(),
            )
        detectors = DetectorCache(settings)
        app.state.streams = StreamManager(settings, detectors)
        app.state.worker = ProcessingWorker(settings, app.state.sessionmaker, app.state.store, detectors)
        # Background work (processing jobs here, the run launcher in the runs router) runs in one
        # process: this one, or with several workers the holder of the background lock.
        app.state.background = asyncio.Event()
        leadership: BackgroundLeadership | None = None
        waiting: asyncio.Task[None] | None = None
        if settings.workers > 1:
            leadership = BackgroundLeadership(settings.home / "background.lock")
            waiting = asyncio.create_task(
                _start_when_leader(leadership, app.state.background, app.state.worker, settings)
            )
        else:
            app.state.background.set()
            await app.state.worker.start()
        if app.state.freeze_gc_after_startup:
            # Startup leaves ~160k long-lived objects (routes, models, SQLAlchemy metadata); moving them
            # out of the collector's generations keeps full collections from stalling requests.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if waiting is not None:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            await app.state.streams.stop_all()
            await app.state.worker.stop()
            if leadership is not None:
                leadership.release()
                mark_worker_dead()
    finally:
        await app.state.engine.dispose()


async def _start_when_leader(
    leadership: BackgroundLeadership,
    acquired: asyncio.Event,
    worker: ProcessingWorker,
    settings: ServiceSettings,
) -> None:
    await leadership.hold(acquired, poll_seconds=min(settings.run_poll_seconds, 2.0))
    await worker.start()


def create_app(settings: ServiceSettings | None = None, *, freeze_gc_after_startup: bool = False) -> FastAPI:
    """Build the metadata service.

    Args:
        settings: The configuration; default: read from ``NEXUS_API_*`` environment variables.
        freeze_gc_after_startup: ``gc.freeze()`` once started (for a server process; tests building many
            apps in one process leave it off).

    Example:
        >>> app = create_app(ServiceSettings(database_url="sqlite+aiosqlite:///:memory:"))
        >>> app.title
        'NexusAI metadata service'
        >>> "/datasets/{dataset_id}" in app.openapi()["paths"]
        True
    """
    settings = settings or get_settings()
    settings.jwt_secret  # noqa: B018 - fail fast in production without a secret
    app = FastAPI(
        title="NexusAI metadata service",
        version="0.1.0",
        description="Datasets, models, runs, deployments, experiments, videos and detections.",
        lifespan=_lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.freeze_gc_after_startup = freeze_gc_after_startup
    app.state.metrics = ServiceMetrics()
    app.state.limiter = RateLimiter(
        settings.rate_limit_storage, per_user=settings.rate_limit_per_user, per_ip=settings.rate_limit_per_ip
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_minimum_size)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        limiter=app.state.limiter,
        max_body_bytes=settings.max_request_bytes,
    )
    return app
