"""FastAPI dependencies: the DB session, the authenticated principal and permission checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.service.db import utcnow
from nexus.service.permissions import Role, allowed
from nexus.service.ratelimit import RateLimiter
from nexus.service.security import API_KEY_PREFIX, InvalidToken, decode_token, verify_api_key
from nexus.service.settings import ServiceSettings
from nexus.service.storage import ObjectStore
from nexus.service.tables import ApiKey, User

bearer_scheme = HTTPBearer(auto_error=False, description="JWT access token from POST /auth/token")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key `<prefix>.<secret>`")


async def get_settings(request: Request) -> ServiceSettings:
    """The settings of the running app."""
    return request.app.state.settings


async def get_store(request: Request) -> ObjectStore:
    """The object store of the running app."""
    return request.app.state.store


READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One DB session per request (outside a transaction for GET and HEAD, which only read)."""
    state = request.app.state
    maker = state.read_sessionmaker if request.method in READ_ONLY_METHODS else state.sessionmaker
    async with maker() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
Store = Annotated[ObjectStore, Depends(get_store)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user via JWT, or a user's API key (then restricted to its scopes)."""

    user_id: int
    username: str
    role: Role
    scopes: frozenset[str] | None = None
    api_key_id: int | None = None

    @property
    def label(self) -> str:
        """How the audit log names the caller."""
        return f"{self.username} (key {self.api_key_id})" if self.api_key_id else self.username


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Resolve the caller from ``Authorization: Bearer`` or ``X-API-Key``; 401 otherwise; 429 when over
    the per-user rate limit."""
    principal = await resolve_principal(
        request.app.state.settings, session, credentials.credentials if credentials else None, api_key
    )
    limiter: RateLimiter | None = request.app.state.limiter
    if limiter is not None:
        await limiter.hit_user(principal.user_id)
    request.state.principal = principal
    return principal


async def resolve_principal(
    settings: ServiceSettings, session: AsyncSession, token: str | None, api_key: str | None
) -> Principal:
    """The caller behind a bearer ``token`` (a JWT, or an API key sent as bearer) or an ``api_key``.

    Shared by HTTP routes and WebSockets (which pass ``?token=`` or the same headers).

    Raises:
        HTTPException: 401 for missing, invalid or expired credentials or a disabled user.
    """
    key_row: ApiKey | None = None
    if token and token.startswith(f"{API_KEY_PREFIX}_") and not api_key:
        api_key, token = token, None  # scrapers can only send a bearer token
    if token:
        try:
            claims = decode_token(settings, token, "access")
        except InvalidToken as error:
            raise _unauthorized("invalid or expired token") from error
        user = await session.get(User, claims.user_id)
    elif api_key:
        prefix, _, secret = api_key.partition(".")
        key_row = (
            await session.execute(select(ApiKey).where(ApiKey.prefix == prefix[:32]))
        ).scalar_one_or_none()
        now = utcnow()
        if (
            key_row is None
            or key_row.revoked
            or not verify_api_key(secret, key_row.key_hash)
            or (key_row.expires_at is not None and key_row.expires_at <= now)
        ):
            raise _unauthorized("invalid API key")
        user = await session.get(User, key_row.user_id)
    else:
        raise _unauthorized("not authenticated")
    if user is None or not user.is_active:
        raise _unauthorized("user is unknown or disabled")
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        scopes=frozenset(key_row.scopes) if key_row is not None else None,
        api_key_id=key_row.id if key_row is not None else None,
    )


class Require:
    """Dependency that authenticates and checks one permission (``None``: any signed-in caller).

    The role-matrix test reads ``permission`` off every route's dependencies.

    Example:
        >>> Require("datasets:read").permission
        'datasets:read'
    """

    def __init__(self, permission: str | None) -> None:
        self.permission = permission

    async def __call__(self, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not allowed(principal.role, self.permission, principal.scopes):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"requires permission {self.permission}")
        return principal


def requires(permission: str | None) -> type[Principal]:
    """``Annotated`` alias: ``caller: requires("datasets:write")`` in a route signature."""
    return Annotated[Principal, Depends(Require(permission))]  # type: ignore[return-value]
