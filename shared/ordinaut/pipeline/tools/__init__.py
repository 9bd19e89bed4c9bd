"""The tool registry and the built-in tools (``echo``, ``log``, ``wait``, ``transform``,
``http.request``, ``event.publish``)."""

from __future__ import annotations

from typing import Any

from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.tools.builtin import builtin_tools
from ordinaut.pipeline.tools.egress import Allowlist, EgressRefused, Resolver, refusal_reason
from ordinaut.pipeline.tools.extensions import load_entry_point_tools, load_http_tools
from ordinaut.pipeline.tools.http import HttpEgress, http_request_tool
from ordinaut.pipeline.tools.registry import Tool, ToolError, ToolRegistry

__all__ = [
    "Allowlist",
    "EgressRefused",
    "HttpEgress",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "default_registry",
    "http_egress",
    "load_entry_point_tools",
    "load_http_tools",
    "refusal_reason",
]


def http_egress(
    settings: Any, *, limits: PipelineLimits | None = None, resolver: Resolver | None = None
) -> HttpEgress:
    """The HTTP client under ``settings.egress_allowlist`` (raises ValueError if unreadable)."""
    bounds = limits or PipelineLimits.from_settings(settings)
    allowlist = Allowlist.parse(getattr(settings, "egress_allowlist", ()) or ())
    if resolver is None:
        return HttpEgress(bounds, allowlist)
    return HttpEgress(bounds, allowlist, resolver)


def default_registry(
    settings: Any, *, limits: PipelineLimits | None = None, resolver: Resolver | None = None
) -> ToolRegistry:
    """A registry holding every built-in tool, bounded by ``settings`` (or ``limits``)."""
    bounds = limits or PipelineLimits.from_settings(settings)
    registry = ToolRegistry(builtin_tools(bounds))
    registry.register(http_request_tool(http_egress(settings, limits=bounds, resolver=resolver)))
    return registry
