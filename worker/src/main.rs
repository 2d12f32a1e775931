//! `hangar-worker`: run jobs, or check the configuration.

use clap::{Parser, Subcommand};
use hangar_shared::{Config, shutdown, telemetry};

/// Hangar's worker. Configured by HANGAR_* environment variables (see .env.example).
#[derive(Parser)]
#[command(name = "hangar-worker", version)]
struct Cli {
    /// Queues and concurrency, e.g. `sync=4,reports=2` (overrides HANGAR_QUEUES).
    #[arg(long, global = true)]
    queues: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs (the default). Drains on SIGTERM.
    Run,
    /// Validate the environment, print the report, exit 0 (valid) or 1.
    CheckConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match &cli.queues {
        Some(queues) => Config::from_lookup(&|name| {
            if name == "HANGAR_QUEUES" {
                Some(queues.clone())
            } else {
                std::env::var(name).ok()
            }
        }),
        None => Config::from_env(),
    };
    if let Some(Command::CheckConfig) = cli.command {
        hangar_shared::config::check_config_exit(&config);
    }
    let config = config?;
    let _traces = telemetry::init(&config.log, &config.traces, "worker");
    hangar_worker::run(config, shutdown::signal()).await
}
