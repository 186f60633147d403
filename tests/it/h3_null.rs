//! The primary H3 model (`cluster_did`) on null replications of `relcap validate` with a unit ×
//! wave SD of 0.15: three replications rebuilt with validate's seeds and design
//! (`tests/fixtures/h3_null/`: `write_inputs.sh` writes them, `check.R` fits them with
//! lme4/lmerTest and pbkrtest into `expected.json`). `relcap fit` on each equals R: every fixed
//! effect's estimate (relative to its size or its SE, whichever is larger), t (relative to
//! its size or 1), SE within 1e-6, Satterthwaite df within 1e-5, p within 1e-5 (where above 1e-6), the variance
//! components (a small one on the scale of the total variance, as in `model::`) and the REML
//! log-likelihood within 1e-6. The demo study's estimated unit × period
//! SD is 0.06; these replications' are 0.12–0.20, so the term that makes H3 a cluster-level test
//! carries its weight here. (The same comparison over 200 replications, with Kenward–Roger, is
//! `null_replications.csv` beside them; docs/methods.md, "H3", reads it.)

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{ok, read_json, relcap, repo};

fn folder() -> PathBuf {
    repo().join("tests/fixtures/h3_null")
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn the_fixture_replications_are_validates() {
    // write_inputs.sh spells out validate's seed mixing in Python: the seeds it recorded must be
    // the ones `relcap validate --seed 20261124` gives its replications.
    let fx = read_json(&folder().join("expected.json"));
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let r = c["rep"].as_u64().unwrap() as usize;
        let seed: u64 = c["seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            seed,
            relcap::sim_study::replication_seed(20261124, r),
            "replication {r}"
        );
    }
}

#[test]
fn primary_h3_on_null_replications_equals_lmertest() {
    let fx = read_json(&folder().join("expected.json"));
    let formula = fx["formula"].as_str().unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let file = folder().join(case["file"].as_str().unwrap());
        let out = relcap()
            .arg("fit")
            .arg("--data")
            .arg(&file)
            .args(["--formula", formula, "--format", "json"])
            .output()
            .unwrap();
        ok(&out);
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let at = case["file"].as_str().unwrap();
        assert_eq!(got["method"], "reml", "{at}");
        assert_eq!(got["n_obs"], case["n_obs"], "{at}");
        let ours = got["coefficients"].as_array().unwrap();
        let theirs = case["coefficients"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{at}: number of coefficients");
        for (g, r) in ours.iter().zip(theirs) {
            assert_eq!(g["term"], r["term"], "{at}");
            let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
            // An estimate near 0 is compared on the scale of its standard error.
            let scale = f(r, "estimate").abs().max(f(r, "std_error"));
            let e = (f(g, "estimate") - f(r, "estimate")).abs() / scale;
            assert!(e <= 1e-6, "{at} {} estimate: rel. error {e:e}", g["term"]);
            let t =
                (f(g, "statistic") - f(r, "statistic")).abs() / f(r, "statistic").abs().max(1.0);
            assert!(t <= 1e-6, "{at} {} t: error {t:e}", g["term"]);
            for (k, tol) in [("std_error", 1e-6), ("df", 1e-5)] {
                let (a, b) = (f(g, k), f(r, k));
                assert!(
                    rel_err(a, b) <= tol,
                    "{at} {} {k}: relcap {a} vs R {b} (rel. error {:e})",
                    g["term"],
                    rel_err(a, b)
                );
            }
            // Far in the tail p moves with t^-df: compared where a test could turn on it.
            let (a, b) = (f(g, "p_value"), f(r, "p_value"));
            if b > 1e-6 {
                assert!(rel_err(a, b) <= 1e-5, "{at} {} p: {a} vs R {b}", g["term"]);
            }
        }
        let variances = case["variances"].as_object().unwrap();
        let total: f64 = variances.values().map(|v| v.as_f64().unwrap()).sum();
        let components = got["random_effects"].as_array().unwrap();
        assert_eq!(
            components.len(),
            variances.len(),
            "{at}: variance components"
        );
        for c in components {
            let group = c["group"].as_str().unwrap();
            let (a, b) = (
                c["variance"].as_f64().unwrap(),
                variances[group].as_f64().unwrap(),
            );
            // As in `model::`: a small component on the scale of the total variance, since the
            // REML criterion is flat in its direction.
            let e = (a - b).abs() / if b < 0.05 * total { total } else { b };
            assert!(e <= 1e-6, "{at} variance of {group}: relcap {a} vs R {b}");
        }
        let (a, b) = (
            got["fit"]["log_likelihood"].as_f64().unwrap(),
            case["log_likelihood"].as_f64().unwrap(),
        );
        assert!(rel_err(a, b) <= 1e-6, "{at} REML logLik: {a} vs {b}");
    }
}
