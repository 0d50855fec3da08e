"""Recording writes in the audit log, and turning rows into JSON snapshots for it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.service.logs import request_id_var
from nexus.service.tables import AuditEntry

SECRET_COLUMNS = frozenset({"password_hash", "key_hash"})


def snapshot(row: Any) -> dict[str, Any]:
    """Column values of an ORM row as JSON-safe data (secrets left out).

    Example:
        >>> from nexus.service.tables import Dataset
        >>> snapshot(Dataset(name="a", classes=["x"]))["name"]
        'a'
    """
    out: dict[str, Any] = {}
    for column in inspect(row).mapper.column_attrs:
        if column.key in SECRET_COLUMNS:
            continue
        value = getattr(row, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime | date) else value
    return out


def record(
    session: AsyncSession,
    actor: Any,
    action: str,
    entity: str,
    entity_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Add one audit row to ``session`` (committed together with the write it describes)."""
    session.add(
        AuditEntry(
            actor_id=getattr(actor, "user_id", None),
            actor=getattr(actor, "label", str(actor)),
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            before=before,
            after=after,
            request_id=request_id_var.get(),
        )
    )
