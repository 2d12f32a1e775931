-- The inventory at fleet scale (issue 17; bench/fleet.sh: 150,000 workspaces
-- in 100 accounts x 3 regions).
--
-- GET /api/v1/directories counts each directory's live workspaces. Through
-- workspaces_directory (directory_id, workspace_id) every counted row was a
-- heap fetch to check account, region and deleted_at: 34 ms median, 51 ms
-- p99 for a page of 100 directories (25,000 workspaces), 78 / 111 ms once
-- the daily tag refresh had left a dead version of every row. This partial
-- index answers the count from the index (17 ms even then, before vacuum
-- sets the visibility map). 150,000 rows build in about 0.2 s, during which
-- writes to workspaces wait.
CREATE INDEX workspaces_directory_live ON workspaces (account, region, directory_id)
    WHERE deleted_at IS NULL;

-- The daily tag refresh stamps tags_refreshed_at on every workspace, and a
-- sync updates connection rows whose state changed. Neither column is
-- indexed, so with room left on the page PostgreSQL updates the row in
-- place (HOT) instead of adding an entry to each of the table's 11 indexes
-- (with the one above; 4 are trigram GIN). Measured on 150,000 rows: 2 of 300,000 updates
-- were HOT at the default fillfactor (full pages), 90,000 to 110,000 of
-- each 150,000 at 75. Applies to pages written from now on (VACUUM FULL or
-- pg_repack rewrites the old ones, if an operator wants that at once).
ALTER TABLE workspaces SET (fillfactor = 80);
ALTER TABLE workspace_connections SET (fillfactor = 80);
