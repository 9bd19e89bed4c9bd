-- GET /audit reads the audit log by actor, by the agent owning the subject (an admin acting on
-- another agent's run is shown to that agent too), newest first; retention deletes by age.
ALTER TABLE audit_log ADD COLUMN owner_id uuid;
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_owner ON audit_log (owner_id, id) WHERE owner_id IS NOT NULL;
-- rows are inserted in created_at order and never updated: a BRIN index finds old ones cheaply
CREATE INDEX audit_log_created_brin ON audit_log USING brin (created_at);
