-- Schedules managed through the API (`/api/v1/schedules`). Those in the
-- deployment's schedules file are not stored here; names are unique across
-- both (the API refuses a name the file uses). `spec` is the definition as
-- the API accepted it (validated on every write).
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    spec        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
