-- Web console sessions (issue 16): an API key or JWT is exchanged once for
-- a random session token; only its SHA-256 is stored, so a copy of this
-- table logs nobody in. The CSRF token is per session and is not a
-- credential on its own (it only accompanies the HttpOnly cookie).
CREATE TABLE console_sessions (
    id            text PRIMARY KEY,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    csrf_token    text NOT NULL,
    actor         text NOT NULL,
    rate_key      text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    method        text NOT NULL CHECK (method IN ('jwt', 'api_key')),
    client_ip     text,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);

-- The admin page lists open sessions, newest first.
CREATE INDEX console_sessions_open ON console_sessions (created_at DESC) WHERE revoked_at IS NULL;
