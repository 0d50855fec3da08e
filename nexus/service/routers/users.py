"""``/users``: user accounts (admin only)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.dependencies import Session, requires
from nexus.service.permissions import Role
from nexus.service.schemas.common import ERROR_RESPONSES, FilterText, IdPath, Limit, Offset, Page
from nexus.service.schemas.identity import UserCreate, UserOut, UserUpdate
from nexus.service.security import hash_password
from nexus.service.tables import User

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)
UserSort = Literal["id", "-id", "username", "-username", "created_at", "-created_at"]


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, session: Session, caller: requires("users:write")) -> User:
    """Create a user with a role."""
    user = User(
        username=body.username,
        email=body.email,
        role=body.role.value,
        password_hash=hash_password(body.password.get_secret_value()),
    )
    return await create_row(session, caller, "user", user)


@router.get("", response_model=Page[UserOut])
async def list_users(
    session: Session,
    caller: requires("users:read"),
    role: Role | None = None,
    username: FilterText = None,
    is_active: bool | None = None,
    sort: Annotated[UserSort, Query()] = "id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List users, filtered by role, username prefix and active flag."""
    stmt = select(User)
    if role is not None:
        stmt = stmt.where(User.role == role.value)
    if username:
        stmt = stmt.where(User.username.startswith(username, autoescape=True))
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    return await paginate(session, stmt, User, sort=sort, limit=limit, offset=offset)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: IdPath, session: Session, caller: requires("users:read")) -> User:
    """One user."""
    return await get_or_404(session, User, user_id, "user")


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: IdPath, body: UserUpdate, session: Session, caller: requires("users:write")
) -> User:
    """Change a user's email, role, active flag or password."""
    user = await get_or_404(session, User, user_id, "user")
    changes = body.model_dump(exclude_unset=True, exclude={"password"})
    if "role" in changes and changes["role"] is not None:
        changes["role"] = changes["role"].value
    changes = {k: v for k, v in changes.items() if v is not None or k == "email"}
    if body.password is not None:
        changes["password_hash"] = hash_password(body.password.get_secret_value())
    stays_admin = changes.get("role", user.role) == Role.admin.value and changes.get(
        "is_active", user.is_active
    )
    if user.role == Role.admin.value and user.is_active and not stays_admin:
        others = await session.execute(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.admin.value, User.is_active.is_(True), User.id != user.id)
        )
        if others.scalar_one() == 0:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"user {user.username!r} is the last active admin: make another user admin first, "
                "or nobody could manage users any more",
            )
    return await update_row(session, caller, "user", user, changes)
