//! relcap's statistics engine.
//!
//! Pure functions on plain slices and `faer` matrices: no polars, no files, no configuration.
//! Everything here is testable against R and statsmodels reference values (see `tests/fixtures`).
