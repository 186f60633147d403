//! relcap: the relational capacity study pipeline as a library; the binary (`pipeline/main.rs`)
//! only parses arguments and maps errors to exit codes. Only `cli` and `main` know the command
//! line library and exit codes (a test in `cli` checks it): the other modules take plain option
//! structs and return `Result`s.
//!
//! Map: `cli` (subcommands, their arguments turned into each module's options), `config`
//! (study.toml → typed settings, enums for the settings with a fixed set of values),
//! `orchestrate` (stage order, fingerprints and caching, summaries, logs, `relcap status`),
//! `manifest` (`OUT/manifest.json`), `memo` (results a stage reuses between runs, `OUT/.cache`),
//! `verify` (`relcap verify`: rerun and compare), `check` (`relcap check`: ingest and clean
//! as a dry run that writes nothing), `inspect` (`relcap inspect`: a Parquet file at
//! a glance), `stages::{ingest, clean, score, link, model, report}` (one entry point each,
//! Parquet in and out), `io` (atomic, deterministic file writes), `jobs` (independent jobs on
//! two threads), `pseudonym` (keyed hashing of person ids), `sim` (the study simulator), `fit`
//! (`relcap fit` on any table), `bench` (`relcap bench`: timings and peak memory of the whole
//! pipeline), and the statistics engine `stats` (the `relcap-stats` crate: no polars, no
//! files). `console` holds the only way to write to stdout and stderr (a closed pipe is
//! ignored), `init` writes a new study folder (`relcap init`), and `codebook` describes the
//! source variables and checks the items of each scale.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub use relcap_stats as stats;

pub mod bench;
pub mod check;
pub mod cli;
pub mod codebook;
pub mod config;
pub mod console;
pub mod fit;
pub mod init;
pub mod inspect;
pub mod io;
pub mod jobs;
pub mod keygen;
pub mod lock;
pub mod manifest;
pub mod memo;
pub mod orchestrate;
pub mod pseudonym;
pub mod schema;
pub mod sim;
pub mod sim_mark;
pub mod sim_study;
pub mod stages;
pub mod verify;
