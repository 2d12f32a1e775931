-- API keys for automation and the audit log of state-changing API actions.

-- An API key is `hangar_<prefix>_<secret>`. Only the SHA-256 of the whole
-- token is kept; `prefix` (random, not secret) finds the row in one index
-- lookup without scanning hashes.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    prefix       TEXT NOT NULL UNIQUE,
    token_sha256 BYTEA NOT NULL CHECK (length(token_sha256) = 32),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    revoked_by   TEXT
);

-- Names are unique among keys still in use, so "rotate" means create a new
-- key, move the automation over, revoke the old one.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Append-only record of every state-changing request that reached a handler
-- (including the ones refused), newest first by id.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    auth        TEXT NOT NULL,
    action      TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    target      TEXT,
    status      SMALLINT NOT NULL,
    request_id  TEXT NOT NULL,
    client_ip   TEXT
);

CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
