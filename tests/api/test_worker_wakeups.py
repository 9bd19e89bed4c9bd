"""Lambda workers are woken (a message on ORDINAUT_WORK_QUEUE_URL) when a request queues work
due now, after the commit; SQS trouble never fails the request. SQS is moto's."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from moto import mock_aws

from ordinaut import cloud, metrics
from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick

AgentFactory = Callable[..., Awaitable[dict[str, Any]]]
BASE_URL = "http://test"
ECHO = {"pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "hi"}}]}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    cloud.reset()
    with mock_aws():
        yield boto3.client("sqs", region_name="eu-west-1")
    cloud.reset()


async def woken_client(
    settings: Settings, pool: asyncpg.Pool, clock: FrozenClock, queue_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.replace(work_queue_url=queue_url), clock=clock, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http
    await app.state.deps.close()


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        out.extend(json.loads(m["Body"]) for m in batch)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def failed_wakeups() -> float:
    return (
        metrics.REGISTRY.get_sample_value("ordinaut_worker_wakeups_total", {"result": "failed"})
        or 0.0
    )


async def test_run_now_retry_and_events_wake_a_worker(
    sqs: Any,
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    make_agent: AgentFactory,
) -> None:
    url = sqs.create_queue(QueueName="ordinaut-work")["QueueUrl"]
    agent = await make_agent(["tasks:read", "tasks:write", "runs:read", "events:publish"])
    h = agent["headers"]
    async for client in woken_client(settings, pool, clock, url):
        task = {
            "title": "t",
            "schedule_kind": "cron",
            "schedule_expr": "0 0 1 1 *",
            "payload": ECHO,
        }
        created = await client.post("/tasks", json=task, headers=h)
        assert created.status_code == 201
        assert drain_queue(sqs, url) == []  # nothing due now: nobody to wake
        ran = await client.post(f"/tasks/{created.json()['id']}/run_now", headers=h)
        assert ran.status_code == 202
        (message,) = drain_queue(sqs, url)
        assert message["source"] == "ordinaut.api"
        await client.post(
            "/tasks",
            json={**task, "schedule_kind": "event", "schedule_expr": "orders.*"},
            headers=h,
        )
        event = await client.post("/events", json={"topic": "orders.new"}, headers=h)
        assert event.status_code == 202
        assert event.json()["runs_queued"] == 1
        assert len(drain_queue(sqs, url)) == 1
        unmatched = await client.post("/events", json={"topic": "nobody.cares"}, headers=h)
        assert unmatched.json()["runs_queued"] == 0
        assert drain_queue(sqs, url) == []


async def test_a_one_shot_due_now_is_queued_at_once_and_wakes_a_worker(
    sqs: Any,
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    make_agent: AgentFactory,
) -> None:
    """On Lambda the tick comes once a minute: a task created due now gets its slot at once."""
    url = sqs.create_queue(QueueName="ordinaut-work")["QueueUrl"]
    agent = await make_agent(["tasks:read", "tasks:write"])
    task = {
        "title": "now",
        "schedule_kind": "once",
        "schedule_expr": clock.now().isoformat(),
        "payload": ECHO,
    }
    async for client in woken_client(settings, pool, clock, url):
        created = await client.post("/tasks", json=task, headers=agent["headers"])
        assert created.status_code == 201, created.text
        later = await client.post(
            "/tasks",
            json={**task, "schedule_expr": (clock.now() + timedelta(hours=1)).isoformat()},
            headers=agent["headers"],
        )
        assert later.status_code == 201
    due = await pool.fetch(
        "SELECT w.run_at, r.trigger FROM due_work w JOIN runs r ON r.id = w.run_id "
        "WHERE w.task_id = $1::uuid",
        created.json()["id"],
    )
    assert [(d["run_at"], d["trigger"]) for d in due] == [(clock.now(), "schedule")]
    (message,) = drain_queue(sqs, url)  # the task due in an hour waits for its tick
    assert message["source"] == "ordinaut.api"
    # the tick that follows plans nothing twice
    assert (await tick(pool, settings, clock)).materialized == 0


async def test_sqs_failure_never_fails_the_request(
    sqs: Any,
    settings: Settings,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    make_agent: AgentFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = "https://sqs.eu-west-1.amazonaws.com/123456789012/no-such-queue"
    agent = await make_agent(["tasks:read", "tasks:write"])
    before = failed_wakeups()
    async for client in woken_client(settings, pool, clock, missing):
        created = await client.post(
            "/tasks",
            json={
                "title": "t",
                "schedule_kind": "cron",
                "schedule_expr": "0 0 1 1 *",
                "payload": ECHO,
            },
            headers=agent["headers"],
        )
        ran = await client.post(f"/tasks/{created.json()['id']}/run_now", headers=agent["headers"])
    assert ran.status_code == 202
    queued = await pool.fetchval(
        "SELECT count(*) FROM due_work WHERE run_id = $1::uuid", ran.json()["run_id"]
    )
    assert queued == 1  # the run is there: only its wake-up is missing (the tick wakes one)
    assert failed_wakeups() == before + 1
    assert any(r.getMessage() == "worker wake-up not sent" for r in caplog.records)


async def test_wakeups_are_coalesced_and_never_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls during a send share the next one; a call is covered only by a send that started
    after it (so the worker it wakes sees its committed work)."""
    sends: list[int] = []
    gate = threading.Event()

    def slow_send(queue_url: str, count: int, **_: Any) -> int:
        sends.append(count)
        gate.wait(5)
        return count

    monkeypatch.setattr(cloud, "send_wakeups", slow_send)
    waker = cloud.Waker("https://sqs.example.invalid/q", source="test")
    first = asyncio.create_task(waker.wake())
    while not sends:  # the first send is in flight
        await asyncio.sleep(0.01)
    later = [asyncio.create_task(waker.wake()) for _ in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await first is True
    assert all(await asyncio.gather(*later))
    # one send for the first call, one shared by the five that came during it
    assert len(sends) == 2
    assert await waker.wake() is True
    assert len(sends) == 3  # a call after both sends started needs a send of its own
