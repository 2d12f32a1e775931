-- A database partitioned for the last 90 days, as one that ran partitioned
-- since then is: migration 17's empty legacy partition gives way to a
-- partition per week, back to the oldest record bench/history_rows.sql
-- writes. Used by bench/history.sh and bench/backup.sh after `hangar-api migrate`.
ALTER TABLE job_runs DETACH PARTITION job_runs_legacy;
DROP TABLE job_runs_legacy;
DO $$
DECLARE
  -- Where migration 17's weeks begin.
  first_week timestamptz := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '14 days';
  week timestamptz := date_trunc('week', (now() - interval '91 days') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
  WHILE week < first_week LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF job_runs FOR VALUES FROM (%L) TO (%L)',
                   'job_runs_w' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD'),
                   hangar_id_at(week), hangar_id_at(week + interval '7 days'));
    week := week + interval '7 days';
  END LOOP;
END $$;
