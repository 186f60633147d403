//! Types shared across the statistics engine: one coefficient row, a random-intercept grouping
//! factor, and the engine's error type. Kept small on purpose: each routine owns its own result
//! struct (`OlsFit`, `LmmFit`, `MetaFit`, ...), and these are only the parts they have in common.

use serde::Serialize;

/// One row of a coefficient table, as R's `summary()` prints it plus a confidence interval.
/// `df` is `f64::INFINITY` for z-based inference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coefficient {
    /// Term name as R prints it: `(Intercept)`, `x1`, `gB`, `x1:x2`.
    pub term: String,
    pub estimate: f64,
    pub std_error: f64,
    /// t (or z) statistic: estimate / std_error.
    pub statistic: f64,
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

/// A random-intercept grouping factor, already expanded: a nested `(1 | a/b)` arrives as two
/// factors, `a` and `a:b`. `levels[i]` is the 0-based level index of observation `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFactor {
    /// Name as lme4 prints it in the variance-component table: `unit`, `a:b`.
    pub name: String,
    /// Level index per observation, each `< n_levels`.
    pub levels: Vec<u32>,
    pub n_levels: usize,
    /// Level labels, `level_names[j]` for level `j` (sorted order, as R's factor levels).
    pub level_names: Vec<String>,
}

/// Errors of the statistics engine. Each variant says what was wrong with the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// Fewer observations than a routine needs.
    #[error("too few observations: {what} needs at least {needed}, got {got}")]
    TooFewObservations {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// Slices or matrices whose lengths disagree.
    #[error("dimension mismatch: {0}")]
    DimensionMismatch(String),
    /// A value that is NaN or infinite where a finite number is required.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// An argument outside its domain (a probability outside (0, 1), a negative variance, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A formula that does not parse, or names a column that is not there.
    #[error("formula error: {0}")]
    Formula(String),
    /// A numerical failure (singular system where one is not allowed, optimizer failure).
    #[error("numerical failure: {0}")]
    Numerical(String),
}
