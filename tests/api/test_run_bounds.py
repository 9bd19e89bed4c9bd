"""A task's run bound through the API: ``max_duration_s``, else the pipeline's worst case,
checked against the deployment's ORDINAUT_MAX_RUN_DURATION_S when the task is written."""

from __future__ import annotations

from typing import Any

import httpx

NAP = {"id": "nap", "uses": "wait", "with": {"seconds": 1}, "timeout_seconds": 300}
TASK = {
    "title": "bounded",
    "schedule_kind": "cron",
    "schedule_expr": "0 * * * *",
    "payload": {"pipeline": [NAP]},
}


def fields(body: dict[str, Any]) -> list[str]:
    return [d.get("field") for d in body["error"]["details"]]


async def test_bounds_are_checked_when_a_task_is_written(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    h = (await make_agent(["tasks:read", "tasks:write"]))["headers"]
    ok = await client.post("/tasks", json=TASK, headers=h)
    assert ok.status_code == 201, ok.text
    assert ok.json()["max_duration_s"] is None

    # four 300 s steps: 1,201 s at worst, over the default 900 s
    long = {**TASK, "payload": {"pipeline": [{**NAP, "id": f"n{i}"} for i in range(4)]}}
    refused = await client.post("/tasks", json=long, headers=h)
    assert refused.status_code == 422
    body = refused.json()
    assert body["request_id"]
    assert fields(body) == ["payload.pipeline"]
    assert "max_duration_s" in body["error"]["details"][0]["message"]

    # ... unless the task bounds itself
    bounded = await client.post("/tasks", json={**long, "max_duration_s": 600}, headers=h)
    assert bounded.status_code == 201, bounded.text
    assert bounded.json()["max_duration_s"] == 600

    over = await client.post("/tasks", json={**TASK, "max_duration_s": 901}, headers=h)
    assert over.status_code == 422
    assert fields(over.json()) == ["max_duration_s"]
    for bad in (0, -1, "long"):
        r = await client.post("/tasks", json={**TASK, "max_duration_s": bad}, headers=h)
        assert r.status_code == 422, bad

    # a PATCH that clears the bound brings the worst case back: refused for the long pipeline
    task_id = bounded.json()["id"]
    cleared = await client.patch(f"/tasks/{task_id}", json={"max_duration_s": None}, headers=h)
    assert cleared.status_code == 422
    assert fields(cleared.json()) == ["payload.pipeline"]
    shorter = await client.patch(f"/tasks/{task_id}", json={"max_duration_s": 30}, headers=h)
    assert shorter.status_code == 200
    assert shorter.json()["max_duration_s"] == 30
