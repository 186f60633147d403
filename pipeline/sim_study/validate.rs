//! `relcap validate`: parameter recovery. R replications of a simulated study (the demo design
//! by default) through the whole pipeline; for each hypothesis's pooled primary estimate: bias,
//! RMSE and coverage of its interval, each against two targets:
//!
//! - `simulated_effect`: the effect the simulator puts in (truth.json `effects`);
//! - `model_estimand`: what the model estimates when it is right about its own data:
//!   - H1: the simulator's effect is the slope on the *true* case RCap, the model's predictor is
//!     the observed one (a mean of sampled dyad scores), so the model estimates h1 × λ, where λ
//!     is the slope of the true case RCap on the observed one given the model's municipality and
//!     wave effects, over the model's rows (errors-in-variables attenuation). λ is computed per
//!     replication from `truth_dyads.csv`; given both case RCaps the citizen noise is
//!     independent, so E[estimate] = h1 × λ exactly (up to the scale's clamping).
//!   - H2 with the default primary term `srm_unit`: the unit's mean SRM over all waves measures
//!     the manager's SRM with error, so the model estimates h2 × λ₂, λ₂ the slope of the
//!     managers' true SRM (`truth_units.csv`) on `srm_unit` given municipality and wave over the
//!     model's rows, computed per replication; it leaves out the 1/N share of the raters'
//!     same-source variance that the mean still carries (N raters over all waves).
//!     With `srm_between` (the study protocol's term) the target is the simulator's
//!     `expected.h2_between_slope_approx`, a unit-level approximation that is not that model's
//!     estimand: `srm_between` is a unit-*wave* mean and the model has a unit random intercept,
//!     so its slope mixes in the wave-to-wave changes of a unit's mean rating, which carry the
//!     raters' same-source variance almost undiluted (no formula here gives that mixture; check
//!     it against `large_sample`).
//!   - H3: the difference in differences is unbiased for h3 (with no controls the pre/post change
//!     also holds the wave trend: h3 + wave_trend).
//!   - H1_corrected (the `h1_corrected` row of the pooled scope, H1 corrected for measurement
//!     error; not among the Holm-adjusted tests, so "supported" is p < alpha with a positive
//!     estimate): regression calibration removes the sampling error of case RCap, so it
//!     estimates the slope on the expected observed case RCap, h1 / b, b the slope of the
//!     observed case RCap on the true one given municipality and wave over the model's rows
//!     (per replication, from `truth_dyads.csv`). b < 1 because answers are bounded by the scale
//!     (the simulator clamps them), which compresses the observed scale; no correction for
//!     sampling error removes that. A replication whose pooled scope was not corrected has no
//!     H1_corrected estimate.
//!
//! With `--reference-replications K`, a fourth target, `large_sample`, is the estimator's
//! pseudo-true value for this design: the mean estimate over K replications of the same design
//! with `--reference-scale` times as many municipalities (same units, sizes and effects; other
//! seeds). It is what the estimator converges to, so it is the right target where no formula
//! gives the estimand (H2's hybrid model, above).
//! A last line, `mean_estimate`, uses the mean of the estimates as the target: its coverage
//! checks the standard errors alone (a calibration check, not a test of bias).
//! Coverage is "within Monte Carlo error" when |coverage − (1 − alpha)| ≤ 1.96 √(alpha(1 − alpha)/R).
//!
//! Writes under `--out` (the same bytes for the same arguments, whatever `--threads`):
//! `validate.json` (the summary), `replications.csv` (one row per
//! replication × hypothesis: replication, seed, hypothesis, estimate, std_error, conf_low,
//! conf_high, p_value, p_adjusted, supported, simulated_effect, model_estimand, error),
//! `h3_models.csv` (every replication's H3 models side by side: `h3_models`' module doc), and
//! prints the summary table.
//!
//! With `--shard K/N` only the replications (and reference replications) of shard K are run and
//! `--out` is the partial result file; `relcap validate merge` writes the three files above from
//! the partials of all N shards, byte for byte those of the unsharded run (`shard` has the rule
//! and the partial's layout).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{CsvReadOptions, DataType, SerReader};
use serde::Serialize;

use super::{
    check_design, progress_bar, replicate, replication_seed, run_indexed, threads, Primary,
    Replication,
};
use crate::config::Config;
use crate::sim::StudyDesign;
use crate::stats::design::{Column, Data};
use crate::stats::fit::{fit_formula, FitOptions};

/// What `relcap validate` is asked to run.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Study configuration (its model settings are used; data and output folders are not).
    /// The study config (None: found as `relcap run` finds it, else the built-in defaults).
    pub config: Option<PathBuf>,
    /// Folder for validate.json and replications.csv.
    pub out: PathBuf,
    /// Number of simulated studies (at least 2).
    pub replications: usize,
    /// Base seed; replication r uses a seed derived from it and r.
    pub seed: u64,
    /// Worker threads (None: the available cores).
    pub threads: Option<usize>,
    /// The simulated design (sizes left out are the demo preset's).
    pub design: StudyDesign,
    /// Replications of the large-sample reference design (0: no `large_sample` target).
    pub reference_replications: usize,
    /// The reference design has this many times the municipalities.
    pub reference_scale: u32,
    /// No progress bar and no table on stderr.
    pub quiet: bool,
    /// Run only this shard's replications and write a partial result to `out` (a file).
    pub shard: Option<super::shard::ShardSpec>,
}

/// The large-sample reference of one hypothesis: mean estimate and its Monte Carlo SE.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reference {
    pub hypothesis: String,
    pub n: usize,
    pub mean_estimate: f64,
    pub mc_se: f64,
    pub mean_std_error: f64,
}

/// Mean estimate per hypothesis over the reference replications.
pub fn references(reps: &[Replication]) -> Vec<Reference> {
    HYPOTHESES
        .iter()
        .filter_map(|h| {
            let est: Vec<(f64, f64)> = reps
                .iter()
                .filter_map(|r| r.primaries.iter().find(|p| p.hypothesis == *h))
                .filter_map(|p| Some((p.estimate?, p.std_error?)))
                .collect();
            if est.len() < 2 {
                return None;
            }
            let e: Vec<f64> = est.iter().map(|x| x.0).collect();
            Some(Reference {
                hypothesis: h.to_string(),
                n: e.len(),
                mean_estimate: mean(&e),
                mc_se: sd(&e) / (e.len() as f64).sqrt(),
                mean_std_error: mean(&est.iter().map(|x| x.1).collect::<Vec<_>>()),
            })
        })
        .collect()
}

/// The hypotheses' lines, in order.
const HYPOTHESES: [&str; 4] = ["H1", "H2", "H3", "H1_corrected"];

/// The pooled `h1_corrected` row of results.json as the `H1_corrected` line (estimates empty
/// when the pooled scope was not corrected).
pub fn h1_corrected_primary(results: &serde_json::Value, alpha: f64) -> Primary {
    let row = results["results"].as_array().and_then(|rows| {
        rows.iter().find(|r| {
            r["model"] == crate::stages::model::h1_correction::MODEL
                && r["scope"] == crate::stages::model::POOLED
        })
    });
    let num = |k: &str| row.and_then(|r| r[k].as_f64());
    let (estimate, p_value) = (num("estimate"), num("p_value"));
    Primary {
        hypothesis: "H1_corrected".into(),
        estimate,
        std_error: num("std_error"),
        conf_low: num("conf_low"),
        conf_high: num("conf_high"),
        p_value,
        p_adjusted: None,
        supported: estimate.zip(p_value).map(|(e, p)| p < alpha && e > 0.0),
        n_obs: row.and_then(|r| r["n_obs"].as_i64()),
    }
}

/// XOR-ed into the seed of the reference replications.
const REFERENCE_SEED: u64 = 0x5EED_5EED_5EED_5EED;

/// One target's recovery figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recovery {
    /// `simulated_effect`, `model_estimand` or `mean_estimate`.
    pub target: String,
    /// Mean of the target over replications (it varies per replication for H1 and H2).
    pub mean_target: f64,
    pub bias: f64,
    /// Monte Carlo SE of the bias.
    pub bias_mc_se: f64,
    pub rmse: f64,
    pub coverage: f64,
    pub coverage_mc_se: f64,
    /// |coverage − nominal| ≤ 1.96 × the nominal binomial SE.
    pub coverage_within_mc_error: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HypothesisRecovery {
    pub hypothesis: String,
    /// Replications with an estimate and an interval.
    pub n: usize,
    pub mean_estimate: f64,
    pub sd_estimate: f64,
    pub mean_std_error: f64,
    /// mean SE / SD of the estimates (1 when the SEs are right).
    pub se_ratio: f64,
    /// Share of replications in which the hypothesis was supported.
    pub power: f64,
    pub targets: Vec<Recovery>,
    pub model_estimand: String,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    replications: usize,
    failed: usize,
    errors: Vec<String>,
    seed: u64,
    conf_level: f64,
    reference_scale: u32,
    design: &'a StudyDesign,
    reference_design: Option<&'a StudyDesign>,
    reference_replications: usize,
    references: Vec<Reference>,
    hypotheses: Vec<HypothesisRecovery>,
    /// H3's models side by side (`sim_study::h3_models`).
    h3_models: Vec<super::h3_models::ModelRecovery>,
    /// Coverage of the meta-analytic interval, z against HKSJ (`meta_coverage`).
    meta_analysis: Vec<super::meta_coverage::MetaCoverage>,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn sd(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt()
}

/// (estimate, conf_low, conf_high, std_error, supported, simulated effect, model estimand)
type Row = (f64, f64, f64, f64, bool, f64, f64);

/// The two targets of hypothesis `h` in replication `r`.
pub(super) fn targets(h: &str, r: &Replication, no_control: bool) -> Option<(f64, f64)> {
    let t = &r.truth;
    match h {
        "H1" => t.h1_lambda.map(|l| (t.h1, t.h1 * l)),
        "H1_corrected" => t.h1_scale.map(|b| (t.h1, t.h1 / b)),
        "H2" => t.h2_estimand.map(|e| (t.h2, e)),
        _ => Some(if no_control {
            (t.h3, t.h3 + t.wave_trend)
        } else {
            (t.h3, t.h3)
        }),
    }
}

fn recovery(target: &str, rows: &[Row], theta: impl Fn(&Row) -> f64, level: f64) -> Recovery {
    let n = rows.len() as f64;
    let err: Vec<f64> = rows.iter().map(|r| r.0 - theta(r)).collect();
    let covered = rows
        .iter()
        .filter(|r| r.1 <= theta(r) && theta(r) <= r.2)
        .count() as f64
        / n;
    let nominal_se = (level * (1.0 - level) / n).sqrt();
    Recovery {
        target: target.into(),
        mean_target: mean(&rows.iter().map(&theta).collect::<Vec<_>>()),
        bias: mean(&err),
        bias_mc_se: sd(&err) / n.sqrt(),
        rmse: (err.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
        coverage: covered,
        coverage_mc_se: (covered * (1.0 - covered) / n).sqrt(),
        coverage_within_mc_error: (covered - level).abs() <= 1.96 * nominal_se,
    }
}

/// Recovery figures of every hypothesis over the replications.
pub fn summarize(
    reps: &[Replication],
    level: f64,
    no_control: bool,
    references: &[Reference],
) -> Vec<HypothesisRecovery> {
    let mut out = Vec::new();
    for h in HYPOTHESES {
        let rows: Vec<Row> = reps
            .iter()
            .filter_map(|r| {
                let p = r.primaries.iter().find(|p| p.hypothesis == h)?;
                let (sim, est) = targets(h, r, no_control)?;
                Some((
                    p.estimate?,
                    p.conf_low?,
                    p.conf_high?,
                    p.std_error?,
                    p.supported == Some(true),
                    sim,
                    est,
                ))
            })
            .collect();
        if rows.len() < 2 {
            continue;
        }
        let est: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let m = mean(&est);
        let se = mean(&rows.iter().map(|r| r.3).collect::<Vec<_>>());
        out.push(HypothesisRecovery {
            hypothesis: h.into(),
            n: rows.len(),
            mean_estimate: m,
            sd_estimate: sd(&est),
            mean_std_error: se,
            se_ratio: se / sd(&est),
            power: rows.iter().filter(|r| r.4).count() as f64 / rows.len() as f64,
            targets: {
                let mut t = vec![
                    recovery("simulated_effect", &rows, |r| r.5, level),
                    recovery("model_estimand", &rows, |r| r.6, level),
                ];
                if let Some(rf) = references.iter().find(|x| x.hypothesis == h) {
                    t.push(recovery("large_sample", &rows, |_| rf.mean_estimate, level));
                }
                t.push(recovery("mean_estimate", &rows, |_| m, level));
                t
            },
            model_estimand: match h {
                "H1" => "h1 x lambda (slope of true on observed case RCap given municipality and wave, per replication)",
                "H1_corrected" => "h1 / b (b the slope of observed on true case RCap given municipality and wave, per replication: the scale's compression by its bounds, which a correction for sampling error does not remove)",
                "H2" if h2_is_unit(reps) => "h2 x lambda2 (slope of the managers' true SRM on srm_unit given municipality and wave over the H2 model's rows, per replication; ignores the 1/N share of same-source variance left in a unit's mean over all waves)",
                "H2" => "truth.json expected.h2_between_slope_approx (reliability attenuation + same-source share between units; ignores the wave-to-wave same-source part the hybrid model mixes in: check against large_sample)",
                _ if no_control => "h3 + wave_trend (pre/post change without controls)",
                _ => "h3 (the difference in differences is unbiased)",
            }
            .into(),
        });
    }
    out
}

/// A truth CSV written by the simulator, every column's type inferred from all rows.
fn read_truth_csv(path: &Path) -> Result<polars::prelude::DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .with_context(|| format!("cannot read {}", path.display()))
}

fn str_col(d: &polars::prelude::DataFrame, c: &str) -> Result<Vec<Option<String>>> {
    let col = d.column(c)?.cast(&DataType::String)?;
    Ok(col.str()?.iter().map(|v| v.map(String::from)).collect())
}

fn num_col(d: &polars::prelude::DataFrame, c: &str) -> Result<Vec<Option<f64>>> {
    let col = d.column(c)?.cast(&DataType::Float64)?;
    Ok(col.f64()?.iter().collect())
}

/// The OLS slope of `y` on `x` with municipality and wave fixed effects (each only when it has
/// two levels on the rows): the λ of an errors-in-variables attenuation. None with fewer than 3
/// rows.
fn slope_given_fixed_effects(
    y: Vec<Option<f64>>,
    x: Vec<Option<f64>>,
    municipality: Vec<Option<String>>,
    wave: Vec<Option<f64>>,
) -> Result<Option<f64>> {
    if y.len() < 3 {
        return Ok(None);
    }
    let n_munis = municipality
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let n_waves = wave
        .iter()
        .map(|w| w.map(|w| w as i64))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut formula = "y ~ x".to_string();
    if n_munis >= 2 {
        formula.push_str(" + C(municipality)");
    }
    if n_waves >= 2 {
        formula.push_str(" + C(wave)");
    }
    let mut data = Data::new();
    data.push("y", Column::Num(y))?;
    data.push("x", Column::Num(x))?;
    data.push("municipality", Column::Str(municipality))?;
    data.push("wave", Column::Num(wave))?;
    let fit = fit_formula(&data, &formula, &FitOptions::default())?;
    Ok(fit
        .coefficients
        .iter()
        .find(|c| c.term == "x")
        .map(|c| c.estimate))
}

/// Whether H2's estimand in these replications is the `srm_unit` one (h2 × λ₂).
fn h2_is_unit(reps: &[Replication]) -> bool {
    reps.iter().any(|r| r.truth.h2_primary_term == "srm_unit")
}

/// H2's λ₂ for one replication, for the primary term `srm_unit`: the slope of the managers' true
/// SRM (`truth_units.csv` `manager_srm`) on `srm_unit` (the unit's mean of `srm_between` over the
/// model's rows, as the model stage computes it), with municipality and wave effects, over the
/// rows the H2 model uses (no `exclusion`, `rcap`, `srm_between` and `srm_within` present). The
/// model's slope on `srm_unit` then estimates h2 × λ₂ up to the same-source share that a unit's
/// mean over all waves still carries (1/N of the raters' common-method variance). None without
/// rows.
pub fn h2_lambda(h2_respondents: &Path, truth_units: &Path) -> Result<Option<f64>> {
    let df = crate::io::read_parquet(h2_respondents)?;
    let tu = read_truth_csv(truth_units)?;
    let (s, f) = (str_col, num_col);
    let mut true_srm: BTreeMap<String, f64> = BTreeMap::new();
    for (u, v) in s(&tu, "unit_id")?.into_iter().zip(f(&tu, "manager_srm")?) {
        if let (Some(u), Some(v)) = (u, v) {
            true_srm.insert(u, v);
        }
    }
    let (wave, muni, unit, rcap, between, within, excl) = (
        f(&df, "wave")?,
        s(&df, "municipality")?,
        s(&df, "unit_id")?,
        f(&df, "rcap")?,
        f(&df, "srm_between")?,
        f(&df, "srm_within")?,
        s(&df, "exclusion")?,
    );
    // srm_unit as the model stage computes it: over the sample rows with srm_between.
    let mut sums: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for i in 0..df.height() {
        if let (None, Some(u), Some(b)) = (&excl[i], &unit[i], between[i]) {
            let e = sums.entry(u.as_str()).or_insert((0.0, 0));
            e.0 += b;
            e.1 += 1;
        }
    }
    let (mut y, mut x, mut mm, mut ww) = (vec![], vec![], vec![], vec![]);
    for i in 0..df.height() {
        let (None, Some(w), Some(m), Some(u), Some(_), Some(_), Some(_)) = (
            &excl[i], wave[i], &muni[i], &unit[i], rcap[i], between[i], within[i],
        ) else {
            continue;
        };
        let (Some(&(sum, k)), Some(&t)) = (sums.get(u.as_str()), true_srm.get(u)) else {
            bail!("unit {u} has no srm_unit or no manager_srm in truth_units.csv");
        };
        y.push(Some(t));
        x.push(Some(sum / k as f64));
        mm.push(Some(m.clone()));
        ww.push(Some(w));
    }
    slope_given_fixed_effects(y, x, mm, ww)
}

/// H1's λ for one replication: slope of the true case RCap (mean of the simulator's true dyad
/// scores over the ordered pairs of the case's distinct groups) on the observed `case_rcap`,
/// with municipality and wave effects, over the rows the H1 model uses; and b, the slope of the
/// observed on the true case RCap on the same rows. None without rows.
pub fn h1_lambda_and_scale(
    h1_cases: &Path,
    truth_dyads: &Path,
) -> Result<(Option<f64>, Option<f64>)> {
    let (y, x, mm, ww) = h1_true_and_observed(h1_cases, truth_dyads)?;
    let lambda = slope_given_fixed_effects(y.clone(), x.clone(), mm.clone(), ww.clone())?;
    let scale = slope_given_fixed_effects(x, y, mm, ww)?;
    Ok((lambda, scale))
}

/// (true case RCap, observed case RCap, municipality, wave) over the H1 model's rows.
type TrueObserved = (
    Vec<Option<f64>>,
    Vec<Option<f64>>,
    Vec<Option<String>>,
    Vec<Option<f64>>,
);

fn h1_true_and_observed(h1_cases: &Path, truth_dyads: &Path) -> Result<TrueObserved> {
    let df = crate::io::read_parquet(h1_cases)?;
    let td = read_truth_csv(truth_dyads)?;
    let (s, f) = (str_col, num_col);
    let mut tau: BTreeMap<(String, String, String, i64), f64> = BTreeMap::new();
    let (tm, tf, tt, tw, tv) = (
        s(&td, "municipality")?,
        s(&td, "from_group")?,
        s(&td, "to_group")?,
        f(&td, "wave")?,
        f(&td, "true_dyad_score")?,
    );
    for i in 0..td.height() {
        if let (Some(m), Some(a), Some(b), Some(w), Some(v)) =
            (&tm[i], &tf[i], &tt[i], tw[i], tv[i])
        {
            tau.insert((m.clone(), a.clone(), b.clone(), w as i64), v);
        }
    }
    let (wave, muni, lead, groups, quality, rcap, excl) = (
        f(&df, "wave")?,
        s(&df, "municipality")?,
        s(&df, "lead_unit_id")?,
        s(&df, "work_groups")?,
        f(&df, "quality")?,
        f(&df, "case_rcap")?,
        s(&df, "exclusion")?,
    );
    let (mut y, mut x, mut mm, mut ww) = (vec![], vec![], vec![], vec![]);
    for i in 0..df.height() {
        let (Some(w), Some(m), Some(_), Some(g), Some(_), Some(r), None) = (
            wave[i], &muni[i], &lead[i], &groups[i], quality[i], rcap[i], &excl[i],
        ) else {
            continue;
        };
        let gs: Vec<&str> = g.split(';').filter(|s| !s.is_empty()).collect();
        let mut sum = 0.0;
        let mut k = 0usize;
        for a in &gs {
            for b in &gs {
                if a == b {
                    continue;
                }
                let key = (m.clone(), a.to_string(), b.to_string(), w as i64);
                let v = tau
                    .get(&key)
                    .ok_or_else(|| anyhow!("truth_dyads.csv has no dyad {key:?}"))?;
                sum += v;
                k += 1;
            }
        }
        if k == 0 {
            continue;
        }
        y.push(Some(sum / k as f64));
        x.push(Some(r));
        mm.push(Some(m.clone()));
        ww.push(Some(w));
    }
    Ok((y, x, mm, ww))
}

fn csv_num(x: Option<f64>) -> String {
    x.map(|v| format!("{v}")).unwrap_or_default()
}

fn write_replications(path: &Path, reps: &[Replication], no_control: bool) -> Result<()> {
    crate::io::write_atomic(path, |w| {
        writeln!(
            w,
            "replication,seed,hypothesis,estimate,std_error,conf_low,conf_high,p_value,p_adjusted,supported,simulated_effect,model_estimand,error"
        )?;
        for r in reps {
            if let Some(e) = &r.error {
                writeln!(
                    w,
                    "{},{},,,,,,,,,,,\"{}\"",
                    r.index,
                    r.seed,
                    e.replace('"', "'")
                )?;
                continue;
            }
            for p in &r.primaries {
                let t = targets(&p.hypothesis, r, no_control);
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{},",
                    r.index,
                    r.seed,
                    p.hypothesis,
                    csv_num(p.estimate),
                    csv_num(p.std_error),
                    csv_num(p.conf_low),
                    csv_num(p.conf_high),
                    csv_num(p.p_value),
                    csv_num(p.p_adjusted),
                    p.supported.map(|b| b.to_string()).unwrap_or_default(),
                    csv_num(t.map(|t| t.0)),
                    csv_num(t.map(|t| t.1)),
                )?;
            }
        }
        Ok(())
    })
}

/// The summary as a text table.
pub fn table(h: &[HypothesisRecovery], level: f64) -> String {
    let mut s = format!(
        "{:<4} {:<17} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}\n",
        "hyp",
        "target",
        "target",
        "bias",
        "mc_se",
        "rmse",
        format!("cover{:.0}%", level * 100.0),
        "mc_se"
    );
    for x in h {
        for t in &x.targets {
            s.push_str(&format!(
                "{:<4} {:<17} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>10.3} {:>8.3}{}\n",
                x.hypothesis,
                t.target,
                t.mean_target,
                t.bias,
                t.bias_mc_se,
                t.rmse,
                t.coverage,
                t.coverage_mc_se,
                if t.coverage_within_mc_error {
                    ""
                } else {
                    "  *"
                }
            ));
        }
        s.push_str(&format!(
            "{:<4} n = {}, mean estimate {:.4}, SD {:.4}, mean SE {:.4} (ratio {:.3}), supported in {:.1}%\n",
            x.hypothesis,
            x.n,
            x.mean_estimate,
            x.sd_estimate,
            x.mean_std_error,
            x.se_ratio,
            100.0 * x.power
        ));
    }
    s.push_str("* coverage outside 1.96 Monte Carlo SEs of the nominal level\n");
    s
}

/// Everything that decides `relcap validate`'s result (recorded in a partial result, whose
/// merge computes the files from it): see `shard`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ValidateSettings {
    pub replications: usize,
    pub seed: u64,
    pub design: StudyDesign,
    pub reference_replications: usize,
    pub reference_scale: u32,
    /// The study configuration's `[model]` section.
    pub model: crate::config::ModelSection,
    /// `shard::config_hash` of the whole study configuration.
    pub config_hash: String,
}

impl ValidateSettings {
    /// The large-sample reference design (None without reference replications), checked.
    fn reference_design(&self) -> Result<Option<StudyDesign>> {
        let d = (self.reference_replications > 0).then(|| StudyDesign {
            municipalities: Some(
                self.design
                    .municipalities
                    .unwrap_or(crate::sim::Preset::Demo.sizes().municipalities)
                    .saturating_mul(self.reference_scale.max(1)),
            ),
            ..self.design.clone()
        });
        if let Some(d) = &d {
            check_design(d)?;
        }
        Ok(d)
    }
}

/// The names of validate's two groups of replications in a partial result.
const GROUPS: [&str; 2] = ["replications", "reference replications"];

pub fn main(args: &ValidateOptions) -> Result<()> {
    if args.replications < 2 {
        bail!("--replications must be at least 2");
    }
    let (config, _) = Config::find(args.config.as_deref())?;
    let settings = ValidateSettings {
        replications: args.replications,
        seed: args.seed,
        design: args.design.clone(),
        reference_replications: args.reference_replications,
        reference_scale: args.reference_scale,
        model: config.model.clone(),
        config_hash: super::shard::config_hash(&config)?,
    };
    // Fail fast on a bad design, before any thread starts.
    check_design(&settings.design)?;
    let reference_design = settings.reference_design()?;
    let all = |n: usize| (0..n).collect::<Vec<_>>();
    let (held, held_ref) = match args.shard {
        Some(s) => {
            super::shard::check_partial_path(&args.out)?;
            (
                s.share(args.replications),
                s.share(args.reference_replications),
            )
        }
        None => (all(args.replications), all(args.reference_replications)),
    };
    let n_threads = threads(args.threads);
    let start = Instant::now();
    let bar = progress_bar(held.len() + held_ref.len(), args.quiet, "validate");
    let design = &settings.design;
    let reps = run_indexed(held.len(), n_threads, &bar, |i| {
        let r = held[i];
        replicate(&config, design, r, replication_seed(args.seed, r), true)
    });
    // The reference replications draw from other seeds than the replications checked.
    let ref_reps = match &reference_design {
        Some(d) => run_indexed(held_ref.len(), n_threads, &bar, |i| {
            let r = held_ref[i];
            let seed = replication_seed(args.seed ^ REFERENCE_SEED, r);
            replicate(&config, d, r, seed, false)
        }),
        None => vec![],
    };
    bar.finish_and_clear();
    let ran = format!(
        "{} replications ({} failed) in {:.1} s on {n_threads} threads",
        held.len() + ref_reps.len(),
        reps.iter()
            .chain(&ref_reps)
            .filter(|r| r.error.is_some())
            .count(),
        start.elapsed().as_secs_f64()
    );
    if let Some(s) = args.shard {
        let groups = vec![
            super::shard::group(GROUPS[0].into(), args.replications, &held, reps),
            super::shard::group(
                GROUPS[1].into(),
                args.reference_replications,
                &held_ref,
                ref_reps,
            ),
        ];
        let partial = super::shard::partial("validate", settings, s, groups)?;
        super::shard::write(&partial, &args.out)?;
        if !args.quiet {
            crate::say!(
                "[relcap] shard {s}: {} and reference {}, {ran}; partial result written to {}",
                super::shard::describe_held(&held, args.replications),
                super::shard::describe_held(&held_ref, args.reference_replications),
                args.out.display()
            );
        }
        return Ok(());
    }
    write_outputs(&settings, &reps, &ref_reps, &args.out, args.quiet)?;
    if !args.quiet {
        crate::say!("[relcap] {ran}; written to {}", args.out.display());
    }
    Ok(())
}

/// `relcap validate merge`: the partial results of one sharded run combined into the files an
/// unsharded run writes.
pub fn merge(out: &Path, partials: &[PathBuf], quiet: bool) -> Result<()> {
    let start = Instant::now();
    let (settings, groups) = super::shard::read_all::<ValidateSettings>(partials, "validate")?;
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    if names != GROUPS {
        bail!("the partial results hold the groups {names:?}, not {GROUPS:?}");
    }
    check_design(&settings.design)?;
    let mut groups = groups.into_iter().map(|g| g.results);
    let (reps, ref_reps) = (
        groups.next().unwrap_or_default(),
        groups.next().unwrap_or_default(),
    );
    write_outputs(&settings, &reps, &ref_reps, out, quiet)?;
    if !quiet {
        crate::say!(
            "[relcap] {} partial results merged ({} replications) in {:.1} s; written to {}",
            partials.len(),
            reps.len() + ref_reps.len(),
            start.elapsed().as_secs_f64(),
            out.display()
        );
    }
    Ok(())
}

/// validate.json and replications.csv from all replications (in replication order), and the
/// tables on stderr unless `quiet`.
fn write_outputs(
    settings: &ValidateSettings,
    reps: &[Replication],
    ref_reps: &[Replication],
    out: &Path,
    quiet: bool,
) -> Result<()> {
    let design = &settings.design;
    let reference_design = settings.reference_design()?;
    let refs = references(ref_reps);
    let alpha = settings.model.alpha;
    let level = 1.0 - alpha;
    let hyps = summarize(reps, level, design.no_control, &refs);
    let h3_models = super::h3_models::summarize(reps, alpha);
    let meta = super::meta_coverage::summarize(reps, level, design.no_control);
    let errors: Vec<String> = reps
        .iter()
        .chain(ref_reps)
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("replication {}: {e}", r.index))
        })
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let summary = Summary {
        replications: settings.replications,
        failed: errors.len(),
        errors: errors.clone(),
        seed: settings.seed,
        conf_level: level,
        reference_scale: settings.reference_scale,
        design,
        reference_design: reference_design.as_ref(),
        reference_replications: settings.reference_replications,
        references: refs.clone(),
        hypotheses: hyps.clone(),
        h3_models: h3_models.clone(),
        meta_analysis: meta.clone(),
    };
    crate::io::write_json(&summary, &out.join("validate.json"))?;
    write_replications(&out.join("replications.csv"), reps, design.no_control)?;
    super::h3_models::write_csv(&out.join("h3_models.csv"), reps)?;
    if !quiet {
        for r in &refs {
            crate::say!(
                "{:<4} large-sample reference ({} replications x{} municipalities): mean estimate {:.4} (MC SE {:.4}), mean SE {:.4}",
                r.hypothesis, r.n, settings.reference_scale, r.mean_estimate, r.mc_se, r.mean_std_error
            );
        }
        crate::console::err(format_args!("{}", table(&hyps, level)));
        crate::console::err(format_args!(
            "{}",
            super::h3_models::table(&h3_models, alpha)
        ));
        crate::console::err(format_args!(
            "{}",
            super::meta_coverage::table(&meta, level)
        ));
        for e in errors.iter().take(5) {
            crate::say!("[relcap] {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::TruthFacts;
    use super::*;

    fn rep(i: usize, est: f64, se: f64) -> Replication {
        Replication {
            index: i,
            seed: i as u64,
            primaries: vec![Primary {
                hypothesis: "H3".into(),
                estimate: Some(est),
                std_error: Some(se),
                conf_low: Some(est - 1.96 * se),
                conf_high: Some(est + 1.96 * se),
                p_value: Some(0.01),
                p_adjusted: Some(0.02),
                supported: Some(est > 0.1),
                n_obs: Some(100),
            }],
            municipal: vec![],
            truth: TruthFacts {
                h3: 0.2,
                ..TruthFacts::default()
            },
            error: None,
            h3_models: vec![],
        }
    }

    #[test]
    fn recovery_figures_by_hand() {
        // Estimates 0.1, 0.2, 0.3, 0.4 with SE 0.1: bias 0.05, RMSE sqrt((.01+0+.01+.04)/4).
        let reps: Vec<Replication> = [0.1, 0.2, 0.3, 0.4]
            .iter()
            .enumerate()
            .map(|(i, &e)| rep(i, e, 0.1))
            .collect();
        let h = summarize(&reps, 0.95, false, &[]);
        assert_eq!(h.len(), 1);
        let t = &h[0].targets[0];
        assert!((t.bias - 0.05).abs() < 1e-12);
        assert!((t.rmse - (0.06f64 / 4.0).sqrt()).abs() < 1e-12);
        // Intervals e ± 0.196 cover 0.2 except [0.204, 0.596].
        assert_eq!(t.coverage, 0.75);
        assert!((t.coverage_mc_se - (0.75f64 * 0.25 / 4.0).sqrt()).abs() < 1e-15);
        assert_eq!(h[0].power, 0.75);
        assert!((h[0].sd_estimate - (0.05f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(h[0].targets[2].target, "mean_estimate");
        assert!((h[0].targets[2].mean_target - 0.25).abs() < 1e-12);
    }
}
