"""What a run's end causes after it is recorded: webhooks and the owner's lifecycle events.

``route_once`` reads run outcomes from the outbox after the 'outcomes' cursor (the run's end
and its outbox row share a transaction) and, in one transaction with the cursor's move,
queues a delivery per matching ``payload.notify`` target and ingests ``run.succeeded`` /
``run.failed`` / ``run.dead_letter`` into the owner's own tenant for its event tasks (never
another tenant's, shared topics included). ``deliver_once`` leases due deliveries with SKIP
LOCKED and POSTs them, signed, through the same egress client as ``http.request``.
``relay`` does both until idle; the worker process runs it periodically and the Lambda
worker after its drain. A run never waits for any of it (docs/guarantees.md,
"Notifications").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ordinaut import metrics, notifications
from ordinaut.config import Settings
from ordinaut.errors import Unavailable, ValidationFailed
from ordinaut.ingest import ingest_on
from ordinaut.pipeline.context import iso_utc
from ordinaut.pipeline.tools import HttpEgress, ToolError, http_egress
from ordinaut.pipeline.tools.egress import Allowlist
from ordinaut.secrets import SecretBox
from ordinaut.store import notifications as store
from ordinaut.store import secrets as secrets_store
from ordinaut.store import work
from ordinaut.store.db import Connection
from ordinaut.store.quota import RunQuota

log = logging.getLogger("ordinaut.notifier")

MAX_ERROR_LENGTH = 500
LEASE_GRACE_S = 30.0  # a delivery's lease outlasts its request's bound by this much


@dataclass(frozen=True)
class _Outcome:
    """One run outcome of the window that causes something (``OUTCOMES_AFTER``)."""

    row: asyncpg.Record

    @property
    def outcome(self) -> str:
        return str(self.row["outcome"])

    @property
    def targets(self) -> list[dict[str, Any]]:
        """The task's notify targets that want this outcome."""
        return notifications.targets_for(self.row["notify"], self.outcome)

    @property
    def attempt(self) -> int:
        """The attempt the outcome is about: a retry's outbox row names the next attempt."""
        given = self.row["payload"].get("attempt")
        attempt = int(given) if isinstance(given, int) else int(self.row["run_attempt"])
        return max(1, attempt - 1) if self.row["event_type"] == "run.retried" else attempt

    @property
    def error(self) -> Any:
        return None if self.outcome == "succeeded" else self.row["error"]


# (outbox event type, lifecycle topic, outcome) of every kind of run end
KINDS = tuple(
    (event_type, notifications.topic(outcome), outcome)
    for event_type, outcome in notifications.OUTCOME_OF_EVENT.items()
)


async def route_once(
    pool: asyncpg.Pool, *, now: datetime, settings: Settings, batch: int = 500
) -> int:
    """Route the next window of outcomes; returns how many outcomes it routed, at least 1 when
    the cursor moved (0: nothing new, or another router holds the lock)."""
    wake = False
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await store.try_route_lock(conn):
                return 0
            if (jump := await store.nobody_listening(conn)) is not None:
                # nothing can want an outcome: skip the rows unread (one probe per pass)
                moved = await store.advance_to(conn, *jump)
                return int(moved)
            end, rows = await store.outcomes_after_cursor(conn, batch, KINDS)
            if end is None:
                return 0
            found = [_Outcome(r) for r in rows]
            await store.insert_deliveries(conn, _deliveries(found, settings), now=now)
            wake = await _lifecycle(conn, found, now=now, settings=settings)
            await store.advance(conn, *end)
        if wake:
            await work.notify_work(conn)
    return max(1, len(rows))


def _deliveries(found: list[_Outcome], settings: Settings) -> list[store.NewDelivery]:
    out: list[store.NewDelivery] = []
    for item in found:
        row = item.row
        for target in item.targets:
            delivery_id = uuid.uuid4()
            body = notifications.body(
                delivery_id=str(delivery_id),
                outcome=item.outcome,
                task_id=str(row["task_id"]),
                task_title=row["title"],
                run_id=str(row["run_id"]),
                status=item.outcome,
                attempt=item.attempt,
                error=item.error,
                finished_at=iso_utc(row["recorded_at"]),
                run_url=notifications.run_url(
                    settings.public_url, settings.api_host, settings.api_port, str(row["run_id"])
                ),
            )
            out.append(
                store.NewDelivery(
                    id=delivery_id,
                    owner_id=row["owner_id"],
                    run_id=row["run_id"],
                    task_id=row["task_id"],
                    source_event_id=row["event_id"],
                    outcome=item.outcome,
                    url=target["url"],
                    secret_name=target["secret"],
                    body=body,
                )
            )
    return out


async def _lifecycle(
    conn: Connection, found: list[_Outcome], *, now: datetime, settings: Settings
) -> bool:
    """Ingest the outcomes an owner's event task listens to, in the owner's tenant only.

    The event is one hop deeper than the event that started the run (a scheduled run's is 1),
    so a task on ``run.failed`` whose own runs fail stops after ``max_event_depth`` hops.
    """
    listened = [item for item in found if item.row["subscribed"]]
    if not listened:
        return False
    quota = RunQuota(settings.max_runs_per_minute_per_agent, now)
    wake = False
    max_depth = settings.max_event_depth
    for item in listened:
        row, topic = item.row, notifications.topic(item.outcome)
        depth = int(item.row["cause_depth"]) + 1
        if max_depth > 0 and depth > max_depth:
            metrics.LIFECYCLE_NOT_ROUTED.inc()
            log.warning(
                "lifecycle event not routed: max_event_depth reached",
                extra={"run_id": str(row["run_id"]), "topic": topic, "depth": depth},
            )
            continue
        try:
            summary = await ingest_on(
                conn,
                tenant_id=row["owner_id"],
                topic=topic,
                payload={
                    "run_id": str(row["run_id"]),
                    "task_id": str(row["task_id"]),
                    "task_title": row["title"],
                    "status": item.outcome,
                    "attempt": item.attempt,
                    "error": item.error,
                    "finished_at": iso_utc(row["recorded_at"]),
                },
                event_id=f"lifecycle:{row['event_id']}",
                now=now,
                source="lifecycle",
                depth=depth,
                quota=quota,
                share=False,
            )
        except ValidationFailed as exc:  # checked before any SQL: the transaction is intact
            log.warning(
                "lifecycle event not routed",
                extra={"run_id": str(row["run_id"]), "error": exc.message},
            )
            continue
        wake |= bool(summary.get("_wake"))
    await quota.charge(conn)
    return wake


class Deliverer:
    """Sends due deliveries: signed, through the egress policy, each attempt recorded."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        egress: HttpEgress | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.egress = egress or http_egress(settings)
        self.allowlist = Allowlist.parse(settings.egress_allowlist)
        self._box: SecretBox | None = None

    @property
    def lease_s(self) -> float:
        return self.egress.limits.http_timeout_s + LEASE_GRACE_S

    async def deliver_once(self, *, now: datetime) -> int:
        """Lease one batch of due deliveries and send them; returns how many were attempted."""
        s = self.settings
        await store.give_up_exhausted(self.pool, now=now, max_attempts=s.notify_max_attempts)
        rows = await store.lease(
            self.pool,
            now=now,
            limit=s.notify_batch,
            lease_s=self.lease_s,
            max_attempts=s.notify_max_attempts,
        )
        if rows:
            await asyncio.gather(*(self._attempt(row, now) for row in rows))
        return len(rows)

    async def _attempt(self, row: asyncpg.Record, now: datetime) -> None:
        status_code: int | None = None
        try:
            status_code = await self._send(row, now)
        except ToolError as exc:
            await self._record(row, now, None, exc.code, exc.message, retry=exc.retryable)
            return
        except Exception as exc:  # the database or the network library: try again later
            log.warning("notification attempt failed", extra={"error": repr(exc)})
            await self._record(row, now, None, "internal_error", repr(exc), retry=True)
            return
        if 200 <= status_code < 300:
            await self._record(row, now, status_code, None, None, retry=False)
        else:
            retry = notifications.retryable_status(status_code)
            await self._record(
                row, now, status_code, "http_status", f"answered {status_code}", retry=retry
            )

    async def _send(self, row: asyncpg.Record, now: datetime) -> int:
        url = row["url"]
        # the allowlist may have changed since the task was written
        if (problem := notifications.url_problem(url, self.allowlist)) is not None:
            raise ToolError("egress_refused", problem)
        secret = await self._secret(row["owner_id"], row["secret_name"])
        text = notifications.encode(row["body"])
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Ordinaut-Notifications",
            notifications.SIGNATURE_HEADER: notifications.signature(secret, timestamp, text),
            notifications.DELIVERY_HEADER: str(row["id"]),
            notifications.EVENT_HEADER: notifications.topic(row["outcome"]),
        }
        result = await self.egress.request(
            "POST", url, headers=headers, text=text, idempotency_key=str(row["id"])
        )
        return int(result["status"])

    async def _secret(self, owner_id: uuid.UUID, name: str) -> str:
        if self._box is None:
            try:
                self._box = SecretBox(self.settings.secrets_key)
            except Unavailable as exc:
                raise ToolError("secrets_unavailable", exc.message, retryable=True) from None
        sealed = await secrets_store.fetch(self.pool, owner_id, [name])
        if name not in sealed:
            raise ToolError(
                "secret_missing",
                f"secret {name!r} is not stored (PUT /secrets/{name}); given up",
            )
        return self._box.open(sealed[name])

    async def _record(
        self,
        row: asyncpg.Record,
        now: datetime,
        status_code: int | None,
        code: str | None,
        message: str | None,
        *,
        retry: bool,
    ) -> None:
        s = self.settings
        attempts = int(row["attempts"])
        error = f"{code}: {message}"[:MAX_ERROR_LENGTH] if code else None
        if code is None:
            status, due, result = "delivered", None, "delivered"
        elif retry and attempts < s.notify_max_attempts:
            wait = notifications.backoff_s(
                attempts, base_s=s.notify_backoff_base_s, max_s=s.notify_backoff_max_s
            )
            status, due, result = "pending", now + timedelta(seconds=wait), "retried"
        else:
            status, due, result = "failed", None, "failed"
        attempt = {"attempt": attempts, "at": iso_utc(now), "status_code": status_code}
        if error:
            attempt["error"] = error
        written = await store.finish(
            self.pool,
            row["id"],
            row["lease_token"],
            status=status,
            next_attempt_at=due,
            status_code=status_code,
            error=error,
            now=now,
            attempt=attempt,
        )
        if written:
            metrics.NOTIFICATIONS.labels(result).inc()
            if result != "delivered":
                log.warning(
                    "notification not delivered",
                    extra={
                        "notification_id": str(row["id"]),
                        "run_id": str(row["run_id"]),
                        "attempt": attempts,
                        "outcome": result,
                        "error": error,
                    },
                )


async def relay(
    pool: asyncpg.Pool,
    deliverer: Deliverer,
    now: Callable[[], datetime],
    settings: Settings,
    *,
    max_passes: int = 100,
) -> tuple[int, int]:
    """Route outcomes until none are left, then send what is due until idle (bounded passes);
    returns (``route_once``'s counts summed, deliveries attempted)."""
    routed = attempted = 0
    for _ in range(max_passes):
        n = await route_once(pool, now=now(), settings=settings, batch=settings.relay_batch)
        if not n:
            break
        routed += n
    for _ in range(max_passes):
        n = await deliverer.deliver_once(now=now())
        if not n:
            break
        attempted += n
    return routed, attempted
