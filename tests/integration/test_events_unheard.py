"""Events in, as few statements as each case needs (issue 12). An event nothing listens to: one
statement reads the routing and, finding no shared topic and none of the publisher's own
tasks, stores the event and its event.received outbox row. Every other case (own tasks listen,
the topic is shared, the event id was seen) writes exactly what it wrote before: the first
statement writes nothing there. Routing reads the publisher's exact subscriptions by one index
probe and tries only its * patterns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.ingest import ingest_event
from ordinaut.store import db, events, work

ASYNCPG_INTROSPECTION = ("typeinfo_tree", "'jit'")
ECHO = {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]}


class Statements:
    """The statements run on one connection (asyncpg's query logger), which the ingest is
    given the way ``POST /events`` gives it the request's connection."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, record: Any) -> None:
        # asyncpg's own reads of a type's codec, once per connection and type, are not counted
        if not any(mark in record.query for mark in ASYNCPG_INTROSPECTION):
            self.sql.append(record.query)

    async def seen(self) -> list[str]:
        await asyncio.sleep(0)  # asyncpg calls loggers soon after each statement
        return self.sql


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    async with pool.acquire() as conn:
        yield conn


async def _logged(conn: Any) -> Statements:
    statements = Statements()
    conn.add_query_logger(statements)
    return statements


async def _agent(pool: asyncpg.Pool, clock: FrozenClock, active: bool = True) -> uuid.UUID:
    agent_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO agents (id, name, scopes, secret_hash, is_active, created_at, updated_at)"
        " VALUES ($1, 'a', ARRAY['events:publish'], 'x', $2, $3, $3)",
        agent_id,
        active,
        clock.now(),
    )
    return agent_id


async def _task(
    pool: asyncpg.Pool, clock: FrozenClock, owner: uuid.UUID, pattern: str, **extra: Any
) -> uuid.UUID:
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, payload,"
        " overlap_policy, created_at, updated_at)"
        " VALUES ($1, $2, 't', 'event', $3, $4, 'allow', $5, $5)",
        task_id,
        owner,
        pattern,
        {**ECHO, **extra},
        clock.now(),
    )
    return task_id


async def _publish(
    pool: Any,
    clock: FrozenClock,
    tenant: uuid.UUID,
    topic: str,
    event_id: str | None = None,
    payload: Any = None,
) -> dict[str, Any]:
    return await ingest_event(
        pool,
        tenant_id=tenant,
        topic=topic,
        payload={"n": 1} if payload is None else payload,
        event_id=event_id,
        now=clock.now(),
    )


async def _written(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, Any]:
    return {
        "events": [
            dict(r)
            for r in await pool.fetch(
                "SELECT event_id, topic, payload, source, received_at, depth, tasks_matched"
                " FROM events WHERE tenant_id = $1 ORDER BY seq",
                tenant,
            )
        ],
        "outbox": [
            dict(r)
            for r in await pool.fetch(
                "SELECT event_type, subject_id, payload, created_at FROM outbox"
                " WHERE tenant_id = $1 ORDER BY seq",
                tenant,
            )
        ],
        "runs": await pool.fetchval("SELECT count(*) FROM runs WHERE owner_id = $1", tenant),
    }


async def test_an_event_nothing_listens_to_is_one_statement(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    tenant, other = await _agent(pool, clock), await _agent(pool, clock)
    # none of these may take the event: another topic, another tenant's task on this very
    # topic, a shared: subscription of the publisher on a topic no admin shared
    await _task(pool, clock, tenant, "payments.*")
    await _task(pool, clock, other, "orders.*")
    await _task(pool, clock, tenant, "shared:orders.*")
    statements = await _logged(conn)

    summary = await _publish(conn, clock, tenant, "orders.created", "e1", {"id": 7})

    assert summary == {
        "event_id": "e1",
        "topic": "orders.created",
        "duplicate": False,
        "runs_queued": 0,
        "runs_refused": 0,
        "tasks_matched": 0,
    }
    assert len(await statements.seen()) == 1
    written = await _written(pool, tenant)
    assert written["events"] == [
        {
            "event_id": "e1",
            "topic": "orders.created",
            "payload": {"id": 7},
            "source": "api",
            "received_at": clock.now(),
            "depth": 0,
            "tasks_matched": 0,
        }
    ]
    assert written["outbox"] == [
        {
            "event_type": "event.received",
            "subject_id": None,
            "payload": {"event_id": "e1", "topic": "orders.created", "tasks": 0},
            "created_at": clock.now(),
        }
    ]
    assert written["runs"] == 0
    assert await _written(pool, other) == {"events": [], "outbox": [], "runs": 0}


async def test_an_unheard_event_without_id_gets_a_new_one(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    first = await _publish(pool, clock, tenant, "orders.created")
    second = await _publish(pool, clock, tenant, "orders.created")
    assert str(uuid.UUID(first["event_id"])) == first["event_id"]
    assert first["event_id"] != second["event_id"]
    assert (first["duplicate"], second["duplicate"]) == (False, False)
    written = await _written(pool, tenant)
    assert [e["event_id"] for e in written["events"]] == [first["event_id"], second["event_id"]]
    assert [o["payload"]["event_id"] for o in written["outbox"]] == [
        first["event_id"],
        second["event_id"],
    ]


async def test_an_unheard_event_id_seen_before_writes_nothing(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    await _publish(pool, clock, tenant, "orders.created", "e1")
    before = await _written(pool, tenant)

    again = await _publish(pool, clock, tenant, "orders.other", "e1", {"changed": True})

    assert again == {
        "event_id": "e1",
        "topic": "orders.created",  # the stored event's
        "duplicate": True,
        "runs_queued": 0,
        "runs_refused": 0,
        "tasks_matched": 0,
    }
    assert await _written(pool, tenant) == before


async def test_own_listeners_take_the_write_statement_and_the_first_writes_nothing(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    await _task(pool, clock, tenant, "orders.*")
    await _task(pool, clock, tenant, "orders.*", filter="${event.payload.n > 5}")
    statements = await _logged(conn)

    summary = await _publish(conn, clock, tenant, "orders.created", "e1")

    assert (summary["tasks_matched"], summary["runs_queued"]) == (1, 1)
    # the routing read, then one statement writing everything and waking the workers
    assert len(await statements.seen()) == 2
    written = await _written(pool, tenant)
    assert [(e["event_id"], e["tasks_matched"]) for e in written["events"]] == [("e1", 1)]
    assert [o["event_type"] for o in written["outbox"]] == ["run.queued", "event.received"]
    assert written["outbox"][1]["payload"]["tasks"] == 1
    assert written["runs"] == 1


async def test_own_listeners_whose_filters_all_refuse_store_the_event_once(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    await _task(pool, clock, tenant, "orders.*", filter="${event.payload.n > 5}")

    summary = await _publish(pool, clock, tenant, "orders.created", "e1")

    assert (summary["tasks_matched"], summary["runs_queued"]) == (0, 0)
    written = await _written(pool, tenant)
    assert [(e["event_id"], e["tasks_matched"]) for e in written["events"]] == [("e1", 0)]
    assert [o["event_type"] for o in written["outbox"]] == ["event.received"]
    assert written["runs"] == 0


async def test_a_shared_topic_nothing_listens_to_is_stored_once_by_the_transaction(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    await pool.execute(
        "INSERT INTO shared_topics (pattern, created_at) VALUES ('prices.*', $1)", clock.now()
    )
    statements = await _logged(conn)

    summary = await _publish(conn, clock, tenant, "prices.eur", "e1")

    assert (summary["duplicate"], summary["tasks_matched"]) == (False, 0)
    # the shared path's transaction, on the connection it was given
    assert [
        q.split()[0] for q in await statements.seen() if q.split()[0] in ("BEGIN;", "COMMIT;")
    ] == [
        "BEGIN;",
        "COMMIT;",
    ]
    written = await _written(pool, tenant)
    assert [e["event_id"] for e in written["events"]] == ["e1"]
    assert [o["event_type"] for o in written["outbox"]] == ["event.received"]


async def test_a_shared_topic_reaches_other_tenants_shared_subscribers(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    publisher, subscriber = await _agent(pool, clock), await _agent(pool, clock)
    await _task(pool, clock, subscriber, "shared:prices.*")
    await pool.execute(
        "INSERT INTO shared_topics (pattern, created_at) VALUES ('prices.*', $1)", clock.now()
    )

    summary = await _publish(pool, clock, publisher, "prices.eur", "e1")

    assert (summary["tasks_matched"], summary["runs_queued"]) == (0, 0)  # its own tasks only
    copy = await _written(pool, subscriber)
    assert [e["event_id"] for e in copy["events"]] == [f"{publisher}#e1"]
    assert copy["runs"] == 1
    assert [e["event_id"] for e in (await _written(pool, publisher))["events"]] == ["e1"]


async def test_a_deactivated_publishers_tasks_take_nothing(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    tenant = await _agent(pool, clock)
    await _task(pool, clock, tenant, "orders.*")
    await pool.execute("UPDATE agents SET is_active = false WHERE id = $1", tenant)
    statements = await _logged(conn)

    summary = await _publish(conn, clock, tenant, "orders.created", "e1")

    assert (summary["tasks_matched"], summary["runs_queued"]) == (0, 0)
    assert len(await statements.seen()) == 1
    assert (await _written(pool, tenant))["runs"] == 0


async def test_workers_are_woken_once_when_runs_are_queued(
    pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    tenant = await _agent(pool, clock)
    await _task(pool, clock, tenant, "orders.*")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await db.connect(settings)
    try:
        await listener.add_listener(work.WAKE_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        await _publish(pool, clock, tenant, "orders.created", "e1")  # a run: one wake-up
        await _publish(pool, clock, tenant, "orders.created", "e1")  # a duplicate: none
        await _publish(pool, clock, tenant, "other.topic", "e2")  # nothing listens: none
        await pool.execute("SELECT pg_notify($1, 'marker')", work.WAKE_CHANNEL)
        got = [await asyncio.wait_for(heard.get(), 10)]
        while got[-1] != "marker":
            got.append(await asyncio.wait_for(heard.get(), 10))
        assert got == ["", "marker"]
    finally:
        await listener.close()


async def test_exact_and_wildcard_patterns_match_as_globs(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    tenant, other = await _agent(pool, clock), await _agent(pool, clock)
    hits = {
        await _task(pool, clock, tenant, "a_b"),  # exact: _ is itself, not any character
        await _task(pool, clock, tenant, "a_b*"),
        await _task(pool, clock, tenant, "*"),
        await _task(pool, clock, tenant, "a*b"),
    }
    for pattern in ("axb", "a_b.*", "a_bc", "shared:a_b", "shared:*", "a_", "A_B"):
        await _task(pool, clock, tenant, pattern)
    await _task(pool, clock, other, "a_b")
    paused = await _task(pool, clock, tenant, "a_b")
    await pool.execute("UPDATE tasks SET status = 'paused' WHERE id = $1", paused)

    summary = await _publish(pool, clock, tenant, "a_b", "e1")

    assert summary["tasks_matched"] == len(hits)
    queued = await pool.fetch("SELECT task_id FROM runs WHERE event_id = 'e1'")
    assert {r["task_id"] for r in queued} == hits
    assert (await _publish(pool, clock, tenant, "axb", "e2"))["tasks_matched"] == 3  # axb, *, a*b


async def test_routing_reads_only_the_wildcard_subscriptions(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    """Routing stays flat: the publisher's exact subscriptions to other topics are not read,
    only its * patterns (migration 0020)."""
    tenant = await _agent(pool, clock)
    await pool.execute(
        "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, payload,"
        " overlap_policy, created_at, updated_at)"
        " SELECT gen_random_uuid(), $1, 't', 'event', e, $2, 'allow', $3, $3"
        " FROM unnest($4::text[]) AS e",
        tenant,
        ECHO,
        clock.now(),
        [f"orders.{i}" for i in range(500)] + [f"wild{i}.*" for i in range(5)],
    )
    await pool.execute("ANALYZE tasks")
    await conn.execute(f"PREPARE own_match(uuid, text) AS {events.MATCH_OWN}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")  # as a reused statement
    try:
        for topic, matched in (("nobody.listens", 0), ("orders.7", 1), ("wild3.x", 1)):
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE own_match('{tenant}', '{topic}')"
            )
            read = _rows_read(plan[0]["Plan"], "tasks")  # json: decoded by the codec
            assert read <= 5 + matched, (topic, read)
            assert len(await conn.fetch(events.MATCH_OWN, tenant, topic)) == matched
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE own_match")


def _rows_read(node: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of ``table`` produced or filtered out."""
    own = 0
    if node.get("Relation Name") == table:
        own = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
    return own + sum(_rows_read(child, table) for child in node.get("Plans", []))


async def test_shared_subscriptions_match_as_globs_and_only_wildcards_are_tried(
    pool: asyncpg.Pool, conn: Any, clock: FrozenClock
) -> None:
    publisher = await _agent(pool, clock)
    subscribers = [await _agent(pool, clock) for _ in range(3)]
    hits = set()
    for owner in subscribers:
        hits.add(await _task(pool, clock, owner, "shared:p_x.eur"))
        hits.add(await _task(pool, clock, owner, "shared:p_x.*"))
        for pattern in ("shared:pxx.eur", "shared:p_x.eu", "p_x.eur", "shared:q.*"):
            await _task(pool, clock, owner, pattern)
        await pool.execute(
            "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, payload,"
            " overlap_policy, created_at, updated_at)"
            " SELECT gen_random_uuid(), $1, 't', 'event', e, $2, 'allow', $3, $3"
            " FROM unnest($4::text[]) AS e",
            owner,
            ECHO,
            clock.now(),
            [f"shared:other.{i}" for i in range(300)],
        )
    await pool.execute(
        "INSERT INTO shared_topics (pattern, created_at) VALUES ('p_x.*', $1)", clock.now()
    )
    await pool.execute("ANALYZE tasks")

    summary = await _publish(pool, clock, publisher, "p_x.eur", "e1")

    assert summary["duplicate"] is False
    queued = await pool.fetch("SELECT task_id FROM runs WHERE event_id = $1", f"{publisher}#e1")
    assert {r["task_id"] for r in queued} == hits
    assert len(await conn.fetch(events.MATCH_SHARED, "p_x.eur")) == len(hits)

    await conn.execute(f"PREPARE shared_match(text) AS {events.MATCH_SHARED}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE shared_match('p_x.eur')")
        # the 3 exact hits and the 6 * patterns (3 matching), not the 900 other subscriptions
        assert _rows_read(plan[0]["Plan"], "tasks") <= 3 + 6
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE shared_match")
