-- What the AWS sync jobs bring in. Every inventory table is keyed by
-- (account, region, AWS id): the account is the configured account's name
-- (as operators know it), so the same AWS ids in two accounts never collide.
-- Upserts only touch a row whose content changed, so `updated_at` says when
-- something really changed and a repeated sync leaves the tables identical.

CREATE TABLE directories (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    directory_id            TEXT NOT NULL,
    alias                   TEXT,
    directory_name          TEXT,
    directory_type          TEXT,
    state                   TEXT,
    registration_code       TEXT,
    customer_user_name      TEXT,
    subnet_ids              TEXT[] NOT NULL DEFAULT '{}',
    dns_ip_addresses        TEXT[] NOT NULL DEFAULT '{}',
    first_seen_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when a complete listing no longer contains it.
    deleted_at              TIMESTAMPTZ,
    PRIMARY KEY (account, region, directory_id)
);

CREATE TABLE bundles (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    bundle_id               TEXT NOT NULL,
    name                    TEXT,
    owner                   TEXT,
    description             TEXT,
    compute_type            TEXT,
    root_storage_gib        TEXT,
    user_storage_gib        TEXT,
    state                   TEXT,
    bundle_type             TEXT,
    first_seen_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, region, bundle_id)
);

CREATE TABLE workspaces (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    workspace_id            TEXT NOT NULL,
    directory_id            TEXT,
    user_name               TEXT,
    ip_address              TEXT,
    state                   TEXT,
    bundle_id               TEXT,
    subnet_id               TEXT,
    computer_name           TEXT,
    running_mode            TEXT,
    auto_stop_timeout_minutes INTEGER,
    root_volume_gib         INTEGER,
    user_volume_gib         INTEGER,
    compute_type            TEXT,
    -- Tags as a JSON object {key: value}.
    tags                    JSONB NOT NULL DEFAULT '{}',
    first_seen_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when a complete, successful listing no longer contains it; cleared
    -- if it comes back.
    deleted_at              TIMESTAMPTZ,
    PRIMARY KEY (account, region, workspace_id)
);
CREATE INDEX workspaces_state ON workspaces (state, workspace_id);
CREATE INDEX workspaces_directory ON workspaces (directory_id, workspace_id);
CREATE INDEX workspaces_user ON workspaces (lower(user_name));
CREATE INDEX workspaces_bundle ON workspaces (bundle_id, workspace_id);
-- Keyset pagination over every account and region.
CREATE INDEX workspaces_keyset ON workspaces (workspace_id, account, region);

CREATE TABLE workspace_connections (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    workspace_id            TEXT NOT NULL,
    connection_state        TEXT,
    state_checked_at        TIMESTAMPTZ,
    last_user_connection_at TIMESTAMPTZ,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, region, workspace_id)
);

-- CloudTrail events for the WorkSpaces event source. Event ids are globally
-- unique; a repeated lookup (the cursor overlaps on purpose) is ignored.
CREATE TABLE audit_events (
    event_id                TEXT PRIMARY KEY,
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    event_time              TIMESTAMPTZ NOT NULL,
    event_name              TEXT NOT NULL,
    event_source            TEXT NOT NULL,
    username                TEXT,
    read_only               BOOLEAN,
    access_key_id           TEXT,
    resources               JSONB NOT NULL DEFAULT '[]',
    cloudtrail_event        JSONB,
    inserted_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_time ON audit_events (event_time DESC, event_id DESC);
CREATE INDEX audit_events_name ON audit_events (event_name, event_time DESC);
CREATE INDEX audit_events_user ON audit_events (username, event_time DESC);

-- Where each incremental sync resumes: CloudTrail's last event time, the
-- billing sync's last complete window end.
CREATE TABLE sync_cursors (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    position                TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, region, kind)
);

-- Cost Explorer daily costs. `view` is 'all' (grouped by service and usage
-- type) or 'workspaces' (the same, filtered to Amazon WorkSpaces). Amounts are
-- exact decimals as Cost Explorer sends them.
CREATE TABLE cost_daily (
    account                 TEXT NOT NULL,
    view                    TEXT NOT NULL CHECK (view IN ('all', 'workspaces')),
    day                     DATE NOT NULL,
    service                 TEXT NOT NULL,
    usage_type              TEXT NOT NULL,
    amount                  NUMERIC(30, 10) NOT NULL,
    currency                TEXT NOT NULL,
    estimated               BOOLEAN NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, view, day, service, usage_type)
);
CREATE INDEX cost_daily_day ON cost_daily (view, day);

-- Paid API requests per account and month (Cost Explorer bills each one):
-- counted before each request, refused past the configured budget.
CREATE TABLE aws_request_budget (
    month                   DATE NOT NULL,
    account                 TEXT NOT NULL,
    api                     TEXT NOT NULL,
    used                    INTEGER NOT NULL,
    PRIMARY KEY (month, account, api)
);

-- At most one open job per singleton key: a second "sync now" for the same
-- (kind, account, region) while one is queued or running returns that job.
ALTER TABLE job_runs ADD COLUMN singleton_key TEXT;
CREATE UNIQUE INDEX job_runs_singleton_open ON job_runs (singleton_key)
    WHERE singleton_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');
