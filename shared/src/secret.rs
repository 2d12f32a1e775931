//! [`Secret`]: a string that never prints. A leaf module (it depends on
//! nothing in the crate) so that both the configuration and the model
//! registry can wrap their secrets without depending on each other.

use std::fmt;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`: a HANGAR_ variable that may carry a password, or a
    /// model server's API key. From here on it prints as `<redacted>`.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
