-- The inventory's free-text search (`q`: workspace id, user name, computer
-- name or IP address, `ILIKE '%term%'`, in the API, the console and the
-- inventory report) scanned every workspace: 85-115 ms at 50,000 of them
-- (bench/console.sh). Trigram indexes answer each of the four columns, and
-- PostgreSQL combines them (BitmapOr) for the OR of the four. pg_trgm ships
-- with PostgreSQL (contrib) and is a trusted extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX workspaces_id_trgm ON workspaces USING gin (workspace_id gin_trgm_ops);
CREATE INDEX workspaces_user_trgm ON workspaces USING gin (user_name gin_trgm_ops);
CREATE INDEX workspaces_computer_trgm ON workspaces USING gin (computer_name gin_trgm_ops);
CREATE INDEX workspaces_ip_trgm ON workspaces USING gin (ip_address gin_trgm_ops);
