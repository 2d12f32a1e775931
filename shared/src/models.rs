//! The model registry: the OpenAI-compatible model servers `inference.chat`
//! jobs run on, read from a TOML file (`HANGAR_MODELS_FILE`), one
//! `[[model]]` table each:
//!
//! ```toml
//! [[model]]
//! name = "phi3"                        # what jobs and /api/models call it
//! base_url = "http://127.0.0.1:8081"   # the server, without /v1
//! upstream_model = "phi-3-mini"        # the `model` sent upstream
//! api_key_env = "PHI3_API_KEY"         # optional: bearer token from this variable
//! context_size = 4096                  # tokens the server's context holds (per slot)
//! max_in_flight = 2                    # the server's slot count, across every worker
//! max_tokens_cap = 1024                # most tokens a job may ask for
//! request_timeout_secs = 300           # a whole generation
//! [model.defaults]
//! temperature = 0.7
//! top_p = 0.95
//! max_tokens = 256
//! ```
//!
//! Every process reads the same file: the API to validate payloads and show
//! health, workers to run jobs. Problems are reported per model and field.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Generation parameters a job may leave out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    /// Sampling temperature, 0-2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Nucleus sampling, (0, 1].
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    /// Tokens to generate when the job does not say.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

impl Default for GenerationDefaults {
    fn default() -> Self {
        Self {
            temperature: default_temperature(),
            top_p: default_top_p(),
            max_tokens: default_max_tokens(),
        }
    }
}

fn default_temperature() -> f64 {
    0.7
}
fn default_top_p() -> f64 {
    0.95
}
fn default_max_tokens() -> u32 {
    256
}

/// One model as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    name: String,
    base_url: String,
    #[serde(default)]
    upstream_model: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    context_size: u32,
    #[serde(default = "default_in_flight")]
    max_in_flight: u32,
    #[serde(default)]
    max_tokens_cap: Option<u32>,
    #[serde(default = "default_request_timeout")]
    request_timeout_secs: u64,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_stall_timeout")]
    stall_timeout_secs: u64,
    #[serde(default = "default_attempts")]
    request_attempts: u32,
    #[serde(default)]
    defaults: RawDefaults,
}

/// `[model.defaults]` as written: `max_tokens` left out means 256 or the
/// cap, whichever is lower.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
}

fn default_in_flight() -> u32 {
    1
}
fn default_request_timeout() -> u64 {
    300
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_stall_timeout() -> u64 {
    60
}
fn default_attempts() -> u32 {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// A configured model server.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Name jobs use (`[a-z0-9._-]`, 1-64).
    pub name: String,
    /// Base URL without `/v1`, no trailing slash.
    pub base_url: String,
    /// The `model` field sent upstream.
    pub upstream_model: String,
    /// Bearer token for the server, if it wants one.
    pub api_key: Option<Secret>,
    /// Tokens the server's context holds per request (its per-slot context).
    pub context_size: u32,
    /// Requests in flight at once across every worker: the server's slots.
    pub max_in_flight: u32,
    /// Most tokens a job may ask for.
    pub max_tokens_cap: u32,
    /// Longest a whole generation may take.
    pub request_timeout: Duration,
    /// Longest a connection may take to open.
    pub connect_timeout: Duration,
    /// Longest silence inside a stream before it counts as stalled.
    pub stall_timeout: Duration,
    /// Tries per job attempt for transient failures (refused, timeout, 503).
    pub request_attempts: u32,
    /// Parameters a job leaves out.
    pub defaults: GenerationDefaults,
}

/// Every configured model, by name.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, ModelConfig>,
}

impl ModelRegistry {
    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&ModelConfig> {
        self.models.get(name)
    }

    /// Every model, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ModelConfig> {
        self.models.values()
    }

    /// Configured names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.models.keys().map(String::as_str).collect()
    }

    /// Whether no model is configured.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Parses the file's text; `env` resolves `api_key_env`. Every problem
    /// is returned, each naming the model and field.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let file: ModelsFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let mut models = BTreeMap::new();
        for entry in file.model {
            let name = entry.name.clone();
            match check(entry, env) {
                Ok(m) => {
                    if models.insert(name.clone(), m).is_some() {
                        problems.push(format!("model {name:?} is configured twice"));
                    }
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(Self { models })
        } else {
            Err(problems)
        }
    }
}

fn check(e: ModelEntry, env: &dyn Fn(&str) -> Option<String>) -> Result<ModelConfig, Vec<String>> {
    let mut p = Vec::new();
    let at = |field: &str| format!("model {:?}: {field}", e.name);
    if !crate::names::is_lowercase_name(&e.name) {
        p.push(format!("{}: must be 1-64 of a-z, 0-9, '.', '_', '-'", at("name")));
    }
    let base_url = e.base_url.trim_end_matches('/').to_owned();
    match reqwest_like_url(&base_url) {
        Ok(()) if base_url.ends_with("/v1") => p.push(format!(
            "{}: give the server's root, without /v1 (Hangar adds /v1/chat/completions)",
            at("base_url")
        )),
        Ok(()) => {}
        Err(why) => p.push(format!("{}: {why}", at("base_url"))),
    }
    let api_key = match &e.api_key_env {
        None => None,
        Some(var) => match env(var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                p.push(format!("{}: variable {var} is not set", at("api_key_env")));
                None
            }
        },
    };
    if !(16..=1_048_576).contains(&e.context_size) {
        p.push(format!("{}: must be 16-1048576 tokens", at("context_size")));
    }
    if !(1..=1024).contains(&e.max_in_flight) {
        p.push(format!("{}: must be 1-1024", at("max_in_flight")));
    }
    let cap = e.max_tokens_cap.unwrap_or(e.context_size / 2).max(1);
    let defaults = GenerationDefaults {
        temperature: e.defaults.temperature.unwrap_or_else(default_temperature),
        top_p: e.defaults.top_p.unwrap_or_else(default_top_p),
        max_tokens: e
            .defaults
            .max_tokens
            .unwrap_or_else(|| default_max_tokens().min(cap)),
    };
    if cap >= e.context_size {
        p.push(format!(
            "{}: must be below context_size ({}) to leave room for the prompt",
            at("max_tokens_cap"),
            e.context_size
        ));
    }
    if !(0.0..=2.0).contains(&defaults.temperature) {
        p.push(format!("{}: must be 0-2", at("defaults.temperature")));
    }
    if !(defaults.top_p > 0.0 && defaults.top_p <= 1.0) {
        p.push(format!("{}: must be in (0, 1]", at("defaults.top_p")));
    }
    if defaults.max_tokens == 0 || defaults.max_tokens > cap {
        p.push(format!(
            "{}: must be 1-{cap} (max_tokens_cap)",
            at("defaults.max_tokens")
        ));
    }
    if !(1..=86_400).contains(&e.request_timeout_secs) {
        p.push(format!("{}: must be 1-86400", at("request_timeout_secs")));
    }
    if !(10..=600_000).contains(&e.connect_timeout_ms) {
        p.push(format!("{}: must be 10-600000", at("connect_timeout_ms")));
    }
    if !(1..=3_600).contains(&e.stall_timeout_secs) {
        p.push(format!("{}: must be 1-3600", at("stall_timeout_secs")));
    }
    if !(1..=20).contains(&e.request_attempts) {
        p.push(format!("{}: must be 1-20", at("request_attempts")));
    }
    if !p.is_empty() {
        return Err(p);
    }
    Ok(ModelConfig {
        upstream_model: e.upstream_model.unwrap_or_else(|| e.name.clone()),
        name: e.name,
        base_url,
        api_key,
        context_size: e.context_size,
        max_in_flight: e.max_in_flight,
        max_tokens_cap: cap,
        request_timeout: Duration::from_secs(e.request_timeout_secs),
        connect_timeout: Duration::from_millis(e.connect_timeout_ms),
        stall_timeout: Duration::from_secs(e.stall_timeout_secs),
        request_attempts: e.request_attempts,
        defaults,
    })
}

/// A cheap URL check without a URL crate: `http(s)://host[:port][/path]`.
fn reqwest_like_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(['?', '#', ' ', '@']) {
        return Err(format!("{url:?} has no usable host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[model]]
name = "phi3"
base_url = "http://127.0.0.1:8081/"
context_size = 4096
max_in_flight = 2
max_tokens_cap = 1024
[model.defaults]
max_tokens = 128
"#;

    #[test]
    fn a_good_file_fills_defaults() {
        let r = ModelRegistry::parse(GOOD, &|_| None).unwrap();
        let m = r.get("phi3").unwrap();
        assert_eq!(m.base_url, "http://127.0.0.1:8081");
        assert_eq!(m.upstream_model, "phi3");
        assert_eq!(m.max_tokens_cap, 1024);
        assert_eq!(m.defaults.max_tokens, 128);
        assert_eq!(m.defaults.temperature, 0.7);
        assert_eq!(m.request_attempts, 4);
        assert!(m.api_key.is_none());
    }

    #[test]
    fn every_problem_names_the_model_and_field() {
        let bad = r#"
[[model]]
name = "Bad Name"
base_url = "ftp://x"
context_size = 8
max_in_flight = 0
api_key_env = "NOPE"
[model.defaults]
temperature = 3.0
top_p = 0.0
"#;
        let problems = ModelRegistry::parse(bad, &|_| None).unwrap_err();
        let all = problems.join("\n");
        for field in [
            "name",
            "base_url",
            "context_size",
            "max_in_flight",
            "api_key_env",
            "defaults.temperature",
            "defaults.top_p",
        ] {
            assert!(all.contains(&format!(": {field}:")), "{field} missing in {all}");
        }
        let unknown = ModelRegistry::parse(
            "[[model]]\nname='a'\nbase_url='http://h'\ncontext_size=64\nslots=2",
            &|_| None,
        )
        .unwrap_err();
        assert!(unknown[0].contains("slots"), "{unknown:?}");
        let twice = format!("{GOOD}{GOOD}");
        assert!(ModelRegistry::parse(&twice, &|_| None).unwrap_err()[0].contains("twice"));
        let v1 = GOOD.replace("8081/", "8081/v1");
        assert!(ModelRegistry::parse(&v1, &|_| None).unwrap_err()[0].contains("without /v1"));
    }

    #[test]
    fn the_api_key_comes_from_the_named_variable() {
        let text = GOOD.replace("max_in_flight = 2", "max_in_flight = 2\napi_key_env = \"K\"");
        let r = ModelRegistry::parse(&text, &|v| (v == "K").then(|| "s3cret".to_owned())).unwrap();
        assert_eq!(
            r.get("phi3").unwrap().api_key.as_ref().unwrap().expose(),
            "s3cret"
        );
    }
}
