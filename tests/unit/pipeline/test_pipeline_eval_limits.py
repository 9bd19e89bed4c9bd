"""Bounded evaluation (issue 17, finding 2): a short expression cannot freeze a process.

Numbers are bounded (``round`` digits clamped, integers past 2**63 become floats, overflow is
an error naming the limit), work is charged by the size of values, sorts by n log n, and a
wall-clock deadline stops any evaluation. Peak memory stands in for "did not build a huge
number": it is deterministic where a duration is not.
"""

from __future__ import annotations

import asyncio
import itertools
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import (
    PipelineLimits,
    RunContext,
    default_registry,
    execute,
    executor,
    interpreter,
)
from ordinaut.pipeline.expressions import Budget, ExpressionError, compile_expression

MULTIPLY_CHAIN = "params.n" + " | multiply(@, @)" * 21  # ~340 characters
NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
REGISTRY = default_registry(Settings())


def _ctx() -> RunContext:
    return RunContext("run-1", "task-1", "T", 1, NOW, NOW)


def _peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        try:
            result: Any = fn()
        except ExpressionError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _eval(source: str, data: Any = None, budget: Budget | None = None) -> Any:
    return compile_expression(source).evaluate(
        data if data is not None else {"params": {}}, budget=budget or Budget(500_000)
    )


def test_round_with_huge_digits_is_clamped_and_builds_no_huge_number() -> None:
    assert len(MULTIPLY_CHAIN) >= 340
    result, peak = _peak_bytes(lambda: _eval("round(`5`, `-10000000`)"))
    assert result == 0
    assert peak < 1_000_000  # 10**10000000 alone would take 4 MB
    assert _eval("round(`1234.5678`, `2`)") == 1234.57
    assert _eval("round(`1234.5678`, `-2`)") == 1200
    assert _eval("round(`1234.5678`, `100000000`)") == 1234.5678


def test_a_chain_of_multiplications_stops_at_the_number_limit() -> None:
    result, peak = _peak_bytes(lambda: _eval(MULTIPLY_CHAIN, {"params": {"n": 2}}))
    assert isinstance(result, ExpressionError)
    assert result.code == "limit_exceeded"
    assert "multiply(): number out of range" in result.message
    assert "2**63" in result.message
    assert peak < 1_000_000
    # within range the arithmetic is exact; past 2**63 an integer becomes a float
    assert _eval("multiply(`4294967296`, `2`)") == 8589934592
    big = _eval("multiply(`4294967296`, `4294967296`)")
    assert isinstance(big, float)
    assert big == 2.0**64


def test_work_is_charged_by_the_size_of_values() -> None:
    text = "x" * 100_000
    data = {"params": {"l": [text] * 1_000}}  # one string shared 1000 times: 100 MB to copy
    with pytest.raises(ExpressionError) as caught:
        _eval("params.l[*].length(to_json(@))", data)
    assert caught.value.code == "limit_exceeded"
    assert "max_expression_work (500000)" in caught.value.message
    assert _eval("params.l[:3].length(to_json(@))", data) == [100_002] * 3


def test_a_sort_is_charged_n_log_n() -> None:
    data = {"params": {"l": list(range(100_000, 0, -1))}}
    with pytest.raises(ExpressionError, match="max_expression_work"):
        _eval("sort(params.l)", data)
    assert _eval("sort(params.l)[:2]", {"params": {"l": [3, 1, 2]}}) == [1, 2]


def test_from_json_refuses_values_nested_past_max_json_depth() -> None:
    deep = "[" * 40 + "]" * 40
    with pytest.raises(ExpressionError, match=r"max_json_depth \(32\)"):
        _eval(f"from_json('{deep}')")
    assert _eval("from_json('[[1], \"[[[[\"]')") == [[1], "[[[["]


def test_the_deadline_stops_an_evaluation_whatever_its_work_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = itertools.count()
    monkeypatch.setattr(interpreter.time, "monotonic", lambda: float(next(ticks)))  # 1 s a read
    data = {"params": {"l": list(range(50_000))}}
    with pytest.raises(ExpressionError) as caught:
        _eval("params.l[*].[@, @]", data, Budget(10**9, seconds=3))
    assert caught.value.code == "limit_exceeded"
    assert "max_expression_ms (3000 ms)" in caught.value.message


async def test_a_heavy_expression_fails_its_step_with_the_limit_named() -> None:
    payload = {
        "params": {"n": 2},
        "pipeline": [{"id": "m", "uses": "echo", "with": {"x": "${" + MULTIPLY_CHAIN + "}"}}],
    }
    result = await execute(payload, _ctx(), registry=REGISTRY, limits=PipelineLimits())
    assert result.error is not None
    assert result.error["step"] == "m"
    assert result.error["code"] == "limit_exceeded"
    assert "number out of range" in result.error["message"]


async def test_a_long_pipeline_of_inline_steps_lets_the_event_loop_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every step takes "a second" on this clock, so the engine yields between steps; before,
    # a pipeline of in-process steps ran start to end without letting anything else run
    ticks = itertools.count()
    monkeypatch.setattr(executor.time, "monotonic", lambda: float(next(ticks)))
    steps = [{"id": f"s{i}", "uses": "echo", "with": {"i": i}} for i in range(5)]
    ran_meanwhile: list[int] = []

    async def other() -> None:
        for _ in range(3):
            ran_meanwhile.append(len(ran_meanwhile))
            await asyncio.sleep(0)

    side = asyncio.ensure_future(other())
    result = await execute({"pipeline": steps}, _ctx(), registry=REGISTRY, limits=PipelineLimits())
    assert result.succeeded
    assert len(ran_meanwhile) == 3  # ran to its end while the pipeline was running
    await side


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "code", "named"),
    [
        (
            '"' * 200_000,
            "limit_exceeded",
            "max_payload_bytes",
        ),  # renders in 200 KB, encodes in 400 KB
        # refused already as the step's arguments, which are recorded
        ({"a": "x\x00y"}, "unstorable_value", "with.payload.v.a: text may not contain NUL"),
        (_nested(40), "limit_exceeded", "max_json_depth"),
    ],
)
async def test_an_event_that_could_not_be_stored_fails_its_step(
    value: Any, code: str, named: str
) -> None:
    emitted: list[Any] = []
    payload = {
        "pipeline": [
            {
                "id": "p",
                "uses": "event.publish",
                "with": {"topic": "t", "payload": {"v": "${event.payload.v}"}},
            }
        ],
    }
    # the value arrives with the event that triggered the run (as from another system)
    context = RunContext(
        "run-1",
        "task-1",
        "T",
        1,
        NOW,
        NOW,
        event={"id": "e1", "topic": "in", "payload": {"v": value}},
        emit=lambda *e: emitted.append(e),
    )
    result = await execute(payload, context, registry=REGISTRY, limits=PipelineLimits())
    assert result.error is not None
    assert result.error["code"] == code
    assert named in result.error["message"]
    assert emitted == []


def test_slices_are_charged_through_the_projection_they_make() -> None:
    data = {"params": {"l": list(range(100_000))}}
    chain = "params.l" + " | @[::-1]" * 4  # four copies of 100,000 items, each projected
    with pytest.raises(ExpressionError, match="max_expression_work"):
        _eval(chain, data)
    assert _eval("params.l[::-1] | @[:2]", {"params": {"l": [1, 2, 3]}}) == [3, 2]
