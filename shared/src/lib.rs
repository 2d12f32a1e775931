//! What every Hangar binary shares: typed configuration from the environment,
//! telemetry, the job kinds and their payload validation, and database access.

pub mod config;
pub mod db;
pub mod kinds;
pub mod shutdown;
pub mod telemetry;

pub use config::{Config, ConfigError};
