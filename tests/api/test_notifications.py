"""Notifications (payload.notify): validated when written, routed once per run outcome from the
outbox, delivered signed through the egress policy to a receiver on 127.0.0.1 (allowed by the
loopback opt-in, ORDINAUT_EGRESS_ALLOWLIST), retried with backoff on a frozen clock, recorded
on the run, and never across tenants."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest
from samples import FAILING_PAYLOAD

from ordinaut import notifications, notifier
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
SECRET = "whsec-test-value-0123456789"
ECHO = {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {"x": 1}}]}


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each request, answers from ``statuses``."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # next answers; 200 once empty

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    seen = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": raw.decode()}
            )
            status = seen.statuses.pop(0) if seen.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    seen.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(base_settings: Settings, receiver: Receiver) -> Settings:
    # the loopback opt-in, for the receiver's port only
    return base_settings.replace(
        egress_allowlist=(f"127.0.0.1:{receiver.port}",),
        notify_backoff_base_s=10.0,
        notify_max_attempts=3,
        public_url="https://ordinaut.example",
    )


@pytest.fixture
def worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(
        pool, settings.replace(backoff_base_s=1), clock, worker_id="w", rng=random.Random(0)
    )


@pytest.fixture
def deliverer(pool: asyncpg.Pool, settings: Settings) -> notifier.Deliverer:
    return notifier.Deliverer(pool, settings)


async def relay(
    pool: asyncpg.Pool, deliverer: notifier.Deliverer, clock: FrozenClock, settings: Settings
) -> tuple[int, int]:
    return await notifier.relay(pool, deliverer, clock.now, settings)


async def _agent(make_agent: Any, client: httpx.AsyncClient, name: str = "a") -> dict[str, str]:
    headers: dict[str, str] = (await make_agent(SCOPES, name=name))["headers"]
    r = await client.put("/secrets/HOOK", json={"value": SECRET}, headers=headers)
    assert r.status_code in (201, 204), r.text
    return headers


def _task(notify: Any, payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "title": "notified",
        "schedule_kind": "event",
        "schedule_expr": "never.published",
        "payload": {**(payload or ECHO), "notify": notify},
        "max_retries": 0,
        "backoff_strategy": "fixed",
        **extra,
    }


async def _run_now(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = await client.post("/tasks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    run = await client.post(f"/tasks/{r.json()['id']}/run_now", headers=headers)
    assert run.status_code in (200, 201, 202), run.text
    run_id: str = run.json()["run_id"]
    return run_id


async def _run(client: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    r = await client.get(f"/runs/{run_id}", headers=headers)
    assert r.status_code == 200, r.text
    run: dict[str, Any] = r.json()
    return run


# --- validation when written ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("notify", "field_name"),
    [
        ("https://example.com/hook", "payload.notify"),
        ([{"url": "http://example.com/hook", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "ftp://example.com/hook", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "https://u:p@example.com/", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "https://10.1.2.3/hook", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "https://[::1]/hook", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "https://xn--/hook", "on": ["failed"], "secret": "HOOK"}], ".url"),
        ([{"url": "https://example.com/", "on": [], "secret": "HOOK"}], ".on"),
        ([{"url": "https://example.com/", "on": ["started"], "secret": "HOOK"}], ".on"),
        ([{"url": "https://example.com/", "on": "failed", "secret": "HOOK"}], ".on"),
        ([{"url": "https://example.com/", "on": ["failed", "failed"], "secret": "H"}], ".on"),
        ([{"url": "https://example.com/", "on": ["failed"]}], ".secret"),
        ([{"url": "https://example.com/", "on": ["failed"], "secret": "9-bad"}], ".secret"),
        ([{"url": "https://example.com/", "on": ["failed"], "secret": "H", "x": 1}], ".x"),
        (
            [
                {"url": f"https://example.com/{i}", "on": ["failed"], "secret": "H"}
                for i in range(6)
            ],
            "payload.notify",
        ),
        (
            [{"url": "https://example.com/", "on": ["failed"], "secret": "H"}] * 2,
            "payload.notify[1].url",
        ),
    ],
)
async def test_a_bad_notify_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_agent: Any, notify: Any, field_name: str
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    for r in (
        await client.post("/tasks", json=_task(notify), headers=headers),
        await client.post("/tasks/validate", json={"task": _task(notify)}, headers=headers),
    ):
        assert r.status_code == 422, r.text
        fields = [d.get("field", "") for d in r.json()["error"]["details"]]
        # the model's own checks name the body path (body.payload.notify)
        assert any("payload.notify" in f and f.endswith(field_name) for f in fields), fields


async def test_a_malformed_idna_host_in_http_request_is_a_422_not_a_500(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    step = {"id": "get", "uses": "http.request", "with": {"url": "https://xn--/x"}}
    r = await client.post(
        "/tasks", json=_task(None, {"params": {}, "pipeline": [step]}), headers=headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "payload.pipeline[0].with.url"


async def test_notify_is_stored_as_sent_and_patch_revalidates_it(
    client: httpx.AsyncClient, make_agent: Any, receiver: Receiver
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    notify = [
        {
            "url": "https://hooks.example.com/a",
            "on": ["dead_letter", "failed"],
            "secret": "HOOK",
        },
        # http to the allowlisted loopback port: the dev opt-in
        {"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"},
    ]
    r = await client.post("/tasks", json=_task(notify), headers=headers)
    assert r.status_code == 201, r.text
    stored = r.json()["payload"]["notify"]
    assert stored == notify  # stored exactly as sent
    assert stored[1]["url"] == receiver.url
    # another loopback port is not on the allowlist: http there is refused
    other = f"http://127.0.0.1:{receiver.port + 1}/hook"
    bad = {"payload": {**ECHO, "notify": [{"url": other, "on": ["failed"], "secret": "HOOK"}]}}
    r = await client.patch(f"/tasks/{r.json()['id']}", json=bad, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "payload.notify[0].url"


# --- delivery ------------------------------------------------------------------------------


async def test_a_succeeded_run_is_delivered_once_signed_and_shown_on_the_run(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    headers = await _agent(make_agent, client)
    run_id = await _run_now(
        client, headers, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}])
    )
    assert await worker.run_once() == 1
    assert receiver.requests == []  # the run's end waits for no delivery
    assert (await _run(client, headers, run_id))["status"] == "succeeded"

    await relay(pool, deliverer, clock, settings)
    await relay(pool, deliverer, clock, settings)  # nothing twice
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    text, sent = request["body"], request["headers"]
    # the signature, checked independently of the code that made it
    t, v1 = (part.split("=", 1)[1] for part in sent["Ordinaut-Signature"].split(","))
    assert int(t) == int(clock.now().timestamp())
    expected = hmac.new(SECRET.encode(), f"{t}.{text}".encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)
    assert notifications.verify(SECRET, sent["Ordinaut-Signature"], text, now=clock.now())
    assert not notifications.verify("wrong", sent["Ordinaut-Signature"], text, now=clock.now())
    assert not notifications.verify(
        SECRET, sent["Ordinaut-Signature"], text.replace("succeeded", "failed"), now=clock.now()
    )
    body = json.loads(text)
    assert sent["Content-Type"] == "application/json"
    assert sent["Ordinaut-Delivery"] == body["id"] == sent["Idempotency-Key"]
    assert sent["Ordinaut-Event"] == body["type"] == "run.succeeded"
    assert body["run"]["id"] == run_id
    assert body["run"]["status"] == "succeeded"
    assert body["run"]["attempt"] == 1
    assert body["run"]["error"] is None
    assert body["run"]["url"] == f"https://ordinaut.example/runs/{run_id}"
    assert body["run"]["finished_at"].endswith("Z")
    assert body["task"]["title"] == "notified"

    r = await client.get(f"/runs/{run_id}", headers=headers)
    assert SECRET not in r.text
    [shown] = r.json()["notifications"]
    assert shown["id"] == body["id"]
    assert (shown["status"], shown["attempts"], shown["outcome"]) == ("delivered", 1, "succeeded")
    assert shown["url"] == receiver.url
    assert shown["last_status_code"] == 200
    assert shown["delivered_at"] is not None
    assert shown["last_error"] is None
    assert [h["status_code"] for h in shown["history"]] == [200]


async def test_an_outcome_left_unrouted_or_a_delivery_cut_off_is_still_delivered_once(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    receiver: Receiver,
) -> None:
    headers = await _agent(make_agent, client)
    notify = [{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}]
    first = await _run_now(client, headers, _task(notify))
    assert await worker.run_once() == 1
    # the process dies after the run's end, before anything routed or delivered it: a new
    # process (a new deliverer) finds the outcome in the outbox and delivers it once
    await relay(pool, notifier.Deliverer(pool, settings), clock, settings)
    assert [json.loads(r["body"])["run"]["id"] for r in receiver.requests] == [first]

    second = await _run_now(client, headers, _task(notify, title="second"))
    assert await worker.run_once() == 1
    assert await notifier.route_once(pool, now=clock.now(), settings=settings)
    # a deliverer leases the delivery and dies before recording the attempt
    dying = notifier.Deliverer(pool, settings)
    leased = await pool.fetch("SELECT id FROM notifications WHERE status = 'pending'")
    assert len(leased) == 1
    from ordinaut.store import notifications as store

    rows = await store.lease(pool, now=clock.now(), limit=10, lease_s=dying.lease_s, max_attempts=3)
    assert len(rows) == 1
    fresh = notifier.Deliverer(pool, settings)
    assert await fresh.deliver_once(now=clock.now()) == 0  # leased: not due yet
    clock.advance(dying.lease_s + 1)
    assert await fresh.deliver_once(now=clock.now()) == 1
    assert await fresh.deliver_once(now=clock.now()) == 0
    ids = [json.loads(r["body"])["run"]["id"] for r in receiver.requests]
    assert ids == [first, second]
    [shown] = (await _run(client, headers, second))["notifications"]
    assert (shown["status"], shown["attempts"]) == ("delivered", 2)


async def test_failures_are_retried_with_backoff_then_delivered(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    headers = await _agent(make_agent, client)
    run_id = await _run_now(
        client, headers, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}])
    )
    assert await worker.run_once() == 1
    receiver.statuses = [503, 429]
    start = clock.now()
    await relay(pool, deliverer, clock, settings)
    [shown] = (await _run(client, headers, run_id))["notifications"]
    assert (shown["status"], shown["attempts"], shown["last_status_code"]) == ("pending", 1, 503)
    assert shown["next_attempt_at"] == (start + timedelta(seconds=10)).isoformat().replace(
        "+00:00", "Z"
    )
    clock.advance(9)
    await relay(pool, deliverer, clock, settings)
    assert len(receiver.requests) == 1  # not before its backoff
    clock.advance(1)
    await relay(pool, deliverer, clock, settings)  # attempt 2: 429, next after 20 s
    assert len(receiver.requests) == 2
    clock.advance(19)
    await relay(pool, deliverer, clock, settings)
    assert len(receiver.requests) == 2
    clock.advance(1)
    await relay(pool, deliverer, clock, settings)
    assert len(receiver.requests) == 3
    [shown] = (await _run(client, headers, run_id))["notifications"]
    assert (shown["status"], shown["attempts"]) == ("delivered", 3)
    assert [h["status_code"] for h in shown["history"]] == [503, 429, 200]
    # every attempt was the same delivery: one id for the receiver to dedupe on
    assert len({r["headers"]["Ordinaut-Delivery"] for r in receiver.requests}) == 1


@pytest.mark.parametrize(
    ("statuses", "attempts", "error"),
    [
        ([500, 500, 500], 3, "http_status: answered 500"),  # notify_max_attempts = 3
        ([400], 1, "http_status: answered 400"),  # a 4xx other than 408/429: not retried
    ],
)
async def test_a_delivery_is_given_up_and_recorded(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
    statuses: list[int],
    attempts: int,
    error: str,
) -> None:
    headers = await _agent(make_agent, client)
    run_id = await _run_now(
        client, headers, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}])
    )
    assert await worker.run_once() == 1
    receiver.statuses = list(statuses)
    for _ in range(6):
        await relay(pool, deliverer, clock, settings)
        clock.advance(100)  # past every backoff (10 s, 20 s)
    assert len(receiver.requests) == attempts
    run = await _run(client, headers, run_id)
    assert run["status"] == "succeeded"  # a delivery never changes the run
    [shown] = run["notifications"]
    assert (shown["status"], shown["attempts"], shown["last_error"]) == ("failed", attempts, error)
    assert shown["next_attempt_at"] is None
    assert len(shown["history"]) == attempts


async def test_a_missing_secret_or_a_refused_address_fails_the_delivery_without_sending(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    headers = await _agent(make_agent, client)
    # a secret may be stored after the task is written (as for ${secrets.NAME}); missing when
    # the delivery is due, it fails at once
    missing = await _run_now(
        client, headers, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "NOPE"}])
    )
    assert await worker.run_once() == 1
    await relay(pool, deliverer, clock, settings)
    [shown] = (await _run(client, headers, missing))["notifications"]
    assert (shown["status"], shown["attempts"]) == ("failed", 1)
    assert shown["last_error"].startswith("secret_missing")
    # the operator closed the loopback opt-in since the task was written
    refused = await _run_now(
        client, headers, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}])
    )
    assert await worker.run_once() == 1
    closed = settings.replace(egress_allowlist=())
    await relay(pool, notifier.Deliverer(pool, closed), clock, closed)
    [shown] = (await _run(client, headers, refused))["notifications"]
    assert (shown["status"], shown["attempts"]) == ("failed", 1)
    assert shown["last_error"].startswith("egress_refused")
    assert receiver.requests == []


async def test_failed_attempts_and_the_dead_letter_are_each_notified_once(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    headers = await _agent(make_agent, client)
    notify = [{"url": receiver.url, "on": ["failed", "dead_letter"], "secret": "HOOK"}]
    run_id = await _run_now(client, headers, _task(notify, FAILING_PAYLOAD, max_retries=1))
    assert await worker.run_once() == 1  # attempt 1 fails: retried
    await relay(pool, deliverer, clock, settings)
    clock.advance(60)
    assert await worker.run_once() == 1  # attempt 2 fails: dead-lettered
    await relay(pool, deliverer, clock, settings)
    await relay(pool, deliverer, clock, settings)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert [(b["type"], b["run"]["attempt"]) for b in bodies] == [
        ("run.failed", 1),
        ("run.dead_letter", 2),
    ]
    assert all(b["run"]["id"] == run_id for b in bodies)
    assert bodies[1]["run"]["error"]["code"]
    shown = (await _run(client, headers, run_id))["notifications"]
    assert sorted((n["outcome"], n["status"]) for n in shown) == [
        ("dead_letter", "delivered"),
        ("failed", "delivered"),
    ]


async def test_another_agent_sees_no_notifications_of_a_run(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    alice = await _agent(make_agent, client, "alice")
    bob = await _agent(make_agent, client, "bob")
    run_id = await _run_now(
        client, alice, _task([{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}])
    )
    assert await worker.run_once() == 1
    await relay(pool, deliverer, clock, settings)
    assert (await client.get(f"/runs/{run_id}", headers=bob)).status_code == 404
    assert len((await _run(client, alice, run_id))["notifications"]) == 1
    owner = await pool.fetchval("SELECT owner_id::text FROM notifications")
    assert owner == (await _run(client, alice, run_id))["owner_id"]


# --- lifecycle events for the owner's event tasks ------------------------------------------


def _listener(topic: str, payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "title": f"on {topic}",
        "schedule_kind": "event",
        "schedule_expr": topic,
        "payload": payload
        or {
            "params": {},
            "pipeline": [
                {"id": "seen", "uses": "echo", "with": {"run": "${event.payload.run_id}"}}
            ],
        },
        "max_retries": 0,
        **extra,
    }


async def _runs_of(client: httpx.AsyncClient, headers: dict[str, str], task_id: str) -> list[Any]:
    r = await client.get("/runs", params={"task_id": task_id}, headers=headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


async def test_a_dead_letter_triggers_the_owners_event_task_and_never_another_tenants(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
) -> None:
    alice = await _agent(make_agent, client, "alice")
    bob = await _agent(make_agent, client, "bob")
    # even an admin-declared shared topic does not carry lifecycle events across tenants
    r = await client.post(
        "/events/shared-topics", json={"pattern": "run.*"}, headers=admin["headers"]
    )
    assert r.status_code in (200, 201), r.text
    watch = (await client.post("/tasks", json=_listener("run.dead_letter"), headers=alice)).json()
    bob_own = (await client.post("/tasks", json=_listener("run.*"), headers=bob)).json()
    bob_shared = (await client.post("/tasks", json=_listener("shared:run.*"), headers=bob)).json()
    doomed = await _run_now(client, alice, _task(None, FAILING_PAYLOAD))
    ok = await _run_now(client, alice, _task(None, title="fine"))
    assert await worker.run_once() == 2
    await relay(pool, deliverer, clock, settings)
    await relay(pool, deliverer, clock, settings)
    assert await worker.run_once() == 1  # the watcher's run, queued by run.dead_letter
    [seen] = await _runs_of(client, alice, watch["id"])
    run = await _run(client, alice, seen["id"])
    assert run["status"] == "succeeded"
    assert run["output"] == {"run": doomed}
    event = await pool.fetchrow(
        "SELECT topic, source, depth, payload FROM events WHERE event_id = $1", seen["event_id"]
    )
    assert (event["topic"], event["source"], event["depth"]) == ("run.dead_letter", "lifecycle", 1)
    assert event["payload"]["task_id"]
    assert event["payload"]["run_id"] == doomed
    assert ok not in json.dumps(await _runs_of(client, alice, watch["id"]))
    assert await _runs_of(client, bob, bob_own["id"]) == []
    assert await _runs_of(client, bob, bob_shared["id"]) == []


async def test_a_task_on_its_own_failures_stops_at_max_event_depth(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    deliverer: notifier.Deliverer,
) -> None:
    limited = settings.replace(max_event_depth=3)
    worker = Worker(pool, limited, clock, worker_id="w", rng=random.Random(0))
    alice = await _agent(make_agent, client)
    # reacts to every dead letter, its own included, and always fails
    loop = (
        await client.post(
            "/tasks", json=_listener("run.dead_letter", FAILING_PAYLOAD), headers=alice
        )
    ).json()
    await _run_now(client, alice, _task(None, FAILING_PAYLOAD))
    for _ in range(10):
        ran = await worker.run_once()
        await notifier.relay(pool, deliverer, clock.now, limited)
        if not ran:
            break
    runs = await _runs_of(client, alice, loop["id"])
    # hops 1, 2, 3 run; the 4th lifecycle event would exceed max_event_depth = 3
    assert len(runs) == 3
    assert all(r["status"] == "dead_letter" for r in runs)
    depths = await pool.fetch("SELECT depth FROM events WHERE source = 'lifecycle' ORDER BY seq")
    assert [d["depth"] for d in depths] == [1, 2, 3]


async def test_lifecycle_topics_cannot_be_published_by_clients(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    for topic in ("run.succeeded", "run.failed", "run.dead_letter"):
        r = await client.post("/events", json={"topic": topic, "payload": {}}, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "topic"
    r = await client.post("/events", json={"topic": "run.other", "payload": {}}, headers=headers)
    assert r.status_code == 202


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        ("*", True),
        ("r*", True),
        ("ru*", True),
        ("run*", True),
        ("run.*", True),
        ("run.failed", True),
        ("run.d*r", True),
        ("*.failed", True),
        ("*letter", True),
        ("run.started", True),  # conservative: any run.* pattern turns the shortcut off
        ("runs.*", False),
        ("ru.*", False),
        ("x*", False),
        ("shared:run.*", False),  # lifecycle events never reach shared subscriptions
    ],
)
async def test_the_router_shortcut_never_skips_a_listener(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool, pattern: str, gate: bool
) -> None:
    """While nothing listens the router skips the outbox unread; any event task whose pattern
    can match run.succeeded, run.failed or run.dead_letter turns that off."""
    from ordinaut.store import notifications as store

    headers = (await make_agent(SCOPES))["headers"]
    r = await client.post("/tasks", json=_listener(pattern), headers=headers)
    assert r.status_code == 201, r.text
    await pool.execute(
        "INSERT INTO outbox (event_id, event_type, payload, created_at) "
        "VALUES (gen_random_uuid(), 'x', '{}', now())"
    )
    # the rule ingest uses (store/events.py MATCH_OWN)
    matches = await pool.fetchval(
        r"""SELECT bool_or(t LIKE replace(replace(replace(replace($1, '\', '\\'), '%', '\%'),
                                                  '_', '\_'), '*', '%'))
            FROM unnest(ARRAY['run.succeeded', 'run.failed', 'run.dead_letter']) AS t""",
        pattern,
    )
    async with pool.acquire() as conn:
        listening = await store.nobody_listening(conn) is None
    assert listening is gate
    if matches and not pattern.startswith("shared:"):
        assert listening


async def test_a_deactivated_agent_is_sent_nothing(
    client: httpx.AsyncClient,
    make_agent: Any,
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    worker: Worker,
    deliverer: notifier.Deliverer,
    receiver: Receiver,
) -> None:
    agent = await make_agent(SCOPES, name="leaving")
    headers = agent["headers"]
    assert (
        await client.put("/secrets/HOOK", json={"value": SECRET}, headers=headers)
    ).status_code in (201, 204)
    notify = [{"url": receiver.url, "on": ["succeeded"], "secret": "HOOK"}]
    routed = await _run_now(client, headers, _task(notify))
    assert await worker.run_once() == 1
    assert await notifier.route_once(pool, now=clock.now(), settings=settings)  # queued
    await _run_now(client, headers, _task(notify, title="later"))
    assert await worker.run_once() == 1  # ended, not routed yet
    r = await client.put(
        f"/agents/{agent['agent_id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert r.status_code == 200, r.text
    await relay(pool, deliverer, clock, settings)
    assert receiver.requests == []
    # the queued delivery is given up; the outcome routed after the deactivation queues none
    rows = await pool.fetch("SELECT run_id::text, status, last_error FROM notifications")
    assert [r["run_id"] for r in rows] == [routed]
    assert rows[0]["status"] == "failed"
    assert rows[0]["last_error"].startswith("owner_inactive")
