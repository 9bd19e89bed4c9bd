"""The words of ordinaut.vocabulary are the database's: its enums and CHECK constraints hold
the same statuses, kinds and policies, so a word added on one side only fails here."""

from __future__ import annotations

import re

import asyncpg
import pytest

from ordinaut import vocabulary

QUOTED = re.compile(r"'([a-z_]+)'")

COLUMN_CHECKS = [
    ("tasks", "schedule_kind", vocabulary.SCHEDULE_KINDS),
    ("tasks", "backoff_strategy", vocabulary.BACKOFF_STRATEGIES),
    ("tasks", "misfire_policy", vocabulary.MISFIRE_POLICIES),
    ("tasks", "overlap_policy", vocabulary.OVERLAP_POLICIES),
    ("notifications", "outcome", vocabulary.NOTIFY_OUTCOMES),
    ("notifications", "status", vocabulary.NOTIFICATION_STATUSES),
]

# the CHECK constraints over exactly one column of a table, as Postgres prints them
SELECT_COLUMN_CHECKS = """
SELECT pg_get_constraintdef(c.oid)
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'c' AND c.conrelid = $1::regclass
  AND cardinality(c.conkey) = 1 AND a.attname = $2
"""


@pytest.mark.parametrize(
    ("enum", "words"),
    [("task_status", vocabulary.TASK_STATUSES), ("run_status", vocabulary.RUN_STATUSES)],
)
async def test_status_enums_hold_the_vocabulary_in_order(
    pool: asyncpg.Pool, enum: str, words: tuple[str, ...]
) -> None:
    labels = await pool.fetchval(f"SELECT enum_range(NULL::{enum})::text[]")
    assert tuple(labels) == words


@pytest.mark.parametrize(("table", "column", "words"), COLUMN_CHECKS)
async def test_column_checks_allow_exactly_the_vocabulary(
    pool: asyncpg.Pool, table: str, column: str, words: tuple[str, ...]
) -> None:
    definitions = [r[0] for r in await pool.fetch(SELECT_COLUMN_CHECKS, table, column)]
    assert len(definitions) == 1, definitions
    assert QUOTED.findall(definitions[0]) == list(words)


def test_final_run_statuses_are_run_statuses_but_queued_and_running() -> None:
    assert set(vocabulary.RUN_STATUSES) - {"queued", "running"} == vocabulary.FINAL_RUN_STATUSES
    assert set(vocabulary.TIME_KINDS) < set(vocabulary.SCHEDULE_KINDS)
