//! Server-side command counts from `INFO commandstats`. Redis 7 counts the
//! commands a Lua script runs as well as the EVALSHA itself. On a cluster
//! (several comma-separated URLs) the masters' counts are added up; the
//! replicas' (the same writes, replayed) are left out.

use std::collections::BTreeMap;

/// Reads command counters over connections of its own, one per master.
pub struct Commands {
    masters: Vec<redis::aio::MultiplexedConnection>,
    start: BTreeMap<String, u64>,
}

impl Commands {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut masters = Vec::new();
        for node in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let mut conn = redis::Client::open(node)?
                .get_multiplexed_async_connection()
                .await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                masters.push(conn);
            }
        }
        let mut me = Self {
            masters,
            start: BTreeMap::new(),
        };
        me.start = me.by_command().await?;
        Ok(me)
    }

    /// Calls per command since the servers started, summed over the masters.
    pub async fn by_command(&mut self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for conn in &mut self.masters {
            let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await?;
            add_counts(&info, &mut out);
        }
        Ok(out)
    }

    /// Total calls of all commands.
    pub async fn total(&mut self) -> anyhow::Result<u64> {
        Ok(self.by_command().await?.values().sum())
    }

    /// The INFO calls that read the counters are themselves counted, once
    /// per master.
    pub fn own_calls_per_read(&self) -> u64 {
        self.masters.len() as u64
    }

    /// Prints calls per job by command since `connect`, for "where the time goes".
    pub async fn breakdown_since_start(&mut self, jobs_per_phase: usize) -> anyhow::Result<()> {
        let now = self.by_command().await?;
        let mut rows: Vec<(String, u64)> = now
            .iter()
            .map(|(k, v)| (k.clone(), v - self.start.get(k).copied().unwrap_or(0)))
            .filter(|(_, d)| *d > 0)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        let jobs = 2 * jobs_per_phase;
        let text: Vec<String> = rows
            .iter()
            .map(|(k, d)| format!("{k}={:.3}", *d as f64 / jobs as f64))
            .collect();
        #[allow(clippy::print_stdout)]
        {
            println!("BREAKDOWN per_job (both phases, {jobs} jobs): {}", text.join(" "));
        }
        Ok(())
    }
}

/// Adds the `calls=` of each `cmdstat_<name>:` line of `info` to `out`.
fn add_counts(info: &str, out: &mut BTreeMap<String, u64>) {
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let calls: u64 = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        *out.entry(name.to_owned()).or_insert(0) += calls;
    }
}
