-- Tenant isolation: causation depth on events, the owner on the lease queue, and a per-agent
-- budget of runs created per minute.
--
-- An event a pipeline publishes (event.publish) is one hop deeper than the event that started
-- the run publishing it; events from outside (API, stream, SQS, EventBridge) are depth 0. A
-- worker refuses to publish past ORDINAUT_MAX_EVENT_DEPTH, so a task that publishes its own
-- topic stops instead of forking for ever. A shared copy keeps its original's depth.
ALTER TABLE events ADD COLUMN depth smallint NOT NULL DEFAULT 0 CHECK (depth >= 0);

-- The lease counts each owner's running rows (ORDINAUT_MAX_RUNNING_PER_AGENT) without a join
-- per candidate row. owner_id never changes, and no index covers it: it costs the lease's
-- updates nothing.
ALTER TABLE due_work ADD COLUMN owner_id uuid;
UPDATE due_work d SET owner_id = r.owner_id FROM runs r WHERE r.id = d.run_id;
ALTER TABLE due_work ALTER COLUMN owner_id SET NOT NULL;

-- Runs created by events and run_now per agent in the current minute
-- (ORDINAUT_MAX_RUNS_PER_MINUTE_PER_AGENT): one row per agent, a fixed window. Read without a
-- lock before queuing runs, charged by one statement at the end of the queuing transaction
-- (rows in agent id order), so two transactions never wait on each other's rows in turn.
CREATE TABLE run_quota (
    agent_id      uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    used          integer NOT NULL CHECK (used >= 0)
);
