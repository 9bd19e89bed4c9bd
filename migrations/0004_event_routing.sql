-- Events across tenants and condition tasks.
--
-- Shared topics: an admin declares topic patterns whose events may reach other tenants' tasks.
-- A task opts in with a `shared:` prefix on its event pattern; the event is then copied into
-- the subscriber's tenant (source 'shared', id '<publisher agent id>#<event id>', a form no
-- client can choose) so its runs read it like any other event of their own tenant.
CREATE TABLE shared_topics (
    pattern     text PRIMARY KEY CHECK (pattern ~ '^[A-Za-z0-9._:*-]{1,200}$'),
    created_by  uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL
);

ALTER TABLE events
    DROP CONSTRAINT events_source_check,
    ADD CONSTRAINT events_source_check
        CHECK (source IN ('api', 'stream', 'sqs', 'eventbridge', 'shared')),
    DROP CONSTRAINT events_event_id_check,
    ADD CONSTRAINT events_event_id_check CHECK (length(event_id) BETWEEN 1 AND 240),
    ADD COLUMN origin_tenant uuid,
    ADD COLUMN origin_event_id text,
    ADD CONSTRAINT events_shared_copy_has_origin
        CHECK ((source = 'shared') = (origin_tenant IS NOT NULL AND origin_event_id IS NOT NULL));

-- Shared subscriptions are matched across tenants on every event of a shared topic.
CREATE INDEX tasks_shared_subscriptions ON tasks (schedule_expr)
    WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE 'shared:%';

-- Condition tasks: the last evaluated value survives restarts, so the main pipeline runs only
-- on a false -> true edge. Written in the transaction that records the evaluation's run.
CREATE TABLE condition_state (
    task_id        uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    value          boolean NOT NULL,
    evaluated_for  timestamptz NOT NULL,  -- the slot evaluated; older evaluations never win
    evaluated_at   timestamptz NOT NULL,
    fired_at       timestamptz,
    last_run_id    uuid,
    CONSTRAINT condition_state_fired_before_evaluated
        CHECK (fired_at IS NULL OR fired_at <= evaluated_at)
);
