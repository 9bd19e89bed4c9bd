-- Every attempt of a run, and the runs that need a person's attention.
--
-- A run is one runs row across its attempts: each attempt overwrites the row's error and step
-- results. run_attempts keeps each attempt that ended and was retried (a failed attempt with
-- retries left, a lease that expired, a drain's deadline, a dead letter retried by hand),
-- written by the statement that requeues the run; the current or final attempt stays in runs.
-- A run that succeeds at its first attempt writes nothing here.
CREATE TABLE run_attempts (
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL CHECK (attempt >= 1),
    owner_id      uuid NOT NULL,
    status        run_status NOT NULL CHECK (status IN ('failed', 'dead_letter')),
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL,
    error         jsonb,
    step_results  jsonb NOT NULL DEFAULT '[]',
    worker_id     text,
    PRIMARY KEY (run_id, attempt)
);

-- Runs that ended without success and will not be retried (dead_letter, and the failed of
-- older versions), until someone retries them or their run is deleted (with its task, by
-- retention): "needs attention" on the status page, over all history. An index on runs.status
-- cannot serve it: every queued -> running -> finished update changes status, and an index
-- covering it (even as a partial index's predicate) would make each of those updates write
-- every runs index instead of being HOT. This table is written only when a run dead-letters.
CREATE TABLE dead_letters (
    run_id       uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    owner_id     uuid NOT NULL,
    task_id      uuid NOT NULL,
    finished_at  timestamptz NOT NULL
);
CREATE INDEX dead_letters_owner_time ON dead_letters (owner_id, finished_at DESC, run_id);
CREATE INDEX dead_letters_owner_task ON dead_letters (owner_id, task_id);

INSERT INTO dead_letters (run_id, owner_id, task_id, finished_at)
SELECT id, owner_id, task_id, finished_at FROM runs WHERE status IN ('failed', 'dead_letter');
