//! The model stage against R, and on simulated studies with known effects.
//!
//! - `matches_r_on_the_demo_linked_tables`: the demo study's linked tables (committed as CSV in
//!   `tests/fixtures/model_r/`, with the R script `check.R` and its output `expected.json`) are
//!   written as Parquet into a fresh output folder, `relcap run --only model` fits them, and every
//!   coefficient, SE, df, p, interval, standardized effect, variance component and meta-analysis
//!   is compared with R: 1e-8 relative for OLS, 1e-6 for mixed-model estimates and SEs (the
//!   engine's tolerances), 1e-4 for Satterthwaite df and what depends on them. `check.R` fits H1
//!   with CR1 and the meta-analyses with z tests, so this run sets `model.h1.vcov = "cr1"` and
//!   `model.meta.test = "z"`; the defaults (CR2, HKSJ) are checked by `model_small_samples`.
//!
//! When the demo study or the stages before `model` change, the CSV files are written again by
//! `scripts/write_r_inputs.sh` (the demo through `link`, then `examples/link_csv.rs`), and R
//! reruns `check.R`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use relcap::stats::prec::rel_err;
use serde_json::Value;

use crate::common::{read_json, relcap, repo, simulate};

pub(crate) fn fixture_dir() -> PathBuf {
    repo().join("tests/fixtures/model_r")
}

const LINK_TABLES: [&str; 3] = ["h1_cases", "h2_respondents", "h3_panel"];

/// Column types of the linked tables (the rest are inferred from the CSV).
fn dtypes() -> Schema {
    let mut s = Schema::default();
    for c in [
        "municipality",
        "case_id",
        "lead_unit_id",
        "unit_id",
        "respondent_id",
        "work_group",
        "work_groups",
        "arm",
        "exclusion",
    ] {
        s.with_column(c.into(), DataType::String);
    }
    for c in [
        "wave",
        "intervention",
        "post",
        "after_wave",
        "n_units",
        "n_groups",
    ] {
        s.with_column(c.into(), DataType::Int64);
    }
    for c in [
        "quality",
        "case_rcap",
        "unit_rcap_mean",
        "rcap",
        "srm",
        "srm_others",
        "srm_between",
        "srm_within",
    ] {
        s.with_column(c.into(), DataType::Float64);
    }
    s.with_column("in_both_waves".into(), DataType::Boolean);
    s
}

/// Reads a linked table written as CSV by `examples/link_csv.rs`.
fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .with_schema_overwrite(Some(std::sync::Arc::new(dtypes())))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap()
}

/// results.json rows by (hypothesis, scope, model, term): their numeric fields.
pub(crate) type Rows = BTreeMap<(String, String, String, String), BTreeMap<String, Option<f64>>>;

pub(crate) fn results_by_key(out: &Path) -> Rows {
    let v = read_json(&out.join("model/results.json"));
    let mut map = BTreeMap::new();
    for r in v["results"].as_array().unwrap() {
        let key = (
            r["hypothesis"].as_str().unwrap().to_string(),
            r["scope"].as_str().unwrap().to_string(),
            r["model"].as_str().unwrap().to_string(),
            r["term"].as_str().unwrap().to_string(),
        );
        let nums = r
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, x)| x.is_number() || x.is_null())
            .map(|(k, x)| (k.clone(), x.as_f64()))
            .collect();
        map.insert(key, nums);
    }
    map
}

pub(crate) fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "Inf" => f64::INFINITY,
        _ => f64::NAN,
    }
}

/// The demo study's config with `edits` (each `(from, to)` must occur once), written to `dir`.
pub(crate) fn demo_config_with(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("config/study.toml")).unwrap();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from} in config/study.toml");
        text = text.replace(from, to);
    }
    let path = dir.join("study.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo study's linked tables (the committed CSV files) written as Parquet into a fresh
/// output folder, and `relcap run --only model` on them with `config` (the demo's when None).
/// Returns the temporary folder and the output folder in it.
pub(crate) fn model_on_demo_tables(config: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
    let fx = fixture_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for t in LINK_TABLES {
        let mut df = read_csv(&fx.join(format!("{t}.csv")));
        relcap::io::write_parquet(
            &mut df,
            &out.join(format!("link/{t}.parquet")),
            &relcap::io::ParquetMeta::stage("link"),
        )
        .unwrap();
    }
    let mut cmd = relcap();
    cmd.current_dir(repo())
        .args(["run", "--only", "model", "-q", "--out"])
        .arg(&out)
        .arg("--data")
        .arg(tmp.path());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.assert().success();
    (tmp, out)
}

#[test]
fn matches_r_on_the_demo_linked_tables() {
    let fx = fixture_dir();
    if !fx.join("expected.json").is_file() {
        panic!(
            "{} is missing: run check.R (see its header)",
            fx.join("expected.json").display()
        );
    }
    let cfg_dir = tempfile::tempdir().unwrap();
    let config = demo_config_with(
        cfg_dir.path(),
        &[
            ("vcov = \"cr2\"", "vcov = \"cr1\""),
            ("\ntest = \"knha\"", "\ntest = \"z\""),
        ],
    );
    let (_tmp, out) = model_on_demo_tables(Some(&config));
    let ours = results_by_key(&out);
    let expected: Value = read_json(&fx.join("expected.json"));

    let mut checked = 0usize;
    let mut worst: BTreeMap<String, f64> = BTreeMap::new();
    let mut check = |what: &'static str, a: f64, b: f64, tol: f64, at: &str| {
        let e = rel_err(a, b);
        let kind = if at.starts_with("H1") { "ols" } else { "lmm" };
        let w = worst.entry(format!("{kind} {what}")).or_insert(0.0);
        *w = w.max(e);
        assert!(
            e <= tol,
            "{at} {what}: relcap {a} vs R {b} (rel. error {e:e} > {tol:e})"
        );
        checked += 1;
    };
    let models = expected["models"].as_array().unwrap();
    assert!(models.len() >= 30, "R fitted only {} models", models.len());
    for m in models {
        let (h, scope, model) = (
            m["hypothesis"].as_str().unwrap(),
            m["scope"].as_str().unwrap(),
            m["model"].as_str().unwrap(),
        );
        let ols = m["method"] == "ols";
        let (tol_b, tol_df) = if ols { (1e-8, 1e-8) } else { (1e-6, 1e-4) };
        for c in m["coefficients"].as_array().unwrap() {
            let term = c["term"].as_str().unwrap();
            let at = format!("{h} {scope} {model} {term}");
            let row = ours
                .get(&(h.into(), scope.into(), model.into(), term.into()))
                .unwrap_or_else(|| panic!("{at}: no row in results.json"));
            let g = |k: &str| row[k].unwrap_or(f64::NAN);
            check("estimate", g("estimate"), num(&c["estimate"]), tol_b, &at);
            check(
                "std_error",
                g("std_error"),
                num(&c["std_error"]),
                tol_b,
                &at,
            );
            check(
                "statistic",
                g("statistic"),
                num(&c["statistic"]),
                tol_b,
                &at,
            );
            check("df", g("df"), num(&c["df"]), tol_df, &at);
            // p and the interval depend on the df: Satterthwaite's tolerance for mixed models.
            check("p_value", g("p_value"), num(&c["p_value"]), tol_df, &at);
            check("conf_low", g("conf_low"), num(&c["conf_low"]), tol_df, &at);
            check(
                "conf_high",
                g("conf_high"),
                num(&c["conf_high"]),
                tol_df,
                &at,
            );
            check(
                "std_estimate",
                g("std_estimate"),
                num(&c["std_estimate"]),
                tol_b,
                &at,
            );
            assert_eq!(g("n_obs"), num(&m["n_obs"]), "{at} n_obs");
            assert_eq!(g("n_groups"), num(&m["n_groups"]), "{at} n_groups");
        }
    }
    // H3's terms of interest, tighter than the mixed models' general tolerances: estimate, SE
    // and p within 1e-6 of lme4/lmerTest, pooled and per municipality; Satterthwaite df within
    // 3e-6 (the largest, 2e-6, is Stevns' `cluster_did`, whose unit × period variance is the
    // smallest: the REML criterion is flat there and the two optima differ in the 7th digit).
    let mut h3_checked = 0;
    for m in models.iter().filter(|m| m["hypothesis"] == "H3") {
        for c in m["coefficients"].as_array().unwrap() {
            let term = c["term"].as_str().unwrap();
            if term != "post:intervention" && !term.starts_with("arm_post") {
                continue;
            }
            let key = (
                "H3".to_string(),
                m["scope"].as_str().unwrap().to_string(),
                m["model"].as_str().unwrap().to_string(),
                term.to_string(),
            );
            let row = &ours[&key];
            for (k, tol) in [
                ("estimate", 1e-6),
                ("std_error", 1e-6),
                ("p_value", 1e-6),
                ("df", 3e-6),
            ] {
                let (a, b) = (row[k].unwrap(), num(&c[k]));
                assert!(rel_err(a, b) <= tol, "{key:?} {k}: relcap {a} vs R {b}");
            }
            h3_checked += 1;
        }
    }
    // cluster_did, cluster_did_cr2, diff_in_diff, cluster_did_both_waves: 6 scopes each;
    // event_study: 2 terms.
    assert_eq!(h3_checked, 4 * 6 + 2 * 6, "H3 rows compared");
    // Fit statistics and variance components.
    let fit = relcap::io::read_parquet(&out.join("model/fit.parquet")).unwrap();
    let vc = relcap::io::read_parquet(&out.join("model/variance_components.parquet")).unwrap();
    let key = |df: &DataFrame, i: usize, cols: &[&str]| -> Vec<String> {
        cols.iter()
            .map(|c| {
                df.column(c)
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    for m in models {
        let want = [
            m["hypothesis"].as_str().unwrap(),
            m["scope"].as_str().unwrap(),
            m["model"].as_str().unwrap(),
        ];
        let i = (0..fit.height())
            .find(|&i| key(&fit, i, &["hypothesis", "scope", "model"]) == want)
            .unwrap_or_else(|| panic!("{want:?}: no fit row"));
        let at = want.join(" ");
        let f = |c: &str| {
            fit.column(c)
                .unwrap()
                .f64()
                .unwrap()
                .get(i)
                .unwrap_or(f64::NAN)
        };
        let formula = fit
            .column("formula")
            .unwrap()
            .str()
            .unwrap()
            .get(i)
            .unwrap();
        assert_eq!(formula, m["formula"].as_str().unwrap(), "{at}");
        let tol = if m["method"] == "ols" { 1e-8 } else { 1e-6 };
        check("sigma", f("sigma"), num(&m["sigma"]), tol, &at);
        check(
            "log_likelihood",
            f("log_likelihood"),
            num(&m["log_likelihood"]),
            tol,
            &at,
        );
        check("aic", f("aic"), num(&m["aic"]), tol, &at);
        check("bic", f("bic"), num(&m["bic"]), tol, &at);
        if m["method"] == "ols" {
            check("r_squared", f("r_squared"), num(&m["r_squared"]), tol, &at);
        } else {
            let singular = fit.column("singular").unwrap().bool().unwrap().get(i);
            assert_eq!(singular, m["singular"].as_bool(), "{at} singular");
            for v in m["varcomp"].as_array().unwrap() {
                let g = v["group"].as_str().unwrap();
                let j = (0..vc.height())
                    .find(|&j| {
                        key(&vc, j, &["hypothesis", "scope", "model", "group"])
                            == [want[0], want[1], want[2], g]
                    })
                    .unwrap_or_else(|| panic!("{at} {g}: no variance component"));
                let var = vc
                    .column("variance")
                    .unwrap()
                    .f64()
                    .unwrap()
                    .get(j)
                    .unwrap();
                // A boundary variance is 0 on one side and ~1e-10 on the other: absolute then.
                // A small component is compared on the scale of the model's total variance:
                // the REML criterion is flat in its direction (H3 Haderslev `cluster_did`:
                // unit_id:post 0.0030486064 vs lme4's 0.0030486097, and relcap's REML
                // criterion, evaluated by lme4's own deviance function, is the lower one).
                let r = num(&v["variance"]);
                let total: f64 = m["varcomp"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| num(&c["variance"]))
                    .sum();
                if r.abs() < 1e-8 {
                    assert!(var.abs() < 1e-8, "{at} {g}: {var} vs {r}");
                } else if r.abs() < 0.05 * total {
                    check("variance", (var - r).abs() / total + 1.0, 1.0, 1e-6, &at);
                } else {
                    check("variance", var, r, 1e-6, &at);
                }
            }
        }
    }
    // Meta-analyses.
    let het = relcap::io::read_parquet(&out.join("model/heterogeneity.parquet")).unwrap();
    for mr in expected["meta"].as_array().unwrap() {
        let (h, meth) = (
            mr["hypothesis"].as_str().unwrap(),
            mr["method"].as_str().unwrap(),
        );
        let i = (0..het.height())
            .find(|&i| key(&het, i, &["hypothesis", "method"]) == [h, meth])
            .unwrap_or_else(|| panic!("{h} {meth}: no heterogeneity row"));
        let at = format!("{h} meta {meth}");
        let f = |c: &str| {
            het.column(c)
                .unwrap()
                .f64()
                .unwrap()
                .get(i)
                .unwrap_or(f64::NAN)
        };
        assert_eq!(
            het.column("k").unwrap().i64().unwrap().get(i),
            mr["k"].as_i64(),
            "{at} k"
        );
        // Inputs are mixed-model estimates (1e-6) for H2 and H3, OLS for H1.
        let tol = if h == "H1" { 1e-7 } else { 1e-5 };
        for (ours_c, r_c) in [
            ("estimate", "estimate"),
            ("std_error", "se"),
            ("conf_low", "conf_low"),
            ("conf_high", "conf_high"),
            ("q", "q"),
            ("q_p", "q_p"),
            ("pi_low", "pi_low"),
            ("pi_high", "pi_high"),
        ] {
            check("meta", f(ours_c), num(&mr[r_c]), tol, &at);
        }
        // τ², I², H² are zero at the boundary on both sides or compared relatively.
        for (ours_c, r_c) in [("tau2", "tau2"), ("i2", "i2"), ("h2", "h2")] {
            let (a, b) = (f(ours_c), num(&mr[r_c]));
            if b.abs() < 1e-10 {
                assert!(a.abs() < 1e-8, "{at} {ours_c}: {a} vs {b}");
            } else {
                check("meta", a, b, tol.max(1e-5), &at);
            }
        }
    }
    // Holm over the three pooled primary tests.
    for (h, p) in expected["holm"].as_object().unwrap() {
        let (model, term) = match h.as_str() {
            "H1" => ("case_rcap", "case_rcap"),
            "H2" => ("unit_wave_within", "srm_unit"),
            _ => ("cluster_did", "post:intervention"),
        };
        let row = &ours[&(h.clone(), "pooled".into(), model.into(), term.into())];
        check("p_holm", row["p_holm"].unwrap(), num(p), 1e-4, h);
    }
    // The meta-analyses without the municipalities whose primary fit is singular.
    let ns = meta_without_singular_pairs(&out, &expected["meta_nonsingular"]);
    assert!(!ns.is_empty(), "R found no singular primary fit");
    for (at, ours, r) in ns {
        check("meta", ours, r, 1e-5, &at);
    }
    eprintln!("checked {checked} numbers against R; worst relative errors: {worst:?}");
}

/// The meta-analyses without singular primary fits of `out`'s results.json beside R's
/// (`meta_nonsingular` of a fixture): (what, relcap, R) for estimate, SE, interval and p of each,
/// after checking that both have the same analyses and k.
pub(crate) fn meta_without_singular_pairs(out: &Path, expected: &Value) -> Vec<(String, f64, f64)> {
    let ours = read_json(&out.join("model/results.json"))["meta_without_singular"].clone();
    let ours = ours.as_array().unwrap();
    let expected = expected.as_array().unwrap();
    assert_eq!(ours.len(), expected.len());
    let mut pairs = vec![];
    for mr in expected {
        let (h, meth) = (
            mr["hypothesis"].as_str().unwrap(),
            mr["method"].as_str().unwrap(),
        );
        let o = ours
            .iter()
            .find(|o| o["hypothesis"] == h && o["method"] == meth)
            .unwrap_or_else(|| panic!("{h} {meth}: no meta-analysis without singular fits"));
        let at = format!("{h} meta {meth} without singular fits");
        assert_eq!(o["k"].as_i64(), mr["k"].as_i64(), "{at} k");
        for (ours_c, r_c) in [
            ("estimate", "estimate"),
            ("std_error", "se"),
            ("conf_low", "conf_low"),
            ("conf_high", "conf_high"),
            ("p_value", "p_value"),
        ] {
            pairs.push((format!("{at} {ours_c}"), num(&o[ours_c]), num(&mr[r_c])));
        }
    }
    pairs
}

/// Simulates a small study with the given effects, runs it through the model stage and returns
/// results.json.
fn simulated_results(tmp: &Path, seed: u64, effects: [f64; 3]) -> Value {
    let data = tmp.join("data");
    let out = tmp.join("out");
    let [h1, h2, h3] = effects;
    simulate(
        &data,
        &format!(
            "--format parquet --seed {seed} --municipalities 3 --employees-per-municipality 100 \
             --citizens-per-municipality 150 --effect-h1 {h1} --effect-h2 {h2} --effect-h3 {h3}"
        ),
    );
    relcap()
        .current_dir(repo())
        .args(["run", "--until", "model", "-q", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    read_json(&out.join("model/results.json"))
}

fn verdicts(r: &Value) -> BTreeMap<String, Value> {
    r["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["hypothesis"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

#[test]
fn large_simulated_effects_are_detected_with_the_right_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let r = simulated_results(tmp.path(), 11, [1.5, 0.8, 0.8]);
    for (h, v) in verdicts(&r) {
        assert_eq!(v["verdict"], "supported", "{h}: {v}");
        assert!(v["estimate"].as_f64().unwrap() > 0.0, "{h}: {v}");
        assert!(v["p_holm"].as_f64().unwrap() < 0.05, "{h}: {v}");
    }
}

#[test]
fn zero_simulated_effects_give_no_primary_p_below_0_001() {
    let tmp = tempfile::tempdir().unwrap();
    let r = simulated_results(tmp.path(), 12, [0.0, 0.0, 0.0]);
    for (h, v) in verdicts(&r) {
        let p = v["p_value"].as_f64().unwrap();
        assert!(p >= 0.001, "{h}: p = {p} under a zero effect ({v})");
    }
}

fn tiny_design() -> Vec<&'static str> {
    vec![
        "--municipalities",
        "2",
        "--citizens-per-municipality",
        "80",
        "--seed",
        "5",
    ]
}

#[test]
fn power_writes_its_table_and_plot_the_same_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |threads: &str, out: &Path| {
        relcap()
            .current_dir(repo())
            .args(["power", "-q", "--replications", "2", "--threads", threads])
            .args(["--employees-per-municipality", "100,150"])
            .args(["--effect-h3", "0.2,0.4"])
            .args(tiny_design())
            .arg("--out")
            .arg(out)
            .assert()
            .success();
    };
    run("2", &tmp.path().join("a"));
    run("1", &tmp.path().join("b"));
    for f in ["power.csv", "power.json", "power.svg"] {
        let a = std::fs::read(tmp.path().join("a").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("b").join(f)).unwrap();
        assert_eq!(a, b, "{f} differs between 1 and 2 threads");
    }
    let csv = std::fs::read_to_string(tmp.path().join("a/power.csv")).unwrap();
    // Header + 2 sizes × 2 scenarios × 3 hypotheses.
    assert_eq!(csv.lines().count(), 13, "{csv}");
    let v: Value = read_json(&tmp.path().join("a/power.json"));
    for r in v["rows"].as_array().unwrap() {
        let p = r["power"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(r["replications"], 2);
        assert_eq!(r["failed"], 0, "{r}");
    }
    let svg = std::fs::read_to_string(tmp.path().join("a/power.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("H3"));
}

#[test]
fn validate_reports_bias_rmse_and_coverage_per_hypothesis() {
    let tmp = tempfile::tempdir().unwrap();
    relcap()
        .current_dir(repo())
        .args([
            "validate",
            "-q",
            "--replications",
            "3",
            "--reference-replications",
            "2",
        ])
        .args([
            "--reference-scale",
            "2",
            "--employees-per-municipality",
            "100",
            "--sd-unit-wave",
            "0.1",
        ])
        .args(tiny_design())
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success();
    let v: Value = read_json(&tmp.path().join("validate.json"));
    assert_eq!(v["failed"], 0, "{v}");
    let hyps = v["hypotheses"].as_array().unwrap();
    let ids: Vec<&str> = hyps
        .iter()
        .map(|h| h["hypothesis"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["H1", "H2", "H3", "H1_corrected"]);
    for h in hyps {
        assert_eq!(h["n"], 3);
        let targets: Vec<&str> = h["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            [
                "simulated_effect",
                "model_estimand",
                "large_sample",
                "mean_estimate"
            ]
        );
        for t in h["targets"].as_array().unwrap() {
            let c = t["coverage"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c));
            assert!(t["rmse"].as_f64().unwrap() >= t["bias"].as_f64().unwrap().abs() - 1e-12);
        }
    }
    assert_eq!(v["design"]["municipalities"], 2);
    assert_eq!(v["design"]["cluster"]["sd_unit_wave"], 0.1);
    // H3's models side by side: the primary, its CR2 rows and the analysis plan's formula first.
    let models: Vec<&str> = v["h3_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert!(
        models.starts_with(&["cluster_did", "cluster_did_cr2", "diff_in_diff"]),
        "{models:?}"
    );
    for m in v["h3_models"].as_array().unwrap() {
        assert_eq!(m["n"], 3, "{m}");
        let r = m["rejection_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r));
    }
    let csv = std::fs::read_to_string(tmp.path().join("replications.csv")).unwrap();
    // H1, H2, H3 and H1_corrected per replication.
    assert_eq!(csv.lines().count(), 1 + 3 * 4);
    // Each replication's H3 models: a row per replication and (model, term) of validate.json.
    let h3 = std::fs::read_to_string(tmp.path().join("h3_models.csv")).unwrap();
    let n_models = v["h3_models"].as_array().unwrap().len();
    assert_eq!(h3.lines().count(), 1 + 3 * n_models, "{h3}");
}
