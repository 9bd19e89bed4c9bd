"""Task labels through the Python client, async and sync: set, read, replaced, filtered (AND)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from samples import CRON_TASK

from ordinaut.client import AsyncOrdinaut, Ordinaut, ValidationError


async def test_async_client_labels(sdk: AsyncOrdinaut) -> None:
    ana = await sdk.create_task({**CRON_TASK, "title": "ana", "labels": {"user": "ana"}})
    both = await sdk.create_task(
        {**CRON_TASK, "title": "both", "labels": {"user": "ana", "kind": "daily"}}
    )
    await sdk.create_task({**CRON_TASK, "title": "none"})
    assert ana.labels == {"user": "ana"}
    assert (await sdk.get_task(both.id)).labels == {"user": "ana", "kind": "daily"}

    page = await sdk.list_tasks(labels={"user": "ana"})
    assert sorted(t.title for t in page.items) == ["ana", "both"]
    assert page.total == 2
    anded = await sdk.list_tasks(labels={"user": "ana", "kind": "daily"})
    assert [t.title for t in anded.items] == ["both"]
    walked = [t.title async for t in sdk.iter_tasks(labels={"kind": "daily"}, page_size=1)]
    assert walked == ["both"]

    patched = await sdk.patch_task(ana.id, {"labels": {"user": "bo"}})
    assert patched.labels == {"user": "bo"}
    assert [t.title for t in (await sdk.list_tasks(labels={"user": "bo"})).items] == ["ana"]
    with pytest.raises(ValidationError) as caught:
        await sdk.patch_task(ana.id, {"labels": {"Bad Key": "x"}})
    assert caught.value.status == 422


async def test_sync_client_labels(live_url: str, agent: dict[str, Any]) -> None:
    def scenario() -> None:
        with Ordinaut(live_url, agent_id=agent["agent_id"], agent_secret=agent["secret"]) as client:
            task = client.create_task({**CRON_TASK, "labels": {"user": "ana", "team": "ops"}})
            client.create_task({**CRON_TASK, "title": "other", "labels": {"user": "ana"}})
            assert task.labels == {"user": "ana", "team": "ops"}
            page = client.list_tasks(labels={"user": "ana", "team": "ops"})
            assert [t.id for t in page.items] == [task.id]
            walked = client.iter_tasks(labels={"user": "ana"}, page_size=1)
            assert len(list(walked)) == 2
            assert client.update_task(task.id, CRON_TASK).labels == {}  # PUT resets them

    await asyncio.to_thread(scenario)
