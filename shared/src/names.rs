//! The names people give things (API keys, AWS accounts, models,
//! schedules): 1-64 characters from a small set, so they are safe in URLs,
//! metric labels, log lines and Redis keys. Two alphabets, one rule each.

/// Longest name.
pub const MAX_LEN: usize = 64;

/// 1-64 of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.` (API keys, AWS accounts).
pub fn is_name(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// 1-64 of `a-z`, `0-9`, `-`, `_`, `.` (models and schedules: they appear
/// in paths and label values where case would only confuse).
pub fn is_lowercase_name(name: &str) -> bool {
    is_name(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(is_name("ci-deploy.v2") && is_name("Prod_EU") && is_name(&"a".repeat(64)));
        assert!(!is_name("") && !is_name("a b") && !is_name("a/b") && !is_name(&"a".repeat(65)));
        assert!(is_lowercase_name("nightly-sync.v2"));
        assert!(!is_lowercase_name("Nightly") && !is_lowercase_name(""));
    }
}
