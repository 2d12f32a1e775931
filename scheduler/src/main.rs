//! `hangar-scheduler`: run the repair loop, run one pass, or check the configuration.

use clap::{Parser, Subcommand};
use hangar_shared::{Config, config, db, shutdown, telemetry};

/// Hangar's scheduler. Configured by HANGAR_* environment variables (see .env.example).
#[derive(Parser)]
#[command(name = "hangar-scheduler", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the repair loop (the default). Stops on SIGTERM.
    Run,
    /// Run one repair pass, print what it did, exit.
    RepairOnce,
    /// Print every schedule (HANGAR_SCHEDULES_FILE) with its next fire times, exit.
    List {
        /// How many fire times to show per schedule.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
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
    let command = cli.command.unwrap_or(Command::Run);
    let mut traces = config.traces.clone();
    if !matches!(command, Command::Run) {
        traces.endpoint = None;
    }
    let _traces = telemetry::init(&config.log, &traces, "scheduler");
    match command {
        Command::RepairOnce => {
            let pool = db::pool(&config.database)?;
            let queues = hangar_scheduler::queues(&config).await?;
            let r = hangar_scheduler::repair::repair_once(&pool, &queues, config.scheduler.repair_min_age)
                .await?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "scanned={} redispatched={} reconciled={}",
                    r.scanned, r.redispatched, r.reconciled
                );
            }
            Ok(())
        }
        Command::List { count } => {
            let schedules = hangar_scheduler::load_schedules(&config)?;
            #[allow(clippy::print_stdout)]
            {
                print!(
                    "{}",
                    hangar_scheduler::describe(&schedules, chrono::Utc::now(), count)
                );
            }
            Ok(())
        }
        Command::Run => hangar_scheduler::run(config, shutdown::signal()).await,
        Command::CheckConfig => unreachable!("handled above"),
    }
}
