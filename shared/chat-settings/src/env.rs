//! The reader: a variable's name in, its typed value (or its default) out.
//!
//! Values are trimmed and an empty value counts as unset, for every variable.

use std::fmt::Display;
use std::ops::{Bound, RangeBounds};
use std::str::FromStr;
use std::time::Duration;

use crate::error::SettingError;

/// A variable's name → its raw value.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where settings come from: a lookup from a variable's name to its value.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl<'a> Env<'a> {
    /// Settings from `lookup` (a variable name → its value): tests, or one
    /// reader layered over another.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// Settings from name–value pairs (tests, examples); the first pair of a
    /// name wins.
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Self::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// The process's environment, after a `.env` file in the working
    /// directory (if there is one) was read into it. Call it once, in `main`.
    pub fn from_process() -> Result<Env<'static>, SettingError> {
        // A missing .env file is normal; a malformed one is worth a word.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(SettingError::invalid(".env", e));
        }
        Ok(Env::from_lookup(|name| std::env::var(name).ok()))
    }

    /// The value of `name`, trimmed; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, which must be set.
    pub fn required(&self, name: &'static str) -> Result<String, SettingError> {
        self.get(name).ok_or(SettingError::Missing(name))
    }

    /// `name` read by `parse`, or `default` when unset; what `parse`
    /// refuses is the error's problem.
    pub fn parse_with<T, E: Display>(
        &self,
        name: &'static str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, SettingError> {
        match self.get(name) {
            None => Ok(default()),
            Some(v) => parse(&v).map_err(|e| SettingError::invalid(name, e)),
        }
    }

    /// `name` parsed with [`FromStr`], or `default` when unset.
    pub fn parsed<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, SettingError>
    where
        T::Err: Display,
    {
        self.parse_with(
            name,
            || default,
            |v| v.parse().map_err(|e| format!("{v:?}: {e}")),
        )
    }

    /// A number within `range`, or `default` when unset.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: impl RangeBounds<T>,
    ) -> Result<T, SettingError>
    where
        T: FromStr + PartialOrd + Display,
    {
        let n = self.parse_with(
            name,
            || default,
            |v| {
                v.parse::<T>()
                    .map_err(|_| format!("{v:?} is not a whole number"))
            },
        )?;
        within(name, n, &range)
    }

    /// Whole seconds within `range`, or `default` seconds when unset.
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: impl RangeBounds<u64>,
    ) -> Result<Duration, SettingError> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// Whole milliseconds within `range`, or `default` milliseconds when unset.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: impl RangeBounds<u64>,
    ) -> Result<Duration, SettingError> {
        self.number(name, default, range).map(Duration::from_millis)
    }
}

/// `n`, if `range` holds it; otherwise an error that says the range.
fn within<T: PartialOrd + Display>(
    name: &'static str,
    n: T,
    range: &impl RangeBounds<T>,
) -> Result<T, SettingError> {
    if range.contains(&n) {
        return Ok(n);
    }
    let lower = match range.start_bound() {
        Bound::Included(x) => Some(format!("at least {x}")),
        Bound::Excluded(x) => Some(format!("more than {x}")),
        Bound::Unbounded => None,
    };
    let upper = match range.end_bound() {
        Bound::Included(x) => Some(format!("at most {x}")),
        Bound::Excluded(x) => Some(format!("less than {x}")),
        Bound::Unbounded => None,
    };
    let expected = match (range.start_bound(), range.end_bound()) {
        (Bound::Included(lo), Bound::Included(hi)) => format!("in {lo}..={hi}"),
        _ => [lower, upper]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and "),
    };
    Err(SettingError::invalid(
        name,
        format!("{n} must be {expected}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env::from_pairs(vars)
    }

    #[test]
    fn unset_and_blank_values_take_the_default() -> Result<(), SettingError> {
        let e = env(&[("BLANK", "  ")]);
        assert_eq!(e.get("BLANK"), None);
        assert_eq!(e.number("BLANK", 7u32, 1..)?, 7);
        assert_eq!(e.seconds("UNSET", 30, 0..=3600)?, Duration::from_secs(30));
        assert_eq!(e.millis("UNSET", 1500, 1..)?, Duration::from_millis(1500));
        assert_eq!(e.parsed("UNSET", String::from("x"))?, "x");
        Ok(())
    }

    #[test]
    fn values_are_trimmed_and_parsed() -> Result<(), SettingError> {
        let e = env(&[("N", " 42 "), ("ADDR", "127.0.0.1:1")]);
        assert_eq!(e.number("N", 0u32, 1..=100)?, 42);
        assert_eq!(e.seconds("N", 0, ..)?, Duration::from_secs(42));
        let addr: std::net::SocketAddr = e.parsed("ADDR", ([0, 0, 0, 0], 0).into())?;
        assert_eq!(addr.port(), 1);
        Ok(())
    }

    #[test]
    fn a_bad_value_names_its_variable_and_says_what_is_wrong() {
        let e = env(&[("N", "lots"), ("NEG", "-1"), ("ADDR", "nowhere")]);
        let err = e.number("N", 1u32, 1..).expect_err("refused");
        assert_eq!(err.name(), "N");
        assert_eq!(
            err.to_string(),
            r#"N is invalid: "lots" is not a whole number"#
        );
        assert_eq!(
            e.number("NEG", 1u32, ..).expect_err("refused").name(),
            "NEG"
        );
        let err = e
            .parsed("ADDR", std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
            .expect_err("refused");
        assert!(
            err.to_string().starts_with("ADDR is invalid: \"nowhere\""),
            "{err}"
        );
    }

    #[test]
    fn ranges_are_enforced_and_said() {
        let e = env(&[("ZERO", "0"), ("BIG", "4000")]);
        let err = e.number("ZERO", 1u32, 1..).expect_err("refused");
        assert_eq!(err.to_string(), "ZERO is invalid: 0 must be at least 1");
        let err = e.seconds("BIG", 1, 10..=3600).expect_err("refused");
        assert_eq!(err.to_string(), "BIG is invalid: 4000 must be in 10..=3600");
        let err = e.millis("BIG", 1, ..1000).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "BIG is invalid: 4000 must be less than 1000"
        );
        assert!(e.seconds("ZERO", 1, 0..=3600).is_ok());
    }

    #[test]
    fn a_required_value_names_its_variable_when_missing() {
        let e = env(&[("SET", "x"), ("BLANK", "")]);
        assert_eq!(e.required("SET").as_deref(), Ok("x"));
        let err = e.required("BLANK").expect_err("refused");
        assert_eq!(err, SettingError::Missing("BLANK"));
        assert_eq!(err.to_string(), "BLANK is required but not set");
    }

    #[test]
    fn a_reader_can_be_layered_over_another() {
        let base = env(&[("A", "base"), ("B", "base")]);
        let over = Env::from_lookup(|name| match name {
            "A" => Some("over".into()),
            "B" => None,
            _ => base.get(name),
        });
        assert_eq!(over.get("A").as_deref(), Some("over"));
        assert_eq!(over.get("B"), None);
    }
}
