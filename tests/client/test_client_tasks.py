"""The async client against the real API (ASGI): tasks, previews, validation, typed errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from samples import CRON_TASK

from ordinaut.client import (
    AsyncOrdinaut,
    AuthError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Task,
    ValidationError,
)


async def test_task_lifecycle_is_typed_end_to_end(sdk: AsyncOrdinaut) -> None:
    task = await sdk.create_task(CRON_TASK)
    assert isinstance(task, Task)
    assert task.status == "active"
    assert task.timezone == "Europe/Chisinau"
    # 2026-03-02 12:00Z is a Monday afternoon in Chisinau: next is Tuesday 08:00 (06:00Z).
    assert task.next_run_at == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert (await sdk.get_task(task.id)).title == "Morning briefing"

    preview = await sdk.preview_task(task.id, limit=3)
    assert [t.day for t in preview.fire_times] == [3, 4, 5]
    draft = await sdk.preview_schedule("cron", "0 8 * * 1-5", "Europe/Chisinau", limit=2)
    assert draft.fire_times == preview.fire_times[:2]

    patched = await sdk.patch_task(task.id, {"title": "Briefing"})
    assert patched.title == "Briefing"
    assert patched.schedule_expr == "0 8 * * 1-5"
    replaced = await sdk.update_task(task.id, {**CRON_TASK, "schedule_expr": "0 9 * * *"})
    assert replaced.title == "Morning briefing"
    assert replaced.schedule_expr == "0 9 * * *"

    assert (await sdk.pause_task(task.id)).status == "paused"
    assert (await sdk.resume_task(task.id)).status == "active"
    assert (await sdk.snooze_task(task.id, 600, reason="meeting")).snoozed_until is not None
    assert (await sdk.cancel_task(task.id)).status == "canceled"
    await sdk.delete_task(task.id)
    with pytest.raises(NotFoundError) as caught:
        await sdk.get_task(task.id)
    error = caught.value
    assert (error.status, error.code) == (404, "not_found")
    assert error.request_id
    assert error.request_id in str(error)


async def test_validation_errors_name_the_field(sdk: AsyncOrdinaut) -> None:
    with pytest.raises(ValidationError) as caught:
        await sdk.create_task({**CRON_TASK, "schedule_expr": "61 8 * * *"})
    assert caught.value.code == "invalid_schedule"
    assert [p["field"] for p in caught.value.problems] == ["schedule_expr"]
    assert "schedule_expr" in str(caught.value)

    with pytest.raises(ValidationError) as caught:
        await sdk.create_task({**CRON_TASK, "priority": 42})
    assert caught.value.problems[0]["field"].endswith("priority")

    ok = await sdk.validate_task(CRON_TASK, dry_run=True)
    assert ok.valid
    assert ok.next_run_at is not None
    assert ok.steps
    with pytest.raises(ValidationError) as caught:
        await sdk.validate_task(
            payload={"pipeline": [{"id": "x", "uses": "no.such.tool"}]},
        )
    assert any("uses" in p["field"] for p in caught.value.problems)
    with pytest.raises(ValidationError):
        await sdk.preview_schedule("cron", "not a cron")


async def test_idempotency_key_is_sent_and_replayed(sdk: AsyncOrdinaut) -> None:
    first = await sdk.create_task(CRON_TASK, idempotency_key="k-1")
    again = await sdk.create_task(CRON_TASK, idempotency_key="k-1")
    assert again.id == first.id
    with pytest.raises(ConflictError) as caught:
        await sdk.create_task({**CRON_TASK, "title": "other"}, idempotency_key="k-1")
    assert caught.value.status == 409
    # Without a key of the caller's, each call makes its own: two tasks.
    one, two = await sdk.create_task(CRON_TASK), await sdk.create_task(CRON_TASK)
    assert one.id != two.id


async def test_state_conflicts_and_scopes_are_typed(
    sdk: AsyncOrdinaut, app: Any, make_agent: Any
) -> None:
    task = await sdk.create_task(CRON_TASK)
    await sdk.pause_task(task.id)
    with pytest.raises(ConflictError) as caught:
        await sdk.pause_task(task.id)
    assert caught.value.code == "invalid_transition"
    assert caught.value.details["status"] == "paused"

    import httpx

    reader = await make_agent(["tasks:read"])
    transport = httpx.ASGITransport(app=app)
    async with AsyncOrdinaut("http://test", token=reader["token"], transport=transport) as ro:
        with pytest.raises(PermissionDeniedError) as denied:
            await ro.create_task(CRON_TASK)
        assert isinstance(denied.value, AuthError)
        assert denied.value.status == 403
        with pytest.raises(NotFoundError):  # another agent's task is invisible
            await ro.get_task(task.id)
    async with AsyncOrdinaut("http://test", transport=transport) as anonymous:
        with pytest.raises(AuthError) as unauth:
            await anonymous.list_tasks()
        assert unauth.value.status == 401


async def test_pagination_walks_every_page(sdk: AsyncOrdinaut) -> None:
    created = {(await sdk.create_task({**CRON_TASK, "title": f"t{i}"})).id for i in range(5)}
    page = await sdk.list_tasks(limit=2)
    assert (page.total, len(page.items), page.has_more) == (5, 2, True)
    assert {t.id async for t in sdk.iter_tasks(page_size=2)} == created
    await sdk.pause_task(next(iter(created)))
    assert len([t async for t in sdk.iter_tasks(status="paused", page_size=2)]) == 1


async def test_ids_cannot_escape_their_path_segment(sdk: AsyncOrdinaut) -> None:
    # "../agents" stays inside /tasks/ (percent-encoded): never another route.
    with pytest.raises(NotFoundError):
        await sdk.get_task("../agents")
    with pytest.raises(ValueError, match="an id must not be empty"):
        await sdk.get_task("")


async def test_tools_secrets_and_health(sdk: AsyncOrdinaut) -> None:
    tools = {t.name: t for t in await sdk.list_tools()}
    assert {"echo", "http.request", "wait"} <= set(tools)
    assert tools["wait"].input_schema["type"] == "object"
    functions = {f.name: f for f in await sdk.list_functions()}
    assert functions["upper"].example == "upper('Hello')"
    assert functions["upper"].result == "HELLO"
    assert {"format_time", "sort_by", "not_null"} <= set(functions)
    await sdk.put_secret("WEATHER_KEY", "s3cret")
    assert [s["name"] for s in await sdk.list_secrets()] == ["WEATHER_KEY"]
    await sdk.delete_secret("WEATHER_KEY")
    with pytest.raises(NotFoundError):
        await sdk.delete_secret("WEATHER_KEY")
    health = await sdk.health()
    assert health["components"]["database"]["status"] == "healthy"
    assert await sdk.ready()
