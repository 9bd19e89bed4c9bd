"""Agent management: admin only, validation, the list envelope, self-protection, audit."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from ordinaut.clock import FrozenClock

AgentFactory = Any

NOT_ADMIN = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


def agent_routes(agent_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/agents", {"name": "n", "scopes": ["tasks:read"]}),
        ("GET", "/agents", None),
        ("GET", f"/agents/{agent_id}", None),
        ("PUT", f"/agents/{agent_id}", {"name": "renamed"}),
        ("PATCH", f"/agents/{agent_id}", {"name": "renamed"}),
        ("DELETE", f"/agents/{agent_id}", None),
        ("POST", f"/agents/{agent_id}/credentials", None),
    ]


async def test_every_agents_route_needs_admin(
    client: httpx.AsyncClient, make_agent: AgentFactory, admin: dict[str, Any]
) -> None:
    worker = await make_agent(NOT_ADMIN)
    for method, path, body in agent_routes(admin["agent_id"]):
        r = await client.request(method, path, json=body, headers=worker["headers"])
        assert r.status_code == 403, (method, path, r.text)
        error = r.json()["error"]
        assert error["code"] == "forbidden"
        assert "admin" in error["message"]
        r = await client.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.text)
    # Nothing changed.
    r = await client.get(f"/agents/{admin['agent_id']}", headers=admin["headers"])
    assert r.json()["name"] == "admin"


async def test_create_get_update_delete(
    client: httpx.AsyncClient, admin: dict[str, Any], pool: asyncpg.Pool
) -> None:
    r = await client.post(
        "/agents",
        json={"name": "  briefing bot ", "scopes": ["tasks:write", "tasks:read", "tasks:read"]},
        headers=admin["headers"],
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "briefing bot"
    assert created["scopes"] == ["tasks:read", "tasks:write"]
    assert created["is_active"] is True
    assert len(created["agent_secret"]) >= 43
    assert r.headers["location"] == f"/agents/{created['id']}"
    assert uuid.UUID(created["id"]).version == 4
    stored = await pool.fetchval(
        "SELECT secret_hash FROM agents WHERE id = $1", uuid.UUID(created["id"])
    )
    assert created["agent_secret"] not in stored

    r = await client.get(f"/agents/{created['id']}", headers=admin["headers"])
    assert r.status_code == 200
    assert "agent_secret" not in r.json()
    assert r.json() == {k: v for k, v in created.items() if k != "agent_secret"}

    r = await client.put(
        f"/agents/{created['id']}",
        json={"name": "renamed", "scopes": ["runs:read"]},
        headers=admin["headers"],
    )
    assert r.status_code == 200
    assert r.json()["name"] == "renamed"
    assert r.json()["scopes"] == ["runs:read"]
    r = await client.patch(
        f"/agents/{created['id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert r.json()["name"] == "renamed"
    assert r.json()["is_active"] is False

    r = await client.delete(f"/agents/{created['id']}", headers=admin["headers"])
    assert r.status_code == 204
    assert r.content == b""
    for method in ("GET", "PUT", "DELETE"):
        r = await client.request(
            method, f"/agents/{created['id']}", json={"name": "x"}, headers=admin["headers"]
        )
        assert r.status_code == 404, method
        assert r.json()["error"]["code"] == "not_found"
    r = await client.post(f"/agents/{created['id']}/credentials", headers=admin["headers"])
    assert r.status_code == 404

    rows = await pool.fetch(
        "SELECT actor_id, action, request_id FROM audit_log WHERE subject_id = $1 ORDER BY id",
        uuid.UUID(created["id"]),
    )
    assert [row["action"] for row in rows] == [
        "agent.created",
        "agent.updated",
        "agent.updated",
        "agent.deleted",
    ]
    assert all(str(row["actor_id"]) == admin["agent_id"] and row["request_id"] for row in rows)


async def test_deleting_an_agent_cascades_its_tokens(
    client: httpx.AsyncClient, admin: dict[str, Any], make_agent: AgentFactory, pool: asyncpg.Pool
) -> None:
    other = await make_agent(["tasks:read"])
    r = await client.delete(f"/agents/{other['agent_id']}", headers=admin["headers"])
    assert r.status_code == 204
    count = await pool.fetchval(
        "SELECT count(*) FROM agent_tokens WHERE agent_id = $1", uuid.UUID(other["agent_id"])
    )
    assert count == 0
    r = await client.post(
        "/agents/auth/revoke", json={"token": other["token"]}, headers=other["headers"]
    )
    assert r.status_code == 401


async def test_an_admin_cannot_lock_itself_out(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    me = f"/agents/{admin['agent_id']}"
    r = await client.delete(me, headers=admin["headers"])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    for change in ({"is_active": False}, {"scopes": ["tasks:read"]}):
        r = await client.put(me, json=change, headers=admin["headers"])
        assert r.status_code == 409, change
    # Renaming oneself is fine.
    r = await client.put(me, json={"name": "root"}, headers=admin["headers"])
    assert r.status_code == 200
    assert r.json()["name"] == "root"


async def test_list_envelope_and_paging(
    client: httpx.AsyncClient, admin: dict[str, Any], clock: FrozenClock
) -> None:
    for i in range(4):
        clock.advance(1)  # oldest first: distinct creation instants make the order certain
        await client.post(
            "/agents", json={"name": f"a{i}", "scopes": ["tasks:read"]}, headers=admin["headers"]
        )
    r = await client.get("/agents", params={"limit": 2, "offset": 1}, headers=admin["headers"])
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"items", "total", "limit", "offset", "has_more"}
    assert (page["total"], page["limit"], page["offset"], page["has_more"]) == (5, 2, 1, True)
    assert [a["name"] for a in page["items"]] == ["a0", "a1"]
    assert all("agent_secret" not in a for a in page["items"])
    last = (await client.get("/agents", params={"offset": 3}, headers=admin["headers"])).json()
    assert [a["name"] for a in last["items"]] == ["a2", "a3"]
    assert last["has_more"] is False
    beyond = (await client.get("/agents", params={"offset": 50}, headers=admin["headers"])).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}):
        r = await client.get("/agents", params=params, headers=admin["headers"])
        assert r.status_code == 422, params
        assert r.json()["error"]["details"][0]["field"].startswith("query.")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["root"]}, "body.scopes.0"),
        ({"name": "x", "scopes": []}, "body.scopes"),
        ({"name": "", "scopes": ["tasks:read"]}, "body.name"),
        ({"name": "x" * 201, "scopes": ["tasks:read"]}, "body.name"),
        ({"scopes": ["tasks:read"]}, "body.name"),
        ({"name": "x", "scopes": ["tasks:read"], "id": str(uuid.uuid4())}, "body.id"),
        ({"name": "x", "scopes": "admin"}, "body.scopes"),
    ],
)
async def test_create_validation_names_the_field(
    client: httpx.AsyncClient, admin: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    r = await client.post("/agents", json=body, headers=admin["headers"])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]


async def test_malformed_agent_id_is_422_and_unknown_is_404(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    r = await client.get("/agents/not-a-uuid", headers=admin["headers"])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "path.agent_id"
    r = await client.get(f"/agents/{uuid.uuid4()}", headers=admin["headers"])
    assert r.status_code == 404


async def test_openapi_documents_the_agents_routes_and_bearer_auth(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert {"/agents", "/agents/{agent_id}", "/agents/auth/token"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert (await client.get("/docs")).status_code == 200


async def test_me_names_the_caller_for_any_token(
    client: httpx.AsyncClient, make_agent: AgentFactory, admin: dict[str, Any]
) -> None:
    # No scope needed: an agent that may only read runs still learns who it is.
    reader = await make_agent(["runs:read"], name="night reader")
    r = await client.get("/agents/me", headers=reader["headers"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "id": reader["agent_id"],
        "name": "night reader",
        "scopes": ["runs:read"],
        "is_admin": False,
    }
    r = await client.get("/agents/me", headers=admin["headers"])
    assert r.json()["id"] == admin["agent_id"]
    assert r.json()["name"] == "admin"
    assert r.json()["is_admin"] is True
    # A renamed agent is shown by its new name at once.
    r = await client.put(
        f"/agents/{reader['agent_id']}", json={"name": "day reader"}, headers=admin["headers"]
    )
    assert r.status_code == 200, r.text
    r = await client.get("/agents/me", headers=reader["headers"])
    assert r.json()["name"] == "day reader"
    r = await client.get("/agents/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
