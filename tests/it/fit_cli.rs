//! `relcap fit` driven as an analyst would: a CSV or Parquet file and a formula in, a summary or
//! JSON out. Expected values are R's (lme4/lmerTest and lm + sandwich::vcovCL), from the fixtures
//! the statistics engine's tests use (`pipeline/stats/tests/fixtures/{lmm,fit}.json`, made by the
//! R scripts beside them).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{ok, read_json, relcap, repo};

fn fixture(name: &str) -> Value {
    read_json(&repo().join("pipeline/stats/tests/fixtures").join(name))
}

/// Writes dataset `name` of lmm.json as a CSV file (NA as empty cells).
fn write_csv(dir: &Path, name: &str) -> PathBuf {
    let fx = fixture("lmm.json");
    let ds = fx["datasets"][name].as_object().unwrap();
    let cols: Vec<&String> = ds.keys().collect();
    let n = ds[cols[0]].as_array().unwrap().len();
    let mut text = cols
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for i in 0..n {
        let row: Vec<String> = cols
            .iter()
            .map(|c| match &ds[*c][i] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .collect();
        text += &(row.join(",") + "\n");
    }
    let p = dir.join(format!("{name}.csv"));
    std::fs::write(&p, text).unwrap();
    p
}

fn fit_json(data: &Path, extra: &[&str]) -> Value {
    let out = relcap()
        .arg("fit")
        .arg("--data")
        .arg(data)
        .args(extra)
        .args(["--format", "json"])
        .output()
        .unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn mixed_model_on_csv_matches_lmertest() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "sleepstudy");
    // Subject ids are numbers in the file; a grouping column is a factor whatever its type.
    let got = fit_json(&csv, &["--formula", "Reaction ~ Days + (1 | Subject)"]);
    let fx = fixture("lmm.json");
    let case = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sleepstudy_reml")
        .unwrap();
    assert_eq!(got["method"], "reml");
    assert_eq!(got["n_obs"], 180);
    for (g, r) in got["coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["coefficients"].as_array().unwrap())
    {
        assert_eq!(g["term"], r["term"]);
        for (k, tol) in [
            ("estimate", 1e-6),
            ("std_error", 1e-6),
            ("df", 1e-4),
            ("statistic", 1e-6),
        ] {
            let (a, b) = (g[k].as_f64().unwrap(), r[k].as_f64().unwrap());
            assert!(close(a, b, tol), "{k} of {}: {a} vs R {b}", g["term"]);
        }
    }
    let ll = got["fit"]["log_likelihood"].as_f64().unwrap();
    assert!(close(ll, case["log_likelihood"].as_f64().unwrap(), 1e-6));
    assert_eq!(got["n_groups"]["Subject"], 18);
}

#[test]
fn cluster_robust_ols_on_parquet_matches_sandwich() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "unbalanced");
    // Round-trip through Parquet so both readers are exercised.
    let df = relcap::fit::read_table(&csv).unwrap();
    let pq = dir.path().join("unbalanced.parquet");
    relcap::io::write_parquet(
        &mut df.clone(),
        &pq,
        &relcap::io::ParquetMeta::stage("test"),
    )
    .unwrap();
    let fx = fixture("fit.json");
    let got = fit_json(
        &pq,
        &[
            "--formula",
            fx["formula"].as_str().unwrap(),
            "--cluster",
            "unit",
        ],
    );
    assert_eq!(got["n_obs"], fx["n_obs"]);
    assert_eq!(got["n_dropped"], fx["n_dropped"]);
    let coefs = got["coefficients"].as_array().unwrap();
    for (i, c) in coefs.iter().enumerate() {
        assert_eq!(c["term"], fx["terms"][i]);
        let (e, se) = (
            c["estimate"].as_f64().unwrap(),
            c["std_error"].as_f64().unwrap(),
        );
        assert!(
            close(e, fx["estimate"][i].as_f64().unwrap(), 1e-8),
            "estimate {i}"
        );
        assert!(
            close(se, fx["se_cr1"][i].as_f64().unwrap(), 1e-8),
            "CR1 se {i}"
        );
    }
    assert!(close(
        got["fit"]["r_squared"].as_f64().unwrap(),
        fx["r_squared"].as_f64().unwrap(),
        1e-8
    ));
}

#[test]
fn table_output_reads_like_r() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "sleepstudy");
    let out = relcap()
        .args(["fit", "--formula", "Reaction ~ Days"])
        .arg("--data")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("(Intercept)") && text.contains("Days"),
        "{text}"
    );
}

#[test]
fn missing_column_and_bad_formula_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "sleepstudy");
    for (formula, needle) in [
        ("Reaction ~ Nights", "Nights"),
        ("Reaction ~ (Days | Subject)", "random"),
        ("Reaction ~ ", "formula"),
    ] {
        let out = relcap()
            .args(["fit", "--formula", formula])
            .arg("--data")
            .arg(&csv)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{formula} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{formula}: {err}"
        );
    }
}
