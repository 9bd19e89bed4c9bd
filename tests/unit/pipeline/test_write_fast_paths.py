"""The cheap paths a task write takes through pipeline validation, against the full ones.

- ``check_document`` finds a fitting document without naming a path for every value
  (``_fits``), and walks again to name the problems only when there are some.
- the normal form copies params and arguments with ``_copy`` instead of ``copy.deepcopy``.
- ``PipelineLimits.from_settings`` builds one frozen value per distinct set of settings.
- ``taskdefs.prepare_scoped`` compiles each pipeline once and says which scopes its tools need,
  a condition task's check included.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits, compile_payload, validate
from ordinaut.pipeline import document as doc
from ordinaut.pipeline import limits as limits_module
from ordinaut.pipeline.tools import default_registry
from ordinaut.taskdefs import prepare, prepare_scoped

SMALL = PipelineLimits(max_string_length=5, max_json_depth=3)
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


class Odd:
    """Not a JSON value."""


json_like = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.just(Odd()),
        st.just((1, 2)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=7), st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=7), inner, max_size=4)
    ),
    max_leaves=20,
)


def full_walk(value: Any, limits: PipelineLimits) -> list[dict[str, Any]]:
    """check_document with the quick walk turned off: the walk that names every path."""
    real = doc._fits
    doc._fits = lambda *_: False  # type: ignore[assignment]
    try:
        return doc.check_document(value, limits)
    finally:
        doc._fits = real


@settings(max_examples=400, deadline=None)
@given(value=json_like)
def test_the_quick_walk_fits_exactly_the_documents_without_problems(value: Any) -> None:
    problems = full_walk(value, SMALL)
    assert doc._fits(value, SMALL) == (not problems)
    assert doc.check_document(value, SMALL) == problems


class Text(str):
    """A str subclass: valid JSON to the full walk; the quick walk leaves it to that walk."""


def test_what_the_quick_walk_leaves_to_the_full_one_is_still_accepted() -> None:
    value = {Text("key"): [Text("text"), 1.5]}
    assert not doc._fits(value, SMALL)
    assert doc.check_document(value, SMALL) == []


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ({"a": {"b": {"c": 1}}}, True),  # depth 3 holds scalars only at the limit
        ({"a": {"b": {"c": {}}}}, False),  # a container at the limit
        ("12345", True),
        ("123456", False),
        ({"123456": 1}, False),  # keys count too
        ({1: "a"}, False),
        ([math.nan], False),
        ([math.inf], False),
        ([(1,)], False),
        ([True, None, 1.5, -3], True),
    ],
)
def test_the_quick_walk_at_the_edges(value: Any, fits: bool) -> None:
    assert doc._fits(value, SMALL) is fits
    assert (full_walk(value, SMALL) == []) is fits


def test_the_quick_walk_counts_values_like_the_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doc, "_MAX_NODES", 10)
    limits = PipelineLimits()
    assert doc._fits(list(range(9)), limits)  # the list and its 9 items: 10 values
    assert not doc._fits(list(range(10)), limits)
    assert full_walk(list(range(10)), limits) == [
        {"field": "payload", "message": "more than 10 values"}
    ]


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_the_copy_equals_a_deep_copy_and_shares_no_container(value: Any) -> None:
    copied = validate._copy(value)
    expected = copy.deepcopy(value)
    assert repr(copied) == repr(expected)  # nan != nan: compare the texts

    def containers(item: Any) -> list[int]:
        if isinstance(item, dict):
            return [id(item), *(i for sub in item.values() for i in containers(sub))]
        if isinstance(item, list):
            return [id(item), *(i for sub in item for i in containers(sub))]
        return []

    assert not set(containers(copied)) & set(containers(value))


def test_a_compiled_payload_owns_its_normal_form() -> None:
    params = {"city": {"name": "Chisinau"}}
    args = {"text": "hi", "nested": [{"a": 1}]}
    payload = {"params": params, "pipeline": [{"id": "s", "uses": "echo", "with": args}]}
    registry = default_registry(Settings())
    normalized = compile_payload(payload, registry=registry, limits=PipelineLimits()).normalized
    params["city"]["name"] = "changed"
    args["nested"][0]["a"] = 2
    assert normalized["params"] == {"city": {"name": "Chisinau"}}
    assert normalized["pipeline"][0]["with"] == {"text": "hi", "nested": [{"a": 1}]}


def test_limits_are_built_once_per_distinct_settings() -> None:
    base = Settings()
    first = PipelineLimits.from_settings(base)
    assert PipelineLimits.from_settings(base) is first
    assert first == PipelineLimits.from_settings(base.replace(max_steps=base.max_steps))
    changed = PipelineLimits.from_settings(base.replace(max_steps=7))
    assert changed.max_steps == 7
    assert first.max_steps == base.max_steps
    assert PipelineLimits.from_settings(base, max_foreach_items=3).max_foreach_items == 3
    assert limits_module._limits.cache_info().maxsize == 64


def test_limits_from_settings_that_cannot_be_a_cache_key() -> None:
    class Loose:
        max_steps = 4
        max_string_length = [1]  # unhashable: built directly, as before

    built = PipelineLimits.from_settings(Loose())
    assert built.max_steps == 4
    assert built.max_string_length == [1]


CONDITION_TASK: dict[str, Any] = {
    "title": "t",
    "schedule_kind": "condition",
    "schedule_expr": "*/5 * * * *",
    "timezone": "UTC",
    "payload": {
        "params": {},
        "check": [{"id": "c", "uses": "event.publish", "with": {"topic": "t.x", "payload": {}}}],
        "condition": "${steps.c.status == 'succeeded'}",
        "pipeline": [{"id": "p", "uses": "echo", "with": {}}],
    },
}


def test_prepare_names_the_scopes_of_every_pipeline_it_compiled() -> None:
    registry = default_registry(Settings())
    settings_ = Settings()
    prepared, scopes = prepare_scoped(
        CONDITION_TASK, now=NOW, settings=settings_, registry=registry
    )
    assert scopes == frozenset({"events:publish"})  # from the check, not the main pipeline
    assert prepared == prepare(CONDITION_TASK, now=NOW, settings=settings_, registry=registry)
    plain = {
        **CONDITION_TASK,
        "schedule_kind": "cron",
        "payload": {"pipeline": [{"id": "p", "uses": "echo"}]},
    }
    assert prepare_scoped(plain, now=NOW, settings=settings_, registry=registry)[1] == frozenset()
