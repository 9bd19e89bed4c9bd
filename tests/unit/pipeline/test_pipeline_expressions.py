"""The expression language: paths, typing, defaults, missing paths, functions, bounds."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinaut.pipeline.expressions import Budget, ExpressionError, compile_expression, compile_query
from ordinaut.pipeline.interpreter import function_names
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.templates import Renderer, Template, compile_tree, parse_template

CTX = {
    "params": {
        "name": "Ana",
        "n": 3,
        "flag": False,
        "items": [{"t": "a", "v": 1}, {"t": "b", "v": 2}],
    },
    "steps": {"fetch": {"output": {"body": {"temp": 21.5}}, "status": "succeeded", "error": None}},
    "event": None,
    "run": {"id": "r1", "attempt": 2, "scheduled_for": "2026-03-29T00:30:00Z"},
    "task": {"id": "t1", "title": "Briefing"},
    "now": "2026-03-29T00:30:00Z",
}


def ev(source: str, data: object = CTX) -> object:
    return compile_expression(source).evaluate(data)


def render(text: str, data: object = CTX) -> object:
    template = parse_template(text)
    if isinstance(template, str):
        return template
    return template.render(data, budget=Budget(100_000), max_string=10_000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${params.n}", 3),
        ("${params.flag}", False),
        ("${params.items[0]}", {"t": "a", "v": 1}),
        ("${params.items[*].v}", [1, 2]),
        ("${steps.fetch.output.body.temp}", 21.5),
        ("n=${params.n}", "n=3"),
        ("${params.flag} ${params.items[1]}", 'false {"t":"b","v":2}'),
        ("${params.name}${params.name}", "AnaAna"),
        ("$${params.n}", "${params.n}"),
        ("cost: $5", "cost: $5"),
        ("${ {a: params.n} }", {"a": 3}),
        ("${'}'}", "}"),
    ],
)
def test_whole_template_keeps_type_and_embedded_renders_text(text: str, expected: object) -> None:
    assert render(text) == expected


def test_substituted_value_is_never_evaluated_again() -> None:
    data = {**CTX, "params": {"evil": "${params.secret}", "secret": "x"}}
    assert render("${params.evil}", data) == "${params.secret}"
    assert render("v=${params.evil}", data) == "v=${params.secret}"


def test_rendering_a_tree_keeps_keys_literal_and_types() -> None:
    problems: list[object] = []
    tree = compile_tree(
        {"${k}": ["${params.n}", {"x": "${params.name}!"}], "plain": 1},
        "with",
        lambda path, exc: problems.append(path),
        max_expression_length=100,
    )
    assert not problems
    out = Renderer(
        CTX, limits=PipelineLimits(max_render_bytes=1_000, max_expression_work=10_000)
    ).render(tree, "with")
    assert out == {"${k}": [3, {"x": "Ana!"}], "plain": 1}


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("params.missing", "params.missing"),
        ("params.items[5].t", "params.items[5]"),
        ("steps.fetch.output.body.humidity", "steps.fetch.output.body.humidity"),
        ("event.payload.x", "event.payload.x"),
        ("params.n == `3` && params.nope", "params.nope"),
    ],
)
def test_missing_path_is_an_error_naming_the_path(source: str, path: str) -> None:
    with pytest.raises(
        ExpressionError, match=f"missing path {path.replace('[', '.').split('.')[0]}"
    ):
        ev(source)
    with pytest.raises(ExpressionError) as info:
        ev(source)
    assert path in info.value.message


def test_null_value_that_exists_is_not_missing() -> None:
    assert ev("event") is None
    assert ev("steps.fetch.error") is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("params.missing || 'dflt'", "dflt"),
        ("params.missing.deeper || `5`", 5),
        ("default(params.missing, 'd')", "d"),
        ("default(params.n, 'd')", 3),
        ("not_null(params.a, params.b, 'c')", "c"),
        ("params.flag || 'fallback'", "fallback"),
    ],
)
def test_defaults_cover_missing_paths(source: str, expected: object) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("params.n > `2`", True),
        ("params.name == 'Ana' && !params.flag", True),
        ("!steps.fetch.output.body.temp", False),
        ("!(params.flag)", True),
        ("type(params.n)", "number"),
        ("length(params.items[?v > `1`])", 1),
        ("lower(params.name)", "ana"),
        ("upper(params.name)", "ANA"),
        ("trim('  x ')", "x"),
        ("replace('a-b-c', '-', '+')", "a+b+c"),
        ("split('a,b', ',')", ["a", "b"]),
        ("concat(params.name, ':', params.n, ':', `null`)", "Ana:3:"),
        ("format('{} is {}', params.name, params.n)", "Ana is 3"),
        ("format('{1}{0} {{x}}', 'a', 'b')", "ba {x}"),
        ("substr('abcdef', `1`, `3`)", "bcd"),
        ("truncate('abcdef', `4`)", "abc…"),
        ("url_encode('a b&c')", "a%20b%26c"),
        ("to_json(params.items[0])", '{"t":"a","v":1}'),
        ("from_json('{\"a\": [1]}')", {"a": [1]}),
        ("join(',', params.items[*].t)", "a,b"),
        ("round(`2.567`, `2`)", 2.57),
        ("round(`2.5`, `0`)", 2),
        ("add(`1`, `2`)", 3),
        ("subtract(`1`, `2`)", -1),
        ("multiply(`3`, `2`)", 6),
        ("divide(`3`, `2`)", 1.5),
        ("mod(`7`, `3`)", 1),
        ("first(params.items).t", "a"),
        ("last(params.items).t", "b"),
        ("unique([`1`, `1`, `2`])", [1, 2]),
        ("compact([`1`, `null`])", [1]),
        ("items({a: `1`})", [["a", 1]]),
        ("from_items([['a', `1`]])", {"a": 1}),
        ("pick(params.items[0], ['t'])", {"t": "a"}),
        ("omit(params.items[0], ['t'])", {"v": 1}),
        ("get(params, 'nope', 'd')", "d"),
        ("if_else(params.flag, 'y', 'n')", "n"),
        ("sort_by(params.items, &v)[-1].t", "b"),
        ("add_seconds(now, `86400`)", "2026-03-30T00:30:00Z"),
        ("add_minutes(now, '30')", "2026-03-29T01:00:00Z"),
        ("add_hours(now, `24`)", "2026-03-30T00:30:00Z"),
        ("add_days(now, `-1`)", "2026-03-28T00:30:00Z"),
        ("add_duration(now, '1h30m')", "2026-03-29T02:00:00Z"),
        ("add_duration(now, '-1w')", "2026-03-22T00:30:00Z"),
        ("diff_seconds(add_hours(now, `1`), now)", 3600),
        # Chisinau moves from UTC+2 to UTC+3 at 00:00 UTC on 2026-03-29
        ("format_time(add_hours(now, `-1`), 'Europe/Chisinau', '%H:%M %Z')", "01:30 EET"),
        ("format_time(now, 'Europe/Chisinau', '%H:%M %Z')", "03:30 EEST"),
        ("to_zone(add_hours(now, `-1`), 'Europe/Chisinau')", "2026-03-29T01:30:00+02:00"),
        ("parse_time('2026-03-29T05:30:00+03:00')", "2026-03-29T02:30:00Z"),
        ("to_epoch('1970-01-01T00:01:00Z')", 60),
        ("start_of_day(now, 'Europe/Chisinau')", "2026-03-28T22:00:00Z"),
        ("weekday(now, 'UTC')", 7),
        ("run.attempt", 2),
        ("task.title", "Briefing"),
    ],
)
def test_functions_and_operators(source: str, expected: object) -> None:
    assert ev(source) == expected


def test_every_added_function_is_exercised_above() -> None:
    tested = test_functions_and_operators.pytestmark[0].args[1]  # type: ignore[attr-defined]
    text = " ".join(source for source, _ in tested) + " default not_null"
    added = {
        "lower upper trim replace split concat format substr truncate url_encode to_json from_json"
        " round add subtract multiply divide mod first last unique compact items from_items pick"
        " omit get default if_else add_seconds add_minutes add_hours add_days add_duration"
        " diff_seconds format_time to_zone parse_time to_epoch start_of_day weekday"
    }.pop().split()
    assert set(added) <= set(function_names())
    assert all(f"{name}(" in text or name in text for name in added)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("divide(`1`, `0`)", "division by zero"),
        ("format_time(now, 'Mars/Base', '%H')", "unknown time zone"),
        ("format_time(now, '../../etc/passwd', '%H')", "unknown time zone"),
        ("format_time(now, 'Factory', '%H')", "unknown time zone"),
        ("to_zone(now, 'posixrules')", "unknown time zone"),
        ("add_hours('yesterday', `1`)", "not an ISO 8601 time"),
        ("add_duration(now, '3 fortnights')", "not a duration"),
        ("format('{} {}', 'a')", "no argument"),
        ("upper(params.n)", "invalid type"),
        ("from_json('{')", "not JSON"),
    ],
)
def test_function_errors_are_expression_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        ev(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("params.", "does not parse"),
        ("nosuch(params.n)", "unknown function nosuch()"),
        ("upper(params.name, 'x')", "takes 1 argument"),
        ("@", "whole context"),
        ("*", "whole context"),
        ("keys(@)", "whole context"),
        ("@.params", None),
        ("", "empty expression"),
    ],
)
def test_compile_errors(source: str, message: str | None) -> None:
    if message is None:
        assert compile_expression(source).refs[0].path == ("params",)
        return
    with pytest.raises(ExpressionError, match=message):
        compile_expression(source)


def test_expression_length_is_bounded() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("params.n" + " || params.n" * 10, max_length=20)
    assert info.value.code == "limit_exceeded"


def test_deeply_nested_expression_is_an_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("(" * 3000 + "params" + ")" * 3000, max_length=10_000)


def test_doubling_expression_runs_out_of_budget() -> None:
    bomb = "params.items" + " | [@, @][]" * 60
    with pytest.raises(ExpressionError) as info:
        compile_expression(bomb).evaluate(CTX, budget=Budget(50_000))
    assert info.value.code == "limit_exceeded"


def test_equality_on_shared_structures_is_charged() -> None:
    side = "params.items" + " | [@, @]" * 40
    with pytest.raises(ExpressionError, match="max_expression_work"):
        compile_expression(f"({side}) == ({side})").evaluate(CTX, budget=Budget(50_000))


def test_string_building_is_bounded() -> None:
    expr = compile_expression(
        "replace(params.name, 'A', join('', [" + "'xxxxxxxxxx'," * 50 + "'x']))"
    )
    with pytest.raises(ExpressionError) as info:
        expr.evaluate(CTX, max_string=100)
    assert info.value.code == "limit_exceeded"


def test_render_size_is_bounded() -> None:
    data = {**CTX, "params": {"big": "x" * 600}}
    tree = compile_tree(
        {"a": "${params.big}", "b": "${params.big}"}, "with", print, max_expression_length=50
    )
    with pytest.raises(ExpressionError, match="max_render_bytes") as info:
        Renderer(
            data, limits=PipelineLimits(max_render_bytes=1_000, max_expression_work=10_000)
        ).render(tree, "with")
    assert info.value.code == "limit_exceeded"


def test_unterminated_template_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="never closed"):
        parse_template("hello ${params.name")


def test_template_parts() -> None:
    template = parse_template("a ${params.n} b ${ {x: params.n} } c")
    assert isinstance(template, Template)
    assert template.whole is None
    assert [p if isinstance(p, str) else p.source for p in template.parts] == [
        "a ",
        "params.n",
        " b ",
        " {x: params.n} ",
        " c",
    ]


def test_query_mode_allows_current_node_and_does_not_require_paths() -> None:
    query = compile_query("[?v > `1`].{name: t, missing: nope}")
    assert query.evaluate(CTX["params"]["items"]) == [{"name": "b", "missing": None}]  # type: ignore[index]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_substituted_text_is_data_whatever_it_contains(value: str) -> None:
    data = {**CTX, "params": {"s": value}}
    assert render("${params.s}", data) == value
    assert render("<${params.s}>", data) == f"<{value}>"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="${}'\"`\\ab.|@*", max_size=30))
def test_template_scanner_only_ever_raises_expression_errors(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        parse_template(text)


def test_a_backtick_literal_that_is_not_json_is_a_string_not_a_warning() -> None:
    # jmespath's deprecated `abc` literal: read as the string, never an exception
    assert render("${`abc`}", {}) == "abc"
    parse_template("${``}")
