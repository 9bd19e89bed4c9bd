"""foreach through the API and the worker: a task written with a foreach step runs once per
item, several at once, and its run shows the items' outputs in item order; a bad foreach is
a 422 naming the field; a dry run renders each item."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx
import pytest

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker

SCOPES = ["tasks:read", "tasks:write", "runs:read"]


def _task(pipeline: list[dict[str, Any]], params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "title": "foreach",
        "schedule_kind": "event",
        "schedule_expr": "never.published",
        "payload": {"params": params, "pipeline": pipeline},
        "max_retries": 0,
        **extra,
    }


@pytest.fixture
def worker(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Worker:
    return Worker(pool, settings, clock, worker_id="foreach", rng=random.Random(0))


async def _run(
    client: httpx.AsyncClient, headers: dict[str, str], worker: Worker, body: dict[str, Any]
) -> dict[str, Any]:
    created = await client.post("/tasks", json=body, headers=headers)
    assert created.status_code == 201, created.text
    queued = await client.post(f"/tasks/{created.json()['id']}/run_now", headers=headers)
    assert queued.status_code == 202, queued.text
    assert await worker.run_once() == 1
    run = await client.get(f"/runs/{queued.json()['run_id']}", headers=headers)
    assert run.status_code == 200
    return dict(run.json())


async def test_a_foreach_task_runs_each_item_concurrently_and_records_them_in_order(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    # the first item waits longest, so with three at once the items end in another order
    pipeline = [
        {
            "id": "pause",
            "uses": "wait",
            "foreach": "${params.delays}",
            "max_concurrency": 3,
            "timeout_seconds": 5,
            "with": {"seconds": "${item}"},
        },
        {
            "id": "label",
            "uses": "transform",
            "foreach": "${steps.pause.output}",
            "with": {"value": "${index}:${params.cities[0]}:${item.waited}"},
        },
    ]
    params = {"delays": [0.06, 0.0, 0.03, 0.01], "cities": ["Oslo"]}
    created = await client.post("/tasks", json=_task(pipeline, params), headers=headers)
    assert created.status_code == 201, created.text
    stored = created.json()["payload"]["pipeline"]
    assert (stored[0]["foreach"], stored[0]["max_concurrency"]) == ("${params.delays}", 3)
    assert stored[1]["max_concurrency"] == 1

    run = await _run(client, headers, worker, _task(pipeline, params))
    assert run["status"] == "succeeded", run["error"]
    pause, label = run["step_results"]
    assert pause["output"] == [{"waited": d} for d in params["delays"]]
    assert [item["index"] for item in pause["items"]] == [0, 1, 2, 3]
    assert all(item["status"] == "succeeded" for item in pause["items"])
    assert pause["items"][2]["input"] == {"seconds": 0.03}
    assert label["output"] == ["0:Oslo:0.06", "1:Oslo:0.0", "2:Oslo:0.03", "3:Oslo:0.01"]
    assert run["output"] == label["output"]


async def test_continue_on_error_keeps_the_other_items_and_the_run(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    pipeline = [
        {
            "id": "invert",
            "uses": "transform",
            "foreach": "${params.numbers}",
            "max_concurrency": 2,
            "continue_on_error": True,
            "with": {"expr": "divide(`1`, @)", "input": "${item}"},
        },
        {"id": "after", "uses": "echo", "with": {"status": "${steps.invert.status}"}},
    ]
    run = await _run(client, headers, worker, _task(pipeline, {"numbers": [2, 0, 4]}))
    assert run["status"] == "succeeded"
    invert, after = run["step_results"]
    assert invert["status"] == "failed"
    assert invert["output"][0] == 0.5
    assert invert["output"][2] == 0.25
    assert invert["output"][1]["error"]["message"] == "expr: divide(): division by zero"
    assert invert["error"]["message"].startswith("item 1: ")
    assert after["output"] == {"status": "failed"}


@pytest.mark.parametrize(
    ("step", "field", "limit"),
    [
        ({"foreach": "${params.l}", "max_concurrency": 11}, "max_concurrency", True),
        ({"foreach": "params.l"}, "foreach", False),
        ({"max_concurrency": 2}, "max_concurrency", False),
        ({"with": {"v": "${item}"}}, "with.v", False),
    ],
)
async def test_a_bad_foreach_is_refused_naming_the_field(
    client: httpx.AsyncClient, make_agent: Any, step: dict[str, Any], field: str, limit: bool
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    body = _task([{"id": "s", "uses": "echo", **step}], {"l": [1]})
    response = await client.post("/tasks", json=body, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_pipeline"
    detail = next(d for d in error["details"] if d["field"] == f"payload.pipeline[0].{field}")
    assert detail["step"] == "s"
    if limit:
        assert detail["limit"] == "max_foreach_concurrency"


async def test_a_foreach_whose_worst_case_exceeds_the_run_bound_is_refused(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    # 100 items (ORDINAUT_MAX_FOREACH_ITEMS) one at a time at wait's 300 s timeout
    step = {"id": "s", "uses": "wait", "foreach": "${params.l}", "with": {"seconds": 1}}
    response = await client.post("/tasks", json=_task([step], {"l": [1]}), headers=headers)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["limit"] == "max_run_duration_s"
    assert "ceil(max_foreach_items / max_concurrency)" in detail["message"]
    # an explicit bound is the answer the message gives
    bounded = _task([step], {"l": [1]}, max_duration_s=60)
    assert (await client.post("/tasks", json=bounded, headers=headers)).status_code == 201


async def test_a_dry_run_shows_each_items_input(client: httpx.AsyncClient, make_agent: Any) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    payload = {
        "params": {"cities": ["Oslo", "Lima"]},
        "pipeline": [
            {
                "id": "say",
                "uses": "echo",
                "foreach": "${params.cities}",
                "with": {"text": "${index}. ${item}"},
            }
        ],
    }
    response = await client.post(
        "/tasks/validate", json={"payload": payload, "dry_run": True}, headers=headers
    )
    assert response.status_code == 200, response.text
    (step,) = response.json()["steps"]
    assert step["foreach"] == ["Oslo", "Lima"]
    assert [item["input"] for item in step["items"]] == [{"text": "0. Oslo"}, {"text": "1. Lima"}]


async def test_the_run_bound_stops_a_foreach_and_its_items_in_flight(
    client: httpx.AsyncClient, make_agent: Any, worker: Worker
) -> None:
    headers = (await make_agent(SCOPES))["headers"]
    step = {
        "id": "slow",
        "uses": "wait",
        "foreach": "${params.delays}",
        "max_concurrency": 2,
        "timeout_seconds": 120,
        "with": {"seconds": "${item}"},
    }
    body = _task([step], {"delays": [60, 60, 60]}, max_duration_s=0.2)
    run = await _run(client, headers, worker, body)
    assert run["status"] == "dead_letter"  # max_retries 0
    assert run["error"]["code"] == "run_timeout"
    assert "bound of 0.2 s" in run["error"]["message"]
