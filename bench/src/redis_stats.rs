//! Server-side command counts from `INFO commandstats`. Redis 7 counts the
//! commands a Lua script runs as well as the EVALSHA itself.

use std::collections::BTreeMap;

/// Reads command counters over a connection of its own.
pub struct Commands {
    conn: redis::aio::MultiplexedConnection,
    start: BTreeMap<String, u64>,
}

impl Commands {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let mut me = Self {
            conn,
            start: BTreeMap::new(),
        };
        me.start = me.by_command().await?;
        Ok(me)
    }

    /// Calls per command since the server started.
    pub async fn by_command(&mut self) -> anyhow::Result<BTreeMap<String, u64>> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await?;
        let mut out = BTreeMap::new();
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.insert(name.to_owned(), calls);
        }
        Ok(out)
    }

    /// Total calls of all commands.
    pub async fn total(&mut self) -> anyhow::Result<u64> {
        Ok(self.by_command().await?.values().sum())
    }

    /// The INFO call that reads the counters is itself counted once.
    pub fn own_calls_per_read(&self) -> u64 {
        1
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
