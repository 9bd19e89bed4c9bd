"""Execution: order, conditions, failures, retries, timeouts, records, secrets, dry run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline import (
    PipelineLimits,
    RunContext,
    Tool,
    ToolError,
    default_registry,
    dry_run,
    execute,
)

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
LIMITS = PipelineLimits(max_step_output_bytes=2_000, max_render_bytes=5_000)
CALLS: dict[str, int] = {}


async def _flaky(args: dict[str, Any], ctx: RunContext) -> Any:
    CALLS[args["key"]] = CALLS.get(args["key"], 0) + 1
    if CALLS[args["key"]] < args["succeed_on"]:
        raise ToolError(
            "flaky", f"failure {CALLS[args['key']]}", retryable=args.get("retryable", True)
        )
    return {"calls": CALLS[args["key"]]}


async def _boom(args: dict[str, Any], ctx: RunContext) -> Any:
    raise RuntimeError("kaboom " + str(args.get("msg", "")))


async def _hang(args: dict[str, Any], ctx: RunContext) -> Any:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        CALLS["hang_cancelled"] = CALLS.get("hang_cancelled", 0) + 1
        raise


async def _big(args: dict[str, Any], ctx: RunContext) -> Any:
    return {"blob": "x" * args["size"]}


async def _liar(args: dict[str, Any], ctx: RunContext) -> Any:
    CALLS["liar"] = CALLS.get("liar", 0) + 1
    await asyncio.sleep(0)  # declared as never suspending, and yet it does
    return {"never": "returned"}


async def _mutator(args: dict[str, Any], ctx: RunContext) -> Any:
    args["d"]["count"] = args["d"].get("count", 0) + 1  # a rude tool: changes its arguments
    return {"ok": True}


async def _inline(args: dict[str, Any], ctx: RunContext) -> Any:
    if args.get("fail"):
        raise ToolError("inline_failed", "asked to fail")
    return {"got": args}


def _registry() -> Any:
    registry = default_registry(Settings(), limits=LIMITS)
    for name, fn in (
        ("test.flaky", _flaky),
        ("test.boom", _boom),
        ("test.hang", _hang),
        ("test.big", _big),
        ("test.mutator", _mutator),
    ):
        registry.register(Tool(name=name, description=name, input_schema={"type": "object"}, fn=fn))
    for name, fn in (("test.liar", _liar), ("test.inline", _inline)):
        registry.register(
            Tool(
                name=name,
                description=name,
                input_schema={"type": "object"},
                fn=fn,
                suspends=False,
            )
        )
    return registry


REGISTRY = _registry()


def ctx(**changes: Any) -> RunContext:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "task_id": "task-1",
        "task_title": "Morning briefing",
        "attempt": 1,
        "scheduled_for": NOW,
        "now": NOW,
        "idempotency_key": "idem-1",
    }
    values.update(changes)
    return RunContext(**values)


async def run(
    pipeline: list[dict[str, Any]], params: dict[str, Any] | None = None, **changes: Any
) -> Any:
    payload = {"params": params or {}, "pipeline": pipeline}
    return await execute(payload, ctx(**changes), registry=REGISTRY, limits=LIMITS)


async def test_steps_run_in_order_with_typed_values_and_save_as() -> None:
    result = await run(
        [
            {
                "id": "a",
                "uses": "echo",
                "with": {"n": "${params.n}", "list": "${params.l}"},
                "save_as": "first",
            },
            {
                "id": "b",
                "uses": "transform",
                "with": {"expr": "sum(@)", "input": "${steps.first.output.list}"},
            },
            {
                "id": "c",
                "uses": "echo",
                "with": {"text": "sum=${steps.b.output}, n=${steps.a.output.n}"},
            },
        ],
        params={"n": 2, "l": [1, 2, 3]},
    )
    assert result.status == "succeeded"
    assert result.error is None
    assert [s["id"] for s in result.steps] == ["a", "b", "c"]
    assert result.steps[0]["input"] == {"n": 2, "list": [1, 2, 3]}
    assert result.steps[1]["output"] == 6
    assert result.output == {"text": "sum=6, n=2"}
    assert {s["attempts"] for s in result.steps} == {1}
    assert all(isinstance(s["duration_ms"], int) for s in result.steps)


async def test_context_has_run_task_now_event_and_params_override() -> None:
    result = await run(
        [
            {
                "id": "a",
                "uses": "echo",
                "with": {
                    "run": "${run}",
                    "task": "${task.title}",
                    "now": "${now}",
                    "later": "${add_hours(now, `24`)}",
                    "event": "${event.payload.kind}",
                    "p": "${params.p}",
                },
            }
        ],
        params={"p": "stored"},
        params_override={"p": "override"},
        event={"id": "e1", "topic": "t", "payload": {"kind": "ping"}},
    )
    assert result.output == {
        "run": {"id": "run-1", "attempt": 1, "scheduled_for": "2026-03-08T07:30:00Z"},
        "task": "Morning briefing",
        "now": "2026-03-08T07:30:00Z",
        "later": "2026-03-09T07:30:00Z",
        "event": "ping",
        "p": "override",
    }


async def test_if_false_skips_and_later_steps_can_read_the_status() -> None:
    result = await run(
        [
            {"id": "a", "uses": "echo", "if": "${params.go}", "with": {"x": 1}},
            {
                "id": "b",
                "uses": "echo",
                "if": "steps.a.status == 'skipped'",
                "with": {"y": "${steps.a.output || 'none'}"},
            },
            {"id": "c", "uses": "echo", "if": False},
        ],
        params={"go": False},
    )
    assert [s["status"] for s in result.steps] == ["skipped", "succeeded", "skipped"]
    assert result.steps[0]["attempts"] == 0
    assert result.output == {"y": "none"}


async def test_failing_step_fails_the_run_and_stops_it() -> None:
    result = await run(
        [
            {"id": "a", "uses": "test.boom", "with": {"msg": "here"}},
            {"id": "b", "uses": "echo"},
        ]
    )
    assert result.status == "failed"
    assert [s["id"] for s in result.steps] == ["a"]
    assert result.error == {
        "step": "a",
        "code": "tool_error",
        "message": "RuntimeError: kaboom here",
    }


async def test_continue_on_error_keeps_going_and_exposes_the_error() -> None:
    result = await run(
        [
            {"id": "a", "uses": "test.boom", "continue_on_error": True},
            {
                "id": "b",
                "uses": "echo",
                "with": {"prev": "${steps.a.status}", "code": "${steps.a.error.code}"},
            },
        ]
    )
    assert result.status == "succeeded"
    assert result.steps[0]["status"] == "failed"
    assert result.output == {"prev": "failed", "code": "tool_error"}


async def test_missing_path_fails_the_step_naming_the_path() -> None:
    result = await run(
        [{"id": "a", "uses": "echo", "with": {"v": "${params.user.name}"}}], params={"user": {}}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "expression_error"
    assert "with.v: missing path params.user.name" in result.error["message"]


async def test_retries_happen_inside_the_attempt_and_are_visible() -> None:
    result = await run(
        [
            {
                "id": "a",
                "uses": "test.flaky",
                "with": {"key": "retry-ok", "succeed_on": 3},
                "retry": {"attempts": 3, "backoff_seconds": 0.01},
            }
        ]
    )
    assert result.status == "succeeded"
    assert result.steps[0]["attempts"] == 3
    assert result.output == {"calls": 3}

    exhausted = await run(
        [
            {
                "id": "a",
                "uses": "test.flaky",
                "with": {"key": "retry-no", "succeed_on": 9},
                "retry": {"attempts": 2},
            }
        ]
    )
    assert exhausted.steps[0]["attempts"] == 2
    assert exhausted.error == {"step": "a", "code": "flaky", "message": "failure 2"}


async def test_non_retryable_errors_are_not_retried() -> None:
    result = await run(
        [
            {
                "id": "a",
                "uses": "test.flaky",
                "with": {"key": "final", "succeed_on": 5, "retryable": False},
                "retry": {"attempts": 5},
            }
        ]
    )
    assert result.steps[0]["attempts"] == 1


async def test_timeout_cancels_a_hung_tool() -> None:
    CALLS.pop("hang_cancelled", None)
    started = asyncio.get_running_loop().time()
    result = await run(
        [{"id": "a", "uses": "test.hang", "timeout_seconds": 0.05, "retry": {"attempts": 2}}]
    )
    assert asyncio.get_running_loop().time() - started < 2
    assert result.error == {"step": "a", "code": "timeout", "message": "step timed out after 0.05s"}
    assert result.steps[0]["attempts"] == 2
    assert CALLS["hang_cancelled"] == 2


async def test_tools_that_do_not_suspend_run_inline_with_their_errors_and_results() -> None:
    result = await run(
        [
            {"id": "a", "uses": "test.inline", "with": {"n": "${params.n}"}},
            {"id": "b", "uses": "test.inline", "with": {"fail": True}, "continue_on_error": True},
            {"id": "c", "uses": "echo", "with": {"a": "${steps.a.output.got.n}"}},
        ],
        params={"n": 3},
    )
    assert result.status == "succeeded"
    assert [s["status"] for s in result.steps] == ["succeeded", "failed", "succeeded"]
    assert result.steps[1]["error"] == {"code": "inline_failed", "message": "asked to fail"}
    assert result.output == {"a": 3}


async def test_a_tool_that_says_it_does_not_suspend_and_awaits_fails_its_step() -> None:
    result = await run([{"id": "x", "uses": "test.liar"}])
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "internal_error"
    assert "declared as not suspending" in result.error["message"]
    assert CALLS["liar"] == 1  # run once, not retried, and closed (no "never awaited" warning)


async def test_wait_tool_sleeps_for_real_within_its_timeout() -> None:
    ok = await run([{"id": "w", "uses": "wait", "with": {"seconds": 0.01}}])
    assert ok.output == {"waited": 0.01}
    late = await run([{"id": "w", "uses": "wait", "with": {"seconds": 1}, "timeout_seconds": 0.02}])
    assert late.error is not None
    assert late.error["code"] == "timeout"


async def test_cancelling_the_run_propagates() -> None:
    task = asyncio.create_task(run([{"id": "a", "uses": "test.hang"}]))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_large_outputs_are_truncated_in_records_but_usable_later() -> None:
    result = await run(
        [
            {"id": "a", "uses": "test.big", "with": {"size": 10_000}},
            {"id": "b", "uses": "transform", "with": {"value": "${length(steps.a.output.blob)}"}},
        ]
    )
    record = result.steps[0]["output"]
    assert record["truncated"] is True
    assert len(record["preview"]) <= 500
    assert result.output == 10_000


async def test_render_size_bound_fails_the_step() -> None:
    result = await run(
        [{"id": "a", "uses": "echo", "with": {"a": "${params.s}", "b": "${params.s}"}}],
        params={"s": "x" * 3_000},
    )
    assert result.error is not None
    assert result.error["code"] == "limit_exceeded"
    assert "max_render_bytes" in result.error["message"]


async def test_runtime_arguments_are_checked_against_the_schema() -> None:
    result = await run(
        [{"id": "w", "uses": "wait", "with": {"seconds": "${params.s}"}}], params={"s": "soon"}
    )
    assert result.error is not None
    assert result.error["code"] == "invalid_arguments"
    assert "with.seconds: must be number" in result.error["message"]


async def test_secrets_are_masked_in_inputs_outputs_and_errors() -> None:
    secret = "s3cr3t-Value"
    result = await run(
        [
            {
                "id": "a",
                "uses": "echo",
                "with": {
                    "auth": "Bearer ${secrets.TOKEN}",
                    "up": "${upper(secrets.TOKEN)}",
                    "n": "${params.n}",
                },
            },
            {"id": "b", "uses": "test.boom", "with": {"msg": "${secrets.TOKEN}"}},
        ],
        params={"n": 1},
        secrets={"TOKEN": secret, "UNUSED": "other"},
    )
    assert result.steps[0]["input"] == {"auth": "Bearer ***", "up": "***", "n": 1}
    assert result.steps[0]["output"] == {"auth": "Bearer ***", "up": "***", "n": 1}
    assert result.error == {
        "step": "b",
        "code": "tool_error",
        "message": "RuntimeError: kaboom ***",
    }
    assert secret not in repr(result.to_dict())
    assert secret.upper() not in repr(result.to_dict())


async def test_event_publish_uses_the_emitter_and_masks_secrets() -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []
    step = {
        "id": "p",
        "uses": "event.publish",
        "with": {"topic": "briefing.sent", "payload": {"k": "${secrets.K}"}},
    }
    result = await run(
        [step],
        secrets={"K": "hidden"},
        emit=lambda topic, payload: emitted.append((topic, payload)),
    )
    assert result.output == {"topic": "briefing.sent", "published": True}
    assert emitted == [("briefing.sent", {"k": "***"})]
    no_sink = await run([step], secrets={"K": "hidden"})
    assert no_sink.error is not None
    assert no_sink.error["code"] == "event_unavailable"


async def test_log_records_the_value() -> None:
    result = await run([{"id": "l", "uses": "log", "with": {"value": {"a": 1}, "level": "info"}}])
    assert result.output == {"logged": {"a": 1}}


async def test_transform_failures_are_step_failures() -> None:
    result = await run(
        [
            {
                "id": "t",
                "uses": "transform",
                "with": {"expr": "to_number(@) | divide(@, `0`)", "input": "5"},
            }
        ]
    )
    assert result.error is not None
    assert result.error["code"] == "expression_error"


async def test_invalid_payload_fails_the_run_without_raising() -> None:
    result = await run([{"id": "a", "uses": "no.such.tool"}])
    assert result.status == "failed"
    assert result.steps == []
    assert result.error is not None
    assert result.error["code"] == "invalid_pipeline"
    assert result.error["details"][0]["field"] == "payload.pipeline[0].uses"


def test_dry_run_renders_with_sample_params_and_defers_step_outputs() -> None:
    payload = {
        "params": {"city": "Paris"},
        "pipeline": [
            {
                "id": "fetch",
                "uses": "http.request",
                "with": {
                    "url": "https://w.example/${params.city}",
                    "headers": {"Authorization": "Bearer ${secrets.KEY}"},
                },
            },
            {
                "id": "say",
                "uses": "echo",
                "if": "steps.fetch.output.status == `200`",
                "with": {"t": "${steps.fetch.output.body}", "c": "${params.city}"},
            },
            {
                "id": "wait",
                "uses": "wait",
                "if": "${params.pause}",
                "with": {"seconds": "${params.secs}"},
            },
        ],
    }
    report = dry_run(
        payload,
        sample_params={"city": "Chisinau", "pause": True, "secs": "x"},
        registry=REGISTRY,
        limits=LIMITS,
        now=NOW,
    )
    assert report[0] == {
        "id": "fetch",
        "uses": "http.request",
        "would_run": True,
        "input": {"url": "https://w.example/Chisinau", "headers": {"Authorization": "Bearer ***"}},
        "deferred": [],
        "errors": [],
    }
    assert report[1]["would_run"] is None
    assert report[1]["deferred"] == ["with.t"]
    assert report[1]["input"]["c"] == "Chisinau"
    assert report[2]["errors"] == [
        {"field": "with.seconds", "message": "must be number, not string"}
    ]
    with pytest.raises(InvalidPipeline):
        dry_run({"pipeline": []}, sample_params={}, registry=REGISTRY, limits=LIMITS, now=NOW)


def test_instants_render_in_utc_with_z_whatever_zone_they_carry() -> None:
    from zoneinfo import ZoneInfo

    from ordinaut.pipeline.context import iso_utc

    assert iso_utc(datetime(2026, 3, 8, 7, 30, tzinfo=UTC)) == "2026-03-08T07:30:00Z"
    assert iso_utc(datetime(2026, 3, 8, 7, 30)) == "2026-03-08T07:30:00Z"  # naive means UTC
    chisinau = datetime(2026, 3, 29, 4, 30, 0, 250, tzinfo=ZoneInfo("Europe/Chisinau"))
    assert iso_utc(chisinau) == "2026-03-29T01:30:00.000250Z"


async def test_a_tool_changing_its_arguments_changes_neither_the_pipeline_nor_records() -> None:
    from ordinaut.pipeline import compile_payload

    payload = {
        "params": {"a": 1},
        "pipeline": [
            {"id": "e", "uses": "echo", "with": {"x": "${params.a}"}},
            {"id": "m", "uses": "test.mutator", "with": {"d": "${params}"}},
            {"id": "m2", "uses": "test.mutator", "with": {"d": "${steps.e.output}"}},
        ],
    }
    compiled = compile_payload(payload, registry=REGISTRY, limits=LIMITS)
    for _ in range(3):  # a worker runs one compiled pipeline again and again
        result = await execute(compiled, ctx(), registry=REGISTRY, limits=LIMITS)
        assert result.status == "succeeded"
        assert result.steps[0]["output"] == {"x": 1}
    assert compiled.params == {"a": 1}
