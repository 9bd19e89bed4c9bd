"""Settings: every environment variable Ordinaut reads, defined once (prefix ``ORDINAUT_``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_migrations_dir() -> Path:
    """Where the SQL migrations are when ``ORDINAUT_MIGRATIONS_DIR`` does not say.

    An installed wheel carries them as ``ordinaut/migrations`` (pyproject.toml), read through
    importlib.resources; an editable install of a checkout runs the package from ``shared/``,
    beside the checkout's own ``migrations/``.
    """
    packaged = resources.files("ordinaut") / "migrations"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return REPO_ROOT / "migrations"


@dataclass(frozen=True)
class Settings:
    """Configuration. Build with ``load_settings(os.environ)``; never a module global."""

    database_url: str = ""
    redis_url: str = ""
    home: str = ".ordinaut"
    migrations_dir: str = str(default_migrations_dir())
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_url: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_command_timeout_s: float = 10.0
    db_connect_timeout_s: float = 3.0
    # auth
    access_token_ttl_s: int = 3600
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # limits (docs/guarantees.md, "Limits")
    max_body_bytes: int = 256 * 1024
    max_json_depth: int = 32
    max_steps: int = 50
    max_string_length: int = 10_000
    max_expression_length: int = 2_000
    max_expression_work: int = 500_000
    max_expression_ms: int = 1_000
    min_interval_s: int = 60
    max_retries_limit: int = 100
    max_step_timeout_s: int = 300
    # a foreach step: items one run of it may go over, and the largest max_concurrency it
    # may ask for (a run's worst case counts ceil(max_foreach_items / max_concurrency) rounds)
    max_foreach_items: int = 100
    max_foreach_concurrency: int = 10
    # the longest a run (one attempt: every step, its retries and backoffs) may take in this
    # deployment; a task whose bound exceeds it is refused when written. A Lambda worker's
    # timeout minus ORDINAUT_DRAIN_MARGIN_S must be at least this (Terraform sets both)
    max_run_duration_s: float = 900.0
    max_tasks_per_agent: int = 10_000
    rate_limit_per_minute: int = 6_000
    # /agents/auth/* (secret checks cost a scrypt each), per client address
    auth_rate_limit_per_minute: int = 60
    # "memory": buckets per API process; "redis": one budget shared by every API process
    # through ORDINAUT_REDIS_URL (in-process buckets while Redis is unreachable)
    rate_limit_store: str = "memory"
    rate_limit_prefix: str = "ordinaut:ratelimit"
    # tenant isolation (docs/isolation.md); 0 switches a limit off
    max_event_depth: int = 8  # event.publish hops from an event from outside
    max_runs_per_minute_per_agent: int = 6_000  # runs queued by events and run_now
    max_running_per_agent: int = 0  # running runs per agent across all workers
    # scheduler
    tick_interval_s: float = 5.0
    lookahead_s: float = 90.0
    misfire_grace_s: float = 60.0
    catchup_window_s: float = 24 * 3600.0
    run_all_cap: int = 100
    tick_batch: int = 5_000
    scheduler_metrics_port: int = 9101
    # scheduler/worker metrics listen here; containers set 0.0.0.0 so Prometheus can scrape
    metrics_host: str = "127.0.0.1"
    # worker
    worker_concurrency: int = 16
    lease_batch: int = 50
    lease_seconds: float = 30.0
    heartbeat_s: float = 10.0
    poll_interval_s: float = 1.0
    rescue_interval_s: float = 5.0
    drain_margin_s: float = 5.0
    # the SQS queue that wakes Lambda workers; the API and the events function put a message
    # on it when they create work due now (empty: no wake-ups, e.g. long-running workers)
    work_queue_url: str = ""
    worker_metrics_port: int = 9102
    backoff_base_s: float = 2.0
    backoff_max_s: float = 3600.0
    # events
    stream_maxlen: int = 100_000  # XADD MAXLEN ~ for the lifecycle and dead streams
    relay_interval_s: float = 0.5
    relay_batch: int = 500
    # outbox rows (lifecycle events) older than this are deleted by the scheduler's tick once
    # the relay has published them; also how far back GET /events/stream can resume. 0 keeps all
    outbox_retention_s: float = 86_400.0
    # finished runs (with their step results) older than this are deleted by the scheduler's
    # tick; 0 keeps them all. Queued and running runs are never touched.
    run_retention_s: float = 0.0
    # audit log rows older than this are deleted by the scheduler's tick; 0 keeps them all
    audit_retention_s: float = 0.0
    # an Idempotency-Key on POST /tasks is remembered this long; later the same key creates anew
    idempotency_ttl_s: float = 86_400.0
    # ingest stream consumer group: entries idle this long are reclaimed (longer than the
    # slowest ingest, which is one short transaction); parked after this many deliveries
    ingest_claim_idle_s: float = 60.0
    ingest_max_deliveries: int = 5
    ingest_batch: int = 100
    ingest_concurrency: int = 4  # entries ingested at once per consumer (one connection each)
    ingest_block_ms: int = 1_000
    # GET /events/stream (Server-Sent Events), per API process
    sse_max_connections: int = 100
    sse_max_per_agent: int = 10
    sse_recheck_s: float = 30.0  # an open stream checks its token again this often
    sse_max_seconds: float = 300.0
    sse_keepalive_s: float = 15.0
    sse_poll_s: float = 0.5
    sse_settle_s: float = 2.0  # how late a commit may land behind a streamed higher seq
    # http tool egress
    egress_allowlist: tuple[str, ...] = ()
    # operator-declared HTTP tools (JSON or YAML); entry points "ordinaut.tools" load always
    http_tools_file: str = ""
    secrets_key: str = ""
    # Secrets Manager values (Lambda) are re-fetched after this long, so rotated credentials
    # reach warm containers
    secrets_ttl_s: float = 300.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(raw: str, typ: Any, name: str) -> Any:
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if t in ("int",):
            return int(raw)
        if t in ("float",):
            return float(raw)
        if t in ("bool",):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if t.startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise ValueError(f"ORDINAUT_{name.upper()}: cannot read {raw!r} as {t}") from exc
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read ``ORDINAUT_*`` variables from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        key = f"ORDINAUT_{f.name.upper()}"
        if key in env and env[key] != "":
            values[f.name] = _coerce(env[key], f.type, f.name)
    values.update(overrides)
    return Settings(**values)
