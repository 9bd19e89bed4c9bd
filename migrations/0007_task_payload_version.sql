-- Workers keep each task's pipeline compiled per version. updated_at changes on every tick that
-- advances a task (next_run_at), so it made a recurring task look new at every slot; this
-- counter changes only when an update changes the payload.
ALTER TABLE tasks ADD COLUMN payload_version bigint NOT NULL DEFAULT 1;
