"""The tool registry one API process validates pipelines against (built once per app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.toolbox import build_registry


def tool_registry(request: Request) -> ToolRegistry:
    state = request.app.state
    registry: ToolRegistry | None = getattr(state, "tool_registry", None)
    if registry is None:
        registry = build_registry(state.deps.settings)
        state.tool_registry = registry
    return registry


async def request_registry(request: Request) -> ToolRegistry:
    """Dependency: the app's tool registry (``tool_registry``)."""
    return tool_registry(request)


Registry = Annotated[ToolRegistry, Depends(request_registry)]
