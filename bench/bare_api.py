"""The API bench's reference: bare FastAPI + asyncpg doing the same statements as Ordinaut.

    uvicorn --app-dir bench bare_api:app      (ORDINAUT_DATABASE_URL names the database)

Each route authenticates the bearer token with the same query Ordinaut uses, then runs the
one statement its Ordinaut twin is built around (read a task, insert a task, list a task's runs,
insert an event). No validation, no outbox, no audit, no middleware: the floor a FastAPI app on
this database can reach, so ``bench/api.py`` can say what Ordinaut's extra guarantees cost.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

GRANT = """
SELECT t.agent_id FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
WHERE t.token_hash = $1 AND t.kind = 'access' AND t.revoked_at IS NULL AND t.expires_at > $2
  AND a.is_active
"""
GET_TASK = "SELECT * FROM tasks WHERE id = $1 AND created_by = $2"
INSERT_TASK = """
INSERT INTO tasks (id, created_by, title, schedule_kind, schedule_expr, timezone, payload,
                   next_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)
RETURNING *
"""
# Ordinaut's first page of a task's runs, in its order (newest slot first).
LIST_RUNS = """
SELECT * FROM runs WHERE task_id = $1 AND owner_id = $2 ORDER BY scheduled_for DESC, id LIMIT 50
"""
INSERT_EVENT = """
INSERT INTO events (tenant_id, event_id, topic, payload, source, received_at)
VALUES ($1, $2, $3, $4, 'api', $5)
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING seq
"""


async def _jsonb(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["ORDINAUT_DATABASE_URL"], min_size=1, max_size=10, init=_jsonb
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID | datetime) else v) for k, v in record.items()}


async def _agent(request: Request, conn: asyncpg.Connection) -> uuid.UUID:
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ")
    agent = await conn.fetchval(GRANT, hashlib.sha256(token.encode()).digest(), datetime.now(UTC))
    if agent is None:
        raise HTTPException(401)
    return agent  # type: ignore[no-any-return]


@app.get("/tasks/{task_id}")
async def get_task(task_id: uuid.UUID, request: Request) -> dict[str, Any]:
    async with request.app.state.pool.acquire() as conn:
        agent = await _agent(request, conn)
        row = await conn.fetchrow(GET_TASK, task_id, agent)
    if row is None:
        raise HTTPException(404)
    return _row(row)


@app.post("/tasks", status_code=201)
async def create_task(request: Request) -> dict[str, Any]:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        agent = await _agent(request, conn)
        now = datetime.now(UTC)
        row = await conn.fetchrow(
            INSERT_TASK,
            uuid.uuid4(),
            agent,
            body["title"],
            body["schedule_kind"],
            body["schedule_expr"],
            body.get("timezone", "UTC"),
            body["payload"],
            now,
        )
    return _row(row)


@app.get("/runs")
async def list_runs(task_id: uuid.UUID, request: Request) -> dict[str, Any]:
    async with request.app.state.pool.acquire() as conn:
        agent = await _agent(request, conn)
        rows = await conn.fetch(LIST_RUNS, task_id, agent)
    return {"items": [_row(r) for r in rows]}


@app.post("/events")
async def publish(request: Request) -> JSONResponse:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        agent = await _agent(request, conn)
        seq = await conn.fetchval(
            INSERT_EVENT,
            agent,
            body.get("event_id") or str(uuid.uuid4()),
            body["topic"],
            body.get("payload", {}),
            datetime.now(UTC),
        )
    return JSONResponse({"accepted": seq is not None}, status_code=202)
