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

    Returns a dict shaped like :class:`~nexus.service.schemas.common.Page`.
    """
    total = (
        await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
    ).scalar_one()
    column = getattr(table, sort.lstrip("-"))
    order = column.desc() if sort.startswith("-") else column.asc()
    tie = table.id.desc() if sort.startswith("-") else table.id.asc()
    rows = (await session.execute(stmt.order_by(order, tie).limit(limit).offset(offset))).scalars().all()
    return {"items": list(rows), "total": total, "limit": limit, "offset": offset}


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
