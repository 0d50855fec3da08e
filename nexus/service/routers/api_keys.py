"""``/api-keys``: the caller's machine credentials (admins see everyone's)."""

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.dependencies import Principal, Session, requires
from nexus.service.permissions import ROLE_PERMISSIONS, Role
from nexus.service.schemas.common import ERROR_RESPONSES, IdPath, Limit, Offset, Page
from nexus.service.schemas.identity import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, ApiKeyUpdate
from nexus.service.security import new_api_key
from nexus.service.tables import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api-keys"], responses=ERROR_RESPONSES)


async def _own_key(session, caller: Principal, key_id: int) -> ApiKey:
    key = await get_or_404(session, ApiKey, key_id, "API key")
    if key.user_id != caller.user_id and caller.role != Role.admin:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id} not found")
    return key


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(body: ApiKeyCreate, session: Session, caller: requires("api_keys:write")) -> dict:
    """Create a key for the caller; the full key is returned once."""
    granted = ROLE_PERMISSIONS[caller.role] if caller.scopes is None else caller.scopes
    extra = sorted(set(body.scopes) - granted)
    if extra:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"scopes beyond your permissions: {', '.join(extra)}")
    full, prefix, digest = new_api_key()
    key = ApiKey(
        user_id=caller.user_id,
        name=body.name,
        prefix=prefix,
        key_hash=digest,
        scopes=sorted(set(body.scopes)),
        expires_at=body.expires_at,
    )
    key = await create_row(session, caller, "api_key", key)
    return {**ApiKeyOut.model_validate(key).model_dump(), "key": full}


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(
    session: Session, caller: requires("api_keys:read"), limit: Limit = 50, offset: Offset = 0
) -> dict:
    """The caller's keys (all keys for admins)."""
    stmt = select(ApiKey)
    if caller.role != Role.admin:
        stmt = stmt.where(ApiKey.user_id == caller.user_id)
    return await paginate(session, stmt, ApiKey, sort="id", limit=limit, offset=offset)


@router.get("/{key_id}", response_model=ApiKeyOut)
async def get_api_key(key_id: IdPath, session: Session, caller: requires("api_keys:read")) -> ApiKey:
    """One key."""
    return await _own_key(session, caller, key_id)


@router.patch("/{key_id}", response_model=ApiKeyOut)
async def update_api_key(
    key_id: IdPath, body: ApiKeyUpdate, session: Session, caller: requires("api_keys:write")
) -> ApiKey:
    """Rename or revoke a key (revoking is permanent)."""
    key = await _own_key(session, caller, key_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if key.revoked and changes.get("revoked") is False:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"API key {key_id} is revoked, and revoking is permanent: create a new key instead",
        )
    if key.revoked:
        changes.pop("revoked", None)
    return await update_row(session, caller, "api_key", key, changes)
