//! relcap: the relational capacity study pipeline as a library (the binary is `pipeline/main.rs`).
pub use relcap_stats as stats;
