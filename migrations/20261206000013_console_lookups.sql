-- The console's workspace page lists the CloudTrail events naming that
-- workspace (`resources @> '[{"name": "ws-…"}]'`): without this index that
-- is a scan of every stored event.
CREATE INDEX audit_events_resources ON audit_events USING gin (resources jsonb_path_ops);
