"""What a run hands the engine (``RunContext``) and what the engine hands back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EmitFn = Callable[[str, dict[str, Any]], None]


def iso_utc(instant: datetime) -> str:
    """Render an instant as ISO 8601 in UTC with a ``Z`` suffix (naive means UTC)."""
    if instant.tzinfo is not UTC:  # asyncpg and the clocks hand out UTC already
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    return instant.isoformat().replace("+00:00", "Z")


@dataclass
class RunContext:
    """One attempt of one slot, as the worker sees it.

    ``now`` is the instant the worker read from the one clock for this unit of work; it is
    what ``${now}`` means. ``shown_args`` is set per step (see the field). ``emit`` receives ``event.publish`` calls; the worker writes them
    to the outbox in the run's completing transaction.
    """

    run_id: str
    task_id: str
    task_title: str
    attempt: int
    scheduled_for: datetime
    now: datetime
    params_override: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    # the slot's key as the run hands it in; the engine gives each step's call its own
    # (``<key>:<step id>``, ``<key>:<step id>:<index>`` per foreach item) before the tool sees it
    idempotency_key: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict)
    emit: EmitFn | None = None
    # the owner's scopes now (None: not checked, as in a dry run); a step whose tool needs a
    # scope outside them fails instead of running
    scopes: frozenset[str] | None = None
    # For a step whose arguments were derived from secrets: the same arguments rendered with
    # every secret as "***". What a tool logs, publishes or reports back about its arguments
    # comes from here, never from the real ones. None when the step used no secret.
    shown_args: Any = None

    def scope(self, params: dict[str, Any]) -> dict[str, Any]:
        """The expression context without ``steps`` results and without secrets."""
        return {
            "params": params,
            "steps": {},
            "event": self.event,
            "run": {
                "id": self.run_id,
                "attempt": self.attempt,
                "scheduled_for": iso_utc(self.scheduled_for),
            },
            "task": {"id": self.task_id, "title": self.task_title},
            "now": iso_utc(self.now),
        }


@dataclass
class PipelineResult:
    """Outcome of ``execute``.

    ``status`` is ``"succeeded"`` or ``"failed"``; ``output`` is the recorded output of the
    last step that ran; ``steps`` holds one record per step reached, each
    ``{id, uses, status, input, output, error, duration_ms, attempts}`` (a foreach step adds
    ``items``: ``{index, status, input, error, duration_ms, attempts}`` per item reached);
    ``error`` is ``{step, code, message}`` when the run failed.
    """

    status: str
    output: Any
    steps: list[dict[str, Any]]
    error: dict[str, Any] | None = None

    @classmethod
    def failure(cls, code: str, message: str) -> PipelineResult:
        """A run that failed before any step ran (pipeline unreadable, secrets unavailable)."""
        return cls("failed", None, [], {"step": None, "code": code, "message": message})

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "steps": self.steps,
            "error": self.error,
        }
