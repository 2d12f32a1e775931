-- Fixes from the security review (issue 13).

-- Idempotency keys belong to the caller who sent them: one caller's key
-- never answers another's. Rows from before this migration have no scope
-- and keep matching each other only (as ''), never a new caller's key.
ALTER TABLE job_runs ADD COLUMN idempotency_scope TEXT;
-- SHA-256 of (kind, payload, run_at): the same key with a different
-- request is refused instead of silently answered with the first job.
ALTER TABLE job_runs ADD COLUMN request_fingerprint TEXT;
DROP INDEX job_runs_idempotency_key;
CREATE UNIQUE INDEX job_runs_idempotency ON job_runs (COALESCE(idempotency_scope, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The request id is always the server's; what the client sent in
-- X-Request-Id is kept beside it, never in its place.
ALTER TABLE audit_log ADD COLUMN client_request_id TEXT;
CREATE INDEX audit_log_target ON audit_log (target, id) WHERE target IS NOT NULL;
