//! The `inference.chat` payload: its shape (checked wherever a job is
//! created) and the checks that need the model registry (the model exists,
//! `max_tokens` within its cap). Validation fills in the model's defaults,
//! so the recorded payload shows the parameters the job really ran with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    kinds::{PayloadError, decode, invalid},
    models::ModelRegistry,
};

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 100_000;
/// Most messages in one request.
pub const MAX_MESSAGES: usize = 256;
/// Most stop strings (the OpenAI API allows four).
pub const MAX_STOP: usize = 4;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses a stored role.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// `inference.chat` arguments. Either `messages` (a new conversation) or
/// `conversation_id` plus `message` (the next user turn of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPayload {
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

/// Checks the payload's shape (no registry needed); returns it normalised.
pub fn validate_shape(payload: &Value) -> Result<Value, PayloadError> {
    let p: ChatPayload = decode(payload)?;
    check_shape(&p)?;
    crate::kinds::normalised(&p)
}

fn check_shape(p: &ChatPayload) -> Result<(), PayloadError> {
    if !crate::models::is_model_name(&p.model) {
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

/// Checks what depends on the registry and fills in the model's defaults.
pub fn validate_for_model(payload: &Value, models: &ModelRegistry) -> Result<Value, PayloadError> {
    let p = checked(payload, models)?;
    crate::kinds::normalised(&p)
}

/// The payload decoded and checked completely (shape and model), with the
/// model's defaults filled in: what the worker runs.
pub fn checked(payload: &Value, models: &ModelRegistry) -> Result<ChatPayload, PayloadError> {
    let mut p: ChatPayload = decode(payload)?;
    check_shape(&p)?;
    let Some(model) = models.get(&p.model) else {
        let names = models.names();
        return Err(invalid(
            "model",
            if names.is_empty() {
                format!(
                    "unknown model {:?}: no model is configured (HANGAR_MODELS_FILE)",
                    p.model
                )
            } else {
                format!("unknown model {:?}; configured: {}", p.model, names.join(", "))
            },
        ));
    };
    let max_tokens = p.max_tokens.unwrap_or(model.defaults.max_tokens);
    if max_tokens > model.max_tokens_cap {
        return Err(invalid(
            "max_tokens",
            format!(
                "must be at most {} for model {}",
                model.max_tokens_cap, model.name
            ),
        ));
    }
    p.max_tokens = Some(max_tokens);
    p.temperature = Some(p.temperature.unwrap_or(model.defaults.temperature));
    p.top_p = Some(p.top_p.unwrap_or(model.defaults.top_p));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn registry() -> ModelRegistry {
        ModelRegistry::parse(
            "[[model]]\nname='tiny'\nbase_url='http://127.0.0.1:1'\ncontext_size=512\nmax_tokens_cap=64\n[model.defaults]\nmax_tokens=16\n",
            &|_| None,
        )
        .unwrap()
    }

    fn field(payload: &Value) -> String {
        validate_shape(payload)
            .and_then(|p| validate_for_model(&p, &registry()))
            .unwrap_err()
            .field
    }

    #[test]
    fn good_payloads_get_the_models_defaults() {
        let p = validate_for_model(
            &validate_shape(&json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}))
                .unwrap(),
            &registry(),
        )
        .unwrap();
        assert_eq!(p["max_tokens"], 16);
        assert_eq!(p["temperature"], 0.7);
        let next = json!({"model": "tiny", "conversation_id": "01KB0000000000000000000000", "message": "and?", "seed": 7});
        assert!(validate_shape(&next).is_ok());
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
