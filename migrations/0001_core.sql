-- Ordinaut core schema: agents and tokens, tasks, runs (one row per slot), due_work (the hot
-- lease queue), the transactional outbox, audit log, worker heartbeats and scheduler state.
-- Forward-only. Times are timestamptz; no CHECK calls now().

CREATE TYPE task_status AS ENUM ('active', 'paused', 'canceled', 'completed');
CREATE TYPE run_status AS ENUM (
    'queued', 'running', 'succeeded', 'failed', 'dead_letter', 'canceled', 'skipped'
);
CREATE TYPE work_state AS ENUM ('queued', 'running');

CREATE TABLE agents (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes       text[] NOT NULL DEFAULT '{}',
    secret_hash  text NOT NULL,
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CONSTRAINT agents_scopes_known CHECK (
        scopes <@ ARRAY['tasks:read', 'tasks:write', 'runs:read', 'events:publish', 'admin']::text[]
    )
);

-- Tokens are random and stored only as their SHA-256; revocation is a row update, so it holds
-- in every process that checks tokens against this table.
CREATE TABLE agent_tokens (
    token_hash   bytea PRIMARY KEY,
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('access', 'refresh')),
    family       uuid NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    CONSTRAINT agent_tokens_expiry_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id);
CREATE INDEX agent_tokens_family ON agent_tokens (family);

CREATE TABLE tasks (
    id                     uuid PRIMARY KEY,
    created_by             uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    title                  text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description            text NOT NULL DEFAULT '',
    schedule_kind          text NOT NULL
        CHECK (schedule_kind IN ('cron', 'rrule', 'once', 'event', 'condition')),
    schedule_expr          text NOT NULL,
    timezone               text NOT NULL DEFAULT 'UTC',
    dtstart                timestamptz,
    payload                jsonb NOT NULL,
    status                 task_status NOT NULL DEFAULT 'active',
    priority               smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 9),
    max_retries            integer NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
    backoff_strategy       text NOT NULL DEFAULT 'exponential_jitter'
        CHECK (backoff_strategy IN ('exponential_jitter', 'linear', 'fixed')),
    dedupe_key             text,
    dedupe_window_seconds  integer CHECK (dedupe_window_seconds >= 0),
    concurrency_key        text,
    misfire_policy         text NOT NULL DEFAULT 'run_once'
        CHECK (misfire_policy IN ('skip', 'run_once', 'run_all')),
    overlap_policy         text NOT NULL DEFAULT 'skip'
        CHECK (overlap_policy IN ('skip', 'allow', 'buffer_one')),
    next_run_at            timestamptz,
    snoozed_until          timestamptz,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT tasks_time_kinds_have_no_dtstart_unless_rrule
        CHECK (dtstart IS NULL OR schedule_kind IN ('rrule', 'condition')),
    CONSTRAINT tasks_finished_have_no_next_run
        CHECK (status IN ('active', 'paused') OR next_run_at IS NULL)
);
-- The tick reads only active time-scheduled tasks whose next slot falls inside the lookahead:
-- cost follows the slots due, not the tasks stored.
CREATE INDEX tasks_due ON tasks (next_run_at) WHERE status = 'active' AND next_run_at IS NOT NULL;
CREATE INDEX tasks_owner ON tasks (created_by, created_at DESC, id);
CREATE INDEX tasks_dedupe ON tasks (created_by, dedupe_key, created_at) WHERE dedupe_key IS NOT NULL;

-- One row per slot, forever: (task, 'sched:<instant>'), (task, 'event:<id>'), (task, 'manual:<uuid>').
CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner_id         uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    slot             text NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('schedule', 'run_now', 'event', 'retry', 'condition')),
    event_id         text,
    scheduled_for    timestamptz NOT NULL,
    status           run_status NOT NULL DEFAULT 'queued',
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    started_at       timestamptz,
    finished_at      timestamptz,
    duration_ms      integer CHECK (duration_ms >= 0),
    output           jsonb,
    error            jsonb,
    step_results     jsonb NOT NULL DEFAULT '[]',
    idempotency_key  text NOT NULL,
    worker_id        text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT runs_one_per_slot UNIQUE (task_id, slot),
    CONSTRAINT runs_finished_states_have_finish_time
        CHECK ((status IN ('queued', 'running')) = (finished_at IS NULL)),
    CONSTRAINT runs_running_has_start CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT runs_event_slot_has_event_id CHECK (trigger <> 'event' OR event_id IS NOT NULL)
) WITH (fillfactor = 85);
-- No index may cover a column a run's lifecycle changes (status, times, output): then every
-- queued -> running -> finished update can be HOT, touching no index at all.
CREATE INDEX runs_task_time ON runs (task_id, scheduled_for DESC);
CREATE INDEX runs_owner_time ON runs (owner_id, created_at DESC, id);

-- The hot queue: only queued or running slots live here; a finished slot's row is deleted,
-- so the lease index never carries history.
CREATE TABLE due_work (
    run_id           uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    run_at           timestamptz NOT NULL,
    priority         smallint NOT NULL CHECK (priority BETWEEN 1 AND 9),
    state            work_state NOT NULL DEFAULT 'queued',
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    lease_token      uuid,
    leased_until     timestamptz,
    leased_by        text,
    concurrency_key  text,
    buffer_one       boolean NOT NULL DEFAULT false,
    CONSTRAINT due_work_lease_matches_state CHECK (
        (state = 'running') = (lease_token IS NOT NULL AND leased_until IS NOT NULL)
    )
);
-- Matches the lease query: WHERE state = 'queued' AND run_at <= $now ORDER BY run_at, priority DESC
-- (9 is the most urgent priority, 1 the least).
CREATE INDEX due_work_lease ON due_work (run_at, priority DESC) WHERE state = 'queued';
-- Matches the rescue query: WHERE state = 'running' AND leased_until < $now.
CREATE INDEX due_work_expired ON due_work (leased_until) WHERE state = 'running';
CREATE INDEX due_work_running_ckey ON due_work (concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
-- One index for per-task work (sibling-running checks, pause/cancel/snooze, the FK cascade):
-- every lease writes a new row version into each index, so fewer is faster.
CREATE INDEX due_work_task_state ON due_work (task_id, state);

-- Transactional outbox: written in the same transaction as the change it describes.
-- The relay publishes in (tx, seq) order up to the oldest transaction still running, and keeps
-- one cursor row (relay_cursor) instead of updating every row it publishes: rows of a
-- transaction older than every running one are final, so nothing behind the cursor can appear
-- later, and no per-row bookkeeping write doubles the outbox's cost.
CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id     uuid NOT NULL,  -- v4, generated once: consumers dedupe on it
    event_type   text NOT NULL,
    tenant_id    uuid,
    subject_id   uuid,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX outbox_relay_order ON outbox (tx, seq);

CREATE TABLE relay_cursor (
    name      text PRIMARY KEY,
    last_tx   xid8 NOT NULL,
    last_seq  bigint NOT NULL
);
INSERT INTO relay_cursor (name, last_tx, last_seq) VALUES ('lifecycle', '0'::xid8, 0);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id     uuid,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   uuid,
    details      jsonb NOT NULL DEFAULT '{}',
    request_id   text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, created_at);

CREATE TABLE worker_heartbeats (
    worker_id    text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    in_flight    integer NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    CONSTRAINT worker_heartbeats_seen_after_start CHECK (last_seen >= started_at)
);

CREATE TABLE scheduler_state (
    name              text PRIMARY KEY,
    last_tick_at      timestamptz NOT NULL,
    last_duration_ms  double precision NOT NULL,
    last_materialized integer NOT NULL
);

CREATE TABLE idempotency_keys (
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status_code  integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (agent_id, key)
);
