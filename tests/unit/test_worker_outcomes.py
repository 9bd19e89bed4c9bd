"""ordinaut.worker.outcomes: what a leased attempt comes to, as tables of cases (no database).

``classify`` turns a pipeline result into the outcome the recorder writes; ``not_run`` says
whether a leased row runs at all; ``unstorable`` replaces an outcome the store refused.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ordinaut import metrics
from ordinaut.pipeline import PipelineResult
from ordinaut.store.rows import LeasedRun
from ordinaut.store.work import Outcome
from ordinaut.worker import RetryPolicy, classify, not_run
from ordinaut.worker.outcomes import count, skipped, unstorable

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN_ID, TOKEN = uuid.uuid4(), uuid.uuid4()
STEPS = [{"id": "a", "uses": "echo", "status": "failed", "duration_ms": 3}]


def leased(**changes: Any) -> LeasedRun:
    """A leased first attempt of a scheduled slot, with 3 attempts and fixed backoff."""
    base = LeasedRun(
        run_id=RUN_ID,
        task_id=uuid.uuid4(),
        attempt=1,
        max_attempts=3,
        lease_token=TOKEN,
        run_at=NOW,
        owner_id=uuid.uuid4(),
        scheduled_for=NOW,
        trigger="schedule",
        event_id=None,
        idempotency_key="k",
        trace_context=None,
        title="t",
        task_version=1,
        overlap_policy="allow",
        backoff_strategy="fixed",
        run_bound_s=None,
        sibling_running=False,
        event_key=None,
        event_topic=None,
        event_payload=None,
        event_depth=None,
        owner_active=True,
        owner_scopes=["tasks:read"],
    )
    return dataclasses.replace(base, **changes)


def failed(code: str | None) -> PipelineResult:
    error = None if code is None else {"step": "a", "code": code, "message": f"{code} happened"}
    return PipelineResult("failed", None, STEPS, error)


POLICY = RetryPolicy(base_s=10.0, max_s=3600.0, rng=random.Random(0))
NO_RETRY = {"retried": False, "why_not_retried": "{} cannot succeed on a retry; fix the task"}

# (case, result, row changes, status, seconds until the retry or None, extra error fields)
CASES: list[tuple[str, PipelineResult, dict[str, Any], str, float | None, dict[str, Any]]] = [
    ("success", PipelineResult("succeeded", {"ok": 1}, STEPS), {}, "succeeded", None, {}),
    (
        "condition poll that did not fire",
        PipelineResult("skipped", {"fired": False}, STEPS),
        {},
        "skipped",
        None,
        {},
    ),
    ("failure retried with fixed backoff", failed("http_error"), {}, "retry", 10.0, {}),
    (
        "failure retried with linear backoff",
        failed("http_error"),
        {"attempt": 2, "backoff_strategy": "linear"},
        "retry",
        20.0,
        {},
    ),
    (
        "linear backoff capped by max_s",
        failed("http_error"),
        {"attempt": 400, "max_attempts": 500, "backoff_strategy": "linear"},
        "retry",
        3600.0,
        {},
    ),
    ("failure without an error record", failed(None), {}, "retry", 10.0, {}),
    ("pipeline unreadable: retried", failed("unavailable"), {}, "retry", 10.0, {}),
    ("run bound exceeded: the attempt counts", failed("run_timeout"), {}, "retry", 10.0, {}),
    (
        "run bound exceeded on the last attempt",
        failed("run_timeout"),
        {"attempt": 3},
        "dead_letter",
        None,
        {},
    ),
    ("attempts exhausted", failed("http_error"), {"attempt": 3}, "dead_letter", None, {}),
    (
        "max_retries 0: one attempt",
        failed("http_error"),
        {"max_attempts": 1},
        "dead_letter",
        None,
        {},
    ),
    *[
        (
            f"{code} cannot be fixed by a retry",
            failed(code),
            {},
            "dead_letter",
            None,
            {**NO_RETRY, "why_not_retried": NO_RETRY["why_not_retried"].format(code)},
        )
        for code in ("invalid_arguments", "secret_missing", "egress_refused", "missing_scope")
    ],
    (
        "not retryable on the last attempt: the retries ran out anyway",
        failed("invalid_arguments"),
        {"attempt": 3},
        "dead_letter",
        None,
        {},
    ),
    (
        "not retryable with max_retries 0",
        failed("event_depth_exceeded"),
        {"max_attempts": 1},
        "dead_letter",
        None,
        {},
    ),
]


@pytest.mark.parametrize(
    ("result", "changes", "status", "retry_in", "extra"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classify(
    result: PipelineResult,
    changes: dict[str, Any],
    status: str,
    retry_in: float | None,
    extra: dict[str, Any],
) -> None:
    row = leased(**changes)
    before = copy.deepcopy(result)
    outcome = classify(result, row, NOW, POLICY, duration_ms=42)
    assert (outcome.run_id, outcome.token, outcome.attempt) == (RUN_ID, TOKEN, row.attempt)
    assert (outcome.status, outcome.finished_at, outcome.duration_ms) == (status, NOW, 42)
    assert outcome.steps == result.steps
    expected_retry = None if retry_in is None else NOW + timedelta(seconds=retry_in)
    assert outcome.retry_at == expected_retry
    if result.status in ("succeeded", "skipped"):
        assert (outcome.output, outcome.error) == (result.output, None)
    else:
        assert outcome.output is None
        assert outcome.error == (None if result.error is None else {**result.error, **extra})
    assert result == before  # the result it was given is left as it was


def test_exponential_jitter_retries_between_half_a_base_and_a_base_on_the_first_failure() -> None:
    row = leased(backoff_strategy="exponential_jitter")
    delays = {
        (classify(failed("http_error"), row, NOW, POLICY).retry_at - NOW).total_seconds()  # type: ignore[operator]
        for _ in range(50)
    }
    assert all(5.0 <= d <= 10.0 for d in delays)
    assert len(delays) > 1


def test_the_same_seed_gives_the_same_retry_instant() -> None:
    row = leased(backoff_strategy="exponential_jitter", attempt=2)
    first = classify(failed("x"), row, NOW, RetryPolicy(2.0, 60.0, random.Random(7)))
    again = classify(failed("x"), row, NOW, RetryPolicy(2.0, 60.0, random.Random(7)))
    assert first.retry_at == again.retry_at


# (case, row changes, status or None when it runs, error code)
NOT_RUN: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("an active owner's row runs", {}, None, None),
    ("owner deactivated: canceled", {"owner_active": False}, "canceled", "owner_inactive"),
    (
        "owner deactivated wins over an overlap skip",
        {"owner_active": False, "overlap_policy": "skip", "sibling_running": True},
        "canceled",
        "owner_inactive",
    ),
    (
        "skip: a scheduled slot while its predecessor runs",
        {"overlap_policy": "skip", "sibling_running": True},
        "skipped",
        "overlap_skipped",
    ),
    ("skip: nothing running", {"overlap_policy": "skip"}, None, None),
    *[
        (
            f"skip: a {trigger} runs even while its predecessor runs",
            {"overlap_policy": "skip", "sibling_running": True, "trigger": trigger},
            None,
            None,
        )
        for trigger in ("run_now", "event", "condition")
    ],
    ("allow", {"overlap_policy": "allow", "sibling_running": True}, None, None),
    ("buffer_one", {"overlap_policy": "buffer_one"}, None, None),
]


@pytest.mark.parametrize(
    ("changes", "status", "code"), [case[1:] for case in NOT_RUN], ids=[c[0] for c in NOT_RUN]
)
def test_not_run(changes: dict[str, Any], status: str | None, code: str | None) -> None:
    outcome = not_run(leased(**changes), NOW)
    if status is None:
        assert outcome is None
        return
    assert outcome is not None
    assert (outcome.status, outcome.error["code"], outcome.finished_at) == (status, code, NOW)
    assert (outcome.run_id, outcome.token, outcome.retry_at) == (RUN_ID, TOKEN, None)


def test_a_buffered_slot_is_skipped_naming_why() -> None:
    outcome = skipped(leased(overlap_policy="buffer_one"), NOW, "buffer_one keeps one")
    assert (outcome.status, outcome.error) == (
        "skipped",
        {"code": "overlap_skipped", "message": "buffer_one keeps one"},
    )


def _outcome(status: str) -> Outcome:
    return Outcome(
        RUN_ID, TOKEN, 1, status, NOW, 5, output={"x": "\x00"}, steps=STEPS, retry_at=NOW
    )


@pytest.mark.parametrize(
    ("status", "becomes", "why"),
    [
        ("retry", "retry", None),
        ("succeeded", "dead_letter", "the attempt finished; it is not run again"),
        ("dead_letter", "dead_letter", "the attempt finished; it is not run again"),
        ("skipped", "dead_letter", "the attempt finished; it is not run again"),
    ],
)
def test_an_unstorable_outcome_is_replaced_by_a_storage_error(
    status: str, becomes: str, why: str | None
) -> None:
    replaced = unstorable(_outcome(status), ValueError("NUL in text\nmore"))
    assert (replaced.status, replaced.output, replaced.steps) == (becomes, None, [])
    assert replaced.error["code"] == "storage_error"
    assert "ValueError: NUL in text)" in replaced.error["message"]
    assert replaced.error.get("why_not_retried") == why
    assert replaced.retry_at == NOW  # a retry keeps its instant


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.parametrize(
    ("status", "label", "also"),
    [
        ("succeeded", "succeeded", None),
        ("skipped", "skipped", None),
        ("canceled", "canceled", None),
        ("retry", "retried", "ordinaut_retries_total"),
        ("dead_letter", "dead_letter", "ordinaut_dead_letters_total"),
    ],
)
def test_count_adds_an_outcome_to_its_metrics(status: str, label: str, also: str | None) -> None:
    runs = ("ordinaut_runs_total", {"outcome": label})
    before = _sample(*runs), _sample(also) if also else 0.0
    count(_outcome(status))
    assert _sample(*runs) == before[0] + 1
    if also:
        assert _sample(also) == before[1] + 1
