"""Validation before anything runs: each rule, with the step and field it names."""

from __future__ import annotations

from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline import (
    PipelineLimits,
    default_registry,
    parse_pipeline_text,
    validate_payload,
)

LIMITS = PipelineLimits(max_steps=5, max_string_length=200, max_expression_length=100)
REGISTRY = default_registry(Settings(), limits=LIMITS)


def problems(payload: object) -> list[dict[str, Any]]:
    with pytest.raises(InvalidPipeline) as info:
        validate_payload(payload, registry=REGISTRY, limits=LIMITS)
    assert info.value.status == 422
    assert info.value.code == "invalid_pipeline"
    return list(info.value.details)


def fields(payload: object) -> set[str]:
    return {p["field"] for p in problems(payload)}


def one(step: dict[str, Any], *before: dict[str, Any]) -> dict[str, Any]:
    return {"params": {"x": 1}, "pipeline": [*before, step]}


ECHO = {"id": "first", "uses": "echo", "with": {"a": 1}, "save_as": "saved"}


def test_valid_payload_is_normalized_and_normal_form_is_stable() -> None:
    payload = {
        "params": {"city": "Chisinau"},
        "pipeline": [
            ECHO,
            {
                "id": "fetch",
                "uses": "http.request",
                "with": {"url": "https://api.example/${params.city}", "method": "GET"},
                "if": "${steps.saved.output.a == `1`}",
                "timeout_seconds": 10,
                "retry": {"attempts": 3, "backoff_seconds": 1},
                "continue_on_error": True,
            },
        ],
    }
    normal = validate_payload(payload, registry=REGISTRY, limits=LIMITS)
    assert normal["pipeline"][0] == {
        "id": "first",
        "uses": "echo",
        "with": {"a": 1},
        "save_as": "saved",
        "if": None,
        "timeout_seconds": None,
        "retry": {"attempts": 1, "backoff_seconds": 0},
        "continue_on_error": False,
    }
    assert normal["pipeline"][1]["retry"] == {"attempts": 3, "backoff_seconds": 1}
    assert validate_payload(normal, registry=REGISTRY, limits=LIMITS) == normal


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ([], "payload", "must be an object"),
        ({"pipeline": []}, "payload.pipeline", "non-empty"),
        ({"pipeline": [ECHO], "extra": 1}, "payload.extra", "unknown field"),
        ({"params": [1], "pipeline": [ECHO]}, "payload.params", "must be an object"),
        (
            one({"id": "s", "uses": "nope.tool"}),
            "payload.pipeline[0].uses",
            "unknown tool 'nope.tool'",
        ),
        (one({"uses": "echo"}), "payload.pipeline[0].id", "must be a name"),
        (one({"id": "9bad", "uses": "echo"}), "payload.pipeline[0].id", "must be a name"),
        (one({"id": "first", "uses": "echo"}, ECHO), "payload.pipeline[1].id", "duplicate"),
        (
            one({"id": "x", "uses": "echo", "save_as": "saved"}, ECHO),
            "payload.pipeline[1].save_as",
            "duplicate",
        ),
        (
            one({"id": "s", "uses": "echo", "wiht": {}}),
            "payload.pipeline[0].wiht",
            "unknown step field",
        ),
        (
            one({"id": "s", "uses": "echo", "with": [1]}),
            "payload.pipeline[0].with",
            "must be an object",
        ),
        (
            one({"id": "s", "uses": "echo", "timeout_seconds": 301}),
            "payload.pipeline[0].timeout_seconds",
            "max_step_timeout_s",
        ),
        (
            one({"id": "s", "uses": "echo", "timeout_seconds": 0}),
            "payload.pipeline[0].timeout_seconds",
            "(0, 300]",
        ),
        (
            one({"id": "s", "uses": "echo", "retry": {"attempts": 99}}),
            "payload.pipeline[0].retry.attempts",
            "1 to 10",
        ),
        (
            one({"id": "s", "uses": "echo", "retry": {"backoff_seconds": -1}}),
            "payload.pipeline[0].retry.backoff_seconds",
            "0 to 60",
        ),
        (
            one({"id": "s", "uses": "echo", "retry": {"tries": 2}}),
            "payload.pipeline[0].retry.tries",
            "unknown",
        ),
        (
            one({"id": "s", "uses": "echo", "continue_on_error": "yes"}),
            "payload.pipeline[0].continue_on_error",
            "true or false",
        ),
        (
            one({"id": "s", "uses": "echo", "if": 3}),
            "payload.pipeline[0].if",
            "must be an expression",
        ),
        (
            one({"id": "s", "uses": "echo", "if": "a ${params.x} b"}),
            "payload.pipeline[0].if",
            "one expression",
        ),
    ],
)
def test_structure_rules(payload: object, field: str, message: str) -> None:
    found = problems(payload)
    assert any(p["field"] == field and message in p["message"] for p in found), found


def test_problems_name_the_step() -> None:
    found = problems(one({"id": "fetch", "uses": "http.request", "with": {"url": 5}}))
    assert found[0]["step"] == "fetch"
    assert found[0]["field"] == "payload.pipeline[0].with.url"


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ({"uses": "http.request", "with": {}}, "with.url", "is required"),
        ({"uses": "http.request", "with": {"url": 5}}, "with.url", "must be string"),
        (
            {"uses": "http.request", "with": {"url": "http://a", "method": "BREW"}},
            "with.method",
            "one of",
        ),
        (
            {"uses": "http.request", "with": {"url": "http://a", "verb": "GET"}},
            "with.verb",
            "not an allowed field",
        ),
        (
            {"uses": "http.request", "with": {"url": "http://a", "headers": {"X": 1}}},
            "with.headers.X",
            "must be string",
        ),
        (
            {"uses": "http.request", "with": {"url": "http://a", "json": {}, "text": ""}},
            "with.text",
            "not both",
        ),
        ({"uses": "wait", "with": {"seconds": 301}}, "with.seconds", "at most 300"),
        ({"uses": "wait", "with": {"seconds": "soon"}}, "with.seconds", "must be number"),
        (
            {"uses": "wait", "with": {"seconds": "${params.x} s"}},
            "with.seconds",
            "must be number, not string",
        ),
        ({"uses": "event.publish", "with": {"topic": "bad topic"}}, "with.topic", "must match"),
        ({"uses": "transform", "with": {"expr": "[*"}}, "with.expr", "does not parse"),
        ({"uses": "transform", "with": {}}, "with", "exactly one"),
        ({"uses": "log", "with": {"level": "loud"}}, "with.level", "one of"),
    ],
)
def test_arguments_fail_the_tool_schema(step: dict[str, Any], field: str, message: str) -> None:
    found = problems(one({"id": "s", **step}))
    assert any(
        p["field"] == f"payload.pipeline[0].{field}" and message in p["message"] for p in found
    ), found


def test_templated_arguments_are_not_judged_before_run_time() -> None:
    ok = one({"id": "s", "uses": "wait", "with": {"seconds": "${params.x}"}})
    validate_payload(ok, registry=REGISTRY, limits=LIMITS)


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (
            {"with": {"v": "${steps.later.output}"}},
            "with.v",
            "step 'later' does not run before this one",
        ),
        ({"with": {"v": "${steps.ghost.output}"}}, "with.v", "no earlier step 'ghost'"),
        ({"with": {"v": "${steps.s.output}"}}, "with.v", "step 's' does not run before this one"),
        ({"if": "steps.ghost.status == 'ok'"}, "if", "no earlier step 'ghost'"),
        (
            {"with": {"v": "${steps.first.outptu}"}},
            "with.v",
            "steps has only output, status, error",
        ),
        ({"with": {"v": "${steps}"}}, "with.v", "name a step"),
        ({"with": {"v": "${foo.bar}"}}, "with.v", "unknown name 'foo'"),
        ({"with": {"v": "${run.owner}"}}, "with.v", "run has only id, attempt, scheduled_for"),
        ({"with": {"v": "${now.year}"}}, "with.v", "now is an ISO 8601 string"),
        ({"if": "secrets.TOKEN == 'x'"}, "if", "secrets can only be used in tool arguments"),
        ({"with": {"v": "${keys(secrets)}"}}, "with.v", "name the secret"),
        ({"with": {"v": "${params.}"}}, "with.v", "does not parse"),
        ({"with": {"v": "${params.x"}}, "with.v", "never closed"),
        ({"with": {"v": "${nosuch(params.x)}"}}, "with.v", "unknown function"),
        ({"with": {"v": "${@}"}}, "with.v", "whole context"),
        ({"with": {"v": ["ok", {"deep": "${params.x || }"}]}}, "with.v[1].deep", "does not parse"),
        ({"with": {"odd key": "${bad}"}}, 'with["odd key"]', "unknown name"),
    ],
)
def test_expression_rules(step: dict[str, Any], field: str, message: str) -> None:
    payload = {
        "pipeline": [ECHO, {"id": "s", "uses": "echo", **step}, {"id": "later", "uses": "echo"}]
    }
    found = problems(payload)
    assert any(
        p["field"] == f"payload.pipeline[1].{field}" and message in p["message"] for p in found
    ), found


def test_references_by_id_and_save_as_and_secrets_in_with_are_fine() -> None:
    payload = one(
        {
            "id": "s",
            "uses": "echo",
            "if": "steps.first.status == 'succeeded'",
            "with": {"a": "${steps.saved.output.a}", "auth": "Bearer ${secrets.TOKEN}"},
        },
        ECHO,
    )
    validate_payload(payload, registry=REGISTRY, limits=LIMITS)


def test_limits_are_named() -> None:
    too_many = {"pipeline": [{"id": f"s{i}", "uses": "echo"} for i in range(6)]}
    assert problems(too_many)[0]["limit"] == "max_steps"
    long_string = one({"id": "s", "uses": "echo", "with": {"a": "x" * 201}})
    found = problems(long_string)
    assert found[0]["field"] == "payload.pipeline[0].with.a"
    assert found[0]["limit"] == "max_string_length"
    long_expr = one(
        {"id": "s", "uses": "echo", "with": {"a": "${" + "params.x || " * 9 + "params.x}"}}
    )
    assert problems(long_expr)[0]["limit"] == "max_expression_length"
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert problems({"params": {"d": deep}, "pipeline": [ECHO]})[0]["limit"] == "max_json_depth"


def test_non_json_values_are_refused() -> None:
    assert "payload.params.t" in fields({"params": {"t": object()}, "pipeline": [ECHO]})
    assert "payload.params.f" in fields({"params": {"f": float("nan")}, "pipeline": [ECHO]})


def test_every_problem_is_reported_at_once() -> None:
    payload = {
        "pipeline": [
            {"id": "a", "uses": "nope"},
            {"id": "a", "uses": "echo", "timeout_seconds": 1e9},
        ]
    }
    assert fields(payload) == {
        "payload.pipeline[0].uses",
        "payload.pipeline[1].id",
        "payload.pipeline[1].timeout_seconds",
    }


def test_parse_pipeline_text_accepts_json_and_yaml() -> None:
    as_json = parse_pipeline_text('{"pipeline": [{"id": "a", "uses": "echo"}]}')
    as_yaml = parse_pipeline_text(
        """
        params:
          day: 2026-03-08
        pipeline:
          - id: a
            uses: echo
            with:
              text: "Hello ${params.day}"
        """
    )
    assert as_json == {"pipeline": [{"id": "a", "uses": "echo"}]}
    assert as_yaml == {
        "params": {"day": "2026-03-08"},  # not a date object: payloads stay JSON
        "pipeline": [{"id": "a", "uses": "echo", "with": {"text": "Hello ${params.day}"}}],
    }
    validate_payload(as_yaml, registry=REGISTRY, limits=LIMITS)


def test_parse_pipeline_text_refuses_aliases_and_garbage() -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(InvalidPipeline, match="not valid YAML at line 2, column 8") as info:
        parse_pipeline_text(bomb)
    assert "aliases" in info.value.details[0]["message"]
    with pytest.raises(InvalidPipeline):
        parse_pipeline_text("pipeline: [unclosed")


def test_parse_errors_name_the_line_and_column() -> None:
    """JSON-looking text gets JSON's error, anything else YAML's; both say where."""
    with pytest.raises(InvalidPipeline) as info:
        parse_pipeline_text('{"title": "x",\n "pipeline" []}')
    assert info.value.message == "not valid JSON at line 2, column 13: Expecting ':' delimiter"
    assert (info.value.details[0]["line"], info.value.details[0]["column"]) == (2, 13)
    with pytest.raises(InvalidPipeline) as info:
        parse_pipeline_text("title: x\npipeline: [unclosed\n")
    assert info.value.message.startswith("not valid YAML at line 3, column 1: expected ',' or ']'")
    assert "(while parsing a flow sequence at line 2, column 11)" in info.value.message
    with pytest.raises(InvalidPipeline, match="not valid YAML at line 2, column 6: mapping values"):
        parse_pipeline_text("title: x\n  bad: indent\n")
    with pytest.raises(InvalidPipeline, match="max_payload_bytes"):
        parse_pipeline_text("x" * 100, limits=PipelineLimits(max_payload_bytes=10))
