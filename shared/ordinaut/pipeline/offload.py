"""Evaluating untrusted expressions away from an event loop.

An API process serves every agent from one event loop. The expressions an agent writes are
evaluated there on its requests: dry runs (``POST /tasks/validate``) and event filters
(``POST /events``, and a run's completion publishing events). Each evaluation is bounded by
its ``Budget`` (work units charged by the size of values, and the ``max_expression_ms``
deadline); running it in a small thread pool on top of that keeps the loop answering other
requests (``/health/live`` included) while it runs: Python switches threads every few
milliseconds, and no single operation of the evaluator holds the interpreter for long (every
string, integer and sort it builds is bounded). The pool is small and dedicated, so heavy
evaluations queue behind each other instead of taking every thread of the process; each one
ends at its deadline, so the queue always drains.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ordinaut-eval")


async def off_loop(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in the evaluation pool; the caller's context (log fields) goes
    along."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_POOL, call)
