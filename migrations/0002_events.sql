-- Events in: every accepted event is stored before the API answers 202; one per
-- (tenant, event_id), so a replayed event is accepted once.
CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    event_id     text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    topic        text NOT NULL CHECK (length(topic) BETWEEN 1 AND 200),
    payload      jsonb NOT NULL,
    source       text NOT NULL CHECK (source IN ('api', 'stream', 'sqs', 'eventbridge')),
    received_at  timestamptz NOT NULL,
    tasks_matched integer NOT NULL DEFAULT 0 CHECK (tasks_matched >= 0),
    CONSTRAINT events_one_per_id UNIQUE (tenant_id, event_id)
);
CREATE INDEX events_recent ON events (tenant_id, seq DESC);

-- Event tasks are matched by tenant on every event: keep that lookup small.
CREATE INDEX tasks_event_subscriptions ON tasks (created_by)
    WHERE schedule_kind = 'event' AND status = 'active';
