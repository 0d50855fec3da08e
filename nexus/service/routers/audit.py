"""``/audit``: the log of every write (admin only)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from nexus.service.crud import paginate
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.common import (
    ERROR_RESPONSES,
    FilterText,
    IdRef,
    Instant,
    Limit,
    Offset,
    Output,
    Page,
)
from nexus.service.tables import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


class AuditOut(Output):
    """One audit entry."""

    id: int
    actor_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


@router.get("", response_model=Page[AuditOut])
async def list_audit(
    session: Session,
    caller: requires("audit:read"),
    entity: FilterText = None,
    entity_id: FilterText = None,
    actor_id: Annotated[IdRef | None, Query()] = None,
    action: FilterText = None,
    since: Annotated[Instant | None, Query()] = None,
    sort: Annotated[Literal["id", "-id"], Query()] = "-id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Audit entries, newest first, filtered by entity, actor, action and time."""
    stmt = select(AuditEntry)
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.created_at >= since)
    return await paginate(session, stmt, AuditEntry, sort=sort, limit=limit, offset=offset)
