"""ordinaut.retries: backoff delays and the instant a failed slot is due again."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordinaut.retries import backoff_seconds, next_attempt_at
from ordinaut.vocabulary import BACKOFF_STRATEGIES

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_fixed_and_linear() -> None:
    assert [backoff_seconds("fixed", n, base_s=5) for n in (1, 2, 10)] == [5, 5, 5]
    assert [backoff_seconds("linear", n, base_s=5) for n in (1, 2, 10)] == [5, 10, 50]
    assert backoff_seconds("linear", 1000, base_s=5, max_s=60) == 60
    assert backoff_seconds("fixed", 1, base_s=90, max_s=60) == 60


def test_exponential_jitter_stays_between_half_a_base_and_the_doubling_ceiling() -> None:
    rng = random.Random(42)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0), (30, 3600.0)]:
        delays = [backoff_seconds("exponential_jitter", attempt, rng=rng) for _ in range(200)]
        assert all(1.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # it is jitter over the whole range, not a constant
        assert min(delays) < 1.0 + 0.2 * ceiling


def test_exponential_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_seconds("exponential_jitter", n, rng=random.Random(7)) for n in range(1, 9)]
    again = [backoff_seconds("exponential_jitter", n, rng=random.Random(7)) for n in range(1, 9)]
    assert first == again


def test_huge_attempt_numbers_are_capped_without_overflow() -> None:
    assert backoff_seconds("exponential_jitter", 10**9, base_s=1e300, max_s=30) <= 30
    assert backoff_seconds("linear", 10**9, max_s=30) == 30


@pytest.mark.parametrize(
    ("strategy", "attempt", "kwargs", "message"),
    [
        ("exponential", 1, {}, "unknown backoff strategy 'exponential'"),
        ("", 1, {}, "unknown backoff strategy ''"),
        ("fixed", 0, {}, "attempt must be an integer >= 1, got 0"),
        ("fixed", -3, {}, "attempt must be an integer >= 1, got -3"),
        ("fixed", True, {}, "attempt must be an integer >= 1, got True"),
        ("linear", 1, {"base_s": 0}, "base_s and max_s must be finite and > 0"),
        ("linear", 1, {"max_s": 0}, "base_s and max_s must be finite and > 0"),
        ("linear", 1, {"base_s": float("nan")}, "base_s and max_s must be finite and > 0"),
        ("linear", 1, {"max_s": float("inf")}, "base_s and max_s must be finite and > 0"),
    ],
)
def test_bad_arguments_raise_value_error(
    strategy: str, attempt: int, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        backoff_seconds(strategy, attempt, **kwargs)


def test_next_attempt_at_adds_the_delay_to_now() -> None:
    assert next_attempt_at("linear", 3, NOW, base_s=10) == NOW + timedelta(seconds=30)
    eastern = NOW.astimezone(timezone(timedelta(hours=-5)))
    due = next_attempt_at("fixed", 1, eastern, base_s=2)
    assert due == NOW + timedelta(seconds=2)
    assert due.tzinfo is UTC
    assert next_attempt_at("fixed", 1, NOW, base_s=1e-9) > NOW  # never "now" itself
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        next_attempt_at("fixed", 1, datetime(2026, 1, 15))


@given(
    strategy=st.sampled_from(BACKOFF_STRATEGIES),
    attempt=st.integers(min_value=1, max_value=10_000),
    base_s=st.floats(min_value=1e-6, max_value=1e6),
    max_s=st.floats(min_value=1e-3, max_value=1e7),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_positive_and_capped(
    strategy: str, attempt: int, base_s: float, max_s: float, seed: int
) -> None:
    delay = backoff_seconds(strategy, attempt, base_s=base_s, max_s=max_s, rng=random.Random(seed))
    assert 0 < delay <= max_s
    assert next_attempt_at(strategy, attempt, NOW, base_s=base_s, max_s=max_s) > NOW
