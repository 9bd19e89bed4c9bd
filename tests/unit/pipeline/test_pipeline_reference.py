"""docs/pipeline.md is generated from the code: regenerating it changes nothing, and it
covers every step field, context root, limit, function and built-in tool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits, catalogue, default_registry
from ordinaut.pipeline import reference as ref
from ordinaut.pipeline.steps import ROOTS, STEP_FIELDS

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "pipeline.md"


def test_the_checked_in_document_is_what_the_code_generates() -> None:
    assert DOC.read_text(encoding="utf-8") == ref.render(), (
        "docs/pipeline.md is out of date: run `make docs` "
        "(python -m ordinaut.pipeline.reference) and commit it"
    )


def test_it_covers_every_field_root_limit_function_and_tool() -> None:
    text = ref.render()
    for name in STEP_FIELDS:
        assert f"| `{name}` |" in text
    for name in (*ROOTS, "secrets", "item", "index"):
        assert f"| `{name}` |" in text
    for spec in dataclasses.fields(PipelineLimits):
        assert f"| `{spec.name}` |" in text
    for doc in catalogue():
        assert f"### `{doc.signature}`" in text
    for tool in default_registry(Settings()):
        assert f"### `{tool.name}`" in text
    assert "`ORDINAUT_MAX_FOREACH_ITEMS`" in text
    assert "`ORDINAUT_MAX_BODY_BYTES`" in text


def test_a_change_in_the_code_shows_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    before = ref.render()
    monkeypatch.setitem(STEP_FIELDS, "foreach", ("expression", "Changed meaning."))
    assert ref.render() != before


def test_the_worked_examples_run_and_record_what_the_document_shows() -> None:
    text = ref.render()
    # the foreach example's outputs come from a real run: in order, the failed item in place
    assert '"0: OSLO",\n      "1: LIMA",\n      "2: PUNE"' in text
    assert '"message": "item 1: expr: divide(): division by zero"' in text
    assert '"local": "Sunday 09:30"' in text


def test_the_command_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "pipeline.md"
    assert ref.main([str(target), "--check"]) == 1  # missing
    assert ref.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == ref.render()
    assert ref.main([str(target), "--check"]) == 0
    target.write_text("stale", encoding="utf-8")
    assert ref.main([str(target), "--check"]) == 1
