-- Report files: one row per report job that produced its file (written by
-- the worker when the file is published, keyed by the job's id, so a
-- redelivered job rewrites the same row). The job itself (state, who asked,
-- the payload) stays in job_runs; the file lives in the report store under
-- object_key.
CREATE TABLE reports (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    format          TEXT NOT NULL,
    object_key      TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    row_count       BIGINT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    -- When each source table was last synced, as the report read it.
    freshness       JSONB NOT NULL DEFAULT '{}',
    generated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- After this the file is removed by system.retention and downloads answer 410.
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX reports_expires ON reports (expires_at);
-- Report jobs listed newest first.
CREATE INDEX job_runs_reports ON job_runs (id DESC) WHERE kind LIKE 'report.%';
