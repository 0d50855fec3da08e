"""``nexus api``: run the metadata service (``serve``), migrate its database, or create a user."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from nexus.errors import NexusError


def api_command(
    action: Annotated[
        str,
        typer.Argument(help="serve (default), migrate (alembic upgrade head), downgrade, create-user."),
    ] = "serve",
    host: Annotated[str | None, typer.Option("--host", help="Bind address; default NEXUS_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port; default NEXUS_API_PORT (8700).")] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Worker processes; default NEXUS_API_WORKERS (1)."),
    ] = None,
    revision: Annotated[str, typer.Option("--revision", help="Target of migrate/downgrade.")] = "",
    username: Annotated[str, typer.Option("--username", help="create-user: the login name.")] = "",
    password: Annotated[
        str, typer.Option("--password", envvar="NEXUS_API_NEW_USER_PASSWORD", help="create-user: password.")
    ] = "",
    role: Annotated[str, typer.Option("--role", help="create-user: admin, analyst or viewer.")] = "viewer",
) -> None:
    """Run the FastAPI metadata service with uvicorn, or manage its database.

    Examples:
        nexus api --host 127.0.0.1 --port 8700
        nexus api --workers 2    # one process per core; background work runs in one of them
        nexus api migrate
        nexus api create-user --username alice --role admin --password '...'
    """
    from pydantic import ValidationError

    from nexus.service.settings import ServiceSettings, settings_problems

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    try:
        settings = ServiceSettings(**overrides)
    except ValidationError as error:
        raise NexusError(f"bad service settings: {settings_problems(error)}") from None
    if action == "serve":
        _serve(settings)
    elif action in {"migrate", "downgrade"}:
        asyncio.run(_migrate(settings, revision or ("head" if action == "migrate" else "base"), action))
    elif action == "create-user":
        if not username or len(password) < 8:
            raise NexusError("create-user needs --username and a --password of at least 8 characters")
        asyncio.run(_create_user(settings, username, password, role))
    else:
        raise NexusError(f"unknown action {action!r}; use serve, migrate, downgrade or create-user")


def _serve(settings) -> None:
    import uvicorn

    from nexus.service.app import create_app
    from nexus.service.logs import configure_logging

    settings.jwt_secret  # noqa: B018 - production refuses to start without a secret
    configure_logging(settings.log_level, json_lines=settings.log_json)
    options = {"log_config": None, "access_log": False, "proxy_headers": False}
    if settings.workers == 1:
        app = create_app(settings, freeze_gc_after_startup=True)
        uvicorn.run(app, host=settings.host, port=settings.port, **options)
        return
    from nexus.service.workers import prepare_workers, worker_environment

    asyncio.run(prepare_workers(settings))
    os.environ.update(worker_environment(settings))
    # Workers read their settings from NEXUS_API_*: pass on what came from the command line.
    os.environ.update({"NEXUS_API_HOST": settings.host, "NEXUS_API_PORT": str(settings.port)})
    uvicorn.run(
        "nexus.service.workers:create_worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        **options,
    )


async def _migrate(settings, revision: str, action: str) -> None:
    from alembic.util.exc import CommandError

    from nexus.service.db import create_engine
    from nexus.service.migrate import current_revision, migrate, revisions

    assert settings.database_url is not None
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        try:
            await migrate(engine, revision, downgrade=action == "downgrade")
        except CommandError as error:  # an unknown revision, or one on the wrong side of the current one
            raise NexusError(
                f"cannot {action} to {revision!r}: {error} (revisions: {', '.join(revisions())}, head, base)"
            ) from None
        typer.echo(f"database at revision {await current_revision(engine)}")
    finally:
        await engine.dispose()


async def _create_user(settings, username: str, password: str, role: str) -> None:
    from sqlalchemy import select

    from nexus.service.db import create_engine, session_factory
    from nexus.service.migrate import migrate
    from nexus.service.permissions import Role
    from nexus.service.security import hash_password
    from nexus.service.tables import User

    if role not in {r.value for r in Role}:
        raise NexusError(f"unknown role {role!r}; use admin, analyst or viewer")
    assert settings.database_url is not None
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            if (await session.execute(select(User).where(User.username == username))).scalar_one_or_none():
                raise NexusError(f"user {username!r} already exists")
            session.add(User(username=username, role=role, password_hash=hash_password(password)))
            await session.commit()
        typer.echo(f"created {role} {username}")
    finally:
        await engine.dispose()
