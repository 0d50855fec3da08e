"""JWT access/refresh tokens, bad tokens, API keys with scopes, disabled users, production secrets."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr
from service_fixtures import SECRET

from nexus.errors import NexusError
from nexus.service.app import create_app
from nexus.service.security import create_token
from nexus.service.settings import ServiceSettings


def test_login_refresh_and_me(sqlite_api) -> None:
    client = sqlite_api.client
    assert client.post("/auth/token", json={"username": "admin", "password": "wrong-one"}).status_code == 401
    assert client.post("/auth/token", json={"username": "nobody", "password": "x"}).status_code == 401
    tokens = client.post("/auth/token", json={"username": "admin", "password": "admin-password-1"}).json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 15 * 60
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["role"] == "admin" and "password_hash" not in me.json()
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    # a refresh token is not an access token, and vice versa
    assert (
        client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}).status_code
        == 401
    )
    assert client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "2"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_expired_tampered_and_wrongly_signed_tokens_are_rejected(sqlite_api) -> None:
    settings = sqlite_api.settings
    good = create_token(settings, 1, "access")
    past = datetime.now(UTC) - timedelta(hours=2)
    other = settings.model_copy(update={"secret_key": SecretStr("another-secret-0123456789-0123456789-xx")})
    none_alg = jwt.encode(
        {"sub": "1", "type": "access", "iat": 1, "exp": 4102444800, "jti": "x", "iss": "nexus"},
        key=None,
        algorithm="none",
    )
    hs512 = jwt.encode(
        {"sub": "1", "type": "access", "iat": 1, "exp": 4102444800, "jti": "x", "iss": "nexus"},
        SECRET,
        algorithm="HS512",
    )
    bad_tokens = {
        "expired": create_token(settings, 1, "access", now=past),
        "tampered": _tamper(good),
        "wrong secret": create_token(other, 1, "access"),
        "alg none": none_alg,
        "other algorithm": hs512,
        "garbage": "not-a-jwt",
        "unknown user": create_token(settings, 999, "access"),
        "subject past 64 bits": create_token(settings, 2**70, "access"),
        "subject zero": create_token(settings, 0, "access"),
    }
    assert sqlite_api.client.get("/auth/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for name, token in bad_tokens.items():
        response = sqlite_api.client.get("/datasets", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_api_keys_are_scoped_hashed_and_revocable(sqlite_api) -> None:
    api = sqlite_api
    assert (
        api.call(
            "POST", "/api-keys", role="viewer", json={"name": "ci", "scopes": ["datasets:write"]}
        ).status_code
        == 403
    )
    created = api.ok(
        "POST",
        "/api-keys",
        role="analyst",
        status=201,
        json={"name": "ingest-bot", "scopes": ["datasets:read", "datasets:write"]},
    )
    key = created["key"]
    assert key.startswith(created["prefix"] + ".")
    assert "key" not in api.ok("GET", f"/api-keys/{created['id']}", role="analyst")
    from sqlalchemy import text

    async def stored_hash():
        async with api.client.app.state.engine.connect() as connection:
            return (await connection.execute(text("SELECT key_hash FROM api_keys"))).scalar_one()

    digest = api.client.portal.call(stored_hash)
    assert key.split(".", 1)[1] not in digest and len(digest) == 64

    machine = {"X-API-Key": key}
    assert api.client.post("/datasets", json={"name": "from-bot"}, headers=machine).status_code == 201
    assert api.client.get("/datasets", headers=machine).json()["total"] == 1
    assert api.client.get("/models", headers=machine).status_code == 403  # outside the key's scopes
    assert api.client.get("/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    audit = api.ok("GET", "/audit", params={"entity": "dataset"})["items"][0]
    assert audit["actor"] == f"analyst (key {created['id']})"
    assert api.client.get("/datasets", headers={"X-API-Key": key[:-2] + "xx"}).status_code == 401
    assert api.client.get("/datasets", headers={"X-API-Key": "nxk_nothing.here"}).status_code == 401
    # other users cannot see the key; admins can
    assert api.call("GET", f"/api-keys/{created['id']}", role="viewer").status_code == 404
    assert api.ok("GET", "/api-keys")["total"] == 1
    api.ok("PATCH", f"/api-keys/{created['id']}", role="analyst", json={"revoked": True})
    restored = api.call("PATCH", f"/api-keys/{created['id']}", role="analyst", json={"revoked": False})
    assert restored.status_code == 409 and "revoking is permanent" in restored.json()["detail"], restored.text
    assert api.ok("GET", f"/api-keys/{created['id']}", role="analyst")["revoked"] is True
    expired = api.ok(
        "POST",
        "/api-keys",
        role="analyst",
        status=201,
        json={"name": "old", "scopes": ["datasets:read"], "expires_at": "2001-01-01T00:00:00+02:00"},
    )
    assert expired["expires_at"].startswith("2000-12-31T22:00:00")
    assert api.client.get("/datasets", headers={"X-API-Key": expired["key"]}).status_code == 401
    far = {"name": "far", "scopes": ["datasets:read"], "expires_at": "0001-01-01T00:00:00+14:00"}
    assert api.call("POST", "/api-keys", role="analyst", json=far).status_code == 422
    assert api.client.get("/datasets", headers=machine).status_code == 401


def test_disabled_users_and_role_changes_apply_immediately(sqlite_api) -> None:
    api = sqlite_api
    viewer = api.headers("viewer")
    assert api.client.post("/datasets", json={"name": "x"}, headers=viewer).status_code == 403
    users = api.ok("GET", "/users", params={"role": "viewer"})["items"]
    api.ok("PATCH", f"/users/{users[0]['id']}", json={"role": "analyst"})
    assert api.client.post("/datasets", json={"name": "x"}, headers=viewer).status_code == 201
    api.ok("PATCH", f"/users/{users[0]['id']}", json={"is_active": False})
    assert api.client.get("/datasets", headers=viewer).status_code == 401
    assert (
        api.client.post(
            "/auth/token", json={"username": "viewer", "password": "viewer-password-1"}
        ).status_code
        == 401
    )
    assert api.call("POST", "/users", json={"username": "viewer", "password": "12345678"}).status_code == 409


@pytest.mark.parametrize("change", [{"role": "analyst"}, {"is_active": False}])
def test_the_last_active_admin_cannot_be_demoted_or_disabled(sqlite_api, change) -> None:
    api = sqlite_api
    api.headers("analyst")  # created on first use
    admin = api.ok("GET", "/users", params={"role": "admin"})["items"][0]
    refused = api.call("PATCH", f"/users/{admin['id']}", json=change)
    assert refused.status_code == 409 and "last active admin" in refused.json()["detail"], refused.text
    assert api.ok("GET", f"/users/{admin['id']}")["role"] == "admin"
    other = api.ok("GET", "/users", params={"role": "analyst"})["items"][0]
    api.ok("PATCH", f"/users/{other['id']}", json={"role": "admin"})
    assert api.ok("PATCH", f"/users/{admin['id']}", json=change)["id"] == admin["id"]  # now there is another
    last = api.call("PATCH", f"/users/{other['id']}", role="analyst", json={"is_active": False})
    assert last.status_code == 409, last.text  # the new admin is the last one now


def test_production_refuses_to_start_without_a_secret(tmp_path, monkeypatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(NexusError, match="NEXUS_API_SECRET_KEY"):
        create_app(ServiceSettings(env="production", home=tmp_path, database_url=url))
    with pytest.raises(NexusError, match="at least 32"):
        create_app(ServiceSettings(env="production", home=tmp_path, database_url=url, secret_key="short"))
    monkeypatch.setenv("NEXUS_API_ENV", "production")
    monkeypatch.setenv("NEXUS_API_SECRET_KEY", SECRET)
    assert ServiceSettings(home=tmp_path).jwt_secret == SECRET


# Values the users table cannot hold: PostgreSQL refused them with a 500 (VARCHAR(254) email, NUL bytes).
UNSTORABLE_USER_FIELDS = [
    ("POST", "/users", {"username": "long", "password": "password-1", "email": "a" * 255}, "254 characters"),
    ("PATCH", "/users/1", {"email": "b" * 256}, "254 characters"),
    ("PATCH", "/users/1", {"email": "a\x00@example.com"}, "NUL"),
    ("POST", "/auth/token", {"username": "admin\x00", "password": "admin-password-1"}, "NUL"),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), UNSTORABLE_USER_FIELDS)
def test_user_fields_the_database_cannot_hold_are_422(sqlite_api, method, path, body, message) -> None:
    answer = sqlite_api.call(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"][0]["msg"]
    assert sqlite_api.ok("GET", "/users/1")["email"] is None
