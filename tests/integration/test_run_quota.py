"""The per-agent budget of runs queued per minute (store/quota.py) under concurrency: ingests
that charge several agents at once (shared topics) neither deadlock nor lose a charge."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from ordinaut.clock import FrozenClock
from ordinaut.ingest import ingest_event

ECHO = {"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {}}]}


async def _agent(pool: asyncpg.Pool, clock: FrozenClock) -> uuid.UUID:
    agent_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO agents (id, name, scopes, secret_hash, created_at, updated_at)"
        " VALUES ($1, 'a', ARRAY['events:publish'], 'x', $2, $2)",
        agent_id,
        clock.now(),
    )
    for pattern in ("shared:prices.*", "prices.*"):
        await pool.execute(
            "INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, payload,"
            " overlap_policy, created_at, updated_at)"
            " VALUES ($1, $2, 't', 'event', $3, $4, 'allow', $5, $5)",
            uuid.uuid4(),
            agent_id,
            pattern,
            ECHO,
            clock.now(),
        )
    return agent_id


async def test_concurrent_shared_ingests_charge_every_agent_exactly(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    agents = [await _agent(pool, clock) for _ in range(4)]
    await pool.execute(
        "INSERT INTO shared_topics (pattern, created_at) VALUES ('prices.*', $1)", clock.now()
    )

    async def publish(i: int) -> dict:
        # publishers in every order: each ingest charges all four agents in one transaction
        return await ingest_event(
            pool,
            tenant_id=agents[i % 4],
            topic="prices.eur",
            payload={"i": i},
            event_id=f"e-{i}",
            now=clock.now(),
            max_runs_per_minute=1_000,
        )

    results = await asyncio.gather(*(publish(i) for i in range(40)))
    assert all(r["runs_refused"] == 0 for r in results)
    runs = {
        r["owner_id"]: r["n"]
        for r in await pool.fetch("SELECT owner_id, count(*) AS n FROM runs GROUP BY 1")
    }
    used = {r["agent_id"]: r["used"] for r in await pool.fetch("SELECT * FROM run_quota")}
    # each event: the publisher's own task and its shared subscription, and each of the
    # three others' shared subscriptions
    assert runs == used == dict.fromkeys(agents, 40 // 4 * 2 + 30)


async def test_a_spent_budget_refuses_and_the_next_minute_restores_it(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    (agent,) = [await _agent(pool, clock) for _ in range(1)]

    async def publish(event_id: str) -> dict:
        return await ingest_event(
            pool,
            tenant_id=agent,
            topic="prices.eur",
            payload={},
            event_id=event_id,
            now=clock.now(),
            max_runs_per_minute=3,
        )

    # own task only (the topic is not declared shared): one run per event
    assert [(await publish(f"e{i}"))["runs_refused"] for i in range(4)] == [0, 0, 0, 1]
    clock.advance(60)
    assert (await publish("later"))["runs_queued"] == 1
    assert await pool.fetchval("SELECT used FROM run_quota WHERE agent_id = $1", agent) == 1
