"""What a pipeline records or publishes is refused where it is produced when PostgreSQL would
not store it as given (``ordinaut.storable``): the step fails with an error naming the path,
instead of the run's whole outcome failing at the write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits, RunContext, default_registry, execute
from ordinaut.pipeline.records import storage_problem

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
REGISTRY = default_registry(Settings())


def _context(event_value: Any = None, emitted: list[Any] | None = None) -> RunContext:
    sink = emitted if emitted is not None else []
    return RunContext(
        "run-1",
        "task-1",
        "T",
        1,
        NOW,
        NOW,
        event={"id": "e1", "topic": "in", "payload": {"v": event_value}},
        emit=lambda *e: sink.append(e),
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        # a lone surrogate has no UTF-8 form: it used to be reported as too large to render
        ({"k": "a\ud800"}, "with.payload.v.k: text may not contain a lone UTF-16 surrogate"),
        ({"k\x00": 1}, "with.payload.v.k\\u0000: key: text may not contain NUL (\\u0000)"),
        ([1, "x\x00"], "with.payload.v.1: text may not contain NUL (\\u0000)"),
    ],
)
async def test_event_publish_refuses_what_storable_refuses_naming_the_path(
    value: Any, named: str
) -> None:
    emitted: list[Any] = []
    payload = {
        "pipeline": [
            {"id": "p", "uses": "event.publish", "with": {"topic": "t", "payload": {"v": 1}}}
        ],
    }
    # the value arrives with the triggering event (ingest refuses it; a test context need not)
    payload["pipeline"][0]["with"]["payload"] = {"v": "${event.payload.v}"}
    result = await execute(
        payload, _context(value, emitted), registry=REGISTRY, limits=PipelineLimits()
    )
    # refused with its arguments, before the tool runs: nothing is published
    assert result.error is not None
    assert result.error["code"] == "unstorable_value"
    assert result.error["message"] == f"{named}; it cannot be recorded"
    assert emitted == []


def test_storage_problem_is_storables_check_after_the_bounds() -> None:
    def check(value: Any) -> str | None:
        return storage_problem(value, max_depth=4, max_bytes=100, what="payload")

    assert check({"fine": ["a", 1, 2.5, None]}) is None
    assert check({"a": ["b\udc00"]}) == (
        "payload.a.0: text may not contain a lone UTF-16 surrogate"
    )
    assert check({"k\x00": 1}) == "payload.k\\u0000: key: text may not contain NUL (\\u0000)"
    assert check({"n": float("nan")}) == "payload.n: number is not finite"
    assert check({"n": 2**70}) == (
        f"payload.n: integer outside {-(2**63)}..{2**64 - 1}; send it as a string"
    )
    assert check({"a": [[[[1]]]]}) == "payload nested deeper than max_json_depth (4)"
    assert check({"a": "x" * 200}) == "payload larger than max_payload_bytes (100 bytes)"


async def test_a_step_output_that_cannot_be_recorded_fails_the_step_naming_it() -> None:
    payload = {
        "pipeline": [
            {
                "id": "t",
                "uses": "transform",
                "with": {"input": {}, "expr": 'from_json(\'{"k\\u0000": ["ok"]}\')'},
            },
            {"id": "after", "uses": "echo", "with": {"n": 1}},
        ],
    }
    result = await execute(payload, _context(), registry=REGISTRY, limits=PipelineLimits())
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["step"] == "t"
    assert result.error["code"] == "unstorable_value"
    assert result.error["message"] == (
        "output.k\\u0000: key: text may not contain NUL (\\u0000); it cannot be recorded"
    )
    (record,) = result.steps
    assert record["output"] is None
    assert result.output is None


async def test_step_arguments_that_cannot_be_recorded_fail_before_the_tool_runs() -> None:
    emitted: list[Any] = []
    payload = {
        "pipeline": [
            {
                "id": "p",
                "uses": "event.publish",
                "with": {"topic": "${event.payload.v}", "payload": {}},
            }
        ],
    }
    result = await execute(
        payload, _context("a\x00b", emitted), registry=REGISTRY, limits=PipelineLimits()
    )
    assert result.error is not None
    assert result.error["code"] == "unstorable_value"
    assert result.error["message"] == (
        "with.topic: text may not contain NUL (\\u0000); it cannot be recorded"
    )
    assert result.steps[0]["input"] is None
    assert emitted == []


async def test_a_foreach_over_items_that_cannot_be_recorded_fails_naming_the_item() -> None:
    payload = {
        "pipeline": [
            {
                "id": "each",
                "uses": "echo",
                "foreach": "${event.payload.v}",
                "with": {"n": "${index}"},
            }
        ],
    }
    result = await execute(
        payload, _context(["ok", "b\udfff"]), registry=REGISTRY, limits=PipelineLimits()
    )
    assert result.error is not None
    assert result.error["code"] == "unstorable_value"
    assert result.error["message"] == (
        "foreach.1: text may not contain a lone UTF-16 surrogate; it cannot be recorded"
    )
