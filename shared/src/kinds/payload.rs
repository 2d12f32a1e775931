//! Payload errors and decoding: a leaf that every kind module (and the API's
//! error envelope) uses, so none of them has to depend on another.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A payload the kind refuses, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// Dotted path of the field (e.g. `ms`), or empty for the payload as a whole.
    pub field: String,
    /// What is wrong, for the caller.
    pub message: String,
}

impl PayloadError {
    /// The same error with its field seen from the enclosing document: a
    /// payload's `ms` is the request's `payload.ms`, the payload as a whole
    /// is `payload`.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "payload: {}", self.message)
        } else {
            write!(f, "payload.{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for PayloadError {}

/// A refusal of `field` (empty: the payload as a whole).
pub fn invalid(field: &str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        field: field.into(),
        message: message.into(),
    }
}

/// Decodes `payload` as `T`, naming the field of the first error.
pub fn decode<T: DeserializeOwned>(payload: &Value) -> Result<T, PayloadError> {
    // serde would fill a struct from an array by position: accept objects only.
    if !payload.is_object() {
        return Err(invalid("", "payload must be a JSON object"));
    }
    // Plain serde enforces `deny_unknown_fields`; the path tracker (which
    // does not, for every shape) only locates the field.
    let message = match serde_json::from_value::<T>(payload.clone()) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    let path = match serde_path_to_error::deserialize::<_, T>(payload) {
        Err(e) => e.path().to_string(),
        Ok(_) => ".".to_owned(),
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|r| r.split_once('`'))
            .map(|(name, _)| name.to_owned())
    };
    let field = match named("unknown field `").or_else(|| named("missing field `")) {
        Some(name) if path == "." => name,
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
        Some(name) => format!("{path}.{name}"),
        None if path == "." => String::new(),
        None => path,
    };
    Err(PayloadError { field, message })
}

/// A decoded payload back as JSON, defaults filled in. Cannot fail for
/// the payload types (plain structs), but if one ever did, the job is
/// refused rather than recorded with a `null` payload.
pub fn normalised<T: Serialize>(v: &T) -> Result<Value, PayloadError> {
    serde_json::to_value(v).map_err(|e| invalid("", format!("the payload could not be normalised: {e}")))
}
