"""``lazy_module``: a module imported on its first attribute access, not when it is named.

For a dependency only some code paths of a process use (an HTTP client in a tool the API
registers but only workers run): the process that never takes the path never pays for the
import, which is what a cold start (a Lambda's first request) waits on. Annotate with the real
module under ``TYPE_CHECKING`` so type checkers see it.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it when an attribute is first read."""
    return _LazyModule(name)
