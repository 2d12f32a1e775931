-- job_runs: the durable record of every job Hangar accepted (who asked, what,
-- and what happened). Redis carries the queues and the live state while a job
-- runs; this table is what the API lists and what the scheduler's repair loop
-- re-dispatches from if Redis loses its data.
CREATE TABLE job_runs (
    -- ULID chosen at enqueue: time-ordered, so `ORDER BY id DESC` is newest first.
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    queue           TEXT NOT NULL,
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL
        CHECK (state IN ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'cancelled', 'dead')),
    -- Attempts with a recorded outcome, of max_attempts.
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    -- Times a worker claimed the job (more than attempts when a worker died mid-job).
    deliveries      INTEGER NOT NULL DEFAULT 0,
    progress        JSONB,
    result          JSONB,
    error           TEXT,
    requested_by    TEXT,
    request_id      TEXT,
    idempotency_key TEXT,
    run_at          TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A repeated Idempotency-Key returns the first job.
CREATE UNIQUE INDEX job_runs_idempotency_key ON job_runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Keyset pagination by kind or state, newest first.
CREATE INDEX job_runs_kind_id ON job_runs (kind, id DESC);
CREATE INDEX job_runs_state_id ON job_runs (state, id DESC);
-- The repair loop scans jobs that are not finished.
CREATE INDEX job_runs_open ON job_runs (id) WHERE state IN ('scheduled', 'queued', 'running', 'retrying');
