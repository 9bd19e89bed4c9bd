-- One task's runs, a page at a time, whatever else its owner runs (issue 12).
--
-- GET /runs?task_id= reads a page in (scheduled_for DESC, id) order. runs_task_time
-- (task_id, scheduled_for DESC) lacked the id that breaks ties, so the planner preferred the
-- owner's index runs_owner_sched (owner_id, scheduled_for DESC, id) and filtered it by task:
-- a task whose runs sit below another task's newer ones read every one of those first (168 ms
-- for the first page of a task under 300k newer runs of the same agent). This index serves the
-- page in exactly its order, and store/runs.py keeps the owner's index out of a task's page.
-- It replaces runs_task_time, which is its prefix (every per-task lookup keeps its index and a
-- run's insert writes no more index entries than before).
--
-- The migration runner applies each file in one transaction, so this cannot be CREATE INDEX
-- CONCURRENTLY: the build holds a SHARE lock on runs (reads go on; new runs and run updates
-- wait, about 1 s per million runs on a 2-vCPU machine). Where that pause is too long, build
-- the index beforehand without blocking writes:
--     CREATE INDEX CONCURRENTLY runs_task_sched ON runs (task_id, scheduled_for DESC, id);
-- and this migration keeps it. An index of that name that is not exactly this one (a
-- concurrent build that failed leaves an invalid one) is dropped and built again.
DO $$
DECLARE
    found regclass := to_regclass('runs_task_sched');
BEGIN
    IF found IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_index i
        WHERE i.indexrelid = found AND i.indisvalid AND i.indisready AND NOT i.indisunique
          AND i.indrelid = 'runs'::regclass AND i.indpred IS NULL
          AND pg_get_indexdef(found) LIKE '% USING btree (task_id, scheduled_for DESC, id)'
    ) THEN
        EXECUTE 'DROP INDEX runs_task_sched';
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS runs_task_sched ON runs (task_id, scheduled_for DESC, id);
DROP INDEX IF EXISTS runs_task_time;
