//! The inference section: [`InferenceConfig`], the model registry read from
//! `HANGAR_MODELS_FILE` (its format is in `crate::models`) and how often
//! model servers are probed.

use std::time::Duration;

use super::reader::{Reader, Var};
use crate::models::ModelRegistry;

/// Inference settings: the model registry and its health probes.
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    /// Every configured model server.
    pub models: ModelRegistry,
    /// How often each process probes every model's health.
    pub probe_interval: Duration,
}

/// The inference variables, in `.env.example` order.
pub(super) const VARS: &[Var] = &[
    Var {
        name: "HANGAR_MODELS_FILE",
        default: Some(""),
        doc: "TOML file of model servers for inference jobs ([[model]] tables); empty: no models",
    },
    Var {
        name: "HANGAR_MODEL_PROBE_SECS",
        default: Some("10"),
        doc: "how often every process probes each model server's health (s)",
    },
];

impl Reader<'_> {
    /// Reads the inference section. The registry's own problems (per model
    /// and field) are reported under `HANGAR_MODELS_FILE`; each model's
    /// `api_key_env` is resolved through the same lookup as every variable.
    pub(super) fn inference(&mut self) -> InferenceConfig {
        let probe_interval = self.secs("HANGAR_MODEL_PROBE_SECS", 1, 3600);
        let models = match self.raw("HANGAR_MODELS_FILE").filter(|f| !f.is_empty()) {
            None => ModelRegistry::default(),
            Some(path) => match std::fs::read_to_string(&path) {
                Err(e) => {
                    self.problem("HANGAR_MODELS_FILE", format!("cannot read {path}: {e}"));
                    ModelRegistry::default()
                }
                Ok(text) => match ModelRegistry::parse(&text, self.lookup) {
                    Ok(r) => r,
                    Err(problems) => {
                        self.problem("HANGAR_MODELS_FILE", format!("{path}: {}", problems.join("; ")));
                        ModelRegistry::default()
                    }
                },
            },
        };
        InferenceConfig {
            models,
            probe_interval,
        }
    }
}
