//! The `inference.chat` kind: its shape (checked wherever a job is
//! created) and the checks that need the model registry (the model exists,
//! `max_tokens` within its cap). Validation fills in the model's defaults,
//! so the recorded payload shows the parameters the job really ran with.
//! Its handler is in `hangar-worker`'s `jobs::inference`.

use std::time::Duration;

use hangar_queue::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::{
    job_kind::{Deployment, JobKind, QUEUE_INFERENCE},
    payload::{PayloadError, invalid},
};
use crate::{
    chat::{ChatMessage, Role},
    models::ModelRegistry,
};

/// `inference.chat`: a chat completion on a configured model server.
pub const INFERENCE_CHAT: &str = "inference.chat";

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 100_000;
/// Most messages in one request.
pub const MAX_MESSAGES: usize = 256;
/// Most stop strings (the OpenAI API allows four).
pub const MAX_STOP: usize = 4;

/// `inference.chat` arguments. Either `messages` (a new conversation) or
/// `conversation_id` plus `message` (the next user turn of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// A configured model's name.
    pub model: String,
    /// The whole conversation so far, ending with a user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// An earlier conversation to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The new user message for `conversation_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// 0-2; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// (0, 1]; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// 1 to the model's cap; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Up to four strings that end generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Sampling seed, for repeatable output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
}

fn check_content(field: &str, content: &str) -> Result<(), PayloadError> {
    if content.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if content.chars().count() > MAX_CONTENT_CHARS {
        return Err(invalid(
            field,
            format!("must be at most {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

impl JobKind for Chat {
    const NAME: &'static str = INFERENCE_CHAT;
    const QUEUE: &'static str = QUEUE_INFERENCE;
    /// Transient model-server failures are retried inside the attempt (with
    /// backoff); a failed attempt has exhausted them, and a worker whose
    /// model is down stops leasing anyway.
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base: Duration::from_secs(2),
        cap: Duration::from_secs(30),
    };

    fn check(&self) -> Result<(), PayloadError> {
        check_shape(self)
    }

    fn fit_to(&mut self, deployment: &Deployment<'_>) -> Result<(), PayloadError> {
        self.fit_to_models(deployment.models)
    }
}

fn check_shape(p: &Chat) -> Result<(), PayloadError> {
    if !crate::names::is_lowercase_name(&p.model) {
        return Err(invalid("model", "must be a configured model name"));
    }
    match (&p.messages, &p.conversation_id) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "conversation_id",
                "give either messages (a new conversation) or conversation_id with message, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "messages",
                "missing: give messages, or conversation_id with message",
            ));
        }
        (Some(messages), None) => {
            if p.message.is_some() {
                return Err(invalid(
                    "message",
                    "only with conversation_id; put the user's message at the end of messages",
                ));
            }
            if messages.is_empty() || messages.len() > MAX_MESSAGES {
                return Err(invalid(
                    "messages",
                    format!("must hold 1-{MAX_MESSAGES} messages"),
                ));
            }
            for (i, m) in messages.iter().enumerate() {
                check_content(&format!("messages[{i}].content"), &m.content)?;
                if m.role == Role::System && i > 0 {
                    return Err(invalid(
                        &format!("messages[{i}].role"),
                        "a system message may only come first",
                    ));
                }
            }
            if messages.last().map(|m| m.role) != Some(Role::User) {
                return Err(invalid(
                    &format!("messages[{}].role", messages.len() - 1),
                    "the last message must be the user's",
                ));
            }
        }
        (None, Some(id)) => {
            if ulid::Ulid::from_string(id).is_err() {
                return Err(invalid("conversation_id", "must be a conversation id (a ULID)"));
            }
            match &p.message {
                None => return Err(invalid("message", "missing: the user's next message")),
                Some(m) => check_content("message", m)?,
            }
        }
    }
    if let Some(t) = p.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(invalid("temperature", "must be between 0 and 2"));
    }
    if let Some(t) = p.top_p
        && !(t > 0.0 && t <= 1.0)
    {
        return Err(invalid("top_p", "must be greater than 0 and at most 1"));
    }
    if p.max_tokens == Some(0) {
        return Err(invalid("max_tokens", "must be at least 1"));
    }
    if let Some(stop) = &p.stop {
        if stop.len() > MAX_STOP {
            return Err(invalid("stop", format!("at most {MAX_STOP} strings")));
        }
        for (i, s) in stop.iter().enumerate() {
            if s.is_empty() || s.chars().count() > 64 {
                return Err(invalid(&format!("stop[{i}]"), "must be 1-64 characters"));
            }
        }
    }
    Ok(())
}

impl Chat {
    /// Checks what depends on the registry (the model is configured,
    /// `max_tokens` within its cap) and fills in the model's defaults. The
    /// worker asks again before running: the models file may have changed
    /// since the API took the job.
    pub fn fit_to_models(&mut self, models: &ModelRegistry) -> Result<(), PayloadError> {
        let Some(model) = models.get(&self.model) else {
            let names = models.names();
            return Err(invalid(
                "model",
                if names.is_empty() {
                    format!(
                        "unknown model {:?}: no model is configured (HANGAR_MODELS_FILE)",
                        self.model
                    )
                } else {
                    format!("unknown model {:?}; configured: {}", self.model, names.join(", "))
                },
            ));
        };
        let max_tokens = self.max_tokens.unwrap_or(model.defaults.max_tokens);
        if max_tokens > model.max_tokens_cap {
            return Err(invalid(
                "max_tokens",
                format!(
                    "must be at most {} for model {}",
                    model.max_tokens_cap, model.name
                ),
            ));
        }
        self.max_tokens = Some(max_tokens);
        self.temperature = Some(self.temperature.unwrap_or(model.defaults.temperature));
        self.top_p = Some(self.top_p.unwrap_or(model.defaults.top_p));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::kinds;

    fn registry() -> ModelRegistry {
        ModelRegistry::parse(
            "[[model]]\nname='tiny'\nbase_url='http://127.0.0.1:1'\ncontext_size=512\nmax_tokens_cap=64\n[model.defaults]\nmax_tokens=16\n",
            &|_| None,
        )
        .unwrap()
    }

    fn validate(payload: &Value) -> Result<Value, PayloadError> {
        let spec = kinds::spec::<Chat>();
        kinds::validate_for(spec, &spec.validate(payload)?, &registry())
    }

    fn field(payload: &Value) -> String {
        validate(payload).unwrap_err().field
    }

    #[test]
    fn good_payloads_get_the_models_defaults() {
        let p = validate(&json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(p["max_tokens"], 16);
        assert_eq!(p["temperature"], 0.7);
        let next = json!({"model": "tiny", "conversation_id": "01KB0000000000000000000000", "message": "and?", "seed": 7});
        assert!(kinds::spec::<Chat>().validate(&next).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let cases = [
            (
                json!({"model": "tiny", "messages": user, "temperature": 2.5}),
                "temperature",
            ),
            (json!({"model": "tiny", "messages": user, "top_p": 0}), "top_p"),
            (json!({"model": "tiny", "messages": user, "top_p": 1.5}), "top_p"),
            (
                json!({"model": "tiny", "messages": user, "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "tiny", "messages": user, "max_tokens": 65}),
                "max_tokens",
            ),
            (
                json!({"model": "tiny", "messages": user, "max_tokens": -1}),
                "max_tokens",
            ),
            (
                json!({"model": "tiny", "messages": user, "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (
                json!({"model": "tiny", "messages": user, "stop": [""]}),
                "stop[0]",
            ),
            (json!({"model": "tiny", "messages": user, "seed": "x"}), "seed"),
            (json!({"model": "tiny", "messages": user, "extra": 1}), "extra"),
            (json!({"model": "nope", "messages": user}), "model"),
            (json!({"model": "tiny"}), "messages"),
            (json!({"model": "tiny", "messages": []}), "messages"),
            (
                json!({"model": "tiny", "messages": [{"role": "bot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "tiny", "messages": [{"role": "user", "content": " "}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "tiny", "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}),
                "messages[1].role",
            ),
            (
                json!({"model": "tiny", "messages": [{"role": "assistant", "content": "a"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "tiny", "conversation_id": "x", "message": "hi"}),
                "conversation_id",
            ),
            (
                json!({"model": "tiny", "conversation_id": "01KB0000000000000000000000"}),
                "message",
            ),
            (
                json!({"model": "tiny", "messages": user, "conversation_id": "01KB0000000000000000000000"}),
                "conversation_id",
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(field(&payload), expected, "{payload}");
        }
    }
}
