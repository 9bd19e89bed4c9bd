"""The uniform error envelope, input limits, request ids, trailing slashes, rate limiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from ordinaut.api import create_app
from ordinaut.api.middleware import json_depth
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.errors import Conflict

BASE_URL = "http://test"


def assert_envelope(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def test_envelopes_for_framework_errors(
    client: httpx.AsyncClient, admin: dict[str, Any], make_agent: Any
) -> None:
    assert_envelope(await client.get("/agents"), 401, "unauthorized")
    worker = await make_agent(["tasks:read"])
    assert_envelope(await client.get("/agents", headers=worker["headers"]), 403, "forbidden")
    assert_envelope(await client.get("/no/such/route"), 404, "not_found")
    r = await client.delete("/health/live")
    assert_envelope(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"
    r = await client.post("/agents", json={"name": 5}, headers=admin["headers"])
    body = assert_envelope(r, 422, "validation_error")
    fields = {d["field"] for d in body["error"]["details"]}
    assert fields == {"body.name", "body.scopes"}
    assert all(set(d) == {"field", "message", "type"} for d in body["error"]["details"])


@pytest.mark.parametrize("raw", [b"{bad", b'{"name": "x",', b"", b"\xff\xfe"])
async def test_malformed_json_is_400_invalid_json(
    client: httpx.AsyncClient, admin: dict[str, Any], raw: bytes
) -> None:
    r = await client.post(
        "/agents",
        content=raw,
        headers={**admin["headers"], "content-type": "application/json"},
    )
    if raw == b"":
        assert_envelope(r, 422, "validation_error")  # a missing body is a missing field
    else:
        assert_envelope(r, 400, "invalid_json")


async def test_validation_errors_never_echo_the_input(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    huge = "Z" * 100_000
    r = await client.post(
        "/agents", json={"name": huge, "scopes": [huge]}, headers=admin["headers"]
    )
    assert_envelope(r, 422, "validation_error")
    assert "ZZZZ" not in r.text
    assert len(r.content) < 2_000


async def test_body_size_limit_declared_and_streamed(
    client: httpx.AsyncClient, admin: dict[str, Any], settings: Settings
) -> None:
    limit = settings.max_body_bytes
    big = b'{"name": "' + b"a" * limit + b'", "scopes": ["tasks:read"]}'
    r = await client.post(
        "/agents", content=big, headers={**admin["headers"], "content-type": "application/json"}
    )
    body = assert_envelope(r, 413, "payload_too_large")
    assert body["error"]["details"] == {
        "limit": "max_body_bytes",
        "max": limit,
        "setting": "ORDINAUT_MAX_BODY_BYTES",
    }
    assert body["error"]["message"] == (
        f"request body exceeds {limit} bytes (ORDINAUT_MAX_BODY_BYTES)"
    )

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    # No Content-Length: the limit is enforced on the bytes actually streamed.
    r = await client.post(
        "/agents",
        content=chunks(),
        headers={**admin["headers"], "content-type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert_envelope(r, 413, "payload_too_large")


async def test_body_at_the_limit_is_accepted(
    client: httpx.AsyncClient, admin: dict[str, Any], settings: Settings
) -> None:
    body = b'{"name": "padded", "scopes": ["tasks:read"]}'
    padded = body + b" " * (settings.max_body_bytes - len(body))
    r = await client.post(
        "/agents", content=padded, headers={**admin["headers"], "content-type": "application/json"}
    )
    assert r.status_code == 201, r.text


async def test_deep_json_is_refused_before_parsing(
    client: httpx.AsyncClient, admin: dict[str, Any], settings: Settings
) -> None:
    depth = settings.max_json_depth
    for raw in (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b'{"a":' * 5_000 + b"1"):
        async with asyncio.timeout(30):  # a hang guard; speed lives in bench/
            r = await client.post(
                "/agents",
                content=raw,
                headers={**admin["headers"], "content-type": "application/json"},
            )
        body = assert_envelope(r, 422, "limit_exceeded")
        assert body["error"]["details"] == {
            "limit": "max_json_depth",
            "max": depth,
            "setting": "ORDINAUT_MAX_JSON_DEPTH",
        }
        assert "(ORDINAUT_MAX_JSON_DEPTH)" in body["error"]["message"]
    # Exactly at the limit passes the depth check (and then fails validation normally).
    r = await client.post(
        "/agents",
        content=b"[" * depth + b"]" * depth,
        headers={**admin["headers"], "content-type": "application/json"},
    )
    assert_envelope(r, 422, "validation_error")


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[[[[[[[[[", "b": "\\"[[[["}', 3) == 1
    assert json_depth(b'[[1], {"x": [2]}]', 0) == 3
    assert json_depth(b"[" * 10 + b"]" * 10, 100) <= 100
    assert json_depth(b"", 0) == 0
    assert json_depth(b'"unterminated [[[[', 1) >= 0


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live", headers={"X-Request-ID": "abc-123_x.y"})
    assert r.headers["x-request-id"] == "abc-123_x.y"
    generated = (await client.get("/health/live")).headers["x-request-id"]
    assert len(generated) == 32
    for bad in (b"a" * 129, b"has space", b"semi;colon", "ünïcode".encode("latin-1"), b""):
        r = await client.get("/health/live", headers=[(b"X-Request-ID", bad)])
        assert r.headers["x-request-id"].encode() != bad
        assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/nope", headers={"X-Request-ID": "trace-1"})
    assert r.json()["request_id"] == "trace-1"


async def test_paths_work_with_and_without_trailing_slash(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    for path in ("/agents", f"/agents/{admin['agent_id']}/"):
        r = await client.get(path, headers=admin["headers"])
        assert r.status_code == 200, path
    assert (await client.get("/health/live/")).json() == {"status": "ok"}
    r = await client.post(
        "/agents/", json={"name": "slash", "scopes": ["tasks:read"]}, headers=admin["headers"]
    )
    assert r.status_code == 201


async def test_domain_errors_and_unexpected_exceptions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def conflict() -> None:
        raise Conflict("already there", {"key": "k"})

    async def bug() -> None:
        raise KeyError("secret-internal-detail")

    async def db_down() -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    async def pg_gone() -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")

    app.add_api_route("/test/conflict", conflict)
    app.add_api_route("/test/bug", bug)
    app.add_api_route("/test/db-down", db_down)
    app.add_api_route("/test/pg-gone", pg_gone)
    body = assert_envelope(await client.get("/test/conflict"), 409, "conflict")
    assert body["error"]["details"] == {"key": "k"}
    r = await client.get("/test/bug")
    assert_envelope(r, 500, "internal_error")
    assert "secret-internal-detail" not in r.text
    for path in ("/test/db-down", "/test/pg-gone"):
        r = await client.get(path)
        assert_envelope(r, 503, "unavailable")
        assert r.headers["retry-after"] == "1"


async def test_rate_limit_is_429_with_retry_after(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, admin: dict[str, Any]
) -> None:
    app = create_app(settings.replace(rate_limit_per_minute=3), clock=clock, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        for _ in range(3):
            assert (await c.get("/agents", headers=admin["headers"])).status_code == 200
        r = await c.get("/agents", headers=admin["headers"])
        body = assert_envelope(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert body["error"]["details"]["limit"] == "rate_limit_per_minute"
        assert body["error"]["details"]["setting"] == "ORDINAUT_RATE_LIMIT_PER_MINUTE"
        assert "(ORDINAUT_RATE_LIMIT_PER_MINUTE)" in body["error"]["message"]
        # Another caller has its own bucket; health probes are never limited.
        assert (await c.get("/agents")).status_code == 401
        for _ in range(5):
            assert (await c.get("/health/live")).status_code == 200
    await app.state.deps.close()


async def test_no_redirects_and_no_ids_in_404_routes(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/agents/{uuid.uuid4()}/nothing")
    assert_envelope(r, 404, "not_found")
    assert "location" not in r.headers


async def test_an_empty_id_in_the_path_is_a_404_that_names_the_missing_id(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    """`curl $ORD/tasks/$TASK/preview` with TASK empty: say which id is missing, not "no such
    route"."""
    for method, path, route in (
        ("GET", "/tasks//preview", "/tasks/{task_id}/preview"),
        ("POST", "/tasks//run_now", "/tasks/{task_id}/run_now"),
        ("POST", "/tasks//pause", "/tasks/{task_id}/pause"),
        ("GET", "/runs/task//latest", "/runs/task/{task_id}/latest"),
        ("POST", "/runs//retry", "/runs/{run_id}/retry"),
        # GET on a collection with a slash is the same mistake: `curl $ORD/tasks/$TASK`
        ("GET", "/tasks/", "/tasks/{task_id}"),
        ("GET", "/runs/", "/runs/{run_id}"),
        ("GET", "/agents/", "/agents/{agent_id}"),
    ):
        r = await client.request(method, path, headers=admin["headers"])
        body = assert_envelope(r, 404, "not_found")
        missing = route.split("{")[1].split("}")[0]
        assert body["error"]["message"] == (
            f"{path} has an empty segment where {route} needs {missing} "
            "(is the variable that holds it empty?)"
        )
        assert body["error"]["details"] == {"path": path, "route": route, "missing": missing}
    # Lists without the slash, and writes with it, are what they always were.
    assert (await client.get("/tasks", headers=admin["headers"])).status_code == 200
    r = await client.post("/tasks/", json={}, headers=admin["headers"])
    assert_envelope(r, 422, "validation_error")
    r = await client.get("/nothing//here", headers=admin["headers"])
    assert assert_envelope(r, 404, "not_found")["error"]["details"] is None


async def test_limits_name_the_setting_that_raises_them(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, make_agent: Any
) -> None:
    limits = settings.replace(
        max_tasks_per_agent=1, max_steps=2, min_interval_s=120, max_retries_limit=5
    )
    app = create_app(limits, clock=clock, pool=pool)
    agent = await make_agent(["tasks:read", "tasks:write"])
    step = {"id": "a", "uses": "echo", "with": {"x": 1}}
    task = {
        "title": "t",
        "schedule_kind": "cron",
        "schedule_expr": "0 8 * * *",
        "payload": {"pipeline": [step]},
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        steps = [{**step, "id": f"s{i}"} for i in range(3)]
        r = await c.post(
            "/tasks", json={**task, "payload": {"pipeline": steps}}, headers=agent["headers"]
        )
        body = assert_envelope(r, 422, "invalid_pipeline")
        (problem,) = body["error"]["details"]
        assert problem["setting"] == "ORDINAUT_MAX_STEPS"
        assert problem["message"].endswith("ORDINAUT_MAX_STEPS is 2")
        assert "ORDINAUT_MAX_STEPS" in body["error"]["message"]
        r = await c.post("/tasks", json={**task, "max_retries": 6}, headers=agent["headers"])
        body = assert_envelope(r, 422, "validation_error")
        assert body["error"]["details"] == [
            {
                "field": "max_retries",
                "message": "at most 5 (ORDINAUT_MAX_RETRIES_LIMIT)",
                "limit": "max_retries_limit",
                "setting": "ORDINAUT_MAX_RETRIES_LIMIT",
            }
        ]
        assert (await c.post("/tasks", json=task, headers=agent["headers"])).status_code == 201
        r = await c.post("/tasks", json=task, headers=agent["headers"])
        body = assert_envelope(r, 422, "limit_exceeded")
        assert body["error"]["message"] == (
            "an agent may own at most 1 tasks (ORDINAUT_MAX_TASKS_PER_AGENT)"
        )
        assert body["error"]["details"][0]["setting"] == "ORDINAUT_MAX_TASKS_PER_AGENT"
        r = await c.post(
            "/tasks", json={**task, "schedule_expr": "* * * * *"}, headers=agent["headers"]
        )
        body = assert_envelope(r, 422, "invalid_schedule")
        assert "the minimum interval is 120 s (ORDINAUT_MIN_INTERVAL_S)" in r.text
    await app.state.deps.close()


def test_name_settings_leaves_other_errors_alone() -> None:
    from ordinaut.api.errors import limit_setting, name_settings

    assert limit_setting("max_payload_bytes") == "ORDINAUT_MAX_BODY_BYTES"
    assert limit_setting("not_a_setting") is None
    details = [{"field": "x", "message": "too long", "limit": "not_a_setting"}]
    assert name_settings("bad", details) == ("bad", details)
    assert name_settings("no details", None) == ("no details", None)
