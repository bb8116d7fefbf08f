//! The one error type of settings: which variable, and what is wrong with it.

use std::fmt::Display;

use thiserror::Error;

/// A setting that is missing or unusable. Its message starts with the
/// variable's name, so a process that stops on it says which one to fix.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SettingError {
    /// A required variable is not set.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// Neither of two variables, one of which is required, is set.
    #[error("{0} (or {1}) is required but not set")]
    MissingEither(&'static str, &'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl SettingError {
    /// `name` is set to something unusable, because of `problem`.
    pub fn invalid(name: &'static str, problem: impl Display) -> Self {
        Self::Invalid {
            name,
            problem: problem.to_string(),
        }
    }

    /// The variable to fix.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Missing(name) | Self::MissingEither(name, _) | Self::Invalid { name, .. } => name,
        }
    }
}
