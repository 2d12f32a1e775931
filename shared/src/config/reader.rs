//! What every configuration section reads with: [`Var`], one variable's
//! name, default and meaning, and [`Reader`], which looks variables up,
//! applies defaults and parses the common shapes (URLs, numbers, durations,
//! addresses, booleans, rates), collecting problems instead of stopping at
//! the first.
//!
//! A leaf of `config`: the section files depend on it and `mod.rs` on them,
//! so there is no cycle. The reader is handed the full variable list rather
//! than naming `config::VARS` itself for the same reason.

use std::{fmt, net::SocketAddr, time::Duration};

use crate::secret::Secret;

/// One variable: name, default (`None`: required), meaning.
#[derive(Clone, Copy)]
pub struct Var {
    /// The environment variable.
    pub name: &'static str,
    /// Its default, or `None` if it must be set.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
}

/// How many variables `sections` hold, to size [`concat`]'s array.
pub(super) const fn count(sections: &[&[Var]]) -> usize {
    let (mut n, mut s) = (0, 0);
    while s < sections.len() {
        n += sections[s].len();
        s += 1;
    }
    n
}

/// `sections` joined into one array, in order. A `const fn` so that
/// `config::VARS` stays a `const` slice, as it was before the sections were
/// split into files; `N` must be [`count`]`(sections)` (checked at compile
/// time).
pub(super) const fn concat<const N: usize>(sections: &[&[Var]]) -> [Var; N] {
    let mut out = [Var {
        name: "",
        default: None,
        doc: "",
    }; N];
    let (mut k, mut s) = (0, 0);
    while s < sections.len() {
        let mut i = 0;
        while i < sections[s].len() {
            out[k] = sections[s][i];
            k += 1;
            i += 1;
        }
        s += 1;
    }
    assert!(k == N, "N must be count(sections)");
    out
}

/// `N/s`, `N/min` or `N/hour` (also `sec`, `second`, `m`, `minute`, `h`):
/// N (a positive number, decimals allowed) and the period. Every rate
/// variable reads its count and period with this; each judges N itself.
pub(super) fn count_per_period(text: &str) -> Option<(f64, Duration)> {
    let (n, unit) = text.split_once('/')?;
    let n: f64 = n
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)?;
    let secs = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        _ => return None,
    };
    Some((n, Duration::from_secs(secs)))
}

/// Reads variables through a lookup function, collecting problems.
pub(super) struct Reader<'a> {
    /// Where values come from (the environment, or a map in tests); the
    /// model registry reads API keys through it too.
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Every variable that may be read, for its default.
    vars: &'a [Var],
    /// (variable, what is wrong), in the order found.
    pub(super) problems: Vec<(String, String)>,
}

impl<'a> Reader<'a> {
    /// A reader of `vars` through `lookup`, with no problem yet.
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>, vars: &'a [Var]) -> Self {
        Self {
            lookup,
            vars,
            problems: Vec::new(),
        }
    }
}

impl Reader<'_> {
    /// The trimmed value of `name`, or its default when unset or blank;
    /// `None` (and a problem) when a required variable is missing.
    pub(super) fn raw(&mut self, name: &'static str) -> Option<String> {
        let var = self
            .vars
            .iter()
            .find(|v| v.name == name)
            .expect("every variable is listed in VARS");
        match (self.lookup)(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(v.trim().to_owned()),
            None => match var.default {
                Some(d) => Some(d.to_owned()),
                None => {
                    self.problem(name, "missing (required)".into());
                    None
                }
            },
        }
    }

    /// Records what is wrong with `name`; reading goes on.
    pub(super) fn problem(&mut self, name: &str, message: String) {
        self.problems.push((name.to_owned(), message));
    }

    /// A URL with one of `schemes`, wrapped: it may carry a password.
    pub(super) fn url(&mut self, name: &'static str, schemes: &[&str]) -> Secret {
        let value = self.raw(name).unwrap_or_default();
        let ok = schemes.iter().any(|s| {
            value
                .strip_prefix(s)
                .and_then(|r| r.strip_prefix("://"))
                .is_some_and(|r| !r.is_empty())
        });
        if !value.is_empty() && !ok {
            let wanted: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            self.problem(name, format!("not a URL starting with {}", wanted.join(" or ")));
        }
        Secret::new(value)
    }

    /// A number in `min..=max`; `min` (and a problem) otherwise.
    pub(super) fn number<T>(&mut self, name: &'static str, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(text) = self.raw(name) else { return min };
        match text.parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            Ok(v) => {
                self.problem(name, format!("{v} is out of range {min}..={max}"));
                min
            }
            Err(_) => {
                self.problem(name, format!("{text:?} is not a whole number"));
                min
            }
        }
    }

    /// Milliseconds in `min..=max`.
    pub(super) fn millis(&mut self, name: &'static str, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.number(name, min, max))
    }

    /// Seconds in `min..=max`.
    pub(super) fn secs(&mut self, name: &'static str, min: u64, max: u64) -> Duration {
        Duration::from_secs(self.number(name, min, max))
    }

    /// A `host:port` socket address; when `optional`, empty means `None`.
    pub(super) fn addr(&mut self, name: &'static str, optional: bool) -> Option<SocketAddr> {
        let text = self.raw(name).unwrap_or_default();
        if text.is_empty() && optional {
            return None;
        }
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(name, format!("{text:?} is not a host:port socket address"));
                None
            }
        }
    }

    /// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, any case.
    pub(super) fn boolean(&mut self, name: &'static str) -> bool {
        match self.raw(name).unwrap_or_default().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => {
                self.problem(name, format!("{other:?} is not true or false"));
                false
            }
        }
    }

    /// `N/unit` (`s`, `min`, `hour`), or `off`.
    pub(super) fn rate(&mut self, name: &'static str) -> Option<hangar_queue::Rate> {
        let text = self.raw(name).unwrap_or_default();
        if text.eq_ignore_ascii_case("off") {
            return None;
        }
        let parsed = count_per_period(&text).and_then(|(n, period)| {
            let whole = n.fract() == 0.0 && (1.0..=1_000_000.0).contains(&n);
            whole.then(|| hangar_queue::Rate::per(n as u32, period))
        });
        if parsed.is_none() {
            self.problem(
                name,
                format!("{text:?} is not N/s, N/min, N/hour (N 1-1000000) or off"),
            );
        }
        parsed
    }

    /// The value, or `None` when empty (for variables whose default is "off").
    pub(super) fn optional(&mut self, name: &'static str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }
}
