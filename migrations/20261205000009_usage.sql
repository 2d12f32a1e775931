-- Connected time per workspace and hour, from CloudWatch's AWS/WorkSpaces
-- UserConnected metric (Maximum over 5-minute periods). Bit k of `periods`
-- is set when a user was connected during minutes 5k to 5k+5 of the hour,
-- so sessions can be rebuilt at 5-minute resolution (see hangar-reports'
-- usage module). Only hours with a connection are stored. A re-read ORs
-- its bits in: a period once seen connected stays connected.
CREATE TABLE workspace_usage (
    account             TEXT NOT NULL,
    region              TEXT NOT NULL,
    workspace_id        TEXT NOT NULL,
    hour                TIMESTAMPTZ NOT NULL CHECK (date_trunc('hour', hour) = hour),
    periods             INTEGER NOT NULL CHECK (periods > 0 AND periods < 4096),
    connected_minutes   SMALLINT GENERATED ALWAYS AS ((5 * bit_count(periods::bit(12)))::smallint) STORED,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, region, workspace_id, hour)
);
CREATE INDEX workspace_usage_hour ON workspace_usage (hour);

-- Every LastKnownUserConnectionTimestamp the workspace sync has seen, so the
-- history outlives the single value DescribeWorkspacesConnectionStatus gives.
CREATE TABLE workspace_connection_history (
    account                 TEXT NOT NULL,
    region                  TEXT NOT NULL,
    workspace_id            TEXT NOT NULL,
    last_user_connection_at TIMESTAMPTZ NOT NULL,
    seen_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, region, workspace_id, last_user_connection_at)
);

CREATE FUNCTION record_connection_history() RETURNS trigger AS $$
BEGIN
    IF NEW.last_user_connection_at IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.last_user_connection_at IS DISTINCT FROM OLD.last_user_connection_at) THEN
        INSERT INTO workspace_connection_history (account, region, workspace_id, last_user_connection_at)
        VALUES (NEW.account, NEW.region, NEW.workspace_id, NEW.last_user_connection_at)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER workspace_connections_history
    AFTER INSERT OR UPDATE OF last_user_connection_at ON workspace_connections
    FOR EACH ROW EXECUTE FUNCTION record_connection_history();

-- What is already known goes in as the first entry.
INSERT INTO workspace_connection_history (account, region, workspace_id, last_user_connection_at, seen_at)
SELECT account, region, workspace_id, last_user_connection_at, updated_at
FROM workspace_connections WHERE last_user_connection_at IS NOT NULL;
