//! The integration tests, one crate with a module per area, so that the test binary (which
//! links polars) is built and linked once. `common` holds what the modules share.
//!
//! Run one area with a filter, e.g. `cargo test --test it report::`.

mod common;

mod anywhere;
mod architecture;
mod bench;
mod check;
mod codebook;
mod disclosure;
mod fit_cli;
mod h1_corrected;
mod h3_null;
mod ingest_clean;
mod model;
mod model_small_samples;
mod pdf_text;
mod rc_survey_germany;
mod real_exports;
mod real_exports_fuzz;
mod refs;
mod report;
mod report_i18n;
mod reproducible;
mod safety;
mod score_link;
mod shard;
mod simulate;
mod spss;
mod surveyxact;
