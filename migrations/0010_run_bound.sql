-- A run's bound: the longest one attempt may take (every step, its retries and backoffs).
-- max_duration_s is the client's limit (optional); run_bound_s is the bound in force (that
-- limit, else the pipeline's worst case), computed when the task is written. Workers enforce
-- it, and a Lambda worker leases only runs whose bound fits the time it has left. NULL
-- (tasks written before this migration) counts as ORDINAUT_MAX_RUN_DURATION_S.
ALTER TABLE tasks ADD COLUMN max_duration_s double precision;
ALTER TABLE tasks ADD COLUMN run_bound_s double precision;
