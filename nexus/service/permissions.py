"""Roles, permissions and API-key scopes.

A permission is ``<resource>:<action>``. Each role grants a fixed set; an API key carries scopes, and a
request made with a key is allowed what both the key's scopes and its owner's role allow.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The three roles a user can have."""

    admin = "admin"
    analyst = "analyst"
    viewer = "viewer"


CATALOG = (
    "datasets",
    "models",
    "runs",
    "deployments",
    "experiments",
    "videos",
    "detections",
    "artifacts",
    "streams",
)
READ_ALL = frozenset(f"{resource}:read" for resource in CATALOG)
WRITE_ALL = frozenset(f"{resource}:write" for resource in CATALOG)
SELF_SERVICE = frozenset({"api_keys:read", "api_keys:write"})
ADMIN_ONLY = frozenset({"users:read", "users:write", "audit:read"})
OPERATIONS = frozenset({"metrics:read"})

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.admin: READ_ALL | WRITE_ALL | SELF_SERVICE | ADMIN_ONLY | OPERATIONS,
    Role.analyst: READ_ALL | WRITE_ALL | SELF_SERVICE | OPERATIONS,
    Role.viewer: READ_ALL | SELF_SERVICE,
}
ALL_PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())


def allowed(role: Role | str, permission: str | None, scopes: frozenset[str] | None = None) -> bool:
    """Whether ``role`` (restricted to ``scopes`` for an API key) grants ``permission``.

    ``permission=None`` means "any authenticated caller".

    Example:
        >>> allowed("viewer", "datasets:read"), allowed("viewer", "datasets:write")
        (True, False)
        >>> allowed("admin", "users:write", scopes=frozenset({"datasets:read"}))
        False
    """
    if permission is None:
        return True
    if permission not in ROLE_PERMISSIONS[Role(role)]:
        return False
    return scopes is None or permission in scopes
