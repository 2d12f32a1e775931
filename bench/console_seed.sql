-- Seeds a database for bench/console.sh: :jobs job records over 90 days
-- (kinds, states, payloads, errors and requesters in realistic proportions,
-- ULID ids that begin with their creation time, as the API makes them) and
-- :workspaces workspaces across 20 accounts and 3 regions, with their last
-- connection, connection history, 30 days of usage for a tenth of them,
-- CloudTrail events and 90 days of costs. psql variables: jobs, workspaces.

\ir ulid.sql

CREATE TEMP TABLE seed_jobs AS
SELECT n,
       now() - interval '90 days' + (interval '90 days') * (n::float8 / :jobs) AS at,
       (ARRAY['sync.workspaces','sync.workspaces','sync.workspaces','sync.workspaces','sync.cloudtrail',
              'sync.cloudtrail','sync.usage','sync.billing','inference.chat','report.inventory'])[1 + (n * 7919) % 10] AS kind,
       CASE WHEN n % 100 < 93 THEN 'succeeded' WHEN n % 100 < 97 THEN 'dead' WHEN n % 100 < 99 THEN 'cancelled'
            ELSE 'queued' END AS state,
       'acct-' || lpad(((n * 31) % 20)::text, 2, '0') AS account,
       (ARRAY['us-east-1', 'eu-west-1', 'ap-southeast-2'])[1 + (n * 13) % 3] AS region
FROM generate_series(1::bigint, :jobs) AS n;

INSERT INTO job_runs (id, kind, queue, payload, state, attempts, max_attempts, deliveries, progress, result, error,
                      requested_by, request_id, run_at, created_at, started_at, finished_at, updated_at)
SELECT pg_temp.ulid_at(at, n), kind,
       CASE WHEN kind LIKE 'sync.%' THEN 'sync' WHEN kind LIKE 'report.%' THEN 'reports' ELSE 'inference' END,
       CASE WHEN kind = 'sync.billing' THEN jsonb_build_object('account', account)
            WHEN kind LIKE 'sync.%' THEN jsonb_build_object('account', account, 'region', region)
            WHEN kind = 'report.inventory' THEN jsonb_build_object('format', 'csv', 'account', account)
            ELSE jsonb_build_object('model', 'phi3', 'messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Summarise ticket ' || n))) END,
       state,
       CASE state WHEN 'dead' THEN 5 WHEN 'queued' THEN 0 ELSE 1 END, 5,
       CASE state WHEN 'dead' THEN 5 WHEN 'queued' THEN 0 ELSE 1 END,
       CASE WHEN state = 'succeeded' THEN jsonb_build_object('pages', 1 + n % 9, 'rows', n % 5000) END,
       CASE WHEN state = 'succeeded' THEN jsonb_build_object('upserted', n % 5000, 'elapsed_ms', 200 + n % 9000) END,
       CASE WHEN state = 'dead' THEN 'AccessDeniedException: User: arn:aws:sts::' || account || ':assumed-role/hangar is not authorized to perform: workspaces:DescribeWorkspaces' END,
       (ARRAY['schedule:workspaces-sync','schedule:workspaces-sync','schedule:cloudtrail-sync','key:ci-deploy','jwt:alice','jwt:bob'])[1 + (n * 17) % 6],
       pg_temp.ulid_at(at, n + 7777777),
       at, at,
       CASE WHEN state <> 'queued' THEN at + interval '1 second' END,
       CASE WHEN state IN ('succeeded', 'dead', 'cancelled') THEN at + interval '1 second' * (2 + n % 90) END,
       at + interval '1 second' * (2 + n % 90)
FROM seed_jobs;

INSERT INTO workspaces (account, region, workspace_id, directory_id, user_name, ip_address, state, bundle_id,
                        computer_name, running_mode, auto_stop_timeout_minutes, compute_type, tags, first_seen_at)
SELECT 'acct-' || lpad((n % 20)::text, 2, '0'), (ARRAY['us-east-1', 'eu-west-1', 'ap-southeast-2'])[1 + n % 3],
       'ws-' || lpad(to_hex(n * 2654435761 % 68719476736), 9, '0'), 'd-' || lpad((n % 40)::text, 10, '0'),
       'user' || n, '10.' || (n % 250) || '.' || (n / 250 % 250) || '.' || (n % 200),
       (ARRAY['AVAILABLE', 'AVAILABLE', 'AVAILABLE', 'STOPPED', 'STOPPED', 'AVAILABLE', 'ERROR', 'AVAILABLE'])[1 + n % 8],
       'wsb-' || (n % 12), 'PC-' || n, CASE WHEN n % 3 = 0 THEN 'ALWAYS_ON' ELSE 'AUTO_STOP' END, 60,
       (ARRAY['STANDARD', 'PERFORMANCE', 'POWER'])[1 + n % 3],
       jsonb_build_object('team', 'team-' || (n % 30), 'cost_center', (n % 90)::text), now() - interval '200 days'
FROM generate_series(1, :workspaces) AS n;

INSERT INTO workspace_connections (account, region, workspace_id, connection_state, state_checked_at, last_user_connection_at)
SELECT account, region, workspace_id, CASE WHEN random() < 0.2 THEN 'CONNECTED' ELSE 'DISCONNECTED' END, now(),
       now() - random() * interval '60 days'
FROM workspaces;
-- A history of five earlier connections each.
INSERT INTO workspace_connection_history (account, region, workspace_id, last_user_connection_at, seen_at)
SELECT account, region, workspace_id, now() - interval '1 day' * (k * 7 + 1), now() - interval '1 day' * (k * 7)
FROM workspaces, generate_series(1, 5) AS k
ON CONFLICT DO NOTHING;
-- 30 days of usage, 8 connected hours a day, for a tenth of the fleet.
INSERT INTO workspace_usage (account, region, workspace_id, hour, periods)
SELECT account, region, workspace_id, date_trunc('day', now()) - interval '1 day' * d + interval '1 hour' * (9 + h), 4095
FROM (SELECT * FROM workspaces WHERE abs(hashtext(workspace_id)) % 10 = 0) w, generate_series(0, 29) AS d,
     generate_series(0, 7) AS h;

INSERT INTO audit_events (event_id, account, region, event_time, event_name, event_source, username, read_only, resources)
SELECT 'ev-' || n, w.account, w.region, now() - random() * interval '90 days',
       (ARRAY['DescribeWorkspaces', 'RebootWorkspaces', 'StopWorkspaces', 'StartWorkspaces', 'ModifyWorkspaceProperties',
              'CreateWorkspaces'])[1 + n % 6],
       'workspaces.amazonaws.com', (ARRAY['ops-bot', 'alice', 'bob', 'terraform'])[1 + n % 4], n % 6 = 0,
       jsonb_build_array(jsonb_build_object('type', 'AWS::WorkSpaces::Workspace', 'name', w.workspace_id))
FROM generate_series(1, 4 * :workspaces) AS n
JOIN (SELECT row_number() OVER () - 1 AS i, account, region, workspace_id FROM workspaces) w ON w.i = n % :workspaces;

INSERT INTO cost_daily (account, view, day, service, usage_type, amount, currency, estimated)
SELECT 'acct-' || lpad(a::text, 2, '0'), v, current_date - d, s, s || '-usage', round((random() * 200)::numeric, 4), 'USD', d < 2
FROM generate_series(0, 19) AS a, generate_series(0, 89) AS d, unnest(ARRAY['all', 'workspaces']) AS v,
     unnest(ARRAY['Amazon WorkSpaces', 'AmazonCloudWatch', 'AWS Directory Service', 'Amazon Simple Storage Service',
                  'AWS Key Management Service', 'Amazon Virtual Private Cloud', 'AWS CloudTrail', 'Tax']) AS s
WHERE v = 'all' OR s = 'Amazon WorkSpaces';
