"""Task labels over HTTP: set on create, replaced by PATCH and PUT, returned everywhere a task
is, bounded (count, key, value), filtered with ``GET /tasks?label=key:value`` (repeatable, AND),
and never across tenants."""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import httpx
import pytest
from samples import CRON_TASK

RW = ["tasks:read", "tasks:write"]


def _task(title: str = "t", **labels: str) -> dict[str, Any]:
    body = copy.deepcopy(CRON_TASK)
    body["title"] = title
    if labels:
        body["labels"] = labels
    return body


async def _create(client: httpx.AsyncClient, agent: dict[str, Any], body: dict[str, Any]) -> Any:
    r = await client.post("/tasks", json=body, headers=agent["headers"])
    assert r.status_code == 201, r.text
    return r.json()


async def _titles(client: httpx.AsyncClient, agent: dict[str, Any], query: str) -> list[str]:
    r = await client.get(f"/tasks?{query}", headers=agent["headers"])
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"])
    return sorted(t["title"] for t in page["items"])


async def test_labels_are_stored_and_returned_everywhere(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(RW)
    task = await _create(client, agent, _task(user="ana", team="ops", note="a: b/c"))
    labels = {"user": "ana", "team": "ops", "note": "a: b/c"}
    assert task["labels"] == labels
    got = (await client.get(f"/tasks/{task['id']}", headers=agent["headers"])).json()
    assert got["labels"] == labels
    listed = (await client.get("/tasks", headers=agent["headers"])).json()["items"]
    assert listed[0]["labels"] == labels
    paused = await client.post(f"/tasks/{task['id']}/pause", headers=agent["headers"])
    assert paused.json()["labels"] == labels
    plain = await _create(client, agent, _task("plain"))
    assert plain["labels"] == {}  # a task without labels has an empty map, never null


async def test_patch_replaces_the_whole_map_and_put_resets_it(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(RW)
    task = await _create(client, agent, _task(user="ana", team="ops"))
    url = f"/tasks/{task['id']}"
    untouched = await client.patch(url, json={"title": "renamed"}, headers=agent["headers"])
    assert untouched.json()["labels"] == {"user": "ana", "team": "ops"}
    replaced = await client.patch(url, json={"labels": {"user": "bo"}}, headers=agent["headers"])
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["labels"] == {"user": "bo"}  # team is gone: the map is replaced
    null = await client.patch(url, json={"labels": None}, headers=agent["headers"])
    assert null.status_code == 422
    assert null.json()["error"]["details"][0]["field"] == "labels"
    cleared = await client.patch(url, json={"labels": {}}, headers=agent["headers"])
    assert cleared.json()["labels"] == {}
    put = await client.put(url, json=_task("again", env="prod"), headers=agent["headers"])
    assert put.json()["labels"] == {"env": "prod"}
    reset = await client.put(url, json=_task("again"), headers=agent["headers"])
    assert reset.json()["labels"] == {}  # PUT replaces every field, labels too
    audit = await client.get(
        f"/audit?subject_id={task['id']}&action=task.updated", headers=agent["headers"]
    )
    changed = [e["details"]["fields"] for e in audit.json()["items"]]
    assert ["labels"] in changed


BAD_LABELS = [
    ({f"k{i}": "v" for i in range(17)}, "labels"),  # 16 at most
    ({"User": "x"}, "labels.User"),  # lowercase keys
    ({"a" * 64: "x"}, "labels." + "a" * 64),  # keys up to 63 characters
    ({"": "x"}, "labels."),
    ({"-lead": "x"}, "labels.-lead"),  # starts with a letter or digit
    ({"a:b": "x"}, "labels.a:b"),  # ':' separates key from value in filters
    ({"a=b": "x"}, "labels.a=b"),  # '=' separates them on the command line
    ({"ok": "x" * 257}, "labels.ok"),  # values up to 256 characters
    ({"ok": "line\nbreak"}, "labels.ok"),  # no control characters
    ({"ok": 1}, "labels.ok"),  # strings only
    (["user", "ana"], "labels"),
]


@pytest.mark.parametrize(("labels", "field"), BAD_LABELS)
async def test_invalid_labels_are_422_naming_the_label(
    client: httpx.AsyncClient, make_agent: Any, labels: Any, field: str
) -> None:
    agent = await make_agent(RW)
    body = _task()
    body["labels"] = labels
    r = await client.post("/tasks", json=body, headers=agent["headers"])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert any(f == f"body.{field}" or f.startswith(f"body.{field}.") for f in fields), fields
    ok = await _create(client, agent, _task("ok"))
    patched = await client.patch(
        f"/tasks/{ok['id']}", json={"labels": labels}, headers=agent["headers"]
    )
    assert patched.status_code == 422, patched.text


async def test_the_largest_label_map_is_accepted(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(RW)
    labels = {f"{i:02d}" + "k" * 61: "é" * 256 for i in range(16)}
    task = await _create(client, agent, {**_task(), "labels": labels})
    assert task["labels"] == labels
    keys = "a/b.c_d-e9"
    task = await _create(client, agent, _task("chars", **{keys: ""}))
    assert task["labels"] == {keys: ""}


async def test_label_filters_are_anded(client: httpx.AsyncClient, make_agent: Any) -> None:
    agent = await make_agent(RW)
    await _create(client, agent, _task("ana-daily", user="ana", kind="daily"))
    await _create(client, agent, _task("ana-weekly", user="ana", kind="weekly"))
    await _create(client, agent, _task("bo-daily", user="bo", kind="daily"))
    await _create(client, agent, _task("none"))
    assert await _titles(client, agent, "label=user:ana") == ["ana-daily", "ana-weekly"]
    assert await _titles(client, agent, "label=kind:daily") == ["ana-daily", "bo-daily"]
    assert await _titles(client, agent, "label=user:ana&label=kind:daily") == ["ana-daily"]
    assert await _titles(client, agent, "label=user:ana&label=kind:monthly") == []
    # two values for one key: no task has both
    assert await _titles(client, agent, "label=user:ana&label=user:bo") == []
    # the same pair twice is the pair once
    assert await _titles(client, agent, "label=user:bo&label=user:bo") == ["bo-daily"]
    # a value is compared whole, never as a prefix or a pattern
    assert await _titles(client, agent, "label=user:an") == []
    assert await _titles(client, agent, "label=user:%25") == []
    # with the other filters
    assert await _titles(client, agent, "label=user:ana&search=weekly") == ["ana-weekly"]
    page = (await client.get("/tasks?label=kind:daily&limit=1", headers=agent["headers"])).json()
    assert page["total"] == 2
    assert page["has_more"] is True
    assert len(page["items"]) == 1


async def test_a_value_with_a_colon_and_an_empty_value_filter(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    agent = await make_agent(RW)
    await _create(client, agent, _task("url", src="https://example.test/a"))
    await _create(client, agent, _task("flag", pinned=""))
    assert await _titles(client, agent, "label=src:https://example.test/a") == ["url"]
    assert await _titles(client, agent, "label=pinned:") == ["flag"]


@pytest.mark.parametrize(
    "query",
    [
        "label=user",  # no ':'
        "label=:ana",  # no key
        "label=User:ana",  # not a valid key
        "label=" + "k" * 64 + ":v",
        "label=user:" + "x" * 257,
        "label=user:a%0Ab",  # a control character
        "&".join(f"label=k{i}:v" for i in range(17)),  # 16 filters at most
    ],
)
async def test_a_malformed_label_filter_is_422_naming_label(
    client: httpx.AsyncClient, make_agent: Any, query: str
) -> None:
    agent = await make_agent(RW)
    r = await client.get(f"/tasks?{query}", headers=agent["headers"])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] == "validation_error"
    assert {d["field"] for d in body["error"]["details"]} == {"query.label"}


async def test_one_agents_label_filter_never_shows_another_agents_tasks(
    client: httpx.AsyncClient, make_agent: Any, admin: dict[str, Any]
) -> None:
    a = await make_agent(RW, name="a")
    b = await make_agent(RW, name="b")
    mine = await _create(client, a, _task("a's", user="ana"))
    assert await _titles(client, b, "label=user:ana") == []
    assert await _titles(client, b, "") == []
    await _create(client, b, _task("b's", user="ana"))
    assert await _titles(client, b, "label=user:ana") == ["b's"]
    assert await _titles(client, a, "label=user:ana") == ["a's"]
    # b cannot read or relabel a's task by id
    r = await client.patch(
        f"/tasks/{mine['id']}", json={"labels": {"user": "bo"}}, headers=b["headers"]
    )
    assert r.status_code == 404
    # an admin reads both with owner=*, and only its own without it
    assert await _titles(client, admin, "label=user:ana&owner=*") == ["a's", "b's"]
    assert await _titles(client, admin, "label=user:ana") == []


async def test_the_database_keeps_labels_an_object_of_strings(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    agent = await make_agent(RW)
    task = await _create(client, agent, _task(user="ana"))
    for bad in ('{"a": 1}', '["a"]', '"a"', '{"a": null}'):
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "UPDATE tasks SET labels = $2::text::jsonb WHERE id = $1::uuid", task["id"], bad
            )
    async with pool.acquire() as conn, conn.transaction():
        # on a handful of rows the planner scans; without that choice, the GIN index serves @>
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT id FROM tasks WHERE labels @> $1::jsonb",
            {"user": "ana"},
        )
    assert "tasks_labels" in str(plan)


async def test_labels_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in ("TaskCreate", "TaskPatch", "TaskOut"):
        assert "labels" in schemas[name]["properties"], name
    params = doc["paths"]["/tasks"]["get"]["parameters"]
    label = next(p for p in params if p["name"] == "label")
    assert label["schema"]["anyOf"][0]["type"] == "array"
