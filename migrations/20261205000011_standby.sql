-- A standby WorkSpace (multi-region resilience) names its primary here as
-- "<region>/<workspace id>" (DescribeWorkspaces' RelatedWorkspaces entry of
-- type PRIMARY). Standbys sit unused by design: reports flag them.
ALTER TABLE workspaces ADD COLUMN standby_of TEXT;
