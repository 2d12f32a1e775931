//! Hangar's inference jobs: `inference.chat` on OpenAI-compatible model
//! servers (llama.cpp's `llama-server` in production; vLLM, Ollama and the
//! like speak the same protocol). The model server runs in its own process,
//! never inside the worker: a C++ abort or out-of-memory there must not take
//! a worker and its leases down.
//!
//! - [`client`]: one model server: streaming completions, token counts, probes.
//! - [`sse`]: the incremental server-sent-events parser under the client.
//! - [`health`]: background probes and warm-up, cached; the workers' fetch gate.
//! - [`context`]: fitting a conversation into the model's context.
//! - [`runner`]: the job itself, with the cross-worker in-flight cap.
//! - [`tokens`]: the per-job Redis stream that relays tokens to API clients.

pub mod client;
pub mod context;
pub mod error;
pub mod health;
pub mod metrics;
pub mod runner;
pub mod sse;
pub mod tokens;

pub use client::{ChatRequest, Completion, ModelClient};
pub use error::InferenceError;
pub use health::{ModelHealth, ModelMonitor};
pub use metrics::{HealthCollector, InferenceMetrics};
pub use runner::{ChatFailure, ChatRunner, slot_semaphore};
