-- When a workspace's tags were last read with DescribeTags (one call per
-- workspace, the bulk of a large fleet's sync). A sync reads them again only
-- for new or changed workspaces and for those whose tags are older than
-- HANGAR_TAGS_REFRESH_SECS; NULL (every row before this migration): read at
-- the next sync.
ALTER TABLE workspaces ADD COLUMN tags_refreshed_at timestamptz;
