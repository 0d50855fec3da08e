"""Users, tokens and API keys at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints

from nexus.service.permissions import ALL_PERMISSIONS, Role
from nexus.service.schemas.common import Email, Input, Instant, LoginName, Name, Output

Password = Annotated[SecretStr, Field(min_length=8, max_length=256)]
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z_]+:(read|write)$")]


class LoginRequest(Input):
    """Credentials for ``POST /auth/token``."""

    username: LoginName
    password: Annotated[SecretStr, Field(min_length=1, max_length=256)]


class RefreshRequest(Input):
    """A refresh token for ``POST /auth/refresh``."""

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class TokenPair(Output):
    """Access and refresh tokens."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserCreate(Input):
    """A new user (admin only)."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")]
    password: Password
    email: Email | None = None
    role: Role = Role.viewer


class UserUpdate(Input):
    """Fields an admin may change; a password change re-hashes it."""

    email: Email | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class UserOut(Output):
    """A user, without the password hash."""

    id: int
    username: str
    email: str | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(Input):
    """A new API key for the caller; scopes must be within the caller's role."""

    name: Name
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(ALL_PERMISSIONS))]
    expires_at: Instant | None = None


class ApiKeyUpdate(Input):
    """Rename or revoke a key."""

    name: Name | None = None
    revoked: bool | None = None


class ApiKeyOut(Output):
    """A stored API key (never its secret)."""

    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str]
    revoked: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyOut):
    """A new key: ``key`` is shown once and cannot be read again."""

    key: str
