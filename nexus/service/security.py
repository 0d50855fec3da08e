"""Passwords (argon2), JWT access/refresh tokens (HS256) and API-key secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from nexus.service.settings import ServiceSettings

TokenKind = Literal["access", "refresh"]
_HASHER = PasswordHash((Argon2Hasher(),))
API_KEY_PREFIX = "nxk"


class InvalidToken(Exception):
    """A token that is expired, tampered with, wrongly signed or of the wrong kind."""


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``.

    Example:
        >>> verify_password("s3cret-pass", hash_password("s3cret-pass"))
        True
    """
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Check ``password`` against an argon2 hash (False for a malformed hash)."""
    try:
        return _HASHER.verify(password, password_hash)
    except Exception:
        return False


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: the user id, the token kind and its id."""

    user_id: int
    kind: TokenKind
    jti: str
    expires_at: datetime


def create_token(
    settings: ServiceSettings, user_id: int, kind: TokenKind, *, now: datetime | None = None
) -> str:
    """Sign an access or refresh token for ``user_id``.

    Example:
        >>> s = ServiceSettings(database_url="sqlite+aiosqlite:///:memory:")
        >>> decode_token(s, create_token(s, 7, "access"), "access").user_id
        7
    """
    now = now or datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if kind == "access"
        else timedelta(days=settings.refresh_token_days)
    )
    payload = {
        "sub": str(user_id),
        "type": kind,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
        "iss": "nexus",
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def decode_token(settings: ServiceSettings, token: str, kind: TokenKind) -> TokenClaims:
    """Verify signature, expiry, issuer and kind of ``token``.

    Raises:
        InvalidToken: for any token that does not verify.
    """
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            issuer="nexus",
            options={"require": ["exp", "iat", "sub", "type", "jti"]},
        )
        user_id = int(payload["sub"])
        if not 1 <= user_id <= 2_147_483_647:  # a user id column's range
            raise ValueError(f"subject {user_id} is not a user id")
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise InvalidToken(str(error)) from error
    if payload.get("type") != kind:
        raise InvalidToken(f"expected a {kind} token")
    return TokenClaims(
        user_id=user_id,
        kind=kind,
        jti=str(payload["jti"]),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )


def new_api_key() -> tuple[str, str, str]:
    """A fresh API key: ``(full_key, prefix, sha256_of_secret)``; only the last two are stored.

    Example:
        >>> key, prefix, digest = new_api_key()
        >>> key.startswith(prefix + ".") and verify_api_key(key.split(".", 1)[1], digest)
        True
    """
    prefix = f"{API_KEY_PREFIX}_{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    return f"{prefix}.{secret}", prefix, hash_api_secret(secret)


def hash_api_secret(secret: str) -> str:
    """SHA-256 of an API-key secret (the secret is 256 random bits, so a slow hash adds nothing)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_api_key(secret: str, digest: str) -> bool:
    """Constant-time comparison of ``secret`` against its stored digest."""
    return hmac.compare_digest(hash_api_secret(secret), digest)
