//! The coverage of the meta-analytic interval in `relcap validate`: for each replication and
//! hypothesis, the per-municipality estimates of the primary term (and their standard errors,
//! from `results.json`) are combined by REML random-effects meta-analysis with each inference
//! the model stage offers (`z`, `knha`, `adhoc`), through the statistics engine, exactly as the
//! model stage would with that `model.meta.test`; the share of replications whose interval
//! covers the target is reported with its Monte Carlo SE, beside the mean interval width.
//!
//! Targets are those of the pooled estimate (`validate::targets`): the simulated effect, which
//! with `--effect-sd-hK` is the mean of the municipalities' effects (the quantity a random-
//! effects meta-analysis estimates), and the model's estimand (H1 and H2 attenuated by the
//! measurement error of their predictors, H3 unbiased).

use serde::Serialize;

use super::{validate, Replication};
use crate::stats::meta::{rma_with, MetaTest, TauMethod};

/// One hypothesis's per-municipality primary estimates in one replication.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MunicipalEstimates {
    pub hypothesis: String,
    pub estimate: Vec<f64>,
    pub std_error: Vec<f64>,
}

/// The per-municipality primary estimates of each hypothesis in `results.json` (rows with
/// `primary` true whose scope is a municipality), hypotheses in order H1, H2, H3.
pub fn municipal_estimates(results: &serde_json::Value) -> Vec<MunicipalEstimates> {
    let rows = results["results"].as_array().cloned().unwrap_or_default();
    ["H1", "H2", "H3"]
        .iter()
        .map(|h| {
            let mut m = MunicipalEstimates {
                hypothesis: h.to_string(),
                estimate: vec![],
                std_error: vec![],
            };
            for r in &rows {
                let scope = r["scope"].as_str().unwrap_or("");
                if r["hypothesis"] != *h
                    || r["primary"] != true
                    || scope == crate::stages::model::POOLED
                    || scope.starts_with("meta_")
                {
                    continue;
                }
                if let (Some(e), Some(s)) = (r["estimate"].as_f64(), r["std_error"].as_f64()) {
                    m.estimate.push(e);
                    m.std_error.push(s);
                }
            }
            m
        })
        .collect()
}

/// Coverage of one inference's interval for one hypothesis and target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetaCoverage {
    pub hypothesis: String,
    /// τ² estimator (REML).
    pub method: String,
    /// `z`, `knha` or `adhoc`.
    pub test: String,
    /// `simulated_effect` or `model_estimand`.
    pub target: String,
    /// Replications with a meta-analysis (at least two municipal estimates).
    pub n: usize,
    /// Municipalities per meta-analysis (mean over replications).
    pub mean_k: f64,
    pub mean_target: f64,
    pub coverage: f64,
    pub coverage_mc_se: f64,
    /// |coverage − nominal| ≤ 1.96 × the nominal binomial SE.
    pub coverage_within_mc_error: bool,
    pub mean_width: f64,
    /// Share of replications whose test rejects μ = 0 at 1 − level.
    pub rejection: f64,
}

const TESTS: [(MetaTest, &str); 3] = [
    (MetaTest::Z, "z"),
    (MetaTest::Knha, "knha"),
    (MetaTest::Adhoc, "adhoc"),
];

/// The coverage table over the replications: hypothesis × target × test.
pub fn summarize(reps: &[Replication], level: f64, no_control: bool) -> Vec<MetaCoverage> {
    let mut out = vec![];
    for h in ["H1", "H2", "H3"] {
        for (ti, target) in ["simulated_effect", "model_estimand"].iter().enumerate() {
            for (test, name) in TESTS {
                // (covered, width, rejected, k, target) per replication.
                let mut rows: Vec<(bool, f64, bool, usize, f64)> = vec![];
                for r in reps {
                    let Some(m) = r.municipal.iter().find(|m| m.hypothesis == h) else {
                        continue;
                    };
                    let Some(t) = validate::targets(h, r, no_control) else {
                        continue;
                    };
                    let theta = if ti == 0 { t.0 } else { t.1 };
                    let vi: Vec<f64> = m.std_error.iter().map(|s| s * s).collect();
                    let Ok(f) = rma_with(&m.estimate, &vi, TauMethod::Reml, level, test) else {
                        continue;
                    };
                    rows.push((
                        f.conf_low <= theta && theta <= f.conf_high,
                        f.conf_high - f.conf_low,
                        f.p_value < 1.0 - level,
                        f.k,
                        theta,
                    ));
                }
                if rows.len() < 2 {
                    continue;
                }
                let n = rows.len() as f64;
                let share = |f: fn(&(bool, f64, bool, usize, f64)) -> bool| {
                    rows.iter().filter(|r| f(r)).count() as f64 / n
                };
                let mean = |f: fn(&(bool, f64, bool, usize, f64)) -> f64| {
                    rows.iter().map(f).sum::<f64>() / n
                };
                let coverage = share(|r| r.0);
                out.push(MetaCoverage {
                    hypothesis: h.into(),
                    method: "reml".into(),
                    test: name.into(),
                    target: target.to_string(),
                    n: rows.len(),
                    mean_k: mean(|r| r.3 as f64),
                    mean_target: mean(|r| r.4),
                    coverage,
                    coverage_mc_se: (coverage * (1.0 - coverage) / n).sqrt(),
                    coverage_within_mc_error: (coverage - level).abs()
                        <= 1.96 * (level * (1.0 - level) / n).sqrt(),
                    mean_width: mean(|r| r.1),
                    rejection: share(|r| r.2),
                });
            }
        }
    }
    out
}

/// The coverage table as text.
pub fn table(rows: &[MetaCoverage], level: f64) -> String {
    let mut s = format!(
        "meta-analysis (REML) of the municipalities' estimates, {:.0}% intervals:\n{:<4} {:<17} {:<6} {:>5} {:>9} {:>10} {:>8} {:>9} {:>9}\n",
        level * 100.0,
        "hyp",
        "target",
        "test",
        "k",
        "target",
        "coverage",
        "mc_se",
        "width",
        "reject"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<4} {:<17} {:<6} {:>5.1} {:>9.4} {:>10.3} {:>8.3} {:>9.4} {:>9.3}{}\n",
            r.hypothesis,
            r.target,
            r.test,
            r.mean_k,
            r.mean_target,
            r.coverage,
            r.coverage_mc_se,
            r.mean_width,
            r.rejection,
            if r.coverage_within_mc_error {
                ""
            } else {
                "  *"
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::{Primary, TruthFacts};
    use super::*;

    fn rep(i: usize, yi: Vec<f64>) -> Replication {
        Replication {
            index: i,
            seed: i as u64,
            primaries: vec![Primary {
                hypothesis: "H3".into(),
                estimate: Some(0.2),
                std_error: Some(0.05),
                conf_low: Some(0.1),
                conf_high: Some(0.3),
                p_value: Some(0.01),
                p_adjusted: Some(0.02),
                supported: Some(true),
                n_obs: Some(100),
            }],
            municipal: vec![MunicipalEstimates {
                hypothesis: "H3".into(),
                std_error: vec![0.1; yi.len()],
                estimate: yi,
            }],
            truth: TruthFacts {
                h3: 0.2,
                ..TruthFacts::default()
            },
            error: None,
            h3_models: vec![],
        }
    }

    #[test]
    fn coverage_counts_the_engine_intervals() {
        let sets = [
            vec![0.1, 0.3, 0.2, 0.25, 0.15],
            vec![0.6, 0.7, 0.65, 0.8, 0.75],
            vec![-0.2, 0.5, 0.1, 0.4, 0.3],
        ];
        let reps: Vec<Replication> = sets
            .iter()
            .enumerate()
            .map(|(i, y)| rep(i, y.clone()))
            .collect();
        let rows = summarize(&reps, 0.95, false);
        // H3 only (the others have no estimates), two targets × three tests.
        assert_eq!(rows.len(), 6);
        for r in &rows {
            let mut covered = 0;
            for y in &sets {
                let test = TESTS.iter().find(|t| t.1 == r.test).unwrap().0;
                let f = rma_with(y, &[0.01; 5], TauMethod::Reml, 0.95, test).unwrap();
                covered += usize::from(f.conf_low <= 0.2 && 0.2 <= f.conf_high);
            }
            assert_eq!(r.coverage, covered as f64 / 3.0, "{}", r.test);
            assert_eq!(r.mean_k, 5.0);
        }
        // The second set sits far above 0.2: no interval covers it.
        assert!(rows.iter().all(|r| r.coverage <= 2.0 / 3.0));
    }

    #[test]
    fn municipal_estimates_are_the_primary_municipality_rows() {
        let v = serde_json::json!({"results": [
            {"hypothesis": "H1", "scope": "pooled", "primary": true, "estimate": 1.0, "std_error": 0.1},
            {"hypothesis": "H1", "scope": "Aby", "primary": true, "estimate": 2.0, "std_error": 0.2},
            {"hypothesis": "H1", "scope": "Aby", "primary": false, "estimate": 9.0, "std_error": 0.9},
            {"hypothesis": "H1", "scope": "meta_reml", "primary": true, "estimate": 3.0, "std_error": 0.3},
            {"hypothesis": "H1", "scope": "Bby", "primary": true, "estimate": 4.0, "std_error": null}
        ]});
        let m = municipal_estimates(&v);
        assert_eq!(m[0].estimate, vec![2.0]);
        assert_eq!(m[0].std_error, vec![0.2]);
        assert!(m[1].estimate.is_empty() && m[2].estimate.is_empty());
    }
}
