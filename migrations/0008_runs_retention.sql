-- Finished runs older than ORDINAUT_RUN_RETENTION_S leave in the scheduler's housekeeping.
-- Runs are inserted in created_at order, so a BRIN index finds the old ones for a few pages
-- of index; created_at never changes, so it costs the lifecycle updates nothing (they stay HOT).
CREATE INDEX runs_created_brin ON runs USING brin (created_at);
