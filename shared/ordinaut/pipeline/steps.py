"""One pipeline step: each field checked against the rules and the limits, its templates
and condition parsed, and every reference an expression makes resolved against the steps
that run before it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline.expressions import Expression, ExpressionError, compile_expression
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.schema import validate as validate_schema
from ordinaut.pipeline.templates import (
    Template,
    compile_tree,
    has_template,
    iter_templates,
    parse_template,
)
from ordinaut.pipeline.templates import join_path as at
from ordinaut.pipeline.tools.registry import DEFERRED, Tool, ToolRegistry

# Every field a step may have: (what it holds, what it means); docs/pipeline.md shows them
STEP_FIELDS = {
    "id": (
        "name, required",
        "The step's name ([A-Za-z_][A-Za-z0-9_-]*), unique in the pipeline; later steps read "
        "its result as `steps.<id>`.",
    ),
    "uses": ("tool name, required", "The tool the step runs (`GET /tools`)."),
    "with": (
        "object",
        "The tool's arguments; any string in it may hold `${...}`. Checked against the tool's "
        "input schema when the task is written (a templated value when it has been rendered).",
    ),
    "save_as": ("name", "A second name for the step's result: `steps.<save_as>`."),
    "if": (
        "expression",
        "Run the step only when this is true (`${...}` or a bare expression). A skipped step "
        "has status `skipped` and output null. Reads neither secrets nor `item`.",
    ),
    "timeout_seconds": (
        "number",
        "Seconds one attempt may take (default: the tool's), at most `max_step_timeout_s`; "
        "a foreach step's items each get it.",
    ),
    "retry": (
        "{attempts, backoff_seconds}",
        "Attempts on a retryable failure (default 1, at most `max_retry_attempts`) and the "
        "seconds between them (default 0); a foreach step's items each get them.",
    ),
    "continue_on_error": (
        "boolean",
        "When the step fails the run goes on; later steps see its `status` (`failed`) and "
        "`error`. In a foreach step it applies per item: every item runs, a failed item's "
        'output is `{"error": {code, message}}`, and the step is `failed` if any item failed. '
        "Without it a foreach step's first failed item fails the step at once (items still "
        "running are cancelled).",
    ),
    "foreach": (
        "expression",
        "`${...}` that evaluates to a list (at most `max_foreach_items` items): the step runs "
        "once per item, with `item` and `index` in scope in `with`, and its output is the list "
        "of the items' outputs, in the list's order. Each item's call carries an idempotency key "
        "of its own (the run's, then `:<id>:<index>`, where a step without `foreach` has "
        "`:<id>`; `http.request` sends it as `Idempotency-Key`), the same on every attempt.",
    ),
    "max_concurrency": (
        "integer",
        "With `foreach`: how many items run at once (default 1, at most "
        "`max_foreach_concurrency`).",
    ),
}
STEP_KEYS = tuple(STEP_FIELDS)
ROOTS = ("params", "steps", "event", "run", "task", "now")
# what the ``with`` of a foreach step reads besides ROOTS: the current item and its position
ITEM_ROOTS = ("item", "index")
FIELDS = {
    "steps": ("output", "status", "error"),
    "run": ("id", "attempt", "scheduled_for"),
    "task": ("id", "title"),
}
# What each name an expression starts from holds (docs/pipeline.md shows them)
ROOT_DOCS = {
    "params": "The task's `params`, with a run's params override (`run_now`) merged over them.",
    "steps": "Earlier steps by `id` or `save_as`: `steps.<id>.output`, `.status` (`succeeded`, "
    "`failed`, `skipped`) and `.error` (`{code, message}` or null). Only steps before this one.",
    "event": "Event tasks: the event that queued the run, `{id, topic, payload}`; null otherwise.",
    "run": "`run.id`, `run.attempt` (1 on the first try) and `run.scheduled_for` (ISO 8601, UTC).",
    "task": "`task.id` and `task.title`.",
    "now": "The instant the worker read from its clock for this run, ISO 8601 in UTC "
    "(`2026-03-08T07:30:00Z`); a string without fields.",
    "secrets": "Stored secrets, `secrets.NAME` (`PUT /secrets/{name}`): only in `with`, and "
    "`***` in every record, log line and event.",
    "item": "In `with` of a foreach step: the current item.",
    "index": "In `with` of a foreach step: the current item's position in the list, from 0.",
}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
MAX_DETAILS = 50
Bad = Callable[..., None]


@dataclass(frozen=True, eq=False)
class CompiledStep:
    """One step ready to run: its tool resolved, its templates and condition parsed."""

    id: str
    uses: str
    tool: Tool
    args: Any  # the ``with`` tree, each templated string replaced by a Template
    condition: Expression | None
    save_as: str | None
    timeout_s: float
    attempts: int
    backoff_s: float
    continue_on_error: bool
    secrets: frozenset[str]
    # ``with`` holds no template: it was checked against the tool's schema in full when the
    # pipeline was compiled, so a run need not check the same value again
    static_args: bool = False
    # ``foreach``: the expression giving the list the step runs over (None: runs once), and
    # how many items run at once
    foreach: Expression | None = None
    max_concurrency: int = 1
    # the most times the step's attempts can happen one after another: 1, or for a foreach
    # step ceil(max_foreach_items / max_concurrency) (a run's worst case counts them)
    rounds: int = 1


class Problems:
    """Problems found so far, each ``{field, message, step}``; raised together."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, field: str, message: str, step: str | None = None, **extra: Any) -> None:
        if len(self.items) < MAX_DETAILS:
            self.items.append({"field": field, "message": message, "step": step, **extra})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidPipeline(f"{first['field']}: {first['message']}{more}", details=self.items)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compile_step(
    index: int,
    raw: Any,
    known: set[str],
    names: set[str],
    registry: ToolRegistry,
    limits: PipelineLimits,
    problems: Problems,
) -> CompiledStep | None:
    base = f"payload.pipeline[{index}]"
    if not isinstance(raw, dict):
        problems.add(base, "each step must be an object")
        return None
    sid = raw.get("id")
    label = sid if isinstance(sid, str) else None
    before = len(problems.items)

    def bad(field: str, message: str, **extra: Any) -> None:
        # ``field`` is already a path relative to the step ("with.url", "[\"odd key\"]")
        joined = base + field if not field or field.startswith("[") else f"{base}.{field}"
        problems.add(joined, message, label, **extra)

    for key in raw:
        if key not in STEP_KEYS:
            bad(at("", key), f"unknown step field; allowed: {', '.join(STEP_KEYS)}")
    _check_name(sid, "id", known, limits, bad, required=True)
    save_as = raw.get("save_as")
    if save_as is not None and save_as != sid:
        _check_name(save_as, "save_as", known, limits, bad, required=False)
    uses = raw.get("uses")
    tool = _check_tool(uses, registry, bad)
    timeout = raw.get("timeout_seconds")
    _check_timeout(timeout, limits, bad)
    attempts, backoff = _check_retry(raw.get("retry"), limits, bad)
    if not isinstance(raw.get("continue_on_error", False), bool):
        bad("continue_on_error", "must be true or false")
    foreach, concurrency = _check_foreach(raw, known, names, limits, bad)
    condition = _check_condition(raw.get("if"), known, names, limits, bad)
    item_roots = ITEM_ROOTS if foreach is not None else ()
    args, secrets = _check_args(raw.get("with"), tool, known, names, limits, bad, item_roots)
    for name in (sid, save_as):
        if isinstance(name, str):
            known.add(name)
    if len(problems.items) > before or tool is None:
        return None
    assert isinstance(sid, str)
    assert isinstance(uses, str)
    return CompiledStep(
        id=sid,
        uses=uses,
        tool=tool,
        args=args,
        condition=condition,
        save_as=save_as,
        timeout_s=float(min(timeout or tool.default_timeout_s, limits.max_step_timeout_s)),
        attempts=attempts,
        backoff_s=backoff,
        continue_on_error=bool(raw.get("continue_on_error", False)),
        secrets=secrets,
        static_args=not has_template(args),
        foreach=foreach,
        max_concurrency=concurrency,
        rounds=-(-limits.max_foreach_items // concurrency) if foreach is not None else 1,
    )


def _check_tool(uses: Any, registry: ToolRegistry, bad: Bad) -> Tool | None:
    """The tool a step ``uses``, or None (reported) when it names none or an unknown one."""
    if not isinstance(uses, str):
        bad("uses", "is required: the name of a tool")
        return None
    tool = registry.get(uses)
    if tool is None:
        bad("uses", f"unknown tool {uses!r}; available: {', '.join(registry.names()[:30])}")
    return tool


def _check_timeout(timeout: Any, limits: PipelineLimits, bad: Bad) -> None:
    if timeout is not None and not (
        _is_number(timeout) and 0 < timeout <= limits.max_step_timeout_s
    ):
        bad(
            "timeout_seconds",
            f"must be a number in (0, {limits.max_step_timeout_s}] (max_step_timeout_s)",
            limit="max_step_timeout_s",
        )


def _check_name(
    value: Any, field: str, known: set[str], limits: PipelineLimits, bad: Bad, *, required: bool
) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not NAME.match(value):
        bad(field, "must be a name like fetch_weather ([A-Za-z_][A-Za-z0-9_-]*)")
    elif len(value) > limits.max_id_length:
        bad(field, f"longer than {limits.max_id_length} characters")
    elif value in known:
        bad(field, f"duplicate step name {value!r} (ids and save_as names must be unique)")


def _check_retry(retry: Any, limits: PipelineLimits, bad: Bad) -> tuple[int, float]:
    if retry is None:
        return 1, 0.0
    if not isinstance(retry, dict):
        bad("retry", "must be an object {attempts, backoff_seconds}")
        return 1, 0.0
    for key in retry:
        if key not in ("attempts", "backoff_seconds"):
            bad(at("retry", key), "unknown field; retry has attempts and backoff_seconds")
    attempts = retry.get("attempts", 1)
    if (
        not (isinstance(attempts, int) and not isinstance(attempts, bool))
        or not 1 <= attempts <= limits.max_retry_attempts
    ):
        bad(
            "retry.attempts",
            f"must be an integer from 1 to {limits.max_retry_attempts}",
            limit="max_retry_attempts",
        )
        attempts = 1
    backoff = retry.get("backoff_seconds", 0)
    if not _is_number(backoff) or not 0 <= backoff <= limits.max_retry_backoff_s:
        bad(
            "retry.backoff_seconds",
            f"must be a number from 0 to {limits.max_retry_backoff_s}",
            limit="max_retry_backoff_s",
        )
        backoff = 0
    return attempts, float(backoff)


def _check_foreach(
    raw: dict[str, Any], known: set[str], names: set[str], limits: PipelineLimits, bad: Bad
) -> tuple[Expression | None, int]:
    """The step's ``foreach`` expression (None without one) and its ``max_concurrency``."""
    value, concurrency = raw.get("foreach"), raw.get("max_concurrency")
    bound = limits.max_foreach_concurrency
    if concurrency is not None and (
        not isinstance(concurrency, int)
        or isinstance(concurrency, bool)
        or not 1 <= concurrency <= bound
    ):
        bad(
            "max_concurrency",
            f"must be an integer from 1 to {bound} (max_foreach_concurrency)",
            limit="max_foreach_concurrency",
        )
        concurrency = None
    if value is None:
        if concurrency is not None:
            bad("max_concurrency", "goes with foreach (the items to run at once)")
        return None, 1
    usage = "must be one expression such as ${params.cities} that evaluates to a list"
    if not isinstance(value, str):
        bad("foreach", usage)
        return None, 1
    try:
        parsed = parse_template(value.strip(), max_expression_length=limits.max_expression_length)
    except ExpressionError as exc:
        bad(
            "foreach",
            exc.message,
            **({"limit": "max_expression_length"} if exc.code == "limit_exceeded" else {}),
        )
        return None, 1
    expression = parsed.whole if not isinstance(parsed, str) else None
    if expression is None:
        bad("foreach", usage + ", not text around ${...}" if "${" in value else usage)
        return None, 1
    _check_refs(expression, "foreach", known, names, bad, allow_secrets=False)
    return expression, concurrency or 1


def _check_condition(
    value: Any, known: set[str], names: set[str], limits: PipelineLimits, bad: Bad
) -> Expression | None:
    if value is None or value is True:
        return None
    if value is False:
        return compile_expression("`false`")
    if not isinstance(value, str):
        bad("if", "must be an expression such as ${steps.check.output.ok}")
        return None
    try:
        parsed = parse_template(value.strip(), max_expression_length=limits.max_expression_length)
        if isinstance(parsed, str):
            expression = compile_expression(parsed, max_length=limits.max_expression_length)
        elif parsed.whole is not None:
            expression = parsed.whole
        else:
            bad("if", "must be one expression, not text around ${...}")
            return None
    except ExpressionError as exc:
        bad(
            "if",
            exc.message,
            **({"limit": "max_expression_length"} if exc.code == "limit_exceeded" else {}),
        )
        return None
    _check_refs(expression, "if", known, names, bad, allow_secrets=False)
    return expression


def _check_args(
    value: Any,
    tool: Tool | None,
    known: set[str],
    names: set[str],
    limits: PipelineLimits,
    bad: Bad,
    item_roots: tuple[str, ...] = (),
) -> tuple[Any, frozenset[str]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        bad("with", "must be an object of tool arguments")
        return {}, frozenset()

    def on_error(path: str, exc: ExpressionError) -> None:
        bad(
            path,
            exc.message,
            **({"limit": "max_expression_length"} if exc.code == "limit_exceeded" else {}),
        )

    tree = compile_tree(value, "with", on_error, max_expression_length=limits.max_expression_length)
    secrets: set[str] = set()
    for path, template in iter_templates(tree, "with"):
        for expression in template.expressions:
            secrets |= _check_refs(
                expression, path, known, names, bad, allow_secrets=True, item_roots=item_roots
            )
    if tool is not None:
        for path, message in validate_schema(tree, tool.input_schema, "with", deferred=_deferred):
            bad(path, message)
        if tool.check_args is not None:
            static = {k: DEFERRED if has_template(v) else v for k, v in tree.items()}
            for path, message in tool.check_args(static):
                bad(at("with", path) if path else "with", message)
    return tree, frozenset(secrets)


def _deferred(value: Any) -> str | None:
    if isinstance(value, Template):
        return "any" if value.whole is not None else "string"
    return None


def _check_refs(
    expression: Expression,
    field: str,
    known: set[str],
    names: set[str],
    bad: Bad,
    *,
    allow_secrets: bool,
    item_roots: tuple[str, ...] = (),
) -> set[str]:
    secrets: set[str] = set()
    shown = expression.source if len(expression.source) <= 60 else expression.source[:57] + "..."
    for ref in expression.refs:
        root, rest = ref.path[0], ref.path[1:]
        second = rest[0] if rest else None
        if root == "secrets" and allow_secrets and isinstance(second, str):
            secrets.add(second)
            continue
        problem = _scope_problem(root, rest, allow_secrets, item_roots) or _field_problem(
            ref.path, known, names
        )
        if problem is not None:
            bad(field, f"${{{shown}}}: " + problem)
    return secrets


def _scope_problem(
    root: str | int, rest: tuple[str | int, ...], allow_secrets: bool, item_roots: tuple[str, ...]
) -> str | None:
    """Whether a reference's first name is in scope where it is written."""
    if root == "secrets" and allow_secrets:
        return "name the secret: secrets.NAME"  # the caller took secrets.NAME itself
    if root == "secrets":
        return "secrets can only be used in tool arguments (with)"
    if root in ITEM_ROOTS and root not in item_roots:
        return f"{root} is in scope only in the with of a step that has foreach"
    if root == "index" and rest:
        return "index is the item's position (a number) and has no fields"
    if root not in ROOTS + item_roots:
        roots = ", ".join(ROOTS + item_roots + (("secrets",) if allow_secrets else ()))
        return f"unknown name {root!r}; expressions start from {roots}"
    return None


def _field_problem(path: tuple[str | int, ...], known: set[str], names: set[str]) -> str | None:
    """Whether a reference in scope names a step that ran before and a field its root has."""
    root, rest = path[0], path[1:]
    second = rest[0] if rest else None
    if root == "steps" and not isinstance(second, str):
        return "name a step: steps.<id or save_as>"
    if root == "steps" and second not in known:
        if second in names:
            return f"step {second!r} does not run before this one"
        return f"no earlier step {second!r}"
    if root == "now" and rest:
        return "now is an ISO 8601 string and has no fields"
    if isinstance(root, str) and root in FIELDS and len(path) > (2 if root == "steps" else 1):
        allowed = FIELDS[root]
        field_name = path[2] if root == "steps" else second
        if field_name not in allowed:
            return f"{root} has only {', '.join(allowed)}"
    return None
