//! `hangar-api`: serve the HTTP API, apply migrations, or check the configuration.

use clap::{Parser, Subcommand};
use hangar_shared::{Config, config, db, shutdown, telemetry};

/// Hangar's HTTP API. Configured by HANGAR_* environment variables (see .env.example).
#[derive(Parser)]
#[command(name = "hangar-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Validate the environment, print the report, exit 0 (valid) or 1.
    CheckConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig) = cli.command {
        config::check_config_exit(&Config::from_env());
    }
    let config = Config::from_env()?;
    telemetry::init(&config.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let pool = db::pool(&config.database)?;
            db::wait_until_reachable(&pool, std::time::Duration::from_secs(30)).await?;
            db::MIGRATOR.run(&pool).await?;
            tracing::info!(migrations = db::MIGRATOR.iter().count(), "database migrated");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.api.bind).await?;
            hangar_api::run(config, listener, shutdown::signal()).await
        }
        Command::CheckConfig => unreachable!("handled above"),
    }
}
