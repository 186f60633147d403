//! `fit_formula` end to end (formula text + columns → report) against R: OLS with classical and
//! CR1 standard errors (`fixtures/fit.R` → `fit.json`) and the H3-style mixed model of
//! `fixtures/lmm.R`; plus the JSON shape of the report.

mod common;
use common::data_from_json;
use relcap_stats::fit::{fit_formula, FitOptions, Method};
use relcap_stats::ols::VcovType;
use serde_json::Value;

fn read(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("JSON")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn ols_classical_and_cluster_match_r() {
    let lm = read("lmm.json");
    let r = read("fit.json");
    let data = data_from_json(&lm["datasets"]["unbalanced"]);
    let f = r["formula"].as_str().unwrap();
    let classical = fit_formula(&data, f, &FitOptions::default()).expect("ols");
    let cr1 = fit_formula(
        &data,
        f,
        &FitOptions {
            vcov: VcovType::Cr1,
            cluster: Some("unit".into()),
            ..FitOptions::default()
        },
    )
    .expect("ols cr1");
    let mut worst = 0.0f64;
    for rep in [&classical, &cr1] {
        assert_eq!(rep.method, "ols");
        assert_eq!(rep.n_obs as u64, r["n_obs"].as_u64().unwrap());
        assert_eq!(rep.n_dropped as u64, r["n_dropped"].as_u64().unwrap());
        for (i, c) in rep.coefficients.iter().enumerate() {
            assert_eq!(c.term, r["terms"][i].as_str().unwrap());
            worst = worst.max(rel(c.estimate, r["estimate"][i].as_f64().unwrap()));
        }
    }
    for (i, c) in classical.coefficients.iter().enumerate() {
        worst = worst.max(rel(c.std_error, r["se_classical"][i].as_f64().unwrap()));
    }
    for (i, c) in cr1.coefficients.iter().enumerate() {
        worst = worst.max(rel(c.std_error, r["se_cr1"][i].as_f64().unwrap()));
    }
    assert_eq!(
        cr1.n_clusters,
        Some(r["n_clusters"].as_u64().unwrap() as usize)
    );
    for (ours, key) in [
        (classical.fit.r_squared.unwrap(), "r_squared"),
        (classical.fit.adj_r_squared.unwrap(), "adj_r_squared"),
        (classical.fit.sigma, "sigma"),
        (classical.fit.f_statistic.unwrap(), "f_statistic"),
        (classical.fit.log_likelihood, "log_likelihood"),
        (classical.fit.aic, "aic"),
        (classical.fit.bic, "bic"),
    ] {
        worst = worst.max(rel(ours, r[key].as_f64().unwrap()));
    }
    println!("OLS via fit_formula: max relative error vs R {worst:.1e}");
    assert!(worst < 1e-9, "{worst}");
    let table = cr1.to_table();
    println!("{table}");
    assert!(table.contains("cluster-robust (CR1)") && table.contains("C(muni)Vejle"));
}

#[test]
fn mixed_report_matches_lmertest_and_serializes() {
    let lm = read("lmm.json");
    let case = lm["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "did_reml")
        .expect("did case");
    let data = data_from_json(&lm["datasets"]["did"]);
    let f = case["formula"].as_str().unwrap();
    let rep = fit_formula(&data, f, &FitOptions::default()).expect("lmm");
    for (c, r) in rep
        .coefficients
        .iter()
        .zip(case["coefficients"].as_array().unwrap())
    {
        assert_eq!(c.term, r["term"].as_str().unwrap());
        assert!(rel(c.estimate, r["estimate"].as_f64().unwrap()) < 1e-6);
        assert!(rel(c.df.unwrap(), r["df"].as_f64().unwrap()) < 1e-4);
    }
    assert!(
        rel(
            rep.fit.log_likelihood,
            case["log_likelihood"].as_f64().unwrap()
        ) < 1e-9
    );
    let v = serde_json::to_value(&rep).unwrap();
    assert_eq!(v["method"], "reml");
    assert!(v["fit"]["r_squared"].is_null() && v["fit"]["f_statistic"].is_null());
    assert_eq!(v["random_effects"][2]["group"], "Residual");
    assert!(v["random_effects"][2]["term"].is_null());
    assert_eq!(v["n_groups"]["resp"], case["ngrps"]["resp"]);
    let ml = fit_formula(
        &data,
        f,
        &FitOptions {
            method: Method::Ml,
            ..FitOptions::default()
        },
    )
    .expect("ml");
    assert_eq!(ml.method, "ml");
    let t = rep.to_table();
    assert!(t.contains("REML criterion") && t.contains("post:intervention"));
    println!("{t}");
}
