"""``/auth``: exchange a password for tokens, refresh them, read the caller."""

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from nexus.service.dependencies import Principal, Session, Settings, requires
from nexus.service.schemas.common import ERROR_RESPONSES
from nexus.service.schemas.identity import LoginRequest, RefreshRequest, TokenPair, UserOut
from nexus.service.security import InvalidToken, create_token, decode_token, verify_password
from nexus.service.tables import User

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


def _pair(settings, user_id: int) -> TokenPair:
    return TokenPair(
        access_token=create_token(settings, user_id, "access"),
        refresh_token=create_token(settings, user_id, "refresh"),
        expires_in=settings.access_token_minutes * 60,
    )


@router.post("/token", response_model=TokenPair)
async def login(body: LoginRequest, session: Session, settings: Settings) -> TokenPair:
    """Exchange a username and password for an access and a refresh token."""
    user = (await session.execute(select(User).where(User.username == body.username))).scalar_one_or_none()
    if (
        user is None
        or not user.is_active
        or not verify_password(body.password.get_secret_value(), user.password_hash)
    ):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    return _pair(settings, user.id)


@router.post("/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, session: Session, settings: Settings) -> TokenPair:
    """Exchange a refresh token for a new pair."""
    try:
        claims = decode_token(settings, body.refresh_token, "refresh")
    except InvalidToken as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired refresh token") from error
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "user is unknown or disabled")
    return _pair(settings, user.id)


@router.get("/me", response_model=UserOut)
async def me(caller: requires(None), session: Session) -> User:
    """The signed-in user."""
    user = await session.get(User, caller.user_id)
    assert user is not None
    return user


__all__ = ["Principal", "router"]
