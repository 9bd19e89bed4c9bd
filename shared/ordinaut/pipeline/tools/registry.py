"""Tools: a name, a description, input and output JSON Schemas, a default timeout, the
scopes a caller needs, and an async ``run(args, ctx)``; and the registry that holds them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ordinaut.pipeline.context import RunContext
from ordinaut.pipeline.schema import check_schema

ToolFn = Callable[[dict[str, Any], RunContext], Awaitable[Any]]
# Checks arguments before run time; returns (field relative to ``with``, message). Values
# that are templated (known only at run time) arrive as ``DEFERRED``.
ArgsCheck = Callable[[dict[str, Any]], list[tuple[str, str]]]
NAME = re.compile(r"[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*\Z")


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Any = _Deferred()


class ToolError(Exception):
    """A tool failed in a way it can describe; ``code`` lands in the step's error record."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, eq=False)
class Tool:
    """One tool. ``fn`` does the work; ``check_args`` (optional) vets static arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]
    fn: ToolFn
    output_schema: dict[str, Any] = field(default_factory=dict)
    default_timeout_s: float = 30.0
    scopes: tuple[str, ...] = ()
    check_args: ArgsCheck | None = None
    # False for a tool that finishes without awaiting anything (bounded, in-process work):
    # the engine runs it inline, with no timer, since no timeout could interrupt it anyway.
    # A tool that says so and then awaits fails the step (internal_error).
    suspends: bool = True
    # True for a tool whose output is computed from its arguments alone, with no side effect
    # (echo, transform): for a step whose arguments derive from a secret, the engine records
    # the tool run over the shadow arguments (secrets as "***") instead of the real output.
    # A pure tool must not suspend.
    pure: bool = False

    async def run(self, args: dict[str, Any], ctx: RunContext) -> Any:
        """Do the tool's work with rendered, schema-valid ``args``."""
        return await self.fn(args, ctx)

    def describe(self) -> dict[str, Any]:
        """What ``GET /tools`` shows for this tool."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "default_timeout_s": self.default_timeout_s,
            "scopes": list(self.scopes),
        }


def check_tool(tool: Any) -> list[str]:
    """Why ``tool`` cannot be registered (empty list when it can)."""
    if not isinstance(tool, Tool):
        return [f"{tool!r} is not a Tool"]
    problems = []
    if not isinstance(tool.name, str) or not NAME.match(tool.name):
        problems.append(f"name {tool.name!r} must look like 'http.request' (lowercase, dots)")
    if not isinstance(tool.description, str):
        problems.append("description must be a string")
    if not callable(tool.fn):
        problems.append("fn must be an async callable")
    problems += check_schema(tool.input_schema, "input_schema")
    if isinstance(tool.input_schema, dict) and tool.input_schema.get("type", "object") != "object":
        problems.append("input_schema must describe an object (tool arguments)")
    problems += check_schema(tool.output_schema, "output_schema")
    if not (isinstance(tool.default_timeout_s, (int, float)) and tool.default_timeout_s > 0):
        problems.append("default_timeout_s must be a positive number")
    if not all(isinstance(s, str) for s in tool.scopes):
        problems.append("scopes must be strings")
    if not isinstance(tool.suspends, bool):
        problems.append("suspends must be true or false")
    if tool.pure is not False and (tool.pure is not True or tool.suspends):
        problems.append("pure must be true or false, and a pure tool must not suspend")
    return problems


class ToolRegistry:
    """The tools a process knows, by name. Registration checks each tool first."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool, *, replace: bool = False) -> None:
        """Add ``tool``; raises ``ValueError`` naming every problem (or a name clash)."""
        problems = check_tool(tool)
        if problems:
            raise ValueError(f"tool {getattr(tool, 'name', tool)!r}: " + "; ".join(problems))
        if tool.name in self._tools and not replace:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def describe(self) -> list[dict[str, Any]]:
        """Every tool with its schemas, sorted by name (the body of ``GET /tools``)."""
        return [tool.describe() for tool in self]
