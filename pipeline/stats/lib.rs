//! relcap's statistics engine.
//!
//! Pure functions on plain slices and `faer` matrices: no polars, no files, no configuration.
//! Everything here is tested against outside references (NIST StRD certified values, and R or
//! statsmodels output committed as fixtures under `pipeline/stats/tests/fixtures/`).
//!
//! Map: `dist` (t, F, χ², normal), `formula` (R/lme4-style formulas) and `design` (model matrices
//! from plain columns), `ols` (pivoted-QR least squares), `robust` (HC and CR1 cluster covariance) and `cr2`
//! (CR2 with Satterthwaite df),
//! `fit` (the one front-end: formula + data → OLS or LMM fit, its coefficient rows and report;
//! used by `relcap fit` and the model stage), `lmm` (REML/ML linear mixed models with random
//! intercepts), `htest` (t-tests, effect sizes, multiplicity), `meta` (fixed and random-effects meta-analysis), `measurement` (dyad error variances,
//! regression calibration, the cluster bootstrap), `reliability` (alpha, ICC, rwg),
//! `prec` (named tolerances), `types` (shared result types and errors).

pub mod cr2;
pub mod design;
pub mod dist;
pub mod fit;
pub mod formula;
pub mod htest;
pub mod lmm;
pub mod measurement;
pub mod meta;
pub mod ols;
pub mod prec;
pub mod reliability;
pub mod robust;
pub mod types;

pub use types::{Coefficient, RandomFactor, StatsError};
