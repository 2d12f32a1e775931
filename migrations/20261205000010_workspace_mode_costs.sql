-- Month-by-month Cost Explorer cost of each (running mode, compute type)
-- of an account's current fleet, where a WorkSpaces usage type names both
-- (e.g. "USE1-AutoStop-Standard"), with how many workspaces share it: what
-- report.unused and report.billing_mode attribute to one workspace
-- (evenly: Cost Explorer's daily data has no per-workspace figure).
CREATE VIEW workspace_mode_costs AS
WITH fleet AS (
    SELECT account, running_mode, compute_type, count(*) AS workspaces
    FROM workspaces
    WHERE deleted_at IS NULL AND running_mode IN ('AUTO_STOP', 'ALWAYS_ON') AND compute_type IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT f.account, f.running_mode, f.compute_type,
       date_trunc('month', d.day)::date AS month,
       d.currency,
       sum(d.amount) AS amount,
       string_agg(DISTINCT d.usage_type, ' ') AS usage_types,
       f.workspaces
FROM fleet f
JOIN cost_daily d
  ON d.account = f.account AND d.view = 'workspaces'
 AND d.usage_type ~* ('(^|-)' || CASE f.running_mode WHEN 'AUTO_STOP' THEN 'AutoStop' ELSE 'AlwaysOn' END || '(-|$)')
 AND d.usage_type ~* ('(^|-)' || replace(f.compute_type, '_', '.') || '(-|$)')
GROUP BY f.account, f.running_mode, f.compute_type, date_trunc('month', d.day), d.currency, f.workspaces;
