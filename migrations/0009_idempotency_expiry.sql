-- Idempotency keys are remembered for ORDINAUT_IDEMPOTENCY_TTL_S, then forgotten (a reused key
-- then creates anew) and deleted by the scheduler's housekeeping; keys arrive in created_at
-- order, so a BRIN index finds the old ones.
CREATE INDEX idempotency_keys_created_brin ON idempotency_keys USING brin (created_at);
