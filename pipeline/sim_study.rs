//! Simulation studies of the whole pipeline: `relcap power` (the share of simulated studies in
//! which each hypothesis is detected, over a grid of sizes and effects) and `relcap validate`
//! (parameter recovery: bias, RMSE and interval coverage against known truth).
//!
//! One *replication* simulates a study with the simulator (`relcap::sim`, Parquet tables in a
//! temporary folder), runs ingest → clean → score → link → model on it through the orchestrator
//! with the given study configuration (its model settings decide the tests), reads the verdicts
//! of `OUT/model/results.json` and removes the folder. Replications run in parallel on
//! `--threads` worker threads (default: the available cores); replication `r` is seeded with
//! `replication_seed(seed, r)` whatever thread runs it, and results are kept by index, so the
//! output does not depend on the number of threads. A replication that fails is recorded with
//! its error, never silently dropped. Progress is a bar on stderr when it is a terminal.

pub mod h3_models;
pub mod meta_coverage;
pub mod power;
pub mod shard;
pub mod validate;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::orchestrate::{self, RunOptions};
use crate::sim::{Format, Preset, SimulateOptions, StudyDesign};

/// The options that simulate replication `seed` of `design` into `out` (Parquet, quietly).
fn simulate_options(design: &StudyDesign, seed: u64, out: &Path) -> SimulateOptions {
    SimulateOptions {
        out: out.to_path_buf(),
        seed,
        preset: Preset::Demo,
        design: design.clone(),
        after_wave: 1,
        intervention_share: 0.5,
        format: Some(Format::Parquet),
        quiet: true,
    }
}

/// Checks that `design` can be simulated (before any replication starts).
pub fn check_design(design: &StudyDesign) -> Result<()> {
    simulate_options(design, 1, Path::new("")).params()?;
    Ok(())
}

/// The pooled primary test of one hypothesis in one replication (from results.json).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Primary {
    pub hypothesis: String,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub p_value: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub supported: Option<bool>,
    pub n_obs: Option<i64>,
}

/// What the simulator says about the truth of one replication.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct TruthFacts {
    pub h1: f64,
    pub h2: f64,
    pub h3: f64,
    /// truth.json `expected.h2_between_slope_approx`.
    pub h2_between_slope_approx: f64,
    pub unit_srm_reliability: f64,
    /// The wave trend (part of a pre/post change without controls).
    pub wave_trend: f64,
    /// Realised positions per municipality (the simulator adds whole units, and every work
    /// group has a unit in every municipality, so small targets are exceeded).
    pub positions_per_municipality: f64,
    /// H1's conditional estimand factor λ: the slope of the true case RCap on the observed one
    /// (with the model's municipality and wave effects) over the H1 model's rows.
    pub h1_lambda: Option<f64>,
    /// H2's model estimand for the configured primary term: with `srm_unit`, h2 × λ₂ (λ₂ the
    /// slope of the managers' true SRM on `srm_unit` over the H2 model's rows, given municipality
    /// and wave); with `srm_between`, `h2_between_slope_approx`; otherwise none.
    pub h2_estimand: Option<f64>,
    /// The configured H2 primary term (`model.h2.primary_term`) that `h2_estimand` is for.
    pub h2_primary_term: String,
    /// H1 corrected for measurement error: b, the slope of the observed case RCap on the true
    /// one (with the model's municipality and wave effects) over the H1 model's rows; the
    /// corrected slope estimates h1 / b (see `validate::h1_lambda_and_scale`).
    pub h1_scale: Option<f64>,
}

/// One replication's outcome.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Replication {
    pub index: usize,
    pub seed: u64,
    /// H1, H2, H3 in order, then H1_corrected (empty when the replication failed).
    pub primaries: Vec<Primary>,
    /// Each hypothesis's per-municipality primary estimates (for the meta-analysis coverage).
    pub municipal: Vec<meta_coverage::MunicipalEstimates>,
    pub truth: TruthFacts,
    pub error: Option<String>,
    /// The pooled estimates of H3's models (`h3_models`; empty when the replication failed).
    pub h3_models: Vec<h3_models::ModelEstimate>,
}

/// The seed of replication `r`: SplitMix64 of the base seed and the index, so neighbouring
/// replications get unrelated streams.
pub fn replication_seed(seed: u64, r: usize) -> u64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(
        (r as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs one replication; an error anywhere becomes `error` in the result.
pub fn replicate(
    config: &Config,
    design: &StudyDesign,
    index: usize,
    seed: u64,
    lambda: bool,
) -> Replication {
    match replicate_inner(config, design, seed, lambda) {
        Ok((primaries, municipal, truth, h3)) => Replication {
            index,
            seed,
            primaries,
            municipal,
            truth,
            error: None,
            h3_models: h3,
        },
        Err(e) => Replication {
            index,
            seed,
            primaries: vec![],
            municipal: vec![],
            truth: TruthFacts::default(),
            error: Some(format!("{e:#}")),
            h3_models: vec![],
        },
    }
}

/// What one replication recovers: the primaries, each hypothesis's per-municipality estimates,
/// the truth's facts and H3's models.
type Recovered = (
    Vec<Primary>,
    Vec<meta_coverage::MunicipalEstimates>,
    TruthFacts,
    Vec<h3_models::ModelEstimate>,
);

fn replicate_inner(
    config: &Config,
    design: &StudyDesign,
    seed: u64,
    lambda: bool,
) -> Result<Recovered> {
    let dir = tempfile::Builder::new()
        .prefix("relcap-sim-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let params = simulate_options(design, seed, &data).params()?;
    let truth = crate::sim::simulate(&params, &data, String::new())?;
    let mut facts = TruthFacts {
        h1: truth.effects.h1,
        h2: truth.effects.h2,
        h3: truth.effects.h3,
        h2_between_slope_approx: truth.expected.h2_between_slope_approx,
        unit_srm_reliability: truth.expected.unit_srm_reliability,
        wave_trend: truth.model.wave_trend,
        positions_per_municipality: truth
            .municipalities
            .iter()
            .map(|m| f64::from(m.positions))
            .sum::<f64>()
            / truth.municipalities.len().max(1) as f64,
        h1_lambda: None,
        h2_estimand: None,
        h2_primary_term: config.model.h2.primary_term.clone(),
        h1_scale: None,
    };
    let mut cfg = config.clone();
    if cfg.privacy.demo_key.is_none() {
        // Simulated people only: any key will do, and none needs to be in the environment.
        cfg.privacy.demo_key = Some("relcap-simulation".into());
    }
    let opts = RunOptions {
        data_dir: Some(data.clone()),
        out_dir: Some(out.clone()),
        reports_dir: Some(dir.path().join("reports")),
        until: Some("model".into()),
        quiet: true,
        progress: false,
        no_cache: true,
        ..RunOptions::default()
    };
    orchestrate::run(&cfg, &opts)?;
    let text = std::fs::read_to_string(out.join("model/results.json"))
        .context("the model stage wrote no results.json")?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let mut primaries: Vec<Primary> =
        serde_json::from_value(v["hypotheses"].clone()).context("results.json")?;
    let municipal = meta_coverage::municipal_estimates(&v);
    primaries.push(validate::h1_corrected_primary(&v, config.model.alpha));
    if lambda {
        (facts.h1_lambda, facts.h1_scale) = validate::h1_lambda_and_scale(
            &out.join("link/h1_cases.parquet"),
            &data.join("truth_dyads.csv"),
        )?;
        facts.h2_estimand = match cfg.model.h2.primary_term.as_str() {
            "srm_unit" => validate::h2_lambda(
                &out.join("link/h2_respondents.parquet"),
                &data.join("truth_units.csv"),
            )?
            .map(|l| facts.h2 * l),
            "srm_between" => Some(facts.h2_between_slope_approx),
            _ => None,
        };
    }
    Ok((primaries, municipal, facts, h3_models::from_results(&v)))
}

/// Runs `f(0..n)` on `threads` workers (`crate::jobs::map_indexed`) and returns the results in
/// index order, counting each finished job on `bar`.
pub fn run_indexed<T: Send>(
    n: usize,
    threads: usize,
    bar: &ProgressBar,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    crate::jobs::map_indexed(n, threads, |i| {
        let r = f(i);
        bar.inc(1);
        r
    })
}

/// A progress bar on stderr, hidden when stderr is not a terminal or `quiet`.
pub fn progress_bar(n: usize, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "[relcap] {msg} {bar:30} {pos}/{len} replications, {elapsed} elapsed, ~{eta} left",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// Worker threads: the requested number, else the available cores.
pub fn threads(requested: Option<usize>) -> usize {
    requested.filter(|&t| t > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Parses "1,2,3" into numbers.
pub fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<T>()
                .map_err(|_| anyhow!("{what}: {x:?} is not a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_and_are_stable() {
        let a: Vec<u64> = (0..100).map(|r| replication_seed(1, r)).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(b.len(), 100);
        assert_eq!(replication_seed(1, 5), a[5]);
        assert_ne!(replication_seed(2, 5), a[5]);
    }

    #[test]
    fn indexed_runner_keeps_order_whatever_the_threads() {
        let bar = ProgressBar::hidden();
        for t in [1, 2, 5] {
            let v = run_indexed(17, t, &bar, |i| i * i);
            assert_eq!(v, (0..17).map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(run_indexed(0, 3, &bar, |i| i).is_empty());
    }

    #[test]
    fn lists_parse() {
        assert_eq!(
            parse_list::<u32>("70, 140,280", "x").unwrap(),
            vec![70, 140, 280]
        );
        assert!(parse_list::<f64>("0.1,a", "--effect-h1").is_err());
    }
}
