"""Every Prometheus metric, defined once. Labels are bounded: no ids, ever."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "ordinaut_http_requests_total",
    "API requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "ordinaut_http_request_duration_seconds",
    "API request latency by method and route template.",
    ["method", "route"],
    registry=REGISTRY,
)
RUNS = Counter(
    "ordinaut_runs_total",
    "Run attempts finished, by outcome (succeeded, failed, retried, dead_letter, skipped, canceled).",
    ["outcome"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "ordinaut_run_duration_seconds",
    "Wall time of one run attempt's pipeline.",
    registry=REGISTRY,
)
LEASES = Counter("ordinaut_leases_total", "Due-work rows leased by workers.", registry=REGISTRY)
LEASE_LOST = Counter(
    "ordinaut_lease_lost_total",
    "Completions or heartbeats refused because the lease had moved on (fencing).",
    registry=REGISTRY,
)
RESCUES = Counter(
    "ordinaut_rescues_total",
    "Expired leases rescued (attempt + 1) or dead-lettered.",
    registry=REGISTRY,
)
RETRIES = Counter(
    "ordinaut_retries_total", "Failed attempts re-queued with backoff.", registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "ordinaut_dead_letters_total",
    "Runs that ended without success and are not retried (retries used up or none allowed, "
    "or an error no retry can fix).",
    registry=REGISTRY,
)
START_LAG = Histogram(
    "ordinaut_run_start_lag_seconds",
    "Time from a slot's scheduled instant (or retry time) to its run starting.",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
DUE_WORK_LAG = Gauge(
    "ordinaut_due_work_lag_seconds",
    "Age of the oldest due work not yet started (0 when none).",
    registry=REGISTRY,
)
DUE_WORK_QUEUED = Gauge(
    "ordinaut_due_work_queued", "Due-work rows queued (due or future).", registry=REGISTRY
)
TICK_DURATION = Histogram(
    "ordinaut_tick_duration_seconds",
    "Duration of one scheduler tick.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
SLOTS_MATERIALIZED = Counter(
    "ordinaut_slots_materialized_total",
    "Slots written to due_work by the scheduler, by trigger.",
    ["trigger"],
    registry=REGISTRY,
)
MISFIRES = Counter(
    "ordinaut_misfired_slots_total",
    "Slots missed during downtime, by what the misfire policy did (skipped, coalesced, run).",
    ["action"],
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "ordinaut_step_duration_seconds",
    "Pipeline step duration by tool and status.",
    ["tool", "status"],
    registry=REGISTRY,
)
WORKER_IN_FLIGHT = Gauge(
    "ordinaut_worker_in_flight", "Runs executing in this worker process.", registry=REGISTRY
)
# Fleet-wide gauges, read from the database by every scheduler tick: they hold for workers and
# relays Prometheus does not scrape (Lambda), and the alert rules in local/observability/ use
# them. Other processes export them at 0, so rules take max() over every series.
SCHEDULER_LAST_TICK = Gauge(
    "ordinaut_scheduler_last_tick_timestamp_seconds",
    "Unix time of this scheduler's last finished tick (0 in processes that do not tick).",
    registry=REGISTRY,
)
DUE_WORK = Gauge(
    "ordinaut_due_work",
    "Due-work rows by state: due (queued, its instant passed), scheduled (queued, later), "
    "running (leased).",
    ["state"],
    registry=REGISTRY,
)
WORKERS_LIVE = Gauge(
    "ordinaut_workers_live",
    "Workers whose heartbeat is fresh (within 3 heartbeat periods), as the tick last counted.",
    registry=REGISTRY,
)
WORKERS_IN_FLIGHT = Gauge(
    "ordinaut_workers_in_flight",
    "Runs in flight across live workers, from their last heartbeats.",
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "ordinaut_outbox_backlog",
    "Lifecycle events not yet relayed to Redis (counted up to 100000; 0 where the scheduler "
    "has no ORDINAUT_REDIS_URL, as nothing relays there).",
    registry=REGISTRY,
)


def count_rescued(actions: Iterable[str]) -> None:
    """Count rescued leases by what became of each (``requeued``, ``dead_letter``); a rescue
    past the last attempt is a dead letter like any other."""
    rescued = dead = 0
    for action in actions:
        rescued += 1
        dead += action == "dead_letter"
    RESCUES.inc(rescued)
    if dead:
        DEAD_LETTERS.inc(dead)
        RUNS.labels("dead_letter").inc(dead)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics on ``http://host:port/metrics`` (scheduler, worker)."""
    start_http_server(port, addr=host, registry=REGISTRY)


OUTBOX_PRUNED = Counter(
    "ordinaut_outbox_pruned_total",
    "Lifecycle events deleted from the outbox after outbox_retention_s.",
    registry=REGISTRY,
)
RUNS_THROTTLED = Counter(
    "ordinaut_runs_throttled_total",
    "Runs an event would have queued, refused by max_runs_per_minute_per_agent.",
    registry=REGISTRY,
)
RATE_LIMIT_FALLBACKS = Counter(
    "ordinaut_rate_limit_fallbacks_total",
    "Requests the API rate limiter counted in process because Redis was unreachable.",
    registry=REGISTRY,
)
RUNS_PRUNED = Counter(
    "ordinaut_runs_pruned_total",
    "Finished runs deleted after run_retention_s.",
    registry=REGISTRY,
)
AUDIT_PRUNED = Counter(
    "ordinaut_audit_pruned_total",
    "Audit log rows deleted after audit_retention_s.",
    registry=REGISTRY,
)
EVENTS_RELAYED = Counter(
    "ordinaut_events_relayed_total",
    "Lifecycle events the outbox relay published to the Redis stream.",
    registry=REGISTRY,
)
WAKEUPS = Counter(
    "ordinaut_worker_wakeups_total",
    "Wake-up messages for Lambda workers after a request created due work, by result "
    "(sent, failed: the work waits for the next tick).",
    ["result"],
    registry=REGISTRY,
)
INGEST_ENTRIES = Counter(
    "ordinaut_ingest_entries_total",
    "Ingest stream entries handled by this consumer, by outcome "
    "(ingested, duplicate, failed: left pending for a retry, parked, reclaimed).",
    ["outcome"],
    registry=REGISTRY,
)
# Every outcome exported from the start (at 0): increase() then sees the first parked entry.
for _outcome in ("ingested", "duplicate", "failed", "parked", "reclaimed"):
    INGEST_ENTRIES.labels(_outcome)

NOTIFICATIONS = Counter(
    "ordinaut_notifications_total",
    "Notification delivery attempts by result (delivered, retried, failed: given up).",
    ["result"],
    registry=REGISTRY,
)
LIFECYCLE_NOT_ROUTED = Counter(
    "ordinaut_lifecycle_events_not_routed_total",
    "Run lifecycle events not routed to event tasks because max_event_depth was reached.",
    registry=REGISTRY,
)
