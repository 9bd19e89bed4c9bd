"""Property: an arbitrary JSON task body is either refused with a 4xx naming the problem or
stored exactly as sent (POST, then GET, give back the same values); never a 5xx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WRITE = ["tasks:read", "tasks:write"]
EXAMPLES = 200

# Any JSON: every value JSON can carry, including numbers no double can hold exactly and
# every character a JSON string may contain (NUL and lone surrogates included, as the
# escapes a client may send).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
titles = st.text(min_size=0, max_size=210)


def _body(title: str, description: str, params: dict[str, Any], args: Any) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "schedule_kind": "event",
        "schedule_expr": "orders.created",
        "payload": {
            "params": params,
            "pipeline": [{"id": "say", "uses": "echo", "with": {"value": args}}],
        },
    }


def same(sent: Any, stored: Any) -> bool:
    """Equal and of the same JSON type all the way down: a float stays a float (1.5e16 is not
    read back as the integer 15000000000000000), an integer an integer, true is not 1."""
    if type(sent) is not type(stored):
        return False
    if isinstance(sent, dict):
        return sent.keys() == stored.keys() and all(same(sent[k], stored[k]) for k in sent)
    if isinstance(sent, list):
        return len(sent) == len(stored) and all(map(same, sent, stored))
    return bool(sent == stored)


def _raw(body: dict[str, Any]) -> bytes:
    # ensure_ascii keeps lone surrogates as \\udXXX escapes: what a client would send
    return json.dumps(body, ensure_ascii=True).encode()


async def _check(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    r = await client.post(
        "/tasks", content=_raw(body), headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code < 500, r.text
    if r.status_code != 201:
        assert 400 <= r.status_code < 500
        error = r.json()["error"]
        assert error["code"]
        assert error["message"]
        return
    created = r.json()
    got = await client.get(f"/tasks/{created['id']}", headers=headers)
    assert got.status_code == 200
    for stored in (created, got.json()):
        assert stored["title"] == body["title"]
        assert stored["description"] == body["description"]
        assert same(body["payload"]["params"], stored["payload"]["params"])
        assert same(
            body["payload"]["pipeline"][0]["with"], stored["payload"]["pipeline"][0]["with"]
        )
    assert await client.delete(f"/tasks/{created['id']}", headers=headers) is not None


async def test_any_json_task_body_is_stored_as_sent_or_refused_never_a_5xx(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    headers = (await make_agent(WRITE))["headers"]
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        title=titles,
        description=st.text(max_size=50),
        params=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
        args=json_values,
    )
    def prop(title: str, description: str, params: dict[str, Any], args: Any) -> None:
        body = _body(title, description, params, args)
        asyncio.run_coroutine_threadsafe(_check(client, headers, body), loop).result()

    await asyncio.to_thread(prop)
