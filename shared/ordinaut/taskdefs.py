"""Pure task preparation: validate schedule and pipeline, anchor RRULEs, first fire time.

Create, update and ``POST /tasks/validate`` all go through ``prepare`` so they can never
disagree; the scheduler evaluates the stored result with the same schedule code.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ordinaut import notifications
from ordinaut.config import Settings
from ordinaut.errors import InvalidPipeline, InvalidSchedule, ValidationFailed
from ordinaut.pipeline import CompiledPipeline, PipelineLimits, compile_payload
from ordinaut.pipeline.tools import Allowlist, ToolRegistry
from ordinaut.schedules import Schedule, parse_schedule
from ordinaut.triggers import main_payload, pipeline_parts, validate_extras
from ordinaut.vocabulary import TIME_KINDS

SCHEDULE_FIELDS = ("schedule_kind", "schedule_expr", "timezone")
SHARED_PREFIX = "shared:"  # an event task's pattern across tenants (store/events.py)
# What an attempt costs besides its steps (lease, secrets, recording): part of every bound.
RUN_OVERHEAD_S = 1.0


def build_schedule(
    fields: dict[str, Any], *, now: datetime, settings: Settings, dtstart: datetime | None
) -> Schedule:
    """Parse the task's schedule with the documented limits (422 naming the field).

    A condition task's ``schedule_expr`` is the cron it is polled on; an event task's is its
    topic pattern, where a ``shared:`` prefix (``SHARED_PREFIX``) subscribes to topics an admin
    declared shared, published by any tenant.
    """
    expr = fields["schedule_expr"]
    if fields["schedule_kind"] == "event" and isinstance(expr, str) and expr.strip() == "shared:":
        raise InvalidSchedule(
            "shared: needs a topic pattern after it",
            [{"field": "schedule_expr", "message": "shared: needs a topic pattern"}],
        )
    return parse_schedule(
        fields["schedule_kind"],
        fields["schedule_expr"],
        fields.get("timezone") or "UTC",
        now=now,
        dtstart=dtstart,
        min_interval_s=settings.min_interval_s,
        max_expr_length=settings.max_expression_length,
    )


def first_fire(schedule: Schedule, now: datetime) -> datetime | None:
    """The cursor a new or rescheduled task starts from: its first fire time from now on."""
    if schedule.kind not in TIME_KINDS and schedule.kind != "condition":
        return None
    if schedule.kind == "once":
        # A one-shot a few seconds in the past (accepted by validation) still fires once.
        return schedule.next_after(now - timedelta(days=1))
    return schedule.next_after(now - timedelta(microseconds=1))


def worst_case_s(compiled: CompiledPipeline) -> float:
    """The longest ``compiled`` can take: every step's attempts at its timeout, plus the
    backoffs between them, once per round (a foreach step runs up to ``max_foreach_items``
    items, ``max_concurrency`` at a time). A tool that does not suspend runs inline and costs
    no time here."""
    total = 0.0
    for step in compiled.steps:
        per_attempt = step.timeout_s if step.tool.suspends else 0.0
        once = step.attempts * per_attempt + (step.attempts - 1) * step.backoff_s
        total += step.rounds * once
    return total


def compile_parts(
    payload: dict[str, Any],
    *,
    registry: ToolRegistry,
    limits: PipelineLimits,
    main: CompiledPipeline | None = None,
) -> list[CompiledPipeline]:
    """Every pipeline of a validated payload compiled (``triggers.pipeline_parts``: the main
    one, and a condition task's check); ``main`` is the first already compiled, when it is."""
    main_part, *others = pipeline_parts(payload)
    compiled = [main or compile_payload(main_part, registry=registry, limits=limits)]
    compiled += [compile_payload(part, registry=registry, limits=limits) for part in others]
    return compiled


def run_worst_case_s(
    payload: dict[str, Any],
    *,
    registry: ToolRegistry,
    limits: PipelineLimits,
    main: CompiledPipeline | None = None,
) -> float:
    """One attempt's worst case for a validated payload: its pipeline and a condition task's
    check, plus ``RUN_OVERHEAD_S``. ``main`` is the pipeline already compiled, when it is."""
    return _worst_case_s(compile_parts(payload, registry=registry, limits=limits, main=main))


def _worst_case_s(parts: list[CompiledPipeline]) -> float:
    return round(RUN_OVERHEAD_S + sum(worst_case_s(c) for c in parts), 3)


def _run_bound(
    fields: dict[str, Any],
    parts: list[CompiledPipeline],
    *,
    settings: Settings,
    problems: list[dict[str, Any]],
) -> float | None:
    """The bound a run of this task gets (``run_bound_s``): ``max_duration_s`` when given, else
    the pipeline's worst case; a problem when it exceeds ORDINAUT_MAX_RUN_DURATION_S."""
    limit = settings.max_run_duration_s
    given = fields.get("max_duration_s")
    if given is not None:
        if given > limit:
            problems.append(
                {
                    "field": "max_duration_s",
                    "message": f"at most {limit:g} s in this deployment (max_run_duration_s)",
                    "limit": "max_run_duration_s",
                }
            )
            return None
        return float(given)
    worst = _worst_case_s(parts)
    if worst > limit:
        problems.append(
            {
                "field": "payload.pipeline",
                "message": (
                    f"a run may take up to {worst:g} s (steps' timeout_seconds x retry attempts "
                    "+ backoffs; a foreach step counts ceil(max_foreach_items / max_concurrency) "
                    f"times), more than this deployment's {limit:g} s (max_run_duration_s): "
                    "shorten the timeouts, raise max_concurrency or set max_duration_s"
                ),
                "limit": "max_run_duration_s",
            }
        )
        return None
    return worst


def _notify(value: Any, settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    """``notifications.validate``; the allowlist is read only for a task that has targets."""
    if value is None:
        return {}, []
    return notifications.validate(value, allowlist=Allowlist.parse(settings.egress_allowlist))


def prepare(
    fields: dict[str, Any],
    *,
    now: datetime,
    settings: Settings,
    registry: ToolRegistry,
    stored: Schedule | None = None,
) -> dict[str, Any]:
    """Validate a full set of task fields; returns them normalized with dtstart, next_run_at.

    ``stored`` is the task's unchanged, already validated schedule on an update (a one-shot
    that has fired stays editable). Collects schedule and pipeline problems into one 422 so a
    client fixes both at once.
    """
    return prepare_scoped(fields, now=now, settings=settings, registry=registry, stored=stored)[0]


def prepare_scoped(
    fields: dict[str, Any],
    *,
    now: datetime,
    settings: Settings,
    registry: ToolRegistry,
    stored: Schedule | None = None,
) -> tuple[dict[str, Any], frozenset[str]]:
    """``prepare``, and the scopes the tools of the task's pipelines need (the caller must
    hold them), from the pipelines compiled once for both."""
    problems: list[dict[str, Any]] = []
    schedule: Schedule | None = stored
    if schedule is None:
        try:
            schedule = build_schedule(fields, now=now, settings=settings, dtstart=None)
        except InvalidSchedule as exc:
            problems.extend(exc.details or [{"field": "schedule_expr", "message": exc.message}])
    payload = fields["payload"]
    limits = PipelineLimits.from_settings(settings)
    extras: dict[str, Any] = {}
    if isinstance(payload, dict):
        # filter (event tasks), check / condition / cooldown_seconds (condition tasks)
        extras, found = validate_extras(
            fields["schedule_kind"], payload, registry=registry, limits=limits
        )
        problems.extend(found)
        # webhooks for the run's end: checked here, delivered by ordinaut.notifier
        notify, found = _notify(payload.get("notify"), settings)
        problems.extend(found)
        extras.update(notify)
        payload = main_payload(payload)
    run_bound: float | None = None
    parts: list[CompiledPipeline] = []
    try:
        compiled = compile_payload(payload, registry=registry, limits=limits)
        payload = {**compiled.normalized, **extras}
    except InvalidPipeline as exc:
        problems.extend(exc.details or [{"field": "payload", "message": exc.message}])
    else:
        if not problems:
            parts = compile_parts(payload, registry=registry, limits=limits, main=compiled)
            run_bound = _run_bound(fields, parts, settings=settings, problems=problems)
    retries = fields.get("max_retries")
    if isinstance(retries, int) and retries > settings.max_retries_limit:
        problems.append(
            {
                "field": "max_retries",
                "message": f"at most {settings.max_retries_limit} (max_retries_limit)",
                "limit": "max_retries_limit",
            }
        )
    if fields.get("dedupe_window_seconds") and not fields.get("dedupe_key"):
        problems.append(
            {"field": "dedupe_key", "message": "dedupe_window_seconds needs a dedupe_key"}
        )
    if problems:
        kinds = {p.get("field", "").split(".")[0].split("[")[0] for p in problems}
        if kinds <= {"schedule_expr", "timezone", "schedule_kind"}:
            raise InvalidSchedule(problems[0]["message"], problems)
        if kinds <= {"payload"}:
            raise InvalidPipeline(problems[0]["message"], problems)
        raise ValidationFailed("the task is not valid", problems)
    assert schedule is not None
    out = dict(fields)
    out["payload"] = payload
    out["schedule_expr"] = schedule.expr
    out["timezone"] = schedule.timezone
    out["dtstart"] = schedule.dtstart if schedule.kind == "rrule" else None
    out["next_run_at"] = first_fire(schedule, now)
    out["max_duration_s"] = fields.get("max_duration_s")
    out["run_bound_s"] = run_bound
    # CompiledPipeline.scopes, read without its cached property (a lock per read on 3.11)
    return out, frozenset(
        scope for part in parts for step in part.steps for scope in step.tool.scopes
    )
