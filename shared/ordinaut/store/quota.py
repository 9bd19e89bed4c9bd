"""Runs queued per agent and minute (``max_runs_per_minute_per_agent``), in ``run_quota``.

A budget holds across every API, worker and consumer process because it lives in the database.
It is read without a lock before runs are queued and charged once, at the end of the queuing
transaction, by one statement that takes the agents' rows in id order: transactions never hold
one agent's row while waiting for another's in the opposite order, so they cannot deadlock,
and a row is held only for the last moment of a transaction. Transactions running at the same
time may each see the budget before the others' charges; the overshoot is bounded by how many
queue runs for one agent at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from ordinaut.store.db import Connection

WINDOW_S = 60

USED = """
SELECT agent_id, used FROM run_quota WHERE agent_id = ANY($1::uuid[]) AND window_start = $2
"""
# A new minute starts the count again; otherwise it adds up.
CHARGE = """
INSERT INTO run_quota AS q (agent_id, window_start, used)
SELECT c.agent_id, $3, c.n
FROM unnest($1::uuid[], $2::int[]) AS c(agent_id, n)
ORDER BY c.agent_id
ON CONFLICT (agent_id) DO UPDATE
SET used = CASE WHEN q.window_start = EXCLUDED.window_start THEN q.used + EXCLUDED.used
                ELSE EXCLUDED.used END,
    window_start = EXCLUDED.window_start
"""


def window_start(now: datetime) -> datetime:
    """The start of the minute ``now`` falls in (the budget's fixed window)."""
    return now.replace(second=0, microsecond=0)


class RunQuota:
    """One transaction's view of the budgets it queues runs against (``limit`` 0: none)."""

    def __init__(self, limit: int, now: datetime) -> None:
        self.limit = limit
        self.window = window_start(now)
        self.retry_after_s = max(
            1.0, (self.window + timedelta(seconds=WINDOW_S) - now).total_seconds()
        )
        self._used: dict[UUID, int] = {}
        self._pending: dict[UUID, int] = {}

    async def allow(self, conn: Connection, wanted: dict[UUID, int]) -> dict[UUID, int]:
        """How many of the runs each agent wants may be queued now; reserves them."""
        if self.limit <= 0:
            return dict(wanted)
        unread = [a for a, n in wanted.items() if n > 0 and a not in self._used]
        if unread:
            rows = await conn.fetch(USED, unread, self.window)
            self._used.update(dict.fromkeys(unread, 0))
            self._used.update({r["agent_id"]: r["used"] for r in rows})
        allowed: dict[UUID, int] = {}
        for agent, n in wanted.items():
            if n <= 0:
                allowed[agent] = 0
                continue
            left = self.limit - self._used[agent] - self._pending.get(agent, 0)
            allowed[agent] = max(0, min(n, left))
            if allowed[agent]:
                self._pending[agent] = self._pending.get(agent, 0) + allowed[agent]
        return allowed

    async def charge(self, conn: Connection) -> None:
        """Write what was reserved (call last in the transaction that queued the runs)."""
        if self.limit <= 0 or not self._pending:
            return
        agents = sorted(self._pending)
        await conn.execute(CHARGE, agents, [self._pending[a] for a in agents], self.window)
        for a in agents:
            self._used[a] += self._pending[a]
        self._pending.clear()
