-- The console's overview shows when each sync target (kind, account,
-- region: a sync job's singleton key) last succeeded. This index answers
-- that with one lookup per target instead of an aggregate over every sync
-- job ever recorded. Only succeeded jobs with a singleton key are in it.
CREATE INDEX job_runs_singleton_succeeded ON job_runs (singleton_key, finished_at DESC)
    WHERE state = 'succeeded' AND singleton_key IS NOT NULL;
