"""GET /events/stream: Server-Sent Events from the outbox, streamed through the ASGI app.

httpx's own ASGITransport collects the whole body before returning, which an endless stream
never finishes; ``StreamingTransport`` below hands chunks over as the app sends them and tells
the app the client left (``http.disconnect``) when the response is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import agents, outbox

CRON = {
    "title": "t",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * *",
    "payload": {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
}
SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.replace(sse_poll_s=0.01, sse_keepalive_s=3600.0, sse_settle_s=30.0)


class StreamingTransport(httpx.AsyncBaseTransport):
    """Runs the ASGI app per request and streams its body (test-only, loopback-free)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        gone = asyncio.Event()
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body":
                await chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    await chunks.put(None)

        app_task = asyncio.create_task(self.app(scope, receive, send))
        await asyncio.wait({app_task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            app_task.result()  # raises what the app raised
            raise RuntimeError("the app returned without a response")
        start = started.result()

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                while (chunk := await chunks.get()) is not None:
                    yield chunk

            async def aclose(self) -> None:
                gone.set()
                async with asyncio.timeout(30):
                    with contextlib.suppress(asyncio.CancelledError):
                        await app_task

        return httpx.Response(start["status"], headers=start.get("headers", []), stream=Body())


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=StreamingTransport(app), base_url="http://test"
    ) as client:
        yield client


class Events:
    """Parsed SSE frames from an open response; comments are kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> dict[str, Any]:
        frame: dict[str, Any] = {}
        async with asyncio.timeout(30):
            async for line in self.lines:
                if line == "":
                    if "data" in frame:
                        frame["data"] = orjson.loads(frame["data"])
                        return frame
                    frame = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    key, _, value = line.partition(": ")
                    frame[key] = value
        raise AssertionError("the stream ended")

    async def take(self, n: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(n)]


async def test_stream_sends_live_events_and_resumes_after_last_event_id(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    async with live.stream("GET", "/events/stream", headers=h) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Events(response)
        task = (await client.post("/tasks", json=CRON, headers=h)).json()
        await client.post(f"/tasks/{task['id']}/run_now", headers=h)
        await client.post(f"/tasks/{task['id']}/pause", headers=h)
        got = await stream.take(2)
    assert [e["event"] for e in got] == ["task.created", "run.queued"]
    assert got[0]["data"]["subject_id"] == task["id"]
    assert got[1]["data"]["payload"]["task_id"] == task["id"]
    assert int(got[0]["id"]) < int(got[1]["id"])
    assert got[0]["data"]["seq"] == int(got[0]["id"])
    # the client left after two events; it comes back with the last id it saw
    headers = {**h, "Last-Event-ID": got[1]["id"]}
    async with live.stream("GET", "/events/stream", headers=headers) as response:
        (resumed,) = await Events(response).take(1)
    assert resumed["event"] == "task.paused"
    # a first connection can start from a seq too (EventSource cannot send the header)
    async with live.stream(
        "GET", "/events/stream", params={"last_event_id": 0}, headers=h
    ) as response:
        replayed = await Events(response).take(3)
    assert [e["id"] for e in replayed] == [e["id"] for e in got] + [resumed["id"]]


async def test_stream_filters_by_type_topic_and_task(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(SCOPES)
    h = agent["headers"]
    one = (await client.post("/tasks", json=CRON, headers=h)).json()
    two = (await client.post("/tasks", json=CRON, headers=h)).json()
    for task in (one, two, one):
        await client.post(f"/tasks/{task['id']}/run_now", headers=h)
    await client.post("/events", json={"topic": "orders.created"}, headers=h)
    await client.post("/events", json={"topic": "payments.failed"}, headers=h)
    base = {"last_event_id": 0}
    async with live.stream(
        "GET", "/events/stream", params={**base, "type": "run.*", "task_id": one["id"]}, headers=h
    ) as response:
        runs = await Events(response).take(2)
    assert {e["event"] for e in runs} == {"run.queued"}
    assert {e["data"]["payload"]["task_id"] for e in runs} == {one["id"]}
    async with live.stream(
        "GET", "/events/stream", params={**base, "topic": "payments.*"}, headers=h
    ) as response:
        (received,) = await Events(response).take(1)
    assert received["event"] == "event.received"
    assert received["data"]["payload"]["topic"] == "payments.failed"
    bad = await client.get("/events/stream", params={"type": "run.%"}, headers=h)
    assert bad.status_code == 422
    bad = await client.get("/events/stream", headers={**h, "Last-Event-ID": "x1"})
    assert bad.status_code == 422


async def test_stream_shows_only_the_callers_tenant(
    client: httpx.AsyncClient, live: httpx.AsyncClient, make_agent: Any
) -> None:
    alice = await make_agent(SCOPES, name="alice")
    bob = await make_agent(SCOPES, name="bob")
    (await client.post("/tasks", json=CRON, headers=alice["headers"])).json()
    await client.post("/events", json={"topic": "orders.created"}, headers=alice["headers"])
    mine = (await client.post("/tasks", json=CRON, headers=bob["headers"])).json()
    async with live.stream(
        "GET", "/events/stream", params={"last_event_id": 0}, headers=bob["headers"]
    ) as response:
        (first,) = await Events(response).take(1)
    assert first["event"] == "task.created"
    assert first["data"]["subject_id"] == mine["id"]
    assert first["data"]["tenant_id"] == bob["agent_id"]


async def test_a_transaction_committing_late_is_still_streamed(
    live: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    agent = await make_agent(["tasks:read"])
    tenant = uuid.UUID(agent["agent_id"])

    def event(n: int) -> outbox.OutboxEvent:
        return outbox.OutboxEvent("task.updated", tenant, None, {"n": n})

    async with live.stream("GET", "/events/stream", headers=agent["headers"]) as response:
        stream = Events(response)
        async with pool.acquire() as slow:
            tx = slow.transaction()
            await tx.start()
            await outbox.append(slow, [event(1)], now=clock.now())  # the lower seq...
            async with pool.acquire() as fast:
                await outbox.append(fast, [event(2)], now=clock.now())  # ...commits later
            assert (await stream.next())["data"]["payload"] == {"n": 2}
            await tx.commit()
        late = await stream.next()
    assert late["data"]["payload"] == {"n": 1}


async def test_streams_are_bounded_in_number_and_time_and_kept_alive(
    app: FastAPI, live: httpx.AsyncClient, make_agent: Any, settings: Settings
) -> None:
    agent = await make_agent(["tasks:read"])
    h = agent["headers"]
    app.state.deps.settings = settings.replace(
        sse_max_connections=1, sse_keepalive_s=0.0, sse_max_seconds=0.2
    )
    async with live.stream("GET", "/events/stream", headers=h) as first:
        async with live.stream("GET", "/events/stream", headers=h) as second:
            assert second.status_code == 503
            body = orjson.loads(await second.aread())
            assert body["error"]["details"]["limit"] == "sse_max_connections"
        stream = Events(first)
        end = await stream.next()
    assert end["event"] == "end"
    assert end["data"] == {"reason": "sse_max_seconds"}
    assert "keep-alive" in stream.comments
    # the slot was given back: a new stream is accepted
    async with live.stream("GET", "/events/stream", headers=h) as again:
        assert again.status_code == 200


async def test_a_stream_ends_when_its_agent_is_deactivated(
    app: FastAPI,
    live: httpx.AsyncClient,
    make_agent: Any,
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
) -> None:
    app.state.deps.settings = settings.replace(sse_recheck_s=0.0, sse_max_seconds=10.0)
    agent = await make_agent(["tasks:read"])
    async with live.stream("GET", "/events/stream", headers=agent["headers"]) as response:
        assert response.status_code == 200
        stream = Events(response)
        async with pool.acquire() as conn:
            await agents.update_agent(
                conn, uuid.UUID(agent["agent_id"]), now=clock.now(), is_active=False
            )
        end = await stream.next()
    assert end["event"] == "end"
    assert end["data"] == {"reason": "unauthorized"}


async def test_one_agent_cannot_take_every_live_stream(
    app: FastAPI, live: httpx.AsyncClient, make_agent: Any, settings: Settings
) -> None:
    app.state.deps.settings = settings.replace(sse_max_per_agent=2, sse_max_connections=10)
    hog, other = await make_agent(["tasks:read"]), await make_agent(["tasks:read"])
    async with (
        live.stream("GET", "/events/stream", headers=hog["headers"]) as s1,
        live.stream("GET", "/events/stream", headers=hog["headers"]) as s2,
    ):
        assert (s1.status_code, s2.status_code) == (200, 200)
        async with live.stream("GET", "/events/stream", headers=hog["headers"]) as s3:
            assert s3.status_code == 429
            assert int(s3.headers["retry-after"]) >= 1
            body = orjson.loads(await s3.aread())
            assert body["error"]["details"]["limit"] == "sse_max_per_agent"
        # the process has room, and another agent is not locked out by the first one
        async with live.stream("GET", "/events/stream", headers=other["headers"]) as s4:
            assert s4.status_code == 200
    # the hog's streams ended: its slots are free again
    async with live.stream("GET", "/events/stream", headers=hog["headers"]) as s5:
        assert s5.status_code == 200
