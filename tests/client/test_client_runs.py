"""Runs and events through the async client; the in-process worker runs what is queued."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from samples import CRON_TASK, FAILING_PAYLOAD

from ordinaut.client import AsyncOrdinaut, ConflictError, NotFoundError, Run

Worker = Callable[[], Awaitable[int]]


async def test_runs_history_step_results_retry_and_cancel(
    sdk: AsyncOrdinaut, run_worker: Worker
) -> None:
    ok = await sdk.create_task(CRON_TASK)
    bad = await sdk.create_task({**CRON_TASK, "payload": FAILING_PAYLOAD, "max_retries": 0})
    with pytest.raises(NotFoundError):
        await sdk.latest_run(ok.id)  # no runs yet
    queued = await sdk.run_task_now(ok.id)
    assert queued.task_id == ok.id
    await sdk.run_task_now(bad.id)
    assert await run_worker() == 2

    seen: list[str] = []
    run = await sdk.wait_for_run(queued.run_id, on_update=lambda r: seen.append(r.status))
    assert isinstance(run, Run)
    assert run.finished
    assert seen == ["succeeded"]
    assert run.trigger == "run_now"
    assert run.step_results is not None
    assert run.step_results[0]["output"] == {"text": "weather in Chisinau"}
    assert (await sdk.latest_run(ok.id)).id == run.id

    failed = await sdk.list_runs(success=False)
    assert [r.task_id for r in failed.items] == [bad.id]
    assert [r.id async for r in sdk.iter_runs(task_id=ok.id, page_size=1)] == [run.id]
    stats = await sdk.task_run_stats(ok.id)
    assert stats["succeeded"] == 1
    assert (await sdk.runs_summary())["runs"]["total"] == 2

    retried = await sdk.retry_run(failed.items[0].id)
    assert (retried.status, retried.attempt) == ("queued", 2)
    with pytest.raises(ConflictError):
        await sdk.retry_run(run.id)  # a success cannot be retried
    assert (await sdk.cancel_run(retried.id)).status == "canceled"


async def test_wait_for_run_gives_up_after_max_wait(sdk: AsyncOrdinaut) -> None:
    task = await sdk.create_task(CRON_TASK)
    queued = await sdk.run_task_now(task.id)  # no worker: it stays queued
    with pytest.raises(TimeoutError, match="queued"):
        await sdk.wait_for_run(queued.run_id, max_wait=0.2, poll_interval=0.05)


async def test_events_publish_once_per_id_and_feed_event_tasks(
    sdk: AsyncOrdinaut, run_worker: Worker
) -> None:
    listener = await sdk.create_task(
        {
            "title": "on order",
            "schedule_kind": "event",
            "schedule_expr": "orders.*",
            "payload": {
                "pipeline": [{"id": "a", "uses": "echo", "with": {"id": "${event.payload.id}"}}]
            },
        }
    )
    assert [t["topic"] for t in await sdk.event_topics()] == ["orders.*"]
    accepted = await sdk.publish_event("orders.created", {"id": 7}, event_id="evt-1")
    assert (accepted.event_id, accepted.runs_queued, accepted.duplicate) == ("evt-1", 1, False)
    again = await sdk.publish_event("orders.created", {"id": 7}, event_id="evt-1")
    assert again.duplicate
    assert again.runs_queued == 0
    generated = await sdk.publish_event("other.topic")
    assert generated.event_id
    assert generated.tasks_matched == 0
    recent = await sdk.recent_events(topic="orders.created")
    assert [e["event_id"] for e in recent] == ["evt-1"]

    assert await run_worker() == 1
    run = (await sdk.list_runs(task_id=listener.id)).items[0]
    assert run.trigger == "event"
    assert run.event_id == "evt-1"
    assert run.output == {"id": 7}
