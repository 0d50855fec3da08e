"""Alembic migrations upgrade and downgrade cleanly on SQLite and PostgreSQL and match the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from service_fixtures import database_url
from sqlalchemy import inspect

import nexus.service.tables  # noqa: F401
from nexus.service.db import Base, create_engine
from nexus.service.migrate import current_revision, migrate


def _tables(connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _diff(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def test_upgrade_downgrade_upgrade(request, backend, tmp_path) -> None:
    url = database_url(request, backend, tmp_path)

    async def scenario() -> None:
        engine = create_engine(url)
        try:
            assert await current_revision(engine) is None
            await migrate(engine)
            assert await current_revision(engine) == "0002"
            async with engine.connect() as connection:
                assert await connection.run_sync(_tables) == set(Base.metadata.tables)
                assert await connection.run_sync(_diff) == []
            await migrate(engine, "0001", downgrade=True)
            assert await current_revision(engine) == "0001"
            async with engine.connect() as connection:
                assert "artifacts" not in await connection.run_sync(_tables)
            await migrate(engine, "base", downgrade=True)
            assert await current_revision(engine) is None
            async with engine.connect() as connection:
                assert await connection.run_sync(_tables) == set()
            await migrate(engine)
            await migrate(engine)  # idempotent
            assert await current_revision(engine) == "0002"
        finally:
            await engine.dispose()

    asyncio.run(scenario())
