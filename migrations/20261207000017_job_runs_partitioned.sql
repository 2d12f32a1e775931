-- no-transaction
--
-- job_runs becomes a table partitioned by week of creation, so retention can
-- drop a week's records whole instead of deleting them row by row (the
-- vacuum work that made deletes the bottleneck of a table of ten million
-- records). The partition key is the id: a ULID begins with its creation
-- time, so a range of ids is a range of time and the primary key stays
-- global.
--
-- PostgreSQL enforces a unique index on a partitioned table only if it
-- includes the partition key, so the two rules that are not about the id
-- move to small tables of their own, kept by triggers on job_runs:
--   job_idempotency: (scope, idempotency key) -> the first job with it;
--   job_singletons:  singleton key -> the one open job holding it.
-- An insert whose key is taken is skipped (the BEFORE INSERT trigger returns
-- NULL), as ON CONFLICT DO NOTHING skipped it before.
--
-- Online-safe for a large table: no step rewrites or scans job_runs while
-- holding a lock that blocks reads or writes. The steps, each in its own
-- transaction and each safe to run again if the migration is interrupted:
--   1. the side tables, their triggers on today's job_runs (new rows keep
--      them current from here on), and the backfill of idempotency keys;
--   2. a CHECK constraint bounding today's ids, added NOT VALID and then
--      validated (a scan that blocks nothing but DDL);
--   3. one short transaction: rename today's table, create the partitioned
--      job_runs with the same indexes, attach the old table as its first
--      partition (the validated CHECK spares the scan, and its indexes are
--      attached, not rebuilt) and create the weeks ahead. lock_timeout keeps
--      it from queueing behind a long query for more than 5 seconds; if it
--      gives up, the migration fails and can simply be run again.
-- The old table stays as partition job_runs_legacy until retention has
-- emptied it of finished records; then it is dropped like any other week.

-- The smallest ULID of instant `t` (its 48-bit millisecond time in Crockford
-- base 32, then zeros): the bound of a partition, as db::id_at computes it.
BEGIN;
CREATE OR REPLACE FUNCTION hangar_id_at(t timestamptz) RETURNS text AS $$
DECLARE
  alphabet CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := floor(extract(epoch FROM t) * 1000)::bigint;
  out text := '';
BEGIN
  FOR i IN REVERSE 9..0 LOOP
    out := out || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
  END LOOP;
  RETURN out || '0000000000000000';
END $$ LANGUAGE plpgsql IMMUTABLE STRICT;

CREATE TABLE IF NOT EXISTS job_idempotency (
    -- idempotency_scope, '' for none (the scheduler's global tick keys).
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    job_id  TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
-- Retention forgets the keys of the records it deletes.
CREATE INDEX IF NOT EXISTS job_idempotency_job ON job_idempotency (job_id);

CREATE TABLE IF NOT EXISTS job_singletons (
    singleton_key TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL
);

-- BEFORE INSERT: claims the new job's idempotency key and singleton slot;
-- skips the row (returns NULL) when either is taken. A claim whose holder no
-- longer exists (deleted by retention) or is no longer open is taken over:
-- the side tables heal instead of blocking a key for ever.
CREATE OR REPLACE FUNCTION job_runs_claim_keys() RETURNS trigger AS $$
DECLARE
  holder text;
BEGIN
  IF NEW.idempotency_key IS NOT NULL THEN
    INSERT INTO job_idempotency (scope, key, job_id)
    VALUES (COALESCE(NEW.idempotency_scope, ''), NEW.idempotency_key, NEW.id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT job_id INTO holder FROM job_idempotency
       WHERE scope = COALESCE(NEW.idempotency_scope, '') AND key = NEW.idempotency_key FOR UPDATE;
      IF holder IS DISTINCT FROM NEW.id THEN
        IF EXISTS (SELECT 1 FROM job_runs WHERE id = holder) THEN
          RETURN NULL;
        END IF;
        UPDATE job_idempotency SET job_id = NEW.id
         WHERE scope = COALESCE(NEW.idempotency_scope, '') AND key = NEW.idempotency_key;
      END IF;
    END IF;
  END IF;
  IF NEW.singleton_key IS NOT NULL AND NEW.state IN ('scheduled', 'queued', 'running', 'retrying') THEN
    INSERT INTO job_singletons (singleton_key, job_id) VALUES (NEW.singleton_key, NEW.id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT job_id INTO holder FROM job_singletons WHERE singleton_key = NEW.singleton_key FOR UPDATE;
      IF holder IS DISTINCT FROM NEW.id THEN
        IF EXISTS (SELECT 1 FROM job_runs WHERE id = holder AND singleton_key = NEW.singleton_key
                     AND state IN ('scheduled', 'queued', 'running', 'retrying')) THEN
          -- Taken: give back the idempotency key claimed above.
          IF NEW.idempotency_key IS NOT NULL THEN
            DELETE FROM job_idempotency
             WHERE scope = COALESCE(NEW.idempotency_scope, '') AND key = NEW.idempotency_key AND job_id = NEW.id;
          END IF;
          RETURN NULL;
        END IF;
        UPDATE job_singletons SET job_id = NEW.id WHERE singleton_key = NEW.singleton_key;
      END IF;
    END IF;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

-- AFTER UPDATE: a job that stops being open, or gives up its singleton key,
-- frees the slot; a job that reopens (a dead job retried) claims it again and
-- fails with a unique violation on job_singletons_pkey if another job holds it.
CREATE OR REPLACE FUNCTION job_runs_follow_keys() RETURNS trigger AS $$
BEGIN
  IF OLD.singleton_key IS NOT NULL AND OLD.state IN ('scheduled', 'queued', 'running', 'retrying')
     AND (NEW.state NOT IN ('scheduled', 'queued', 'running', 'retrying')
          OR NEW.singleton_key IS DISTINCT FROM OLD.singleton_key) THEN
    DELETE FROM job_singletons WHERE singleton_key = OLD.singleton_key AND job_id = OLD.id;
  END IF;
  IF NEW.singleton_key IS NOT NULL AND NEW.state IN ('scheduled', 'queued', 'running', 'retrying')
     AND (OLD.state NOT IN ('scheduled', 'queued', 'running', 'retrying')
          OR NEW.singleton_key IS DISTINCT FROM OLD.singleton_key) THEN
    -- A stale claim (its holder finished without this trigger: a restore, a
    -- manual edit) does not block the retry.
    DELETE FROM job_singletons s WHERE s.singleton_key = NEW.singleton_key
       AND NOT EXISTS (SELECT 1 FROM job_runs j WHERE j.id = s.job_id AND j.singleton_key = s.singleton_key
                         AND j.state IN ('scheduled', 'queued', 'running', 'retrying'));
    INSERT INTO job_singletons (singleton_key, job_id) VALUES (NEW.singleton_key, NEW.id);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;

-- AFTER DELETE (per statement, so retention's batches cost one statement, not
-- one per row): the deleted records' keys are forgotten.
CREATE OR REPLACE FUNCTION job_runs_forget_keys() RETURNS trigger AS $$
BEGIN
  DELETE FROM job_idempotency k USING gone g
   WHERE g.idempotency_key IS NOT NULL AND k.scope = COALESCE(g.idempotency_scope, '')
     AND k.key = g.idempotency_key AND k.job_id = g.id;
  DELETE FROM job_singletons s USING gone g WHERE g.singleton_key IS NOT NULL
     AND s.singleton_key = g.singleton_key AND s.job_id = g.id;
  RETURN NULL;
END $$ LANGUAGE plpgsql;

-- Only rows with a key call a function: the plain enqueue path pays for the
-- WHEN test alone.
DROP TRIGGER IF EXISTS job_runs_claim_keys ON job_runs;
CREATE TRIGGER job_runs_claim_keys BEFORE INSERT ON job_runs FOR EACH ROW
  WHEN (NEW.idempotency_key IS NOT NULL OR NEW.singleton_key IS NOT NULL)
  EXECUTE FUNCTION job_runs_claim_keys();
DROP TRIGGER IF EXISTS job_runs_follow_keys ON job_runs;
CREATE TRIGGER job_runs_follow_keys AFTER UPDATE ON job_runs FOR EACH ROW
  WHEN ((OLD.singleton_key IS NOT NULL OR NEW.singleton_key IS NOT NULL)
        AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.singleton_key IS DISTINCT FROM NEW.singleton_key))
  EXECUTE FUNCTION job_runs_follow_keys();
DROP TRIGGER IF EXISTS job_runs_forget_keys ON job_runs;
CREATE TRIGGER job_runs_forget_keys AFTER DELETE ON job_runs REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION job_runs_forget_keys();

COMMIT;

-- Step 1, backfill: every recorded idempotency key (new rows are claimed by
-- the trigger from now on). Reads job_runs; blocks nothing. Until the swap
-- the old unique index still decides, so the recorded job wins over a claim
-- the trigger made for an insert that index then skipped.
BEGIN;
INSERT INTO job_idempotency (scope, key, job_id)
SELECT COALESCE(idempotency_scope, ''), idempotency_key, id FROM job_runs
 WHERE idempotency_key IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'job_runs' AND relkind = 'p')
ON CONFLICT (scope, key) DO UPDATE SET job_id = EXCLUDED.job_id;
COMMIT;

-- Step 2: today's ids all lie below the first partition's start (the Monday
-- at least a week ahead, so that ids made while this migration runs fit too).
BEGIN;
DO $$
DECLARE
  bound text := hangar_id_at(date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '14 days');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'job_runs' AND relkind = 'p')
     AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'job_runs_before_partitions') THEN
    EXECUTE format('ALTER TABLE job_runs ADD CONSTRAINT job_runs_before_partitions CHECK (id < %L) NOT VALID', bound);
  END IF;
END $$;
COMMIT;
-- Each statement of a multi-statement migration without BEGIN/COMMIT would
-- share one transaction: the ADD above would then hold its lock through this scan.
BEGIN;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'job_runs' AND relkind = 'p') THEN
    ALTER TABLE job_runs VALIDATE CONSTRAINT job_runs_before_partitions;
  END IF;
END $$;
COMMIT;

-- Step 3: the swap.
BEGIN;
SET LOCAL lock_timeout = '5s';
DO $$
DECLARE
  bound text;
  week timestamptz;
  first_week timestamptz;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'job_runs' AND relkind = 'p') THEN
    RETURN;
  END IF;
  LOCK TABLE job_runs IN ACCESS EXCLUSIVE MODE;
  SELECT substring(pg_get_constraintdef(oid) FROM '''([0-9A-Z]+)''') INTO bound
    FROM pg_constraint WHERE conname = 'job_runs_before_partitions';

  ALTER TABLE job_runs RENAME TO job_runs_legacy;
  ALTER INDEX job_runs_pkey RENAME TO job_runs_legacy_pkey;
  ALTER INDEX job_runs_kind_id RENAME TO job_runs_legacy_kind_id;
  ALTER INDEX job_runs_state_id RENAME TO job_runs_legacy_state_id;
  ALTER INDEX job_runs_open RENAME TO job_runs_legacy_open;
  ALTER INDEX job_runs_reports RENAME TO job_runs_legacy_reports;
  ALTER INDEX job_runs_payload RENAME TO job_runs_legacy_payload;
  ALTER INDEX job_runs_singleton_succeeded RENAME TO job_runs_legacy_singleton_succeeded;
  -- The old unique rules now live in the side tables.
  DROP INDEX job_runs_idempotency;
  DROP INDEX job_runs_singleton_open;
  DROP TRIGGER job_runs_claim_keys ON job_runs_legacy;
  DROP TRIGGER job_runs_follow_keys ON job_runs_legacy;
  DROP TRIGGER job_runs_forget_keys ON job_runs_legacy;

  CREATE TABLE job_runs (LIKE job_runs_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id))
    PARTITION BY RANGE (id);
  ALTER TABLE job_runs DROP CONSTRAINT job_runs_before_partitions;
  -- The same indexes as before (the legacy partition's are attached to them).
  CREATE INDEX job_runs_kind_id ON job_runs (kind, id DESC);
  CREATE INDEX job_runs_state_id ON job_runs (state, id DESC);
  CREATE INDEX job_runs_open ON job_runs (id) WHERE state IN ('scheduled', 'queued', 'running', 'retrying');
  CREATE INDEX job_runs_reports ON job_runs (id DESC) WHERE kind LIKE 'report.%';
  CREATE INDEX job_runs_payload ON job_runs USING gin (payload jsonb_path_ops);
  CREATE INDEX job_runs_singleton_succeeded ON job_runs (singleton_key, finished_at DESC)
    WHERE state = 'succeeded' AND singleton_key IS NOT NULL;

  EXECUTE format('ALTER TABLE job_runs ATTACH PARTITION job_runs_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);

  -- Eight weeks ahead; the scheduler keeps that horizon from here on
  -- (db::partitions::ensure_ahead).
  first_week := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '14 days';
  FOR i IN 0..7 LOOP
    week := first_week + i * interval '7 days';
    EXECUTE format('CREATE TABLE %I PARTITION OF job_runs FOR VALUES FROM (%L) TO (%L)',
                   'job_runs_w' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD'),
                   hangar_id_at(week), hangar_id_at(week + interval '7 days'));
  END LOOP;

  -- Open singleton holders, taken while nothing can change them. The old
  -- unique index made each the only one, so it wins over any claim the
  -- trigger made for an insert that index skipped.
  INSERT INTO job_singletons (singleton_key, job_id)
  SELECT singleton_key, id FROM job_runs_legacy
   WHERE singleton_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
  ON CONFLICT (singleton_key) DO UPDATE SET job_id = EXCLUDED.job_id;
  -- Claims whose job was never recorded (the index skipped it) or is no
  -- longer open: a few rows, one per singleton key.
  DELETE FROM job_singletons s WHERE NOT EXISTS (
    SELECT 1 FROM job_runs_legacy j WHERE j.id = s.job_id
       AND j.state IN ('scheduled', 'queued', 'running', 'retrying'));
  -- (job_idempotency needs no such pass: step 1's backfill gave every key
  -- the old index holds to its recorded job, and from then on the trigger
  -- finds that job and skips.)

  CREATE TRIGGER job_runs_claim_keys BEFORE INSERT ON job_runs FOR EACH ROW
    WHEN (NEW.idempotency_key IS NOT NULL OR NEW.singleton_key IS NOT NULL)
    EXECUTE FUNCTION job_runs_claim_keys();
  CREATE TRIGGER job_runs_follow_keys AFTER UPDATE ON job_runs FOR EACH ROW
    WHEN ((OLD.singleton_key IS NOT NULL OR NEW.singleton_key IS NOT NULL)
          AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.singleton_key IS DISTINCT FROM NEW.singleton_key))
    EXECUTE FUNCTION job_runs_follow_keys();
  CREATE TRIGGER job_runs_forget_keys AFTER DELETE ON job_runs REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION job_runs_forget_keys();
END $$;
COMMIT;
