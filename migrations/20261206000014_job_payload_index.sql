-- The jobs list's payload filter (`payload @> '{"account": "prod"}'`, in
-- the API and the console): answered from this index instead of a scan of
-- every job record.
CREATE INDEX job_runs_payload ON job_runs USING gin (payload jsonb_path_ops);
