-- Job records n = :lo .. :hi of a history of :jobs over the 90 days before
-- now, written to standard output in COPY text format (bench/history.sh
-- pipes them into `COPY job_runs FROM STDIN`, several ranges at once).
--
-- Proportions as a busy estate's record looks: syncs of four kinds across 20
-- accounts and 3 regions (with their singleton keys), inference and
-- reports; 93 % succeeded, 4 % dead (with the error), 2 % cancelled, 1 %
-- succeeded after retries; open jobs (queued, running, retrying) only in the
-- last hour, as a healthy system has them; every scheduled job carries its
-- tick's idempotency key, API automation its Idempotency-Key.
-- psql variables: jobs, lo, hi.

\ir ulid.sql

COPY (
  WITH base AS (
    SELECT n,
           now() - interval '90 days' + (interval '90 days') * (n::float8 / :jobs) AS at,
           (ARRAY['sync.workspaces','sync.workspaces','sync.workspaces','sync.workspaces','sync.cloudtrail',
                  'sync.cloudtrail','sync.usage','sync.billing','inference.chat','report.inventory'])[1 + (n * 7919) % 10] AS kind,
           'acct-' || lpad(((n * 31) % 20)::text, 2, '0') AS account,
           (ARRAY['us-east-1', 'eu-west-1', 'ap-southeast-2'])[1 + (n * 13) % 3] AS region,
           (ARRAY['schedule:workspaces-sync','schedule:workspaces-sync','schedule:cloudtrail-sync','key:ci-deploy',
                  'jwt:alice','jwt:bob'])[1 + (n * 17) % 6] AS requested_by
      FROM generate_series(:lo::bigint, :hi::bigint) AS n
  ), shaped AS (
    SELECT *,
           CASE WHEN at > now() - interval '1 hour' AND n % 20 = 0 THEN 'queued'
                WHEN at > now() - interval '1 hour' AND n % 20 = 1 THEN 'running'
                WHEN at > now() - interval '1 hour' AND n % 20 = 2 THEN 'retrying'
                WHEN n % 100 < 94 THEN 'succeeded' WHEN n % 100 < 98 THEN 'dead' ELSE 'cancelled' END AS state
      FROM base
  )
  SELECT pg_temp.ulid_at(at, n) AS id, kind,
         CASE WHEN kind LIKE 'sync.%' THEN 'sync' WHEN kind LIKE 'report.%' THEN 'reports' ELSE 'inference' END AS queue,
         CASE WHEN kind = 'sync.billing' THEN jsonb_build_object('account', account)
              WHEN kind LIKE 'sync.%' THEN jsonb_build_object('account', account, 'region', region)
              WHEN kind = 'report.inventory' THEN jsonb_build_object('format', 'csv', 'account', account)
              ELSE jsonb_build_object('model', 'phi3', 'messages',
                     jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Summarise ticket ' || n))) END AS payload,
         state,
         CASE state WHEN 'dead' THEN 5 WHEN 'queued' THEN 0 WHEN 'running' THEN 0
                    ELSE 1 + (n % 100 = 93)::int * 2 END AS attempts,
         5 AS max_attempts,
         CASE state WHEN 'dead' THEN 5 WHEN 'queued' THEN 0 ELSE 1 + (n % 100 = 93)::int * 2 END AS deliveries,
         CASE WHEN state IN ('succeeded', 'running') THEN jsonb_build_object('pages', 1 + n % 9, 'rows', n % 5000) END AS progress,
         CASE WHEN state = 'succeeded' THEN jsonb_build_object('upserted', n % 5000, 'elapsed_ms', 200 + n % 9000) END AS result,
         CASE WHEN state IN ('dead', 'retrying') THEN 'AccessDeniedException: User: arn:aws:sts::' || account
              || ':assumed-role/hangar is not authorized to perform: workspaces:DescribeWorkspaces' END AS error,
         requested_by,
         pg_temp.ulid_at(at, n + 7777777) AS request_id,
         CASE WHEN requested_by LIKE 'schedule:%' THEN requested_by || ':' || (extract(epoch FROM at) * 1000)::bigint || ':' || n
              WHEN requested_by = 'key:ci-deploy' THEN 'deploy-' || n END AS idempotency_key,
         at AS run_at, at AS created_at,
         CASE WHEN state NOT IN ('queued') THEN at + interval '1 second' END AS started_at,
         CASE WHEN state IN ('succeeded', 'dead', 'cancelled') THEN at + interval '1 second' * (2 + n % 90) END AS finished_at,
         at + interval '1 second' * (2 + n % 90) AS updated_at,
         CASE WHEN kind LIKE 'sync.%' AND state IN ('succeeded', 'dead', 'cancelled')
              THEN kind || ':' || account || ':' || CASE WHEN kind = 'sync.billing' THEN 'global' ELSE region END END
           AS singleton_key,
         CASE WHEN requested_by = 'key:ci-deploy' THEN 'key:ci-deploy' END AS idempotency_scope,
         CASE WHEN requested_by = 'key:ci-deploy' THEN md5(n::text) END AS request_fingerprint
    FROM shaped
) TO STDOUT;
