//! What can go wrong talking to a model server, sorted by what to do next:
//! try again (the server is down, busy, slow or cut us off) or give up (the
//! request itself is wrong, and sending it again cannot help).

/// A failed request to a model server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
    /// Worth retrying: connection refused, timeouts, stalls, disconnects,
    /// 429/502/503/504, a first 5xx.
    #[error("{message}")]
    Transient {
        /// Short label for metrics: refused, timeout, stalled, disconnected, busy, server_error, malformed.
        reason: &'static str,
        /// What happened, for the operator.
        message: String,
        /// HTTP status and body, when the server answered: a 5xx repeated
        /// with the same body is not transient after all.
        answer: Option<(u16, String)>,
    },
    /// Not worth retrying: the request is wrong for this server (context
    /// overflow, rejected parameters, refused credentials, wrong URL).
    #[error("{0}")]
    Permanent(String),
}

impl InferenceError {
    pub(crate) fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Transient {
            reason,
            message: message.into(),
            answer: None,
        }
    }

    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// The metrics label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Transient { reason, .. } => reason,
            Self::Permanent(_) => "rejected",
        }
    }
}
