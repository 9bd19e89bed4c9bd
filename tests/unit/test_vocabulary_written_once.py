"""The status, kind and policy words are written once, in ordinaut.vocabulary: no other module
of the package or of functions/ spells one of those lists out again."""

from __future__ import annotations

import ast
from pathlib import Path

from ordinaut import vocabulary

REPO = Path(__file__).resolve().parents[2]
LISTS = {
    frozenset(words): name
    for name, words in vars(vocabulary).items()
    if name.isupper() and isinstance(words, (tuple, frozenset))
}


def spelled_out_lists(source: str) -> list[tuple[int, str]]:
    """(line, vocabulary name) of each tuple, list or set literal made of one list's words."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)) or len(node.elts) < 2:
            continue
        words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(words) == len(node.elts) and all(isinstance(w, str) for w in words):
            name = LISTS.get(frozenset(words))
            if name is not None:
                found.append((node.lineno, name))
    return sorted(found)


def test_the_detector_finds_a_copy() -> None:
    source = (
        'S = Literal["active", "paused", "canceled", "completed"]\nK = ("cron", "rrule", "once")\n'
    )
    assert spelled_out_lists(source) == [(1, "TASK_STATUSES"), (2, "TIME_KINDS")]


def test_no_module_spells_out_a_vocabulary_list() -> None:
    own = Path(vocabulary.__file__).resolve()
    copies = {
        f"{path.relative_to(REPO)}:{line}": name
        for root in (REPO / "shared" / "ordinaut", REPO / "functions")
        for path in sorted(root.rglob("*.py"))
        if path.resolve() != own
        for line, name in spelled_out_lists(path.read_text())
    }
    assert copies == {}
