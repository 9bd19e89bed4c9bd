"""The run recorder: writes outcomes fenced on their leases, in batches.

A worker hands each attempt's outcome (with the events it published and, for a condition
poll, the state write) to ``Recorder.record``; outcomes that finish together share one
transaction. A terminal outcome is written with ``work.finish``, a retry with
``work.requeue``; the events of successful runs go to the outbox and into the events-in path
(``publish.publish_emitted``) in the same transaction, and the owner's run quota is charged
last.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg

from ordinaut import conditions
from ordinaut.store import outbox, work
from ordinaut.store.quota import RunQuota
from ordinaut.worker.outcomes import unstorable
from ordinaut.worker.publish import publish_emitted

log = logging.getLogger("ordinaut.worker")

_Pending = tuple[
    work.Outcome, list[outbox.OutboxEvent], conditions.Effect | None, asyncio.Future[bool]
]


# Errors after which the same write may succeed if tried again: the connection or the server
# went away (a restart, a failover) or the transaction lost a conflict.
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)


class Recorder:
    """Batches completions: outcomes that finish together share one transaction.

    Commits are the cost (bench/README.md): under load, every flush writes everything that
    finished while the previous flush was committing. Each caller still awaits its own result.

    A batch mixes agents, so one outcome must never fail the others: a write that fails on
    the data (the encoder or PostgreSQL refusing one outcome) is redone outcome by outcome,
    and one that fails on the connection is retried for up to ``retry_for_s`` (while the
    leases are still ours, the fenced write lands; after, it is a no-op). A finished run left
    unrecorded would expire its lease and be rescued, that is run again.
    """

    MAX_BATCH = 500

    def __init__(
        self, pool: asyncpg.Pool, *, retry_for_s: float = 15.0, max_runs_per_minute: int = 0
    ) -> None:
        self.pool = pool
        self.retry_for_s = retry_for_s
        self.max_runs_per_minute = max_runs_per_minute
        self.queue: list[_Pending] = []
        self.flusher: asyncio.Task[None] | None = None

    async def record(
        self,
        outcome: work.Outcome,
        events: list[outbox.OutboxEvent],
        effect: conditions.Effect | None = None,
    ) -> bool:
        """``effect`` runs in the same transaction when a terminal outcome is written."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.append((outcome, events, effect, fut))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: self.MAX_BATCH], self.queue[self.MAX_BATCH :]
            await self._flush_batch(batch)

    async def _flush_batch(self, batch: list[_Pending]) -> None:
        """Write one batch and settle every caller's future: with whether its run was
        recorded, or with why the database could not be reached."""
        deadline = time.monotonic() + self.retry_for_s
        try:
            done = await self._persist(batch, deadline)
        except _TRANSIENT as exc:  # the database stays unreachable
            _fail(batch, exc)
            return
        except Exception as exc:
            await self._write_each(batch, deadline, exc)
            return
        except BaseException as exc:
            _fail(batch, RuntimeError(f"recorder stopped: {exc!r}"))
            raise
        _settle(batch, done)

    async def _write_each(self, batch: list[_Pending], deadline: float, exc: Exception) -> None:
        """One outcome the encoder or PostgreSQL refuses must not fail the others that happened
        to finish with it (they may belong to other agents): the batch rolled back as a whole,
        so write each outcome on its own."""
        if len(batch) > 1:
            log.warning(
                "batched completion failed; writing each outcome alone",
                extra={"error": repr(exc), "count": len(batch)},
            )
        for item in batch:
            await self._write_alone(item, deadline)

    async def _persist(self, batch: list[_Pending], deadline: float) -> set[uuid.UUID]:
        """``_write``, retried with backoff on connection errors until ``deadline``."""
        delay = 0.1
        while True:
            try:
                return await self._write(batch)
            except _TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "recording outcomes failed; retrying",
                    extra={"error": repr(exc), "count": len(batch), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _write_alone(self, item: _Pending, deadline: float) -> None:
        """Write one outcome; if it cannot be stored, store that the run failed instead.

        An outcome that cannot be written must not be left to its lease expiring: a rescue
        would run finished work (and its side effects) again. So the run is dead-lettered
        with ``storage_error`` (no output, no step records, no events; a failed attempt with
        retries left keeps its retry). Only if even that cannot be written (the database is
        gone) does the caller get the exception.
        """
        outcome, _, _, fut = item
        try:
            done = await self._persist([item], deadline)
        except _TRANSIENT as exc:  # the database, not the outcome: nothing to replace
            if not fut.done():
                fut.set_exception(exc)
            return
        except Exception as exc:
            log.error(
                "a run's outcome could not be stored; recording it as failed",
                extra={"run_id": str(outcome.run_id), "error": repr(exc)},
            )
            try:
                done = await self._persist([(unstorable(outcome, exc), [], None, fut)], deadline)
            except Exception as again:
                if not fut.done():
                    fut.set_exception(again)
                return
        _settle([item], done)

    async def _write(self, batch: list[_Pending]) -> set[uuid.UUID]:
        retries = [o for o, _, _, _ in batch if o.status == "retry"]
        terminal = [o for o, _, _, _ in batch if o.status != "retry"]
        if not retries and not any(evs or fx for _, evs, fx, _ in batch):
            # One statement is atomic on its own: skip BEGIN/COMMIT round trips (hot path).
            async with self.pool.acquire() as conn:
                return {r["id"] for r in await work.finish(conn, terminal)}
        wake = False
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                done = {r["id"] for r in await work.finish(conn, terminal)}
                for o, _, fx, _ in batch:
                    if fx is not None and o.run_id in done:
                        await fx(conn)
                done |= {r["id"] for r in await work.requeue(conn, retries)}
                events = [e for o, evs, _, _ in batch if o.run_id in done for e in evs]
                if events:
                    await outbox.append(conn, events, now=batch[-1][0].finished_at)
                quota = RunQuota(self.max_runs_per_minute, batch[-1][0].finished_at)
                refused: dict[uuid.UUID, str | None] = {}  # publisher checks, per owner
                for o, evs, _, _ in batch:
                    if o.run_id in done and evs:
                        wake |= await publish_emitted(conn, o, evs, quota, refused)
                await quota.charge(conn)  # last: see store/quota.py
            if wake:
                await work.notify_work(conn)
        return done


def _settle(batch: list[_Pending], done: set[uuid.UUID]) -> None:
    """Each caller learns whether its run was recorded (false: the lease was no longer ours)."""
    for outcome, _, _, fut in batch:
        if not fut.done():
            fut.set_result(outcome.run_id in done)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    """Each caller still waiting gets ``exc``: its outcome was not recorded."""
    for _, _, _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
