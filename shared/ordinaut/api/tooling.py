"""The tool registry one API process validates pipelines against (built once per app)."""

from __future__ import annotations

from fastapi import Request

from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.toolbox import build_registry


def tool_registry(request: Request) -> ToolRegistry:
    state = request.app.state
    registry: ToolRegistry | None = getattr(state, "tool_registry", None)
    if registry is None:
        registry = build_registry(state.deps.settings)
        state.tool_registry = registry
    return registry
