-- Costs that stay flat as data grows (issue 12).
--
-- 1. The per-agent task quota (ORDINAUT_MAX_TASKS_PER_AGENT) reads a counter row instead of
--    counting the agent's tasks on every create. Triggers on tasks keep the counter in the
--    same transaction as the rows it counts, whatever statement adds or removes them (a create,
--    a delete, an agent's deletion cascading to its tasks, a bulk load); every stored task
--    counts, canceled ones too, as before. Each agent has its row from its creation on, so a
--    create can lock it (POST /tasks: SELECT ... FOR UPDATE, then the insert) and concurrent
--    creates by one agent can never pass the limit together.
CREATE TABLE agent_task_counts (
    agent_id  uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    owned     integer NOT NULL CHECK (owned >= 0)
);

LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;  -- no create or delete between count and triggers
INSERT INTO agent_task_counts (agent_id, owned)
SELECT a.id, (SELECT count(*) FROM tasks t WHERE t.created_by = a.id) FROM agents a;

CREATE FUNCTION agent_task_counts_new_agents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_task_counts (agent_id, owned)
    SELECT id, 0 FROM added ORDER BY id
    ON CONFLICT (agent_id) DO NOTHING;
    RETURN NULL;
END $$;

-- Statement-level with transition tables: one counter update per agent per statement, so a
-- bulk insert or a cascade costs one pass, not one trigger call per row. Rows are taken in
-- agent id order, so two statements touching the same agents never wait on each other in turn.
CREATE FUNCTION agent_task_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_task_counts AS c (agent_id, owned)
    SELECT created_by, count(*) FROM added GROUP BY created_by ORDER BY created_by
    ON CONFLICT (agent_id) DO UPDATE SET owned = c.owned + EXCLUDED.owned;
    RETURN NULL;
END $$;

CREATE FUNCTION agent_task_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agent_task_counts AS c SET owned = greatest(0, c.owned - r.n)
    FROM (SELECT created_by, count(*) AS n FROM removed GROUP BY created_by) AS r
    WHERE c.agent_id = r.created_by;
    RETURN NULL;
END $$;

-- Ownership never changes through the API; should a row move anyway, its count moves with it.
CREATE FUNCTION agent_task_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agent_task_counts SET owned = greatest(0, owned - 1) WHERE agent_id = OLD.created_by;
    INSERT INTO agent_task_counts AS c (agent_id, owned) VALUES (NEW.created_by, 1)
    ON CONFLICT (agent_id) DO UPDATE SET owned = c.owned + 1;
    RETURN NULL;
END $$;

CREATE FUNCTION agent_task_counts_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agent_task_counts SET owned = 0 WHERE owned <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER agents_task_counts AFTER INSERT ON agents
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION agent_task_counts_new_agents();
CREATE TRIGGER tasks_counted_in AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION agent_task_counts_added();
CREATE TRIGGER tasks_counted_out AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION agent_task_counts_removed();
CREATE TRIGGER tasks_counted_moved AFTER UPDATE OF created_by ON tasks
    FOR EACH ROW WHEN (OLD.created_by IS DISTINCT FROM NEW.created_by)
    EXECUTE FUNCTION agent_task_counts_moved();
CREATE TRIGGER tasks_counted_cleared AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION agent_task_counts_cleared();

-- 2. GET /runs pages in (scheduled_for DESC, id) order, by offset or by a keyset cursor: an index
--    in exactly that order per owner reads one page, where the index on created_at made every
--    page sort all of the owner's runs. It replaces that index (same width, so a run's insert
--    writes no more index entries than before); the owner still leads it for the agents
--    foreign key and the per-owner summary. Per task, runs_task_time (task_id, scheduled_for
--    DESC) already reads in order; a tie on scheduled_for is broken by an incremental sort.
DROP INDEX runs_owner_time;
CREATE INDEX runs_owner_sched ON runs (owner_id, scheduled_for DESC, id);
