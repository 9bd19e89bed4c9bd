"""foreach: a step run once per item, ``max_concurrency`` at a time, outputs in item order;
validation when written, per-item records, continue_on_error per item, bounds, cancellation,
secrets, and the dry run's per-item renders."""

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
    compile_payload,
    default_registry,
    dry_run,
    execute,
    validate_payload,
)
from ordinaut.taskdefs import worst_case_s

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
LIMITS = PipelineLimits(
    max_step_output_bytes=4_000,
    max_render_bytes=5_000,
    max_foreach_items=6,
    max_foreach_concurrency=4,
)


class Probe:
    """What the test tools saw: items in flight now and at most, finish order, cancellations."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.finished: list[Any] = []
        self.cancelled = 0
        self.calls: dict[str, int] = {}


PROBE = Probe()


async def _slow(args: dict[str, Any], ctx: RunContext) -> Any:
    """Yields to the loop ``args["turns"]`` times (no clock): more turns finish later."""
    PROBE.in_flight += 1
    PROBE.most = max(PROBE.most, PROBE.in_flight)
    try:
        for _ in range(int(args.get("turns", 1))):
            await asyncio.sleep(0)
        if args.get("fail"):
            raise ToolError("item_failed", f"asked to fail on {args.get('name')}")
        PROBE.finished.append(args.get("name"))
        return {"name": args.get("name"), "index": args.get("index")}
    except asyncio.CancelledError:
        PROBE.cancelled += 1
        raise
    finally:
        PROBE.in_flight -= 1


async def _hang(args: dict[str, Any], ctx: RunContext) -> Any:
    PROBE.in_flight += 1
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        PROBE.cancelled += 1
        raise
    finally:
        PROBE.in_flight -= 1


async def _flaky(args: dict[str, Any], ctx: RunContext) -> Any:
    key = args["key"]
    PROBE.calls[key] = PROBE.calls.get(key, 0) + 1
    if PROBE.calls[key] < 2:
        raise ToolError("flaky", "first call fails", retryable=True)
    return {"key": key, "calls": PROBE.calls[key]}


def _registry() -> Any:
    registry = default_registry(Settings(), limits=LIMITS)
    for name, fn in (("test.slow", _slow), ("test.hang", _hang), ("test.flaky", _flaky)):
        registry.register(Tool(name=name, description=name, input_schema={"type": "object"}, fn=fn))
    return registry


REGISTRY = _registry()


@pytest.fixture(autouse=True)
def _fresh_probe() -> None:
    PROBE.__init__()  # type: ignore[misc]


def ctx(**changes: Any) -> RunContext:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "task_id": "task-1",
        "task_title": "foreach",
        "attempt": 1,
        "scheduled_for": NOW,
        "now": NOW,
    }
    values.update(changes)
    return RunContext(**values)


async def run(
    pipeline: list[dict[str, Any]], params: dict[str, Any] | None = None, **changes: Any
) -> Any:
    payload = {"params": params or {}, "pipeline": pipeline}
    return await execute(payload, ctx(**changes), registry=REGISTRY, limits=LIMITS)


# -- running ---------------------------------------------------------------------------------


async def test_runs_once_per_item_with_item_and_index_and_outputs_in_order() -> None:
    result = await run(
        [
            {
                "id": "greet",
                "uses": "echo",
                "foreach": "${params.cities}",
                "with": {"text": "${index}: ${upper(item.name)}", "raw": "${item}"},
            },
            {"id": "after", "uses": "echo", "with": {"second": "${steps.greet.output[1].text}"}},
        ],
        params={"cities": [{"name": "Paris"}, {"name": "Oslo"}, {"name": "Lima"}]},
    )
    assert result.status == "succeeded", result.error
    greet = result.steps[0]
    assert [o["text"] for o in greet["output"]] == ["0: PARIS", "1: OSLO", "2: LIMA"]
    assert greet["input"] == [{"name": "Paris"}, {"name": "Oslo"}, {"name": "Lima"}]
    assert [i["index"] for i in greet["items"]] == [0, 1, 2]
    assert all(i["status"] == "succeeded" and i["attempts"] == 1 for i in greet["items"])
    assert greet["items"][1]["input"] == {"text": "1: OSLO", "raw": {"name": "Oslo"}}
    assert greet["attempts"] == 3
    assert result.steps[1]["output"] == {"second": "1: OSLO"}


async def test_concurrent_items_finish_out_of_order_but_output_keeps_item_order() -> None:
    names = ["slowest", "fast", "slow", "fastest"]
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.slow",
                "foreach": "${params.items}",
                "max_concurrency": 4,
                "with": {"name": "${item.name}", "turns": "${item.turns}", "index": "${index}"},
            }
        ],
        params={
            "items": [{"name": n, "turns": t} for n, t in zip(names, (40, 5, 20, 1), strict=True)]
        },
    )
    assert result.status == "succeeded", result.error
    assert PROBE.most == 4
    assert PROBE.finished == ["fastest", "fast", "slow", "slowest"]
    assert [o["name"] for o in result.output] == names
    assert [o["index"] for o in result.output] == [0, 1, 2, 3]


@pytest.mark.parametrize("concurrency", [1, 2, 3])
async def test_never_more_items_at_once_than_max_concurrency(concurrency: int) -> None:
    step: dict[str, Any] = {
        "id": "each",
        "uses": "test.slow",
        "foreach": "${params.items}",
        "with": {"name": "${item}", "turns": 3},
    }
    if concurrency > 1:
        step["max_concurrency"] = concurrency
    result = await run([step], params={"items": ["a", "b", "c", "d", "e", "f"]})
    assert result.status == "succeeded"
    assert PROBE.most == concurrency  # reached, never passed
    assert [o["name"] for o in result.output] == ["a", "b", "c", "d", "e", "f"]


async def test_an_empty_list_gives_an_empty_output_and_runs_nothing() -> None:
    result = await run(
        [{"id": "each", "uses": "test.slow", "foreach": "${params.items}", "with": {}}],
        params={"items": []},
    )
    assert result.status == "succeeded"
    assert result.steps[0]["output"] == []
    assert result.steps[0]["items"] == []
    assert PROBE.finished == []


async def test_first_failure_fails_the_step_cancelling_items_in_flight_and_starting_none() -> None:
    items = [
        {"name": "long-1", "turns": 1000},
        {"name": "bad", "turns": 2, "fail": True},
        {"name": "long-2", "turns": 1000},
        {"name": "never-1"},
        {"name": "never-2"},
    ]
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.slow",
                "foreach": "${params.items}",
                "max_concurrency": 3,
                "with": {
                    "name": "${item.name}",
                    "turns": "${item.turns || `1`}",
                    "fail": "${item.fail || `false`}",
                },
            },
            {"id": "later", "uses": "echo"},
        ],
        params={"items": items},
    )
    assert result.status == "failed"
    assert result.error["step"] == "each"
    assert result.error["code"] == "item_failed"
    assert result.error["message"] == "item 1: asked to fail on bad"
    assert [s["id"] for s in result.steps] == ["each"]  # the run stopped there
    records = {r["index"]: r for r in result.steps[0]["items"]}
    assert records[1]["status"] == "failed"
    assert records[0]["status"] == records[2]["status"] == "canceled"
    assert set(records) == {0, 1, 2}  # items 3 and 4 never started
    assert PROBE.cancelled == 2
    assert PROBE.in_flight == 0
    assert result.steps[0]["output"] is None


async def test_without_concurrency_the_first_failure_stops_the_items_after_it() -> None:
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.slow",
                "foreach": "${params.items}",
                "with": {"name": "${item}", "fail": "${item == 'b'}"},
            }
        ],
        params={"items": ["a", "b", "c"]},
    )
    assert result.status == "failed"
    assert [r["status"] for r in result.steps[0]["items"]] == ["succeeded", "failed"]
    assert PROBE.finished == ["a"]


async def test_continue_on_error_applies_per_item() -> None:
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.slow",
                "foreach": "${params.items}",
                "max_concurrency": 2,
                "continue_on_error": True,
                "with": {"name": "${item}", "fail": "${starts_with(item, 'bad')}"},
            },
            {
                "id": "summary",
                "uses": "echo",
                "with": {
                    "ok": "${steps.each.output[?name].name}",
                    "errors": "${steps.each.output[?error].error.code}",
                    "status": "${steps.each.status}",
                },
            },
        ],
        params={"items": ["a", "bad-1", "c", "bad-2"]},
    )
    assert result.status == "succeeded"
    each = result.steps[0]
    assert each["status"] == "failed"
    assert each["error"] == {
        "code": "item_failed",
        "message": "item 1: asked to fail on bad-1 (2 of 4 items failed)",
    }
    assert each["output"][0] == {"name": "a", "index": None}
    assert each["output"][1] == {
        "error": {"code": "item_failed", "message": "asked to fail on bad-1"}
    }
    assert [r["status"] for r in each["items"]] == ["succeeded", "failed", "succeeded", "failed"]
    assert result.steps[1]["output"] == {
        "ok": ["a", "c"],
        "errors": ["item_failed", "item_failed"],
        "status": "failed",
    }


async def test_each_item_gets_its_own_timeout_and_retries() -> None:
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.flaky",
                "foreach": "${params.keys}",
                "max_concurrency": 2,
                "retry": {"attempts": 2},
                "with": {"key": "${item}"},
            },
            {
                "id": "stuck",
                "uses": "test.hang",
                "foreach": "${params.keys}",
                "max_concurrency": 2,
                "timeout_seconds": 0.01,
                "continue_on_error": True,
            },
        ],
        params={"keys": ["x", "y"]},
    )
    each, stuck = result.steps
    assert each["output"] == [{"key": "x", "calls": 2}, {"key": "y", "calls": 2}]
    assert [r["attempts"] for r in each["items"]] == [2, 2]
    assert each["attempts"] == 4
    assert stuck["status"] == "failed"
    assert [o["error"]["code"] for o in stuck["output"]] == ["timeout", "timeout"]
    assert stuck["output"][0]["error"]["message"] == "step timed out after 0.01s"


async def test_more_items_than_the_bound_fails_the_step_naming_the_limit() -> None:
    result = await run(
        [{"id": "each", "uses": "echo", "foreach": "${params.items}", "with": {"v": "${item}"}}],
        params={"items": list(range(7))},
    )
    assert result.status == "failed"
    assert result.error["code"] == "limit_exceeded"
    assert result.error["message"] == "foreach: 7 items, more than max_foreach_items (6)"
    assert "items" not in result.steps[0]


@pytest.mark.parametrize(
    ("value", "kind"), [({"a": 1}, "object"), ("abc", "string"), (None, "null"), (3, "integer")]
)
async def test_a_foreach_that_is_not_a_list_fails_the_step(value: Any, kind: str) -> None:
    result = await run(
        [{"id": "each", "uses": "echo", "foreach": "${params.items}", "with": {}}],
        params={"items": value},
    )
    assert result.status == "failed"
    assert result.error["code"] == "invalid_foreach"
    assert result.error["message"] == f"foreach: evaluated to {kind}, not a list"


async def test_the_foreach_expression_is_bounded_by_the_expression_budget() -> None:
    limits = PipelineLimits(max_expression_work=200, max_foreach_items=1_000)
    payload = {
        "params": {"n": list(range(100))},
        "pipeline": [
            {"id": "each", "uses": "echo", "foreach": "${params.n[*].[@, @, @]}", "with": {}}
        ],
    }
    result = await execute(payload, ctx(), registry=REGISTRY, limits=limits)
    assert result.status == "failed"
    assert result.error["code"] == "limit_exceeded"
    assert "max_expression_work" in result.error["message"]
    assert result.error["message"].startswith("foreach: ")


async def test_if_false_skips_the_whole_foreach_step() -> None:
    result = await run(
        [
            {
                "id": "each",
                "uses": "test.slow",
                "if": "${params.go}",
                "foreach": "${params.items}",
                "with": {"name": "${item}"},
            }
        ],
        params={"items": ["a"], "go": False},
    )
    assert result.steps[0]["status"] == "skipped"
    assert PROBE.finished == []


async def test_cancelling_the_run_cancels_and_awaits_every_item_in_flight() -> None:
    task = asyncio.create_task(
        run(
            [
                {
                    "id": "each",
                    "uses": "test.hang",
                    "foreach": "${params.items}",
                    "max_concurrency": 3,
                }
            ],
            params={"items": [1, 2, 3, 4, 5]},
        )
    )
    while PROBE.in_flight < 3:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert PROBE.cancelled == 3
    assert PROBE.in_flight == 0


async def test_secrets_and_secret_derived_items_never_reach_records() -> None:
    result = await run(
        [
            {"id": "keys", "uses": "echo", "with": {"list": ["${secrets.TOKEN}", "public"]}},
            {
                "id": "each",
                "uses": "echo",
                "foreach": "${steps.keys.output.list}",
                "with": {"auth": "Bearer ${secrets.TOKEN}", "value": "${item}", "i": "${index}"},
            },
        ],
        secrets={"TOKEN": "s3cr3t-value"},
    )
    assert result.status == "succeeded", result.error
    each = result.steps[1]
    assert "s3cr3t-value" not in repr(result.steps)
    assert each["input"] == ["***", "public"]
    assert each["output"] == [
        {"auth": "Bearer ***", "value": "***", "i": 0},
        {"auth": "Bearer ***", "value": "public", "i": 1},
    ]
    assert each["items"][0]["input"] == {"auth": "Bearer ***", "value": "***", "i": 0}


# -- validation ------------------------------------------------------------------------------


def problems(step: dict[str, Any], *before: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(InvalidPipeline) as info:
        validate_payload(
            {"params": {"l": [1]}, "pipeline": [*before, step]}, registry=REGISTRY, limits=LIMITS
        )
    assert info.value.status == 422
    return list(info.value.details)


FIELD = "payload.pipeline[0]"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"foreach": ["a", "b"]}, "foreach", "must be one expression such as ${params.cities}"),
        ({"foreach": "params.l"}, "foreach", "must be one expression such as ${params.cities}"),
        ({"foreach": "x ${params.l}"}, "foreach", "not text around ${...}"),
        ({"foreach": "${params.l"}, "foreach", "is never closed"),
        ({"foreach": "${secrets.K}"}, "foreach", "secrets can only be used in tool arguments"),
        ({"foreach": "${item}"}, "foreach", "item is in scope only in the with of a step"),
        ({"foreach": "${steps.nope.output}"}, "foreach", "no earlier step 'nope'"),
        ({"foreach": "${params.l}", "max_concurrency": 0}, "max_concurrency", "from 1 to 4"),
        ({"foreach": "${params.l}", "max_concurrency": 5}, "max_concurrency", "from 1 to 4"),
        ({"foreach": "${params.l}", "max_concurrency": "2"}, "max_concurrency", "from 1 to 4"),
        ({"foreach": "${params.l}", "max_concurrency": True}, "max_concurrency", "from 1 to 4"),
        ({"max_concurrency": 2}, "max_concurrency", "goes with foreach"),
        ({"with": {"v": "${item}"}}, "with.v", "item is in scope only in the with of a step"),
        ({"with": {"v": "${index}"}}, "with.v", "index is in scope only in the with of a step"),
        (
            {"foreach": "${params.l}", "if": "${item}"},
            "if",
            "item is in scope only in the with of a step",
        ),
        (
            {"foreach": "${params.l}", "with": {"v": "${index.x}"}},
            "with.v",
            "index is the item's position (a number) and has no fields",
        ),
    ],
)
def test_foreach_fields_are_validated_naming_the_field(
    extra: dict[str, Any], field: str, message: str
) -> None:
    found = problems({"id": "s", "uses": "echo", **extra})
    assert any(p["field"] == f"{FIELD}.{field}" and message in p["message"] for p in found), found
    if field == "max_concurrency" and "from 1" in message:
        assert next(p for p in found if p["field"].endswith(field))["limit"] == (
            "max_foreach_concurrency"
        )


def test_a_foreach_step_is_normalized_with_its_concurrency_and_others_keep_their_shape() -> None:
    payload = {
        "params": {"l": [1, 2]},
        "pipeline": [
            {"id": "a", "uses": "echo", "foreach": "${params.l}", "with": {"v": "${item}"}},
            {"id": "b", "uses": "echo", "foreach": "${params.l}", "max_concurrency": 3},
            {"id": "c", "uses": "echo"},
        ],
    }
    normal = validate_payload(payload, registry=REGISTRY, limits=LIMITS)["pipeline"]
    assert (normal[0]["foreach"], normal[0]["max_concurrency"]) == ("${params.l}", 1)
    assert (normal[1]["foreach"], normal[1]["max_concurrency"]) == ("${params.l}", 3)
    assert "foreach" not in normal[2]
    assert "max_concurrency" not in normal[2]
    # the normal form is itself valid and stable
    assert (
        validate_payload(
            {"params": {"l": [1, 2]}, "pipeline": normal}, registry=REGISTRY, limits=LIMITS
        )["pipeline"]
        == normal
    )


def test_a_runs_worst_case_counts_a_foreach_step_once_per_round() -> None:
    def worst(step: dict[str, Any]) -> float:
        payload = {"params": {"l": []}, "pipeline": [step]}
        return worst_case_s(compile_payload(payload, registry=REGISTRY, limits=LIMITS))

    plain = {"id": "w", "uses": "wait", "with": {"seconds": 1}, "timeout_seconds": 10}
    assert worst(plain) == 10
    # max_foreach_items is 6 here: 6 rounds one at a time, 3 rounds two at a time, 2 for four
    assert worst({**plain, "foreach": "${params.l}"}) == 60
    assert worst({**plain, "foreach": "${params.l}", "max_concurrency": 2}) == 30
    assert worst({**plain, "foreach": "${params.l}", "max_concurrency": 4}) == 20
    retried = {**plain, "retry": {"attempts": 2, "backoff_seconds": 1}}
    assert worst({**retried, "foreach": "${params.l}", "max_concurrency": 3}) == 2 * 21
    # a tool that does not suspend costs nothing, however many items
    assert worst({"id": "e", "uses": "echo", "foreach": "${params.l}"}) == 0


# -- dry run ---------------------------------------------------------------------------------


def test_dry_run_renders_each_item_and_defers_lists_from_earlier_steps() -> None:
    payload = {
        "params": {"cities": ["Paris", "Oslo"]},
        "pipeline": [
            {
                "id": "fetch",
                "uses": "http.request",
                "foreach": "${params.cities}",
                "max_concurrency": 2,
                "with": {
                    "url": "https://w.example/${url_encode(item)}?n=${index}",
                    "headers": {"Authorization": "Bearer ${secrets.KEY}"},
                },
            },
            {
                "id": "say",
                "uses": "echo",
                "foreach": "${steps.fetch.output}",
                "with": {"status": "${item.status}", "city": "${params.cities[0]}"},
            },
            {"id": "bad", "uses": "echo", "foreach": "${params.cities[0]}", "with": {}},
        ],
    }
    fetch, say, bad = dry_run(
        payload, sample_params=None, registry=REGISTRY, limits=LIMITS, now=NOW
    )
    assert fetch["foreach"] == ["Paris", "Oslo"]
    assert fetch["deferred"] == ["with.url"]  # it depends on the item
    assert fetch["input"]["url"] == "https://w.example/${url_encode(item)}?n=${index}"
    assert fetch["items"] == [
        {
            "index": 0,
            "input": {
                "url": "https://w.example/Paris?n=0",
                "headers": {"Authorization": "Bearer ***"},
            },
            "deferred": [],
            "errors": [],
        },
        {
            "index": 1,
            "input": {
                "url": "https://w.example/Oslo?n=1",
                "headers": {"Authorization": "Bearer ***"},
            },
            "deferred": [],
            "errors": [],
        },
    ]
    assert say["foreach"] is None
    assert say["items"] == []
    assert say["deferred"] == ["with.status"]
    assert say["input"]["city"] == "Paris"
    assert bad["errors"] == [{"field": "foreach", "message": "is string, not a list"}]


async def test_each_item_passes_on_its_own_idempotency_key_stable_across_attempts() -> None:
    # Items are distinct requests: one key for all would make a receiver that honours
    # Idempotency-Key drop items 1..n as repeats of item 0 (or refuse them: same key, another
    # body). Each item's key is stable across attempts of the slot, as the run's key is.
    seen: list[tuple[int, str, str]] = []

    async def keyed(args: dict[str, Any], context: RunContext) -> Any:
        seen.append((context.attempt, args["name"], context.idempotency_key))
        return None

    registry = _registry()
    registry.register(
        Tool(name="test.keyed", description="", input_schema={"type": "object"}, fn=keyed)
    )
    payload = {
        "params": {"items": ["a", "b", "c"]},
        "pipeline": [
            {"id": "one", "uses": "test.keyed", "with": {"name": "plain"}},
            {
                "id": "each",
                "uses": "test.keyed",
                "foreach": "${params.items}",
                "max_concurrency": 2,
                "with": {"name": "each-${item}"},
            },
            {
                "id": "again",
                "uses": "test.keyed",
                "foreach": "${params.items}",
                "with": {"name": "again-${item}"},
            },
        ],
    }
    for attempt in (1, 2):
        result = await execute(
            payload,
            ctx(attempt=attempt, idempotency_key="ord-slot"),
            registry=registry,
            limits=LIMITS,
        )
        assert result.status == "succeeded", result.error
    keys = {(attempt, name): key for attempt, name, key in seen}
    assert keys[1, "plain"] == "ord-slot"  # a step without foreach keeps the run's key
    item_names = [f"{step}-{item}" for step in ("each", "again") for item in "abc"]
    first = [keys[1, name] for name in item_names]
    assert len(set(first)) == len(first)  # one key per item, of each foreach step
    assert "ord-slot" not in first
    assert all(key.startswith("ord-slot") for key in first)  # derived from the slot's key
    assert [keys[2, name] for name in item_names] == first  # the same on the next attempt


async def test_items_pass_on_no_idempotency_key_when_the_run_has_none() -> None:
    seen: list[str] = []

    async def keyed(args: dict[str, Any], context: RunContext) -> Any:
        seen.append(context.idempotency_key)
        return None

    registry = _registry()
    registry.register(
        Tool(name="test.keyed", description="", input_schema={"type": "object"}, fn=keyed)
    )
    payload = {
        "params": {"items": [1, 2]},
        "pipeline": [{"id": "each", "uses": "test.keyed", "foreach": "${params.items}"}],
    }
    result = await execute(payload, ctx(), registry=registry, limits=LIMITS)
    assert result.status == "succeeded", result.error
    assert seen == ["", ""]


def test_a_dry_runs_item_renders_together_spend_at_most_one_render_per_step() -> None:
    # A dry run evaluates in the API's small evaluation pool (shared with event filters): its
    # foreach items must not multiply what a dry run may cost by max_foreach_items. Items
    # together get max_steps renders' worth of work; the rest are shown unrendered (deferred).
    limits = PipelineLimits(
        max_steps=2, max_expression_work=4_000, max_foreach_items=50, max_foreach_concurrency=4
    )
    registry = default_registry(Settings(), limits=limits)
    heavy = "${join(',', map(&to_string(@), params.big))}-${item}"
    payload = {
        "params": {"items": list(range(50)), "big": list(range(300))},
        "pipeline": [
            {"id": "each", "uses": "echo", "foreach": "${params.items}", "with": {"t": heavy}}
        ],
    }
    (report,) = dry_run(payload, sample_params=None, registry=registry, limits=limits, now=NOW)
    items = report["items"]
    assert len(items) == 50  # one entry per item, as always
    rendered = [i for i in items if not i["deferred"]]
    held_back = [i for i in items if i["deferred"]]
    assert rendered  # the first items are rendered in full
    assert rendered[0]["input"]["t"].endswith("-0")
    assert rendered[0]["errors"] == []
    assert held_back  # ... until the dry run's allowance for items is spent
    assert len(rendered) < 20
    assert [i["index"] for i in items] == list(range(50))
    assert items.index(held_back[0]) == len(rendered)  # a prefix is rendered, the rest is not
    assert held_back[0]["input"] == {"t": heavy}
    assert held_back[0]["deferred"] == ["with.t"]
    assert held_back[0]["errors"] == []
    assert "max_steps" in held_back[0]["note"]
