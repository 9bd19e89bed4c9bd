"""Tools from outside the package: Python entry points (group ``ordinaut.tools``) and
operator-declared HTTP tools (a JSON or YAML file). Both are checked at start-up; a broken
extension is reported (returned and logged) and the others still load."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ordinaut.pipeline.context import RunContext
from ordinaut.pipeline.document import parse_pipeline_text
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.tools.egress import Allowlist
from ordinaut.pipeline.tools.http import METHODS, NO_BODY, HttpEgress
from ordinaut.pipeline.tools.registry import NAME, Tool, ToolError, ToolRegistry, check_tool

logger = logging.getLogger("ordinaut.pipeline.extensions")
GROUP = "ordinaut.tools"
_SPEC_KEYS = {
    "name", "description", "url", "method", "input_schema", "output_schema", "headers",
    "timeout_seconds", "scopes",
}  # fmt: skip


class EntryPointLike(Protocol):
    name: str
    value: str

    def load(self) -> Any: ...


def _report(problems: list[str], message: str) -> None:
    problems.append(message)
    logger.warning("tool extension not loaded: %s", message)


def _tools_from(obj: Any) -> list[Any]:
    """An entry point names a Tool, an iterable of Tools, or a zero-argument factory of either."""
    if callable(obj) and not isinstance(obj, Tool):
        obj = obj()
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return list(obj)
    raise TypeError(f"expected a Tool, a list of Tools or a factory, got {type(obj).__name__}")


def load_entry_point_tools(
    registry: ToolRegistry, entry_points: Iterable[EntryPointLike] | None = None
) -> list[str]:
    """Register every tool from the ``ordinaut.tools`` entry points; returns the problems."""
    problems: list[str] = []
    found = importlib.metadata.entry_points(group=GROUP) if entry_points is None else entry_points
    for entry in found:
        label = f"entry point {entry.name!r} ({entry.value})"
        try:
            tools = _tools_from(entry.load())
        except Exception as exc:  # a broken plug-in must not stop the others
            _report(problems, f"{label}: {type(exc).__name__}: {exc}")
            continue
        for tool in tools:
            try:
                registry.register(tool)
            except ValueError as exc:
                _report(problems, f"{label}: {exc}")
    return problems


def load_http_tools(
    registry: ToolRegistry, path: str | Path, *, egress: HttpEgress | None = None
) -> list[str]:
    """Register the operator's HTTP tools declared in ``path``; returns the problems.

    The file holds a list (or ``{"tools": [...]}``) of ``{name, description, url, method,
    input_schema, output_schema?, headers?, timeout_seconds?, scopes?}``. A tool sends its
    arguments as the query (GET, DELETE, HEAD) or as a JSON body, to its declared URL only
    (that host:port is trusted; redirects elsewhere are re-checked), and returns the body.
    """
    egress = egress or HttpEgress(PipelineLimits(), Allowlist())
    problems: list[str] = []
    try:
        document = parse_pipeline_text(Path(path).read_text(encoding="utf-8"))
    except Exception as exc:
        _report(problems, f"{path}: {getattr(exc, 'message', None) or exc}")
        return problems
    specs = document.get("tools") if isinstance(document, dict) else document
    if not isinstance(specs, list):
        _report(problems, f"{path}: expected a list of tools or {{'tools': [...]}}")
        return problems
    for index, spec in enumerate(specs):
        label = f"{path}: tools[{index}]"
        try:
            tool = http_tool_from_spec(spec, egress)
            registry.register(tool)
        except (ValueError, TypeError) as exc:
            _report(problems, f"{label}: {exc}")
    return problems


def http_tool_from_spec(spec: Any, egress: HttpEgress) -> Tool:
    """A Tool calling the operator-declared endpoint in ``spec``; ``ValueError`` if broken."""
    if not isinstance(spec, dict):
        raise ValueError("each tool must be an object")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    missing = [k for k in ("name", "url") if not isinstance(spec.get(k), str)]
    if unknown or missing:
        raise ValueError(f"unknown fields {unknown}, missing fields {missing}")
    name, url = spec["name"], spec["url"]
    method = str(spec.get("method", "POST")).upper()
    if not NAME.match(name):
        raise ValueError(f"name {name!r} must look like 'weather.forecast'")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url {url!r} must be http or https")
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    headers = spec.get("headers", {})
    if not (isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())):
        raise ValueError("headers must map names to strings")
    timeout = spec.get("timeout_seconds", egress.limits.http_timeout_s)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= egress.limits.max_step_timeout_s:
        raise ValueError(f"timeout_seconds must be in (0, {egress.limits.max_step_timeout_s}]")

    async def run(args: dict[str, Any], ctx: RunContext) -> Any:
        in_query = method in ("GET", "DELETE", "HEAD")
        result = await egress.request(
            method,
            url,
            headers=dict(headers),
            query=args if in_query else None,
            body=NO_BODY if in_query else args,
            idempotency_key=ctx.idempotency_key,
            trust_target=True,
        )
        if result["status"] >= 400:
            raise ToolError(
                "http_status",
                f"{name} answered {result['status']}",
                retryable=result["status"] >= 500 or result["status"] == 429,
            )
        return result["body"]

    tool = Tool(
        name=name,
        description=str(spec.get("description", "")),
        input_schema=spec.get("input_schema", {"type": "object"}),
        output_schema=spec.get("output_schema", {}),
        fn=run,
        default_timeout_s=float(timeout),
        scopes=tuple(spec.get("scopes", ())),
    )
    problems = check_tool(tool)
    if problems:
        raise ValueError("; ".join(problems))
    return tool
