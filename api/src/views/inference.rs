//! What the inference routes answer: accepted chat jobs, stored
//! conversations, and the configured models with their health and load.

use chrono::{DateTime, Utc};
use hangar_inference::ModelHealth;
use hangar_shared::models::ModelConfig;
use serde::Serialize;
use utoipa::ToSchema;

use super::jobs::Job;

/// A chat job accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatAccepted {
    /// The job.
    pub job: Job,
    /// The conversation this job adds to (its own id for a new one).
    pub conversation_id: String,
    /// Server-sent events of the job's tokens.
    pub stream_url: String,
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Conversation {
    /// Its id (the job that started it).
    pub id: String,
    /// The model it started on.
    pub model: String,
    /// Who started it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last turn.
    pub updated_at: DateTime<Utc>,
    /// Every turn, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// A stored turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
    /// Its tokens by the conversation's model, when counted (reused to fit later turns).
    pub tokens: Option<i32>,
    /// The job that added it.
    pub job_id: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Generation parameters a job may leave out, as the model's defaults.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDefaults {
    /// Sampling temperature, 0-2.
    pub temperature: f64,
    /// Nucleus sampling, (0, 1].
    pub top_p: f64,
    /// Tokens generated when the job does not say.
    pub max_tokens: u32,
}

/// A model's context size, caps, timeouts and default generation parameters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelParameters {
    /// Context window, tokens.
    pub context_size: u32,
    /// Most tokens a job may ask for.
    pub max_tokens_cap: u32,
    /// Requests at once across every worker.
    pub max_in_flight: u32,
    /// Longest one request may take.
    pub request_timeout_secs: u64,
    /// Longest a stream may go without a token.
    pub stall_timeout_secs: u64,
    /// Tries per job attempt for transient failures.
    pub request_attempts: u32,
    /// Parameters a job leaves out.
    pub defaults: ModelDefaults,
}

impl From<&ModelConfig> for ModelParameters {
    fn from(model: &ModelConfig) -> Self {
        Self {
            context_size: model.context_size,
            max_tokens_cap: model.max_tokens_cap,
            max_in_flight: model.max_in_flight,
            request_timeout_secs: model.request_timeout.as_secs(),
            stall_timeout_secs: model.stall_timeout.as_secs(),
            request_attempts: model.request_attempts,
            defaults: ModelDefaults {
                temperature: model.defaults.temperature,
                top_p: model.defaults.top_p,
                max_tokens: model.defaults.max_tokens,
            },
        }
    }
}

/// The last hour's finished jobs of a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastHour {
    /// Succeeded.
    pub succeeded: i64,
    /// Dead (out of attempts, or failed for good).
    pub failed: i64,
    /// Succeeded over finished; null when none finished.
    pub success_rate: Option<f64>,
}

impl LastHour {
    /// The hour's outcomes and their success rate.
    pub fn new(succeeded: i64, failed: i64) -> Self {
        let finished = succeeded + failed;
        Self {
            succeeded,
            failed,
            success_rate: (finished > 0).then(|| succeeded as f64 / finished as f64),
        }
    }
}

/// A model's jobs: open ones, and the last hour's outcomes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelJobs {
    /// Waiting (scheduled, queued or retrying).
    pub queued: i64,
    /// Running.
    pub running: i64,
    /// Finished in the last hour.
    pub last_hour: LastHour,
}

/// A configured model.
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    /// Its name in jobs.
    pub name: String,
    /// The server.
    pub base_url: String,
    /// The model id sent upstream.
    pub upstream_model: String,
    /// Cached health.
    pub health: ModelHealth,
    /// Context size, caps, timeouts and default generation parameters.
    pub parameters: ModelParameters,
    /// Requests in flight across every worker (null if Redis is unreachable).
    pub in_flight: Option<u32>,
    /// Queued and running jobs, and last hour's outcomes and success rate.
    pub jobs: ModelJobs,
}

/// Every configured model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// In name order.
    pub items: Vec<Model>,
}
