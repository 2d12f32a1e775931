//! `hangar-api`: serve the HTTP API, apply migrations, or check the configuration.

use clap::{Parser, Subcommand};
use hangar_shared::{Config, config, db, shutdown, telemetry};

/// mimalloc instead of glibc's malloc: allocation was about a fifth of the
/// API's CPU in `bench/api.sh`'s profile. Not in the worker: there it
/// doubled the idle RSS (10 to 21 MB fresh, 15 to 39-45 MB after a drain),
/// past the worker's memory target.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Migrate {
        /// Stop after this migration version (a staged upgrade); default: all.
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
    },
    /// Validate the environment, print the report, exit 0 (valid) or 1.
    CheckConfig,
    /// Create an API key (e.g. the first admin key) and print its token once.
    CreateApiKey {
        /// Unique name among keys in use (a-z, A-Z, 0-9, '-', '_', '.').
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Print the OpenAPI document (JSON) and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig) => config::check_config_exit(&Config::from_env()),
        Some(Command::Openapi) => {
            let doc = hangar_api::openapi::document().to_pretty_json()?;
            std::io::Write::write_all(&mut std::io::stdout(), format!("{doc}\n").as_bytes())?;
            return Ok(());
        }
        _ => {}
    }
    let config = Config::from_env()?;
    let command = cli.command.unwrap_or(Command::Serve);
    // Only the server's spans are exported; a one-off command's are not
    // worth a collector round trip at exit.
    let mut traces = config.traces.clone();
    if !matches!(command, Command::Serve) {
        traces.endpoint = None;
    }
    let _traces = telemetry::init(&config.log, &traces, "api");
    match command {
        Command::Migrate { to } => {
            let pool = db::pool(&config.database)?;
            db::wait_until_reachable(&pool, std::time::Duration::from_secs(30)).await?;
            db::migrate_to(&pool, to).await?;
            tracing::info!(migrations = db::MIGRATOR.iter().count(), "database migrated");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.api.bind).await?;
            hangar_api::run(config, listener, shutdown::signal()).await
        }
        Command::CreateApiKey {
            name,
            role,
            expires_in_days,
        } => create_api_key(&config, &name, &role, expires_in_days).await,
        Command::CheckConfig | Command::Openapi => unreachable!("handled above"),
    }
}

/// Creates a key straight in PostgreSQL (no API call, so it works before
/// any key exists) and prints the token on stdout, alone, for scripts.
async fn create_api_key(
    config: &Config,
    name: &str,
    role: &str,
    expires_in_days: Option<u32>,
) -> anyhow::Result<()> {
    use hangar_api::auth::{Role, api_keys};
    let role =
        Role::parse(role).ok_or_else(|| anyhow::anyhow!("--role must be viewer, operator or admin"))?;
    anyhow::ensure!(
        hangar_shared::names::is_name(name),
        "--name must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'"
    );
    let expires_at =
        expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d.max(1))));
    let pool = db::pool(&config.database)?;
    db::wait_until_reachable(&pool, std::time::Duration::from_secs(30)).await?;
    let (key, token) = api_keys::create(&pool, name, role, expires_at, "cli").await?;
    tracing::info!(key_id = %key.id, name = %key.name, role = %key.role, "API key created");
    eprintln!(
        "API key {:?} ({}) created, id {}. The token below is shown once; store it now.",
        key.name, key.role, key.id
    );
    std::io::Write::write_all(&mut std::io::stdout(), format!("{token}\n").as_bytes())?;
    Ok(())
}
