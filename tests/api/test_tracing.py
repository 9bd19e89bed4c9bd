"""Tracing with the SDK's in-memory exporter: a request's span, the run it causes (run_now,
POST /events) continuing the request's trace through the worker, its steps, the lease and the
tick; and tracing staying off unless OTEL_* variables name an exporter."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from samples import CRON_TASK

from ordinaut import tracing
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.scheduler import tick
from ordinaut.worker import Worker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory by a provider of this test only (the process-wide provider
    can be set once, so tests swap the tracer Ordinaut uses instead)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("ordinaut"))
    monkeypatch.setattr(tracing, "ENABLED", True)  # what configure() does with OTEL_* set
    yield exporter
    provider.shutdown()


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_a_request_span_continues_an_incoming_traceparent(
    client: httpx.AsyncClient, make_agent: Any, spans: InMemorySpanExporter
) -> None:
    h = (await make_agent(SCOPES))["headers"]
    r = await client.get("/tasks/not-a-uuid", headers={**h, "traceparent": TRACEPARENT})
    assert r.status_code == 422
    ok = await client.get("/tasks", headers=h)
    assert ok.status_code == 200
    failed, listed = _named(spans, "GET /tasks/{task_id}"), _named(spans, "GET /tasks")
    assert len(failed) == 1
    assert len(listed) == 1
    span = failed[0]
    assert span.kind == SpanKind.SERVER
    assert _hex(span.context.trace_id, 32) == TRACE_ID
    assert span.parent is not None
    assert _hex(span.parent.span_id, 16) == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/tasks/{task_id}"
    assert span.attributes["http.response.status_code"] == 422
    assert listed[0].parent is None  # no traceparent: a trace of its own
    assert _hex(listed[0].context.trace_id, 32) != TRACE_ID


async def test_run_now_carries_the_requests_trace_into_the_run_and_its_steps(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    spans: InMemorySpanExporter,
) -> None:
    h = (await make_agent(SCOPES))["headers"]
    task = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    queued = await client.post(
        f"/tasks/{task['id']}/run_now", headers={**h, "traceparent": TRACEPARENT}
    )
    assert queued.status_code == 202, queued.text
    (request,) = _named(spans, "POST /tasks/{task_id}/run_now")
    stored = await pool.fetchval(
        "SELECT trace_context FROM runs WHERE id = $1", uuid.UUID(queued.json()["run_id"])
    )
    assert stored == f"00-{TRACE_ID}-{_hex(request.context.span_id, 16)}-01"

    await tick(pool, settings, clock, name="scheduler@trace")
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 1
    (run,) = _named(spans, "run")
    assert _hex(run.context.trace_id, 32) == TRACE_ID
    assert run.parent is not None
    assert run.parent.span_id == request.context.span_id
    assert run.attributes is not None
    assert run.attributes["ordinaut.run_id"] == queued.json()["run_id"]
    assert run.attributes["ordinaut.outcome"] == "succeeded"
    (step,) = _named(spans, "step")
    assert step.parent is not None
    assert step.parent.span_id == run.context.span_id
    assert step.attributes is not None
    assert step.attributes["ordinaut.tool"] == "echo"
    assert step.attributes["ordinaut.step.status"] == "succeeded"
    (lease,) = [s for s in _named(spans, "worker.lease") if s.attributes["ordinaut.leased"]]
    assert lease.attributes is not None
    assert lease.attributes["ordinaut.worker"] == "w"
    (ticked,) = _named(spans, "scheduler.tick")
    assert ticked.attributes is not None
    assert ticked.attributes["ordinaut.scheduler"] == "scheduler@trace"


async def test_an_event_run_continues_the_trace_of_the_post_that_published_it(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    spans: InMemorySpanExporter,
) -> None:
    h = (await make_agent(SCOPES))["headers"]
    task = {
        **CRON_TASK,
        "schedule_kind": "event",
        "schedule_expr": "orders.*",
    }
    assert (await client.post("/tasks", json=task, headers=h)).status_code == 201
    body = {"topic": "orders.created", "payload": {}, "event_id": "e-1"}
    r = await client.post("/events", json=body, headers={**h, "traceparent": TRACEPARENT})
    assert r.status_code == 202, r.text
    worker = Worker(pool, settings, clock, worker_id="w", rng=random.Random(0))
    assert await worker.run_once() == 1
    (request,) = _named(spans, "POST /events")
    (run,) = _named(spans, "run")
    assert _hex(run.context.trace_id, 32) == TRACE_ID
    assert run.parent is not None
    assert run.parent.span_id == request.context.span_id
    assert run.attributes is not None
    assert run.attributes["ordinaut.trigger"] == "event"


async def test_a_failed_request_marks_its_span_as_an_error(
    client: httpx.AsyncClient, make_agent: Any, spans: InMemorySpanExporter, app: Any
) -> None:
    h = (await make_agent(SCOPES))["headers"]

    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/broken", broken)
    r = await client.get("/broken", headers=h)
    assert r.status_code == 500
    (span,) = _named(spans, "GET /broken")
    assert span.status.status_code == StatusCode.ERROR


async def test_without_a_provider_nothing_is_stored_with_the_work(
    client: httpx.AsyncClient, make_agent: Any, pool: asyncpg.Pool
) -> None:
    h = (await make_agent(SCOPES))["headers"]
    task = (await client.post("/tasks", json=CRON_TASK, headers=h)).json()
    queued = (await client.post(f"/tasks/{task['id']}/run_now", headers=h)).json()
    stored = await pool.fetchval(
        "SELECT trace_context FROM runs WHERE id = $1", uuid.UUID(queued["run_id"])
    )
    assert stored is None


def test_tracing_is_off_unless_otel_variables_name_an_exporter() -> None:
    assert tracing.exporters_from({}) == []
    assert tracing.configure("api", {}) is False
    assert tracing.ENABLED is False
    with tracing.span("run") as off:
        assert not off.is_recording()
    assert tracing.exporters_from({"OTEL_SERVICE_NAME": "x"}) == []
    assert tracing.exporters_from({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.exporters_from({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == [
        "otlp"
    ]
    assert tracing.exporters_from({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://[::1]:4318"}) == [
        "otlp"
    ]
    assert tracing.exporters_from({"OTEL_TRACES_EXPORTER": "console,otlp"}) == [
        "console",
        "otlp",
    ]
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}
    assert tracing.exporters_from(disabled) == []
    assert tracing.parent_context("x" * 200) is None


def test_configure_installs_the_sdk_with_the_named_exporter() -> None:
    """In a fresh process (the global provider can be set once): OTEL_TRACES_EXPORTER=console
    turns tracing on, and a span reaches the exporter with Ordinaut's service name."""
    program = (
        "from opentelemetry import trace\n"
        "from ordinaut import tracing\n"
        "assert tracing.configure('worker') is True\n"
        "with tracing.span('run', attributes={'ordinaut.run_id': 'r-1'}):\n"
        "    pass\n"
        "trace.get_tracer_provider().shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "OTEL_TRACES_EXPORTER": "console"
    }
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["name"] == "run"
    assert exported["attributes"] == {"ordinaut.run_id": "r-1"}
    assert exported["resource"]["attributes"]["service.name"] == "ordinaut-worker"


async def test_a_stream_entry_with_a_traceparent_field_continues_the_producers_trace(
    client: httpx.AsyncClient,
    make_agent: Any,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    spans: InMemorySpanExporter,
) -> None:
    from ordinaut import consumer

    agent = await make_agent(SCOPES)
    task = {**CRON_TASK, "schedule_kind": "event", "schedule_expr": "orders.*"}
    assert (await client.post("/tasks", json=task, headers=agent["headers"])).status_code == 201
    fields = {
        "tenant_id": agent["agent_id"],
        "topic": "orders.created",
        "payload": "{}",
        "traceparent": TRACEPARENT,
    }
    summary = await consumer.ingest_entry(pool, "1-0", fields, clock.now())
    assert summary["runs_queued"] == 1, summary
    (ingest,) = _named(spans, "ingest")
    assert _hex(ingest.context.trace_id, 32) == TRACE_ID
    stored = await pool.fetchval("SELECT trace_context FROM runs WHERE trigger = 'event'")
    assert stored == f"00-{TRACE_ID}-{_hex(ingest.context.span_id, 16)}-01"
