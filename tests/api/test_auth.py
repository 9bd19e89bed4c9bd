"""Token exchange, refresh rotation with reuse detection, revocation across processes, expiry."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import httpx
import pytest

from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings

BASE_URL = "http://test"
AgentFactory = Any


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def exchange(client: httpx.AsyncClient, agent: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(
        "/agents/auth/token",
        json={"agent_id": agent["agent_id"], "agent_secret": agent["secret"]},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_exchange_returns_a_working_pair(
    client: httpx.AsyncClient, admin: dict[str, Any], settings: Settings
) -> None:
    r = await client.post(
        "/agents/auth/token",
        json={"agent_id": admin["agent_id"], "agent_secret": admin["secret"]},
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    pair = r.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == settings.access_token_ttl_s
    assert pair["scope"] == "admin"
    assert pair["access_token"].startswith("ord_at_")
    assert pair["refresh_token"].startswith("ord_rt_")
    assert (await client.get("/agents", headers=bearer(pair["access_token"]))).status_code == 200
    # A refresh token is not an access token.
    r = await client.get("/agents", headers=bearer(pair["refresh_token"]))
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("agent_id", "secret"),
    [
        ("own", "wrong-secret"),
        ("00000000-0000-4000-8000-000000000000", "own"),
        ("not-a-uuid", "own"),
        ("own", ""),
    ],
)
async def test_bad_credentials_are_one_indistinct_401(
    client: httpx.AsyncClient, admin: dict[str, Any], agent_id: str, secret: str
) -> None:
    body = {
        "agent_id": admin["agent_id"] if agent_id == "own" else agent_id,
        "agent_secret": admin["secret"] if secret == "own" else secret,
    }
    r = await client.post("/agents/auth/token", json=body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    error = r.json()["error"]
    assert error["code"] == "invalid_credentials"
    assert error["message"] == "invalid agent id or secret"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer ord_at_not-a-real-token"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
async def test_missing_or_unknown_token_is_401(
    client: httpx.AsyncClient, admin: dict[str, Any], headers: dict[str, str]
) -> None:
    r = await client.get("/agents", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("unauthorized", "invalid_token")


async def test_revocation_holds_in_another_process(
    client: httpx.AsyncClient, admin: dict[str, Any], settings: Settings, clock: FrozenClock
) -> None:
    pair = await exchange(client, admin)
    # A second application with its own pool over the same database: another process.
    other = create_app(settings, clock=clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url=BASE_URL
        ) as second:
            assert (
                await second.get("/agents", headers=bearer(pair["access_token"]))
            ).status_code == 200
            r = await client.post(
                "/agents/auth/revoke",
                json={"token": pair["access_token"]},
                headers=bearer(pair["access_token"]),
            )
            assert r.status_code == 204
            r = await second.get("/agents", headers=bearer(pair["access_token"]))
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_token"
            # Revoking the access token ended its login: the refresh token is gone too.
            r = await second.post(
                "/agents/auth/refresh", json={"refresh_token": pair["refresh_token"]}
            )
            assert r.status_code == 401
            # Other logins of the same agent are untouched.
            assert (await second.get("/agents", headers=admin["headers"])).status_code == 200
    finally:
        await other.state.deps.close()


async def test_revoking_a_refresh_token_ends_its_login(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    pair = await exchange(client, admin)
    r = await client.post(
        "/agents/auth/revoke", json={"token": pair["refresh_token"]}, headers=admin["headers"]
    )
    assert r.status_code == 204
    assert (await client.get("/agents", headers=bearer(pair["access_token"]))).status_code == 401


async def test_revoke_needs_a_token_and_ignores_other_agents_tokens(
    client: httpx.AsyncClient, make_agent: AgentFactory
) -> None:
    alice = await make_agent(["tasks:read"])
    bob = await make_agent(["tasks:read"])
    r = await client.post("/agents/auth/revoke", json={"token": alice["token"]})
    assert r.status_code == 401
    # Bob cannot revoke Alice's token; like an unknown token, it is a silent no-op.
    r = await client.post(
        "/agents/auth/revoke", json={"token": alice["token"]}, headers=bob["headers"]
    )
    assert r.status_code == 204
    r = await client.post(
        "/agents/auth/revoke", json={"token": "ord_at_unknown"}, headers=alice["headers"]
    )
    assert r.status_code == 204
    r = await client.post(
        "/agents/auth/revoke", json={"token": alice["token"]}, headers=alice["headers"]
    )
    assert r.status_code == 204
    r = await client.post(
        "/agents/auth/revoke", json={"token": bob["token"]}, headers=alice["headers"]
    )
    assert r.status_code == 401


async def test_expired_access_token_is_401_and_refresh_still_works(
    client: httpx.AsyncClient, admin: dict[str, Any], clock: FrozenClock, settings: Settings
) -> None:
    clock.advance(settings.access_token_ttl_s - 1)
    assert (await client.get("/agents", headers=admin["headers"])).status_code == 200
    clock.advance(1)
    r = await client.get("/agents", headers=admin["headers"])
    assert r.status_code == 401
    r = await client.post("/agents/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert r.status_code == 200
    assert (
        await client.get("/agents", headers=bearer(r.json()["access_token"]))
    ).status_code == 200


async def test_expired_refresh_token_is_401(
    client: httpx.AsyncClient, admin: dict[str, Any], clock: FrozenClock, settings: Settings
) -> None:
    clock.advance(settings.refresh_token_ttl_s)
    r = await client.post("/agents/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, admin: dict[str, Any], pool: asyncpg.Pool
) -> None:
    first = await exchange(client, admin)
    r = await client.post("/agents/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await client.get("/agents", headers=bearer(second["access_token"]))).status_code == 200
    # The rotated refresh token presented again: someone else has it. The login dies.
    r = await client.post("/agents/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401
    assert "reuse" in r.json()["error"]["message"]
    for token in (first["access_token"], second["access_token"]):
        assert (await client.get("/agents", headers=bearer(token))).status_code == 401
    r = await client.post("/agents/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert "agent.token_reuse_detected" in actions
    # The fixture's own login is a different family and still works.
    assert (await client.get("/agents", headers=admin["headers"])).status_code == 200


async def test_refresh_rejects_access_tokens_and_garbage(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    for token in (admin["token"], "ord_rt_unknown", "nonsense"):
        r = await client.post("/agents/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 401, token
        assert r.json()["error"]["code"] == "invalid_token"


async def test_deactivated_agent_is_locked_out(
    client: httpx.AsyncClient, admin: dict[str, Any], make_agent: AgentFactory
) -> None:
    other = await make_agent(["admin"])
    r = await client.put(
        f"/agents/{other['agent_id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert (await client.get("/agents", headers=other["headers"])).status_code == 401
    r = await client.post(
        "/agents/auth/token",
        json={"agent_id": other["agent_id"], "agent_secret": other["secret"]},
    )
    assert r.status_code == 401
    # Reactivation does not resurrect the tokens revoked by deactivation.
    await client.put(
        f"/agents/{other['agent_id']}", json={"is_active": True}, headers=admin["headers"]
    )
    assert (await client.get("/agents", headers=other["headers"])).status_code == 401
    assert (await exchange(client, other))["scope"] == "admin"


async def test_scope_removal_applies_to_live_tokens(
    client: httpx.AsyncClient, admin: dict[str, Any], make_agent: AgentFactory
) -> None:
    other = await make_agent(["admin"])
    assert (await client.get("/agents", headers=other["headers"])).status_code == 200
    r = await client.put(
        f"/agents/{other['agent_id']}", json={"scopes": ["tasks:read"]}, headers=admin["headers"]
    )
    assert r.status_code == 200
    r = await client.get("/agents", headers=other["headers"])
    assert r.status_code == 403
    assert r.json()["error"]["details"] == {"required_scope": "admin"}


async def test_rotating_credentials_replaces_secret_and_revokes_tokens(
    client: httpx.AsyncClient, admin: dict[str, Any], make_agent: AgentFactory
) -> None:
    other = await make_agent(["tasks:read"])
    r = await client.post(f"/agents/{other['agent_id']}/credentials", headers=admin["headers"])
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    new_secret = r.json()["agent_secret"]
    assert r.json()["agent_id"] == other["agent_id"]
    assert new_secret != other["secret"]
    r = await client.post(
        "/agents/auth/revoke", json={"token": "ord_at_x"}, headers=other["headers"]
    )
    assert r.status_code == 401  # its old access token is revoked
    r = await client.post("/agents/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert r.status_code == 401
    assert (
        await client.post(
            "/agents/auth/token",
            json={"agent_id": other["agent_id"], "agent_secret": other["secret"]},
        )
    ).status_code == 401
    assert (await exchange(client, {**other, "secret": new_secret}))["scope"] == "tasks:read"


async def test_secrets_and_tokens_never_reach_the_logs(
    client: httpx.AsyncClient, admin: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await client.post(
        "/agents", json={"name": "logged", "scopes": ["tasks:read"]}, headers=admin["headers"]
    )
    created = r.json()
    pair = await exchange(client, {"agent_id": created["id"], "secret": created["agent_secret"]})
    await client.post("/agents/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    await client.post("/agents/auth/token", json={"agent_id": created["id"], "agent_secret": "no"})
    text = caplog.text + " ".join(str(vars(rec)) for rec in caplog.records)
    assert caplog.records, "expected request logs at DEBUG level"
    for secret in (created["agent_secret"], pair["access_token"], pair["refresh_token"]):
        assert secret not in text
    assert admin["token"] not in text
