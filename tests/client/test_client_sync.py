"""The sync client over a real loopback socket, and its parity with the async client.

(The async client against a real `ordinaut api` process: tests/mcp/test_mcp_tools.py, which
shares that process with the stdio MCP server to keep the suite fast.)"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from samples import CRON_TASK

from ordinaut.client import (
    AsyncOrdinaut,
    ConflictError,
    NotFoundError,
    Ordinaut,
    ValidationError,
)


def test_sync_client_has_every_async_method_with_the_same_parameters() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(fn)
            for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    sync, aio = public(Ordinaut), public(AsyncOrdinaut)
    assert set(sync) - {"close"} == set(aio) - {"aclose"}
    for name, signature in aio.items():
        if name != "aclose":
            assert list(sync[name].parameters) == list(signature.parameters), name


async def test_sync_client_over_a_socket(live_url: str, agent: dict[str, Any]) -> None:
    def scenario() -> None:
        with Ordinaut(live_url, agent_id=agent["agent_id"], agent_secret=agent["secret"]) as client:
            task = client.create_task(CRON_TASK)
            assert client.get_task(task.id).status == "active"
            assert [t.id for t in client.iter_tasks(page_size=1)] == [task.id]
            assert len(client.preview_task(task.id, limit=2).fire_times) == 2
            assert client.pause_task(task.id).status == "paused"
            with pytest.raises(ConflictError):
                client.pause_task(task.id)
            with pytest.raises(ValidationError):
                client.preview_schedule("cron", "0 25 * * *")
            client.delete_task(task.id)
            with pytest.raises(NotFoundError):
                client.get_task(task.id)

    await asyncio.to_thread(scenario)
