"""Small helpers every router shares: fetch-or-404, paginated listing with sorting, audited writes."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import HTTPException, status
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.service.audit import record, snapshot

T = TypeVar("T")


async def get_or_404(session: AsyncSession, table: type[T], row_id: int, what: str | None = None) -> T:
    """The row with primary key ``row_id`` or a 404 naming it."""
    row = await session.get(table, row_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what or table.__name__} {row_id} not found")
    return row


async def paginate(
    session: AsyncSession, stmt: Select[Any], table: Any, *, sort: str, limit: int, offset: int
) -> dict[str, Any]:
    """Run ``stmt`` with ``ORDER BY sort`` (``-col`` descending, ``id`` as tie-breaker), limit and offset.

    The total comes from ``COUNT(*) OVER ()`` in the same query (one round trip); only a page past the
    end needs a separate count.

    Returns a dict shaped like :class:`~nexus.service.schemas.common.Page`.
    """
    column = getattr(table, sort.lstrip("-"))
    order = column.desc() if sort.startswith("-") else column.asc()
    tie = table.id.desc() if sort.startswith("-") else table.id.asc()
    rows, total = await page_with_total(session, stmt.order_by(order, tie), limit=limit, offset=offset)
    return {"items": [row[0] for row in rows], "total": total, "limit": limit, "offset": offset}


async def page_with_total(
    session: AsyncSession, stmt: Select[Any], *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """The rows of one page of an ordered ``stmt`` and the number of rows of the whole result.

    Each returned row is ``stmt``'s row (the appended total column stripped).
    """
    windowed = stmt.add_columns(func.count().over().label("_total")).limit(limit).offset(offset)
    result = (await session.execute(windowed)).all()
    if result:
        return [tuple(row)[:-1] for row in result], int(result[0][-1])
    if offset == 0:
        return [], 0
    total = (
        await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
    ).scalar_one()
    return [], total


async def create_row(session: AsyncSession, actor: Any, entity: str, row: T) -> T:
    """Insert ``row``, audit it and commit."""
    session.add(row)
    await session.flush()
    record(session, actor, "create", entity, getattr(row, "id", None), None, snapshot(row))
    await session.commit()
    return row


async def update_row(session: AsyncSession, actor: Any, entity: str, row: T, changes: dict[str, Any]) -> T:
    """Apply ``changes`` to ``row``, audit before/after and commit."""
    before = snapshot(row)
    for key, value in changes.items():
        setattr(row, key, value)
    await session.flush()
    await session.refresh(row)
    record(session, actor, "update", entity, getattr(row, "id", None), before, snapshot(row))
    await session.commit()
    return row


async def delete_row(session: AsyncSession, actor: Any, entity: str, row: Any) -> None:
    """Delete ``row``, audit it and commit."""
    before = snapshot(row)
    await session.delete(row)
    record(session, actor, "delete", entity, getattr(row, "id", None), before, None)
    await session.commit()
