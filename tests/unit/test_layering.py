"""Import rules over the whole module graph that lint-imports' contracts (pyproject.toml) do not
state on their own: no cycle at all, not even through a package's ``__init__``, and the client
reaching nothing but itself, the vocabulary, httpx, pydantic and the standard library."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import grimp
import pytest

CLIENT_MAY_REACH = {"ordinaut", "ordinaut.vocabulary", "httpx", "pydantic"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # imports under `if TYPE_CHECKING:` never run, so they make no cycle
    return grimp.build_graph(
        "ordinaut",
        include_external_packages=True,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )


def cycles(edges: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def internal_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    own = {m for m in graph.modules if m == "ordinaut" or m.startswith("ordinaut.")}
    return {m: graph.find_modules_directly_imported_by(m) & own for m in own}


def test_cycles_are_found_through_a_package_init() -> None:
    edges = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p"}}
    assert cycles(edges) == [frozenset({"p", "p.a", "p.b"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    assert [sorted(c) for c in cycles(internal_edges(graph))] == []


def test_the_client_reaches_only_itself_the_vocabulary_httpx_and_pydantic(
    graph: grimp.ImportGraph,
) -> None:
    reached = graph.find_upstream_modules("ordinaut.client", as_package=True)
    outside = {
        m
        for m in reached
        if m not in CLIENT_MAY_REACH
        and not m.startswith("ordinaut.client.")
        and m.split(".")[0] not in sys.stdlib_module_names
    }
    assert outside == set()
