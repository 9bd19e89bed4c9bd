"""Built-in tools that stay inside the process: echo, log, wait, transform, event.publish."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ordinaut.pipeline.context import RunContext
from ordinaut.pipeline.expressions import ExpressionError, compile_query
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.records import json_text, mask_secrets, storage_problem
from ordinaut.pipeline.tools.registry import Tool, ToolError

logger = logging.getLogger("ordinaut.pipeline.log")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_TOPIC = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"


async def _echo(args: dict[str, Any], ctx: RunContext) -> Any:
    return args


async def _log(args: dict[str, Any], ctx: RunContext) -> Any:
    value = args.get("value", args.get("message"))
    # a value derived from a secret is logged as its shadow (secrets as ***), never itself
    visible = args if ctx.shown_args is None else ctx.shown_args
    visible = visible.get("value", visible.get("message"))
    shown = json_text(mask_secrets(visible, ctx.secrets.values()), 1_000)
    level = _LEVELS[args.get("level", "info")]
    logger.log(
        level, "pipeline log", extra={"run_id": ctx.run_id, "task_id": ctx.task_id, "value": shown}
    )
    return {"logged": value}


def _wait_tool(limits: PipelineLimits) -> Tool:
    async def wait(args: dict[str, Any], ctx: RunContext) -> Any:
        seconds = float(args["seconds"])
        await asyncio.sleep(seconds)
        return {"waited": args["seconds"]}

    return Tool(
        name="wait",
        description=f"Sleep for `seconds` (at most {limits.max_step_timeout_s}).",
        input_schema={
            "type": "object",
            "required": ["seconds"],
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": limits.max_step_timeout_s}
            },
            "additionalProperties": False,
        },
        output_schema={"type": "object", "properties": {"waited": {"type": "number"}}},
        fn=wait,
        default_timeout_s=limits.max_step_timeout_s,
    )


def _transform_tool(limits: PipelineLimits) -> Tool:
    def check(args: dict[str, Any]) -> list[tuple[str, str]]:
        problems = []
        if ("value" in args) == ("expr" in args):
            problems.append(("", "give exactly one of `value` or `expr`"))
        if "input" in args and "expr" not in args:
            problems.append(("input", "`input` goes with `expr`"))
        if isinstance(args.get("expr"), str):
            try:
                compile_query(args["expr"], max_length=limits.max_expression_length)
            except ExpressionError as exc:
                problems.append(("expr", exc.message))
        return problems

    async def transform(args: dict[str, Any], ctx: RunContext) -> Any:
        problems = check(args)
        if problems:
            raise ToolError("invalid_arguments", "; ".join(msg for _, msg in problems))
        if "value" in args:
            return args["value"]
        try:
            query = compile_query(args["expr"], max_length=limits.max_expression_length)
            return query.evaluate(
                args.get("input"),
                budget=limits.budget(),
                max_string=limits.max_render_bytes,
                max_depth=limits.max_json_depth,
            )
        except ExpressionError as exc:
            raise ToolError(exc.code, f"expr: {exc.message}") from None

    return Tool(
        name="transform",
        description="Reshape data without side effects: return a templated `value`, or apply "
        "the JMESPath query `expr` (with the expression functions) to `input`.",
        input_schema={
            "type": "object",
            "properties": {
                "value": {},
                "expr": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": limits.max_expression_length,
                },
                "input": {},
            },
            "additionalProperties": False,
        },
        output_schema={},
        fn=transform,
        default_timeout_s=10.0,
        suspends=False,
        pure=True,
        check_args=check,
    )


def _publisher(limits: PipelineLimits) -> Any:
    async def publish(args: dict[str, Any], ctx: RunContext) -> Any:
        if ctx.emit is None:
            raise ToolError("event_unavailable", "event.publish has no event sink in this run")
        if ctx.shown_args is not None and ctx.shown_args.get("topic") != args["topic"]:
            raise ToolError(
                "secret_in_event", "the topic is derived from a secret; events are not secret"
            )
        # Events are read by subscribers, streams and (on shared topics) other agents: a value
        # derived from a secret is published as its shadow (secrets as ***), never itself.
        visible = args if ctx.shown_args is None else ctx.shown_args
        payload = mask_secrets(visible.get("payload", {}), ctx.secrets.values())
        payload = payload if isinstance(payload, dict) else {"value": payload}
        # The event is stored with the run's outcome, in a write shared with other runs:
        # one that could not be stored fails this step here, not that write.
        problem = storage_problem(
            payload,
            max_depth=limits.max_json_depth,
            max_bytes=limits.max_payload_bytes,
            what="payload",
        )
        if problem:
            raise ToolError("limit_exceeded", problem)
        ctx.emit(args["topic"], payload)
        return {"topic": args["topic"], "published": True}

    return publish


def builtin_tools(limits: PipelineLimits) -> list[Tool]:
    """The in-process built-ins, their bounds taken from ``limits``."""
    return [
        Tool(
            name="echo",
            description="Return the arguments unchanged.",
            input_schema={"type": "object"},
            output_schema={"type": "object"},
            fn=_echo,
            default_timeout_s=5.0,
            suspends=False,
            pure=True,
        ),
        Tool(
            name="log",
            description="Record `value` (or `message`) in the run and the process log.",
            input_schema={
                "type": "object",
                "properties": {
                    "value": {},
                    "message": {"type": "string"},
                    "level": {"enum": list(_LEVELS)},
                },
                "additionalProperties": False,
            },
            output_schema={"type": "object", "properties": {"logged": {}}},
            fn=_log,
            default_timeout_s=5.0,
            suspends=False,
        ),
        _wait_tool(limits),
        _transform_tool(limits),
        Tool(
            name="event.publish",
            description="Publish `payload` on `topic` through the run's outbox.",
            input_schema={
                "type": "object",
                "required": ["topic"],
                "properties": {
                    "topic": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": _TOPIC,
                    },
                    "payload": {},
                },
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {"topic": {"type": "string"}, "published": {"type": "boolean"}},
            },
            fn=_publisher(limits),
            default_timeout_s=10.0,
            suspends=False,
            scopes=("events:publish",),
        ),
    ]
