-- Where each periodic schedule stands: the newest tick the scheduler has
-- accounted for (fired, skipped or dropped by its catch-up policy) and the
-- last job it created. Written only by the replica holding the leader lease;
-- tick job ids are deterministic, so a pass repeated by a new leader creates
-- nothing twice.
CREATE TABLE schedule_state (
    name            TEXT PRIMARY KEY,
    cursor          TIMESTAMPTZ NOT NULL,
    last_job_id     TEXT,
    last_fired_at   TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
