"""Bad input as a new user sends it: a 422 naming the field, never a changed value, never a 500.

Non-finite and overflowing numbers, NUL and lone surrogates (bodies, query strings, path
parameters), static non-HTTP URLs in ``http.request`` steps, time zones that are not places and
event payloads that are not objects; previews honour ``from``; a DTSTART nobody wrote is the
minute of creation.
"""

from __future__ import annotations

import codecs
import importlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.routing import APIRoute
from samples import CRON_TASK

from ordinaut.api.app import ROUTE_MODULES, ROUTES_PACKAGE
from ordinaut.api.strict import JSONRoute, UnstorableJSON, loads
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.store import agents

ALL_SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
HOLE = "__HOLE__"


@pytest.fixture
async def h(make_agent: Any) -> dict[str, str]:
    agent = await make_agent(ALL_SCOPES)
    headers: dict[str, str] = agent["headers"]
    return headers


def with_hole(doc: Any, literal: str) -> bytes:
    """``doc`` as JSON text with the string ``HOLE`` replaced by raw JSON ``literal``."""
    text = json.dumps(doc)
    assert text.count(f'"{HOLE}"') == 1
    return text.replace(f'"{HOLE}"', literal).encode()


def task_with(params: Any = None, args: Any = None, **fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"id": "say", "uses": "echo", "with": args or {"text": "hi"}}
    return {
        **CRON_TASK,
        "payload": {"params": params or {}, "pipeline": [step]},
        **fields,
    }


def fields_of(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "request_id"}, body
    return [d["field"] for d in body["error"]["details"]]


async def headers_at(make_agent: Any, clock: FrozenClock, at: datetime) -> dict[str, str]:
    """Move the clock, then a fresh agent (tokens are issued at the clock's time)."""
    clock.set(at)
    agent = await make_agent(ALL_SCOPES)
    headers: dict[str, str] = agent["headers"]
    return headers


async def send(
    client: httpx.AsyncClient, method: str, url: str, content: bytes, h: dict[str, str]
) -> httpx.Response:
    headers = {**h, "content-type": "application/json"}
    return await client.request(method, url, content=content, headers=headers)


# --- numbers JSON cannot carry -------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999999", "-1e999999", "2.5E+400"]


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_non_finite_and_overflowing_numbers_are_422_naming_the_field(
    client: httpx.AsyncClient, h: dict[str, str], pool: asyncpg.Pool, literal: str
) -> None:
    existing = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/tasks", task_with(params={"x": HOLE}), "body.payload.params.x"),
        ("POST", "/tasks", task_with(params={"xs": [1, HOLE]}), "body.payload.params.xs.1"),
        (
            "POST",
            "/tasks",
            task_with(args={"n": {"deep": HOLE}}),
            "body.payload.pipeline.0.with.n.deep",
        ),
        ("POST", "/tasks", {**CRON_TASK, "priority": HOLE}, "body.priority"),
        (
            "POST",
            "/tasks/validate",
            {"payload": task_with(params={"x": HOLE})["payload"]},
            "body.payload.params.x",
        ),
        (
            "PATCH",
            f"/tasks/{existing['id']}",
            {"payload": task_with(params={"x": HOLE})["payload"]},
            "body.payload.params.x",
        ),
        (
            "PUT",
            f"/tasks/{existing['id']}",
            task_with(params={"x": HOLE}),
            "body.payload.params.x",
        ),
        ("POST", "/events", {"topic": "t", "payload": {"v": HOLE}}, "body.payload.v"),
        (
            "POST",
            "/schedules/preview",
            {"schedule_kind": "cron", "schedule_expr": "0 8 * * *", "limit": HOLE},
            "body.limit",
        ),
    ]
    for method, url, doc, field in cases:
        r = await send(client, method, url, with_hole(doc, literal), h)
        assert fields_of(r) == [field], (method, url, r.text)
    # Nothing was stored or changed.
    tasks = (await client.get("/tasks", headers=h)).json()
    assert tasks["total"] == 1
    assert unlisted(tasks["items"][0]) == existing
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_numbers_json_can_carry_are_stored_exactly(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    params = {
        "big": 1.7976931348623157e308,
        "tiny": 5e-324,
        "u64": 2**64 - 1,
        "i64": -(2**63),
        "words": "NaN Infinity -Infinity 1e999999 123456789012345678901234567890 e+16",
        "NaN": [0.1, -2.5e-10],
        # Floats JSON writers give an exponent, which jsonb's numeric drops: they must not
        # come back as integers (59649146377387550 is not the float sent).
        "exp": [1e16, 5.964914637738755e16, -2.5e20, 1e300],
        "int": 59649146377387550,
    }
    r = await client.post("/tasks", json=task_with(params=params), headers=h)
    assert r.status_code == 201, r.text
    got = (await client.get(f"/tasks/{r.json()['id']}", headers=h)).json()
    assert got["payload"]["params"] == params
    assert [type(x) for x in got["payload"]["params"]["exp"]] == [float] * 4
    assert type(got["payload"]["params"]["int"]) is int
    event = {"topic": "t", "payload": {"u64": 2**64 - 1, "f": 1.5, "e": 5.964914637738755e16}}
    assert (await client.post("/events", json=event, headers=h)).status_code == 202
    recent = (await client.get("/events/stream/recent", headers=h)).json()["items"]
    assert recent[0]["payload"] == event["payload"]


@pytest.mark.parametrize("literal", [str(2**64), str(-(2**63) - 1), "1" + "0" * 400])
async def test_integers_beyond_64_bits_are_422_not_rounded(
    client: httpx.AsyncClient, h: dict[str, str], literal: str
) -> None:
    r = await send(client, "POST", "/tasks", with_hole(task_with(params={"n": HOLE}), literal), h)
    assert fields_of(r) == ["body.payload.params.n"]
    assert (await client.get("/tasks", headers=h)).json()["total"] == 0


# --- characters PostgreSQL cannot store ----------------------------------------------------

BAD_CHARS = {"nul": "\\u0000", "high": "\\ud800", "low": "\\udfff", "reversed": "\\udc00\\ud800"}


@pytest.mark.parametrize("char", BAD_CHARS.values(), ids=BAD_CHARS.keys())
async def test_nul_and_lone_surrogates_in_body_strings_are_422_naming_the_field(
    client: httpx.AsyncClient,
    h: dict[str, str],
    admin: dict[str, Any],
    pool: asyncpg.Pool,
    char: str,
) -> None:
    existing = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    value = f'"a{char}b"'
    key_label = f"a{char}b"  # shown escaped, as JSON would write it
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/agents", {"name": HOLE, "scopes": []}, "body.name"),
        ("POST", "/tasks", {**CRON_TASK, "title": HOLE}, "body.title"),
        ("POST", "/tasks", {**CRON_TASK, "description": HOLE}, "body.description"),
        ("POST", "/tasks", task_with(params={"x": HOLE}), "body.payload.params.x"),
        ("POST", "/tasks", task_with(args={"text": HOLE}), "body.payload.pipeline.0.with.text"),
        (
            "PATCH",
            f"/tasks/{existing['id']}",
            {"title": HOLE},
            "body.title",
        ),
        ("POST", "/events", {"topic": "t", "payload": {"v": [HOLE]}}, "body.payload.v.0"),
        ("POST", "/events", {"topic": "t", "payload": {}, "event_id": HOLE}, "body.event_id"),
    ]
    for method, url, doc, field in cases:
        headers = admin["headers"] if url == "/agents" else h
        r = await send(client, method, url, with_hole(doc, value), headers)
        assert fields_of(r) == [field], (method, url, r.text)
    # Object keys: the field names the key, escaped so the answer is valid JSON.
    doc = task_with(params={"k": 1})
    text = json.dumps(doc).replace('"k"', value)
    r = await send(client, "POST", "/tasks", text.encode(), h)
    assert fields_of(r) == [f"body.payload.params.{key_label}"]
    text = json.dumps({"topic": "t", "payload": {"k": 1}}).replace('"k"', value)
    r = await send(client, "POST", "/events", text.encode(), h)
    assert fields_of(r) == [f"body.payload.{key_label}"]
    tasks = (await client.get("/tasks", headers=h)).json()
    assert tasks["total"] == 1
    assert unlisted(tasks["items"][0]) == existing
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    text = json.dumps(task_with(params={"emoji": "x"})).replace('"x"', '"\\ud83d\\ude00"')
    text = text.replace('"Morning briefing"', '"not a NUL: \\\\u0000"')
    r = await send(client, "POST", "/tasks", text.encode(), h)
    assert r.status_code == 201, r.text
    assert r.json()["payload"]["params"] == {"emoji": "\U0001f600"}
    assert r.json()["title"] == "not a NUL: \\u0000"


async def test_nul_in_query_strings_path_parameters_and_headers_is_422(
    client: httpx.AsyncClient, h: dict[str, str], make_agent: Any
) -> None:
    admin = (await make_agent(["admin"]))["headers"]
    cases = [
        ("GET", "/events/stream/recent?topic=a%00b", h, "query.topic"),
        ("GET", "/tasks?limit=%00", h, "query.limit"),
        ("GET", "/tasks?offset=1%00", h, "query.offset"),
        ("GET", "/runs?status=%00&limit=5", h, "query.status"),
        ("GET", "/events/shared-topics?offset=%00", h, "query.offset"),
        ("GET", "/tasks?unknown=%00", h, "query.unknown"),
        ("GET", f"/tasks/{uuid.uuid4()}%00", h, "path.task_id"),
        ("DELETE", "/events/shared-topics/a%00b", admin, "path.pattern"),
        ("PUT", "/secrets/a%00b", h, "path.name"),
        ("DELETE", "/secrets/a%00b", h, "path.name"),
    ]
    for method, url, headers, field in cases:
        body = {"value": "s"} if method == "PUT" else None
        r = await client.request(method, url, headers=headers, json=body)
        assert fields_of(r)[:1] == [field], (method, url, r.text)
    # Header values (real HTTP servers refuse NUL in them; ASGI and Lambda events may not).
    nul_key = {**h, "Idempotency-Key": "a\x00b"}
    r = await client.post("/tasks", json=CRON_TASK, headers=nul_key)
    assert fields_of(r) == ["header.idempotency-key"]
    assert (await client.get("/tasks", headers=h)).json()["total"] == 0
    # Percent-encoded surrogates decode to U+FFFD: ordinary (if odd) text, never a 500.
    r = await client.get("/events/stream/recent?topic=%ED%A0%80", headers=h)
    assert r.status_code == 200, r.text


async def test_instants_without_a_utc_time_or_outside_schedules_years_are_422(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    tid = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()["id"]
    preview = {"schedule_kind": "cron", "schedule_expr": "0 8 * * *"}
    cases = [
        ("GET", f"/tasks/{tid}/preview?from=9999-12-31T23:59:59Z", None, "from"),
        ("GET", f"/tasks/{tid}/preview?from=0001-01-01T00:00:00%2B05:00", None, "from"),
        ("GET", f"/tasks/{tid}/preview?until=9999-12-31T23:59:59-05:00", None, "until"),
        ("POST", "/schedules/preview", {**preview, "from": "0001-01-01T00:00:00Z"}, "from"),
        ("POST", "/schedules/preview", {**preview, "from": "9999-12-31T00:00:00Z"}, "from"),
        ("GET", "/runs?start_time=0001-01-01T00:00:00%2B05:00", None, "start_time"),
        ("GET", "/runs?end_time=9999-12-31T23:59:59-05:00", None, "end_time"),
    ]
    for method, url, body, field in cases:
        r = await client.request(method, url, json=body, headers=h)
        assert fields_of(r) == [field], (url, r.text)
    r = await client.get(
        "/runs?start_time=0001-01-01T00:00:00Z&end_time=9999-12-31T23:59Z", headers=h
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/tasks/{tid}/preview?from=1900-01-01T00:00:00Z&limit=1", headers=h)
    assert r.json()["fire_times"] == ["1900-01-01T06:05:00Z"]  # 08:00 Chisinau mean time, +1:55


# --- http.request URLs ---------------------------------------------------------------------

BAD_URLS = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_x",
    "ftp://127.0.0.1/x",
    "dict://127.0.0.1:11211/stat",
    "FILE:///etc/passwd",
    "http:///no-host",
    "no scheme at all",
]


def http_task(url: str, **params: Any) -> dict[str, Any]:
    return task_with(params=params, args={"url": url})


def http_step(task: dict[str, Any]) -> dict[str, Any]:
    task["payload"]["pipeline"][0]["uses"] = "http.request"
    return task


@pytest.mark.parametrize("url", BAD_URLS)
async def test_static_non_http_urls_are_422_at_create_update_and_validate(
    client: httpx.AsyncClient, h: dict[str, str], url: str
) -> None:
    bad = http_step(http_task(url))
    field = "payload.pipeline[0].with.url"
    r = await client.post("/tasks", json=bad, headers=h)
    assert field in fields_of(r), r.text
    r = await client.post("/tasks/validate", json={"task": bad}, headers=h)
    assert field in fields_of(r), r.text
    r = await client.post("/tasks/validate", json={"payload": bad["payload"]}, headers=h)
    assert field in fields_of(r), r.text
    good = http_step(http_task("https://api.example.com/v1/x"))
    created = await client.post("/tasks", json=good, headers=h)
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    r = await client.patch(f"/tasks/{tid}", json={"payload": bad["payload"]}, headers=h)
    assert field in fields_of(r), r.text
    r = await client.put(f"/tasks/{tid}", json=bad, headers=h)
    assert field in fields_of(r), r.text
    got = (await client.get(f"/tasks/{tid}", headers=h)).json()
    assert got["payload"]["pipeline"][0]["with"]["url"] == "https://api.example.com/v1/x"


async def test_http_urls_and_urls_from_expressions_are_accepted(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    for url in ("http://api.example.com", "HTTPS://API.example.com:8443/x?q=1", "${params.u}"):
        task = http_step(http_task(url, u="file:///etc/passwd"))
        r = await client.post("/tasks", json=task, headers=h)
        assert r.status_code == 201, (url, r.text)  # expressions keep their run-time check


# --- time zones ----------------------------------------------------------------------------

BAD_ZONES = [
    "Factory",
    "posixrules",
    "localtime",
    "../etc/x",
    "/etc/localtime",
    "/usr/share/zoneinfo/UTC",
    "right/UTC",
    "posix/Europe/Paris",
    "zone.tab",
    "tzdata.zi",
    "Europe",
    "europe/paris",
    "Mars/Olympus",
    "",
    " UTC",
]


@pytest.mark.parametrize("zone", BAD_ZONES)
async def test_zones_that_are_not_places_are_422_naming_timezone(
    client: httpx.AsyncClient, h: dict[str, str], zone: str
) -> None:
    r = await client.post("/tasks", json={**CRON_TASK, "timezone": zone}, headers=h)
    assert any(f.endswith("timezone") for f in fields_of(r)), r.text
    preview = {"schedule_kind": "cron", "schedule_expr": "0 8 * * *", "timezone": zone}
    r = await client.post("/schedules/preview", json=preview, headers=h)
    assert any(f.endswith("timezone") for f in fields_of(r)), r.text
    r = await client.post(
        "/tasks/validate", json={"task": {**CRON_TASK, "timezone": zone}}, headers=h
    )
    assert any(f.endswith("timezone") for f in fields_of(r)), r.text
    tid = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()["id"]
    r = await client.patch(f"/tasks/{tid}", json={"timezone": zone}, headers=h)
    assert any(f.endswith("timezone") for f in fields_of(r)), r.text


@pytest.mark.parametrize(
    "zone", ["UTC", "Etc/GMT+5", "US/Eastern", "Europe/Kiev", "Europe/Kyiv", "EST5EDT", "GMT"]
)
async def test_iana_zones_and_links_are_accepted(
    client: httpx.AsyncClient, h: dict[str, str], zone: str
) -> None:
    r = await client.post("/tasks", json={**CRON_TASK, "timezone": zone}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["timezone"] == zone


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["not-an-object", [1, 2], 5, True, None])
async def test_event_payload_must_be_an_object(
    client: httpx.AsyncClient, h: dict[str, str], pool: asyncpg.Pool, payload: Any
) -> None:
    r = await client.post("/events", json={"topic": "t", "payload": payload}, headers=h)
    assert fields_of(r) == ["body.payload"]
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    ok = await client.post("/events", json={"topic": "t"}, headers=h)
    assert ok.status_code == 202, ok.text


# --- previews ------------------------------------------------------------------------------

RFC_EXAMPLE = "DTSTART:19970805T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO"


async def test_schedule_preview_lists_fire_times_after_a_past_from(
    client: httpx.AsyncClient, h: dict[str, str]
) -> None:
    body = {
        "schedule_kind": "rrule",
        "schedule_expr": RFC_EXAMPLE,
        "timezone": "America/New_York",
        "from": "1997-01-01T00:00:00Z",
    }
    r = await client.post("/schedules/preview", json=body, headers=h)
    assert r.status_code == 200, r.text
    # RFC 5545 3.8.5.3: Aug 5, 10, 19 and 24 1997 at 09:00 EDT (13:00Z).
    assert r.json()["fire_times"] == [
        "1997-08-05T13:00:00Z",
        "1997-08-10T13:00:00Z",
        "1997-08-19T13:00:00Z",
        "1997-08-24T13:00:00Z",
    ]
    # Strictly after `from`, before `until`.
    window = {**body, "from": "1997-08-05T13:00:00Z", "until": "1997-08-24T13:00:00Z"}
    r = await client.post("/schedules/preview", json=window, headers=h)
    assert r.json()["fire_times"] == ["1997-08-10T13:00:00Z", "1997-08-19T13:00:00Z"]
    # Without `from` the window starts now, after every fire: 422 as before.
    r = await client.post("/schedules/preview", json={**body, "from": None}, headers=h)
    assert "schedule_expr" in fields_of(r)
    # A task with that schedule would never fire: still a 422.
    task = {**CRON_TASK, "schedule_kind": "rrule", "schedule_expr": RFC_EXAMPLE}
    r = await client.post("/tasks", json={**task, "timezone": "America/New_York"}, headers=h)
    assert "schedule_expr" in fields_of(r)
    # A once in the past, previewed from before it.
    once = {
        "schedule_kind": "once",
        "schedule_expr": "2020-05-01T10:00:00",
        "timezone": "Europe/Chisinau",
        "from": "2020-01-01T00:00:00Z",
    }
    r = await client.post("/schedules/preview", json=once, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["fire_times"] == ["2020-05-01T07:00:00Z"]


async def test_previews_of_an_rrule_that_ended_list_its_past_fires(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    agent = await make_agent(ALL_SCOPES)
    h = agent["headers"]
    expr = "DTSTART:20260601T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20260630T000000Z"
    task = {**CRON_TASK, "schedule_kind": "rrule", "schedule_expr": expr, "timezone": "UTC"}
    created = await client.post("/tasks", json=task, headers=h)
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    clock.set(datetime(2026, 8, 1, tzinfo=UTC))
    async with pool.acquire() as conn:
        pair = await agents.issue_tokens(conn, uuid.UUID(agent["agent_id"]), clock.now(), settings)
    h = {"Authorization": f"Bearer {pair.access_token}"}
    mondays = [
        "2026-06-01T09:00:00Z",
        "2026-06-08T09:00:00Z",
        "2026-06-15T09:00:00Z",
        "2026-06-22T09:00:00Z",
        "2026-06-29T09:00:00Z",
    ]
    params = {"from": "2026-05-01T00:00:00Z"}
    r = await client.get(f"/tasks/{tid}/preview", params=params, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["fire_times"] == mondays
    body = {"schedule_kind": "rrule", "schedule_expr": expr, "timezone": "UTC", **params}
    r = await client.post("/schedules/preview", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["fire_times"] == mondays
    # An RRULE without DTSTART previewed from the past starts at `from`.
    body = {
        **body,
        "schedule_expr": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;UNTIL=20260630T000000Z",
        "from": "2026-05-31T00:00:00Z",
    }
    r = await client.post("/schedules/preview", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["fire_times"] == mondays
    r = await client.post("/tasks", json={**task, "schedule_expr": expr}, headers=h)
    assert "schedule_expr" in fields_of(r)


# --- RRULE DTSTART -------------------------------------------------------------------------


async def test_rrule_dtstart_not_written_is_the_minute_of_creation(
    client: httpx.AsyncClient, make_agent: Any, clock: FrozenClock
) -> None:
    h = await headers_at(make_agent, clock, datetime(2026, 3, 2, 19, 39, 3, 250_000, tzinfo=UTC))
    rule = "FREQ=DAILY;BYHOUR=7;BYMINUTE=0"
    task = {**CRON_TASK, "schedule_kind": "rrule", "schedule_expr": rule}
    r = await client.post("/tasks", json={**task, "timezone": "UTC"}, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["dtstart"] == "2026-03-02T19:39:00Z"
    assert created["schedule_expr"] == f"DTSTART;TZID=UTC:20260302T193900\nRRULE:{rule}"
    assert created["next_run_at"] == "2026-03-03T07:00:00Z"
    p = await client.get(f"/tasks/{created['id']}/preview", params={"limit": 2}, headers=h)
    assert p.json()["fire_times"] == ["2026-03-03T07:00:00Z", "2026-03-04T07:00:00Z"]
    # In a zone, and when the schedule changes on an update.
    r = await client.post("/tasks", json=task, headers=h)  # Europe/Chisinau, UTC+2
    assert r.json()["dtstart"] == "2026-03-02T19:39:00Z"
    assert r.json()["next_run_at"] == "2026-03-03T05:00:00Z"
    clock.set(datetime(2026, 3, 2, 20, 1, 59, tzinfo=UTC))
    rule2 = "FREQ=DAILY;BYHOUR=8;BYMINUTE=30"
    r = await client.patch(f"/tasks/{created['id']}", json={"schedule_expr": rule2}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["dtstart"] == "2026-03-02T20:01:00Z"
    assert r.json()["next_run_at"] == "2026-03-03T08:30:00Z"
    preview = {"schedule_kind": "rrule", "schedule_expr": rule, "timezone": "UTC", "limit": 1}
    r = await client.post("/schedules/preview", json=preview, headers=h)
    assert r.json()["fire_times"] == ["2026-03-03T07:00:00Z"]


async def test_rrule_dtstart_written_by_the_user_is_kept_exactly(
    client: httpx.AsyncClient, make_agent: Any, clock: FrozenClock
) -> None:
    h = await headers_at(make_agent, clock, datetime(2026, 3, 2, 19, 39, 3, tzinfo=UTC))
    expr = "DTSTART:20260302T193903Z\nRRULE:FREQ=DAILY;BYHOUR=7;BYMINUTE=0"
    task = {**CRON_TASK, "schedule_kind": "rrule", "schedule_expr": expr, "timezone": "UTC"}
    r = await client.post("/tasks", json=task, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["dtstart"] == "2026-03-02T19:39:03Z"
    assert r.json()["next_run_at"] == "2026-03-03T07:00:03Z"


def test_every_route_checks_its_input() -> None:
    routers = [importlib.import_module(f"{ROUTES_PACKAGE}.{m}").router for m in ROUTE_MODULES]
    routes = [route for router in routers for route in router.routes]
    assert len(routes) > 30
    assert all(isinstance(route, JSONRoute) for route in routes if isinstance(route, APIRoute))


def test_loads_reads_what_json_reads_and_refuses_the_rest() -> None:
    doc = {"a": [1, 2.5, "x"], "b": None}
    text = json.dumps(doc)
    assert loads(text.encode()) == doc
    assert loads(codecs.BOM_UTF8 + text.encode()) == doc  # only the stdlib reads these two
    assert loads(text.encode("utf-16")) == doc
    assert loads(b'{"n": 12345678901234567890}') == {"n": 12345678901234567890}
    for broken in (b"{", b'{"a": 1,}', b"\xff\xfe\x00", b'"\xc3\x28"', b"[01]"):
        with pytest.raises(json.JSONDecodeError):
            loads(broken)
    with pytest.raises(UnstorableJSON) as info:
        loads(b'{"n": [' + b"9" * 5000 + b", 1" + b"0" * 5000 + b".5, NaN]}")
    assert [e["loc"] for e in info.value.errors] == [("body", "n", i) for i in range(3)]


def unlisted(item: dict[str, Any]) -> dict[str, Any]:
    """A task from GET /tasks as GET /tasks/{id} answers it (without how it last went)."""
    listed_only = ("last_run_status", "last_run_at", "failures_24h")
    return {k: v for k, v in item.items() if k not in listed_only}
