-- Run outcomes (docs/guarantees.md, "Notifications"): a task's `payload.notify` webhooks and
-- the owner's lifecycle events (run.succeeded, run.failed, run.dead_letter) for its event tasks.
--
-- A run's end is already written to the outbox in the transaction that records it. The
-- outcome router reads those rows after a cursor of its own ('outcomes', same (tx, seq) rule
-- as the lifecycle relay: only rows no running transaction can commit behind) and, in one
-- transaction with the cursor's move, writes one delivery row per matching notify target and
-- queues the event tasks the lifecycle event triggers. So every recorded outcome is routed
-- exactly once, whichever process ended the run (worker, rescue, a drain's deadline), and a
-- crash anywhere after the run's end only delays it.
INSERT INTO relay_cursor (name, last_tx, last_seq)
SELECT 'outcomes', coalesce(max_row.tx, '0'::xid8), coalesce(max_row.seq, 0)
FROM (SELECT 1) AS one
LEFT JOIN (SELECT tx, seq FROM outbox ORDER BY tx DESC, seq DESC LIMIT 1) AS max_row ON true;

-- Lifecycle events routed to the owner's own event tasks.
ALTER TABLE events DROP CONSTRAINT events_source_check;
ALTER TABLE events ADD CONSTRAINT events_source_check
    CHECK (source IN ('api', 'stream', 'sqs', 'eventbridge', 'shared', 'pipeline', 'lifecycle'));

-- One row per (run outcome, notify target): its id is the delivery id the receiver dedupes on
-- (Ordinaut-Delivery). Leased with FOR UPDATE SKIP LOCKED by next_attempt_at; a lease pushes
-- next_attempt_at to its expiry, so a deliverer that dies mid-request leaves a row that is due
-- again then. Every attempt is appended to `history` (bounded by ORDINAUT_NOTIFY_MAX_ATTEMPTS).
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    owner_id         uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    run_id           uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id          uuid NOT NULL,
    source_event_id  uuid NOT NULL,  -- the outbox event of the outcome
    outcome          text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'dead_letter')),
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    secret_name      text NOT NULL,
    body             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    lease_token      uuid,
    last_status_code integer,
    last_error       text,
    history          jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    CONSTRAINT notifications_once_per_outcome UNIQUE (source_event_id, url),
    CONSTRAINT notifications_pending_has_due CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT notifications_delivered_has_time CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_run ON notifications (run_id);

-- Whether anything at all listens, for the router's shortcut: while no task has notify targets
-- and no active event task's pattern can match a lifecycle topic (run.*: a pattern whose part
-- before its first * is a prefix of "run.", or one starting "run."), the router moves its
-- cursor to the newest settled row without reading the rows in between. Two probes of these
-- partial indexes, whose rows are only the tasks that listen.
CREATE INDEX tasks_notifying ON tasks (id) WHERE payload ? 'notify';
CREATE INDEX tasks_lifecycle_listeners ON tasks (created_by)
    WHERE schedule_kind = 'event' AND status = 'active'
      AND (schedule_expr LIKE 'run.%' OR schedule_expr LIKE '*%' OR schedule_expr LIKE 'r*%'
           OR schedule_expr LIKE 'ru*%' OR schedule_expr LIKE 'run*%');
