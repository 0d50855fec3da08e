"""Every route × every role: allowed, 403 or (without credentials) 401, generated from the route table."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from nexus.service.app import create_app
from nexus.service.dependencies import Require
from nexus.service.permissions import ROLE_PERMISSIONS, Role, allowed
from nexus.service.settings import ServiceSettings

PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("POST", "/auth/token"), ("POST", "/auth/refresh")}


def _permission(route: APIRoute) -> tuple[bool, str | None]:
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if isinstance(dependency.call, Require):
            return True, dependency.call.permission
        stack.extend(dependency.dependencies)
    return False, None


def route_table() -> list[tuple[str, str, str | None]]:
    """``(method, path, permission)`` for every protected route of the app."""
    app = create_app(ServiceSettings(database_url="sqlite+aiosqlite:///:memory:", secret_key="x" * 40))
    table, unprotected = [], set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        protected, permission = _permission(route)
        for method in set(context.methods or ()) - {"HEAD", "OPTIONS"}:
            if protected:
                table.append((method, context.path, permission))
            else:
                unprotected.add((method, context.path))
    assert unprotected == PUBLIC, f"routes without a permission check: {unprotected - PUBLIC}"
    return sorted(table)


ROUTES = route_table()


def test_route_table_covers_every_resource() -> None:
    paths = {path for _, path, _ in ROUTES}
    for prefix in (
        "/users",
        "/api-keys",
        "/datasets",
        "/models",
        "/runs",
        "/deployments",
        "/experiments",
        "/videos",
        "/detections",
        "/audit",
        "/metrics",
    ):
        assert any(p.startswith(prefix) for p in paths), prefix
    assert len(ROUTES) >= 40


def test_every_route_answers_by_role(sqlite_api) -> None:
    api = sqlite_api
    headers = {role.value: api.headers(role.value) for role in Role}
    outcomes = []
    for method, path, permission in ROUTES:
        url = re.sub(r"\{[^}]+\}", "1", path)
        body = (
            {"json": {}}
            if method in {"POST", "PATCH", "PUT"} and path not in {"/videos", "/artifacts"}
            else {}
        )
        unauthenticated = api.client.request(method, url, **body)
        assert unauthenticated.status_code == 401, (method, path, unauthenticated.text)
        assert unauthenticated.json()["request_id"]
        for role in Role:
            response = api.client.request(method, url, headers=headers[role.value], **body)
            expected_ok = allowed(role, permission)
            outcomes.append((method, path, role.value, response.status_code))
            if expected_ok:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
                assert response.status_code < 500, (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
    assert len(outcomes) == 3 * len(ROUTES)


@pytest.mark.parametrize("role", list(Role))
def test_role_permissions_are_nested(role: Role) -> None:
    assert ROLE_PERMISSIONS[Role.viewer] <= ROLE_PERMISSIONS[role] <= ROLE_PERMISSIONS[Role.admin]
