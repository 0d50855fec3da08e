"""Alembic migrations run programmatically: at startup, from ``nexus api migrate`` and from tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations inside this package.

    Example:
        >>> cfg = alembic_config("sqlite+aiosqlite:///x.db")
        >>> cfg.get_main_option("script_location").endswith("migrations")
        True
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head", *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the database behind ``engine`` to ``revision``, in one transaction."""

    def _apply(connection: Connection) -> None:
        config = alembic_config(str(engine.url.render_as_string(hide_password=False)), connection)
        if downgrade:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_apply)


def revisions() -> list[str]:
    """Every migration's revision id, oldest first.

    Example:
        >>> revisions()[0]
        '0001'
    """
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(_read)
