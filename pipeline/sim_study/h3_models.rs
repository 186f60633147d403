//! `relcap validate`'s comparison of H3's models: for each pooled H3 model of results.json
//! (the primary `cluster_did`, the analysis plan's `diff_in_diff`, `cluster_did_both_waves`,
//! the event study's arm × event-time terms; without controls `pre_post` and `paired_t`), its
//! rejection rate of "no effect" at the unadjusted level α (two-sided p < α) and its bias and
//! interval coverage against the simulated effect. With no effect (`--effect-h3 0`) the
//! rejection rate is the false-positive rate, which should be α within Monte Carlo error; that
//! is where a model without the unit × period term shows its anticonservative test under
//! `--sd-unit-wave`, and a model without the arm main effect its bias under `--arm-baseline`.
//!
//! `h3_models.csv` (written beside validate.json) holds every replication's followed rows, so
//! that runs can be pooled and each replication's test checked against another implementation:
//! one row per replication and followed (model, term), in replication order and results.json's
//! row order, with the columns replication, seed, model, term, estimate, std_error, df,
//! conf_low, conf_high, p_value (empty when missing) and target (what the term estimates when
//! its model is right, below). Replications that failed have no rows (replications.csv has
//! their error).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Replication, TruthFacts};

/// One H3 model's estimate in one replication (a pooled row of results.json).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelEstimate {
    pub model: String,
    pub term: String,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    /// Degrees of freedom of the test (Satterthwaite's for the mixed models).
    #[serde(default)]
    pub df: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub p_value: Option<f64>,
}

/// Whether a pooled H3 results row is one the comparison follows.
fn followed(model: &str, term: &str) -> bool {
    match term {
        "post:intervention" => true,
        "post" => model == "pre_post" || model == "paired_t",
        t => crate::stages::model::term_event_time(t).is_some(),
    }
}

/// The followed pooled H3 rows of a results.json, in its row order.
pub fn from_results(results: &Value) -> Vec<ModelEstimate> {
    let num = |r: &Value, k: &str| r[k].as_f64();
    results["results"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["hypothesis"] == "H3" && r["scope"] == "pooled")
                .filter_map(|r| {
                    let (model, term) = (r["model"].as_str()?, r["term"].as_str()?);
                    followed(model, term).then(|| ModelEstimate {
                        model: model.into(),
                        term: term.into(),
                        estimate: num(r, "estimate"),
                        std_error: num(r, "std_error"),
                        df: num(r, "df"),
                        conf_low: num(r, "conf_low"),
                        conf_high: num(r, "conf_high"),
                        p_value: num(r, "p_value"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The effect a followed term estimates when its model is right: h3 for the difference in
/// differences and the post-period event terms (the simulated effect persists), 0 for a
/// pre-period term, h3 + the wave trend for the pre/post change without controls.
fn target(e: &ModelEstimate, t: &TruthFacts) -> f64 {
    match crate::stages::model::term_event_time(&e.term) {
        Some(k) if k < 0 => 0.0,
        Some(_) => t.h3,
        None if e.term == "post" => t.h3 + t.wave_trend,
        None => t.h3,
    }
}

/// Writes `h3_models.csv` (see the module doc).
pub fn write_csv(path: &Path, reps: &[Replication]) -> Result<()> {
    let num = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    crate::io::write_atomic(path, |w| {
        writeln!(
            w,
            "replication,seed,model,term,estimate,std_error,df,conf_low,conf_high,p_value,target"
        )?;
        for r in reps.iter().filter(|r| r.error.is_none()) {
            for e in &r.h3_models {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    r.index,
                    r.seed,
                    e.model,
                    e.term,
                    num(e.estimate),
                    num(e.std_error),
                    num(e.df),
                    num(e.conf_low),
                    num(e.conf_high),
                    num(e.p_value),
                    target(e, &r.truth)
                )?;
            }
        }
        Ok(())
    })
}

/// One H3 model's figures over the replications.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelRecovery {
    pub model: String,
    pub term: String,
    /// Replications with an estimate, a p-value and an interval.
    pub n: usize,
    pub mean_target: f64,
    pub mean_estimate: f64,
    pub bias: f64,
    pub bias_mc_se: f64,
    pub sd_estimate: f64,
    pub mean_std_error: f64,
    /// Share with two-sided p < alpha (unadjusted), and its Monte Carlo SE.
    pub rejection_rate: f64,
    pub rejection_mc_se: f64,
    /// Share of intervals covering the target.
    pub coverage: f64,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn sd(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt()
}

/// The figures of every followed (model, term), in the order of the first replication that has
/// them; those with fewer than two usable replications are left out.
pub fn summarize(reps: &[Replication], alpha: f64) -> Vec<ModelRecovery> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in reps {
        for e in &r.h3_models {
            let k = (e.model.clone(), e.term.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let mut out = Vec::new();
    for (model, term) in keys {
        // (estimate, SE, p, low, high, target)
        let rows: Vec<[f64; 6]> = reps
            .iter()
            .filter(|r| r.error.is_none())
            .filter_map(|r| {
                let e = r
                    .h3_models
                    .iter()
                    .find(|e| e.model == model && e.term == term)?;
                Some([
                    e.estimate?,
                    e.std_error?,
                    e.p_value?,
                    e.conf_low?,
                    e.conf_high?,
                    target(e, &r.truth),
                ])
            })
            .collect();
        if rows.len() < 2 {
            continue;
        }
        let n = rows.len() as f64;
        let est: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        let err: Vec<f64> = rows.iter().map(|r| r[0] - r[5]).collect();
        let rejected = rows.iter().filter(|r| r[2] < alpha).count() as f64 / n;
        out.push(ModelRecovery {
            model,
            term,
            n: rows.len(),
            mean_target: mean(&rows.iter().map(|r| r[5]).collect::<Vec<_>>()),
            mean_estimate: mean(&est),
            bias: mean(&err),
            bias_mc_se: sd(&err) / n.sqrt(),
            sd_estimate: sd(&est),
            mean_std_error: mean(&rows.iter().map(|r| r[1]).collect::<Vec<_>>()),
            rejection_rate: rejected,
            rejection_mc_se: (rejected * (1.0 - rejected) / n).sqrt(),
            coverage: rows.iter().filter(|r| r[3] <= r[5] && r[5] <= r[4]).count() as f64 / n,
        });
    }
    out
}

/// The comparison as a text table.
pub fn table(rows: &[ModelRecovery], alpha: f64) -> String {
    let mut s = format!(
        "H3 models: {:<24} {:<18} {:>5} {:>8} {:>8} {:>7} {:>9} {:>7} {:>8}\n",
        "model",
        "term",
        "n",
        "target",
        "bias",
        "mc_se",
        format!("p<{alpha}"),
        "mc_se",
        "coverage"
    );
    for r in rows {
        s.push_str(&format!(
            "H3 models: {:<24} {:<18} {:>5} {:>8.4} {:>8.4} {:>7.4} {:>9.3} {:>7.3} {:>8.3}\n",
            r.model,
            r.term,
            r.n,
            r.mean_target,
            r.bias,
            r.bias_mc_se,
            r.rejection_rate,
            r.rejection_mc_se,
            r.coverage
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(i: usize, rows: &[(&str, &str, f64, f64)], h3: f64) -> Replication {
        Replication {
            index: i,
            seed: i as u64,
            primaries: vec![],
            municipal: vec![],
            truth: TruthFacts {
                h3,
                wave_trend: 0.05,
                ..TruthFacts::default()
            },
            error: None,
            h3_models: rows
                .iter()
                .map(|&(m, t, est, p)| ModelEstimate {
                    model: m.into(),
                    term: t.into(),
                    estimate: Some(est),
                    std_error: Some(0.1),
                    df: Some(40.0),
                    conf_low: Some(est - 0.2),
                    conf_high: Some(est + 0.2),
                    p_value: Some(p),
                })
                .collect(),
        }
    }

    #[test]
    fn rejection_rates_bias_and_targets_by_hand() {
        let reps = vec![
            rep(
                0,
                &[
                    ("a", "post:intervention", 0.1, 0.01),
                    ("b", "arm_pre1", 0.3, 0.2),
                ],
                0.0,
            ),
            rep(
                1,
                &[
                    ("a", "post:intervention", -0.3, 0.04),
                    ("b", "arm_pre1", 0.1, 0.5),
                ],
                0.0,
            ),
            rep(
                2,
                &[
                    ("a", "post:intervention", 0.0, 0.5),
                    ("b", "arm_pre1", 0.2, 0.01),
                ],
                0.0,
            ),
            rep(
                3,
                &[
                    ("a", "post:intervention", 0.4, 0.9),
                    ("c", "post", 0.1, 0.3),
                ],
                0.0,
            ),
        ];
        let s = summarize(&reps, 0.05);
        assert_eq!(s.len(), 2, "c has one replication only");
        let a = &s[0];
        assert_eq!((a.model.as_str(), a.n), ("a", 4));
        assert_eq!(a.rejection_rate, 0.5);
        assert!((a.bias - 0.05).abs() < 1e-12);
        // Intervals e ± 0.2 cover 0 except for -0.3 and 0.4.
        assert_eq!(a.coverage, 0.5);
        let b = &s[1];
        assert_eq!((b.n, b.mean_target), (3, 0.0));
        assert!((b.rejection_rate - 1.0 / 3.0).abs() < 1e-12);
        // pre/post targets h3 + wave trend; event terms after the intervention h3.
        let e = |t: &str| ModelEstimate {
            model: "m".into(),
            term: t.into(),
            estimate: None,
            std_error: None,
            df: None,
            conf_low: None,
            conf_high: None,
            p_value: None,
        };
        let t = TruthFacts {
            h3: 0.2,
            wave_trend: 0.05,
            ..TruthFacts::default()
        };
        assert_eq!(target(&e("post"), &t), 0.25);
        assert_eq!(target(&e("arm_post2"), &t), 0.2);
        assert_eq!(target(&e("arm_pre1"), &t), 0.0);
    }

    #[test]
    fn followed_rows_of_a_results_json() {
        let v = serde_json::json!({"results": [
            {"hypothesis": "H3", "scope": "pooled", "model": "cluster_did", "term": "post", "estimate": 1.0},
            {"hypothesis": "H3", "scope": "pooled", "model": "cluster_did", "term": "post:intervention", "estimate": 0.2, "df": 39.8, "p_value": 0.01},
            {"hypothesis": "H3", "scope": "Aby", "model": "cluster_did", "term": "post:intervention", "estimate": 0.3},
            {"hypothesis": "H3", "scope": "pooled", "model": "event_study", "term": "arm_post1", "estimate": 0.1},
            {"hypothesis": "H3", "scope": "pooled", "model": "pre_post", "term": "post", "estimate": 0.4},
            {"hypothesis": "H2", "scope": "pooled", "model": "x", "term": "post:intervention", "estimate": 9.0},
        ]});
        assert_eq!(from_results(&v)[0].df, Some(39.8));
        let got: Vec<(String, String)> = from_results(&v)
            .into_iter()
            .map(|e| (e.model, e.term))
            .collect();
        let want = [
            ("cluster_did", "post:intervention"),
            ("event_study", "arm_post1"),
            ("pre_post", "post"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
    }

    #[test]
    fn the_csv_has_a_row_per_replication_and_followed_term() {
        let mut reps = vec![
            rep(
                0,
                &[
                    ("cluster_did", "post:intervention", 0.25, 0.01),
                    ("event_study", "arm_pre1", -0.5, 0.2),
                ],
                0.2,
            ),
            rep(1, &[("cluster_did", "post:intervention", 0.1, 0.3)], 0.2),
        ];
        reps[1].h3_models[0].p_value = None;
        let mut failed = rep(2, &[("cluster_did", "post:intervention", 9.0, 0.0)], 0.2);
        failed.error = Some("boom".into());
        reps.push(failed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h3_models.csv");
        write_csv(&path, &reps).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "replication,seed,model,term,estimate,std_error,df,conf_low,conf_high,p_value,target\n\
             0,0,cluster_did,post:intervention,0.25,0.1,40,0.04999999999999999,0.45,0.01,0.2\n\
             0,0,event_study,arm_pre1,-0.5,0.1,40,-0.7,-0.3,0.2,0\n\
             1,1,cluster_did,post:intervention,0.1,0.1,40,-0.1,0.30000000000000004,,0.2\n"
        );
    }
}
