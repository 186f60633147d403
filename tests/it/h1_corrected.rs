//! H1 corrected for measurement error against R, on the demo study.
//!
//! `tests/fixtures/h1_corrected/check.R` computes, from the demo's between-group tie scores and
//! its H1 model sample (`ties.csv`, `h1_cases.csv`, written by `write_inputs.py` from a run
//! through `link`), every dyad's variance, the shared-rater covariance of each municipality and
//! wave, each case's error variance, the cross-wave covariances of one rater's deviations (same
//! target, two targets) per municipality and pair of waves, and per scope the full covariance
//! matrix of the cases' errors (with the blocks of two waves of a municipality), tr(MΣ) with M
//! from `model.matrix`, λ and the corrected slope. The demo runs through
//! `model` and its `score/dyad_errors`, `link/h1_cases` and `model/h1_reliability` are compared
//! with R to 1e-10 relative. The bootstrap (its own seeded generator) has no outside reference;
//! it is checked to give the same bytes twice.

use std::collections::BTreeMap;

use relcap::stats::prec::rel_err;
use serde_json::Value;

use crate::common::{floats, ints, ok, read, read_json, relcap, repo, strs};

const TOL: f64 = 1e-10;

fn close(what: &str, got: Option<f64>, want: &Value) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: R has no number"));
    let got = got.unwrap_or_else(|| panic!("{what}: relcap has no value"));
    assert!(
        rel_err(got, want) < TOL,
        "{what}: relcap {got}, R {want} (relative error {})",
        rel_err(got, want)
    );
}

#[test]
fn matches_r_on_the_demo_and_is_reproducible() {
    let expected = read_json(&repo().join("tests/fixtures/h1_corrected/expected.json"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    ok(&relcap()
        .args(["run", "-q", "--until", "model", "--config"])
        .arg(repo().join("config/study.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());

    // Pooled variance and shared covariance per municipality and wave (dyad and pair rows),
    // the cross-wave covariances per municipality, pair of waves and kind (cross-wave rows).
    let de = read(&out, "score", "dyad_errors");
    let mut cells: BTreeMap<(String, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
    type CrossKey = (i64, i64, String, bool);
    let mut cross: BTreeMap<CrossKey, (Option<f64>, Option<i64>)> = BTreeMap::new();
    let (targets, others) = (strs(&de, "target_group"), strs(&de, "other_group"));
    for (k, ((((w, ow), m), p), (s, n))) in ints(&de, "wave")
        .into_iter()
        .zip(ints(&de, "other_wave"))
        .zip(strs(&de, "municipality"))
        .zip(floats(&de, "pooled_var"))
        .zip(
            floats(&de, "shared_cov")
                .into_iter()
                .zip(ints(&de, "shared_pairs")),
        )
        .enumerate()
    {
        match ow {
            None => {
                cells.insert((w.unwrap().to_string(), m.unwrap()), (p, s));
            }
            Some(ow) => {
                let same = targets[k] == others[k];
                cross.insert((w.unwrap(), ow, m.unwrap(), same), (s, n));
            }
        }
    }
    let r_cross = expected["cross_waves"].as_array().unwrap();
    assert_eq!(r_cross.len() * 2, cross.len());
    for c in r_cross {
        for (same, est, pairs) in [
            (true, "same_target", "same_pairs"),
            (false, "other_target", "other_pairs"),
        ] {
            let key = (
                c["wave"].as_i64().unwrap(),
                c["other_wave"].as_i64().unwrap(),
                c["municipality"].as_str().unwrap().to_string(),
                same,
            );
            let (s, n) = cross[&key];
            close(&format!("cross-wave {est} {key:?}"), s, &c[est]);
            assert_eq!(n, c[pairs].as_i64(), "{pairs} {key:?}");
        }
    }
    let r_cells = expected["cells"].as_array().unwrap();
    assert_eq!(r_cells.len(), cells.len());
    for c in r_cells {
        let key = (
            c["wave"].to_string(),
            c["municipality"].as_str().unwrap().to_string(),
        );
        let (p, s) = cells[&key];
        close(&format!("pooled_var {key:?}"), p, &c["pooled_var"]);
        close(&format!("shared_cov {key:?}"), s, &c["shared_cov"]);
    }

    // Each case's error variance, in the model sample's order (wave, case_id).
    let h1 = read(&out, "link", "h1_cases");
    let excl = strs(&h1, "exclusion");
    let var: Vec<Option<f64>> = floats(&h1, "case_rcap_error_var")
        .into_iter()
        .zip(&excl)
        .filter(|(_, e)| e.is_none())
        .map(|(v, _)| v)
        .collect();
    let r_var = expected["case_error_var"].as_array().unwrap();
    assert_eq!(var.len(), r_var.len());
    for (i, (v, r)) in var.iter().zip(r_var).enumerate() {
        close(&format!("case {i} error variance"), *v, r);
    }

    // λ, the naive and the corrected slope per scope.
    let rel = read(&out, "model", "h1_reliability");
    let scopes = strs(&rel, "scope");
    assert_eq!(scopes.len(), expected["scopes"].as_object().unwrap().len());
    for (k, scope) in scopes.iter().enumerate() {
        let scope = scope.as_deref().unwrap();
        let r = &expected["scopes"][scope];
        for (col, key) in [
            ("naive", "naive"),
            ("lambda", "lambda"),
            ("corrected", "corrected"),
        ] {
            close(&format!("{scope} {col}"), floats(&rel, col)[k], &r[key]);
        }
        assert_eq!(ints(&rel, "n_obs")[k], r["n"].as_i64());
    }
    // Randers' λ is below the floor: not corrected, and no h1_corrected row in results.
    let status = strs(&rel, "status");
    let results = read(&out, "model", "results");
    let corrected_scopes: Vec<String> = strs(&results, "model")
        .into_iter()
        .zip(strs(&results, "scope"))
        .filter(|(m, _)| m.as_deref() == Some("h1_corrected"))
        .map(|(_, s)| s.unwrap())
        .collect();
    for (k, scope) in scopes.iter().enumerate() {
        let scope = scope.clone().unwrap();
        let lambda = expected["scopes"][&scope]["lambda"].as_f64().unwrap();
        let corrected = status[k].as_deref() == Some("corrected");
        assert_eq!(corrected, lambda >= 0.3, "{scope}: λ {lambda}");
        assert_eq!(corrected, corrected_scopes.contains(&scope), "{scope}");
    }
    assert!(corrected_scopes.contains(&"pooled".to_string()));

    // The bootstrap is seeded: a second run of the model stage gives the same bytes.
    let first = std::fs::read(out.join("model/h1_reliability.parquet")).unwrap();
    ok(&relcap()
        .args(["run", "-q", "--only", "model", "--force", "--config"])
        .arg(repo().join("config/study.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(
        first,
        std::fs::read(out.join("model/h1_reliability.parquet")).unwrap()
    );
}
