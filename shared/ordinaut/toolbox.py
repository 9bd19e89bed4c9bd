"""The tool registry a process runs with: built-ins plus extensions, checked at start-up."""

from __future__ import annotations

import logging

from ordinaut.config import Settings
from ordinaut.pipeline import (
    ToolRegistry,
    default_registry,
    load_entry_point_tools,
    load_http_tools,
)
from ordinaut.pipeline.tools import http_egress

log = logging.getLogger("ordinaut.tools")


def build_registry(settings: Settings) -> ToolRegistry:
    """Built-in tools, ``ordinaut.tools`` entry points and the operator's HTTP tools file.

    A broken extension is logged and left out; the others load (one bad plugin
    must not take the service down).
    """
    registry = default_registry(settings)
    problems = load_entry_point_tools(registry)
    if settings.http_tools_file:
        problems += load_http_tools(
            registry, settings.http_tools_file, egress=http_egress(settings)
        )
    for problem in problems:
        log.error("tool extension not loaded", extra={"problem": problem})
    return registry
