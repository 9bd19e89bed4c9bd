"""What PostgreSQL stores exactly as given, for every source of events (not only the API)."""

from __future__ import annotations

import json

import pytest

from ordinaut.errors import ValidationFailed
from ordinaut.ingest import check_event
from ordinaut.storable import INT_MAX, INT_MIN, problems


def test_problems_name_each_value_in_document_order() -> None:
    # What a lenient parser (json.loads in a Lambda, an SQS body) hands over.
    payload = json.loads(
        '{"ok": [1, 2.5, "x", null, true], "nan": NaN, "inf": [-Infinity], '
        '"big": 18446744073709551616, "s": "a\\ud800", "a\\u0000b": {"deep": "\\u0000"}}'
    )
    found = problems(payload, ("payload",))
    assert [(p["loc"], p["type"]) for p in found] == [
        (("payload", "nan"), "number_not_finite"),
        (("payload", "inf", 0), "number_not_finite"),
        (("payload", "big"), "int_too_big"),
        (("payload", "s"), "string_unstorable"),
        (("payload", "a\\u0000b"), "key"),
        (("payload", "a\\u0000b", "deep"), "string_unstorable"),
    ]
    assert problems({"edge": [INT_MIN, INT_MAX, 1e308, -0.0, "\U0001f600"]}, ("p",)) == []


def test_problems_stop_at_the_node_budget_and_the_problem_cap() -> None:
    assert problems(["ok", "\x00"], ("p",), max_nodes=2) == []
    assert len(problems(["\x00"] * 500, ("p",))) == 50


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"x": float("nan")}, "payload.x"),
        ({"x": [float("inf")]}, "payload.x.0"),
        ({"n": 2**64}, "payload.n"),
        ({"s": "\udfff"}, "payload.s"),
        ({"k\x00": 1}, "payload.k\\u0000"),
    ],
)
def test_events_from_any_source_are_checked(payload: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_event("orders.created", "e-1", payload)
    assert [d["field"] for d in info.value.details or []] == [field]
