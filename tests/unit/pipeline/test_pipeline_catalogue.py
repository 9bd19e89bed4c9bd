"""The expression functions' catalogue: complete, its signatures in step with the types the
evaluator checks, and every example true when the real evaluator runs it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ordinaut.pipeline import FunctionDoc, PipelineLimits, catalogue, compile_expression
from ordinaut.pipeline.interpreter import PipelineFunctions, function_names

_SIGNATURE = re.compile(r"(?P<name>\w+)\((?P<params>.*)\) -> (?P<returns>[\w|-]+)\Z")
_PARAM = re.compile(r"(?P<variadic>\.\.\.)?(?P<expref>&)?\w+: (?P<types>[\w|-]+)\Z")


def _declared(name: str) -> list[tuple[list[str], bool]]:
    """What the evaluator checks: each parameter's JMESPath types ([] = any) and variadic."""
    return [
        (sorted(p.get("types", [])), bool(p.get("variadic")))
        for p in PipelineFunctions.FUNCTION_TABLE[name]["signature"]
    ]


def _written(signature: str) -> tuple[str, list[tuple[list[str], bool]]]:
    match = _SIGNATURE.match(signature)
    assert match, f"signature {signature!r} does not read name(param: type, ...) -> type"
    params = []
    for text in match["params"].split(", ") if match["params"] else []:
        param = _PARAM.match(text)
        assert param, f"{signature}: parameter {text!r} does not read name: type"
        types = param["types"].split("|")
        assert (param["expref"] is not None) == (types == ["expref"]), signature
        params.append(([] if types == ["any"] else sorted(types), param["variadic"] is not None))
    return match["name"], params


def test_every_function_the_evaluator_calls_is_documented_once_in_order() -> None:
    names = [doc.name for doc in catalogue()]
    assert names == function_names() == sorted(PipelineFunctions.FUNCTION_TABLE)
    assert len(set(names)) == len(names)
    # Ordinaut's own functions and JMESPath's are both there
    assert {"format_time", "if_else", "concat", "sort_by", "not_null", "length"} <= set(names)


@pytest.mark.parametrize("doc", catalogue(), ids=lambda d: d.name)
def test_signature_matches_the_types_the_evaluator_checks(doc: FunctionDoc) -> None:
    name, params = _written(doc.signature)
    assert name == doc.name
    assert params == _declared(doc.name)
    assert doc.description.strip().endswith(".")


@pytest.mark.parametrize("doc", catalogue(), ids=lambda d: d.name)
def test_example_evaluates_to_its_result_with_the_real_evaluator(doc: FunctionDoc) -> None:
    limits = PipelineLimits()
    expression = compile_expression(doc.example, max_length=limits.max_expression_length)
    # the example calls the function it documents
    assert re.match(rf"{doc.name}\(", doc.example), doc.example
    value: Any = expression.evaluate({}, budget=limits.budget(), max_string=limits.max_render_bytes)
    # compared as JSON so 3 and 3.0, true and 1 are told apart
    assert json.dumps(value, sort_keys=True) == json.dumps(doc.result, sort_keys=True)


def test_an_undocumented_function_is_refused_not_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(PipelineFunctions.FUNCTION_TABLE)
    table["shout"] = {"function": lambda self, s: s, "signature": ({"types": ["string"]},)}
    monkeypatch.setattr(PipelineFunctions, "FUNCTION_TABLE", table)
    catalogue.cache_clear()
    try:
        with pytest.raises(LookupError, match=r"shout\(\) has no documentation"):
            catalogue()
    finally:
        monkeypatch.undo()
        catalogue.cache_clear()
