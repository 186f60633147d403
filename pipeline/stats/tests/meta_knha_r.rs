//! meta.rs's Hartung–Knapp–Sidik–Jonkman inference against metafor's `rma(test = "knha" |
//! "adhoc")` and `predict(pi.type = "riley")` (fixture `fixtures/meta_knha.json` from
//! `fixtures/meta_knha.R`): estimate, SE, t, df, p, interval, scale factor and prediction
//! interval, to 1e-8 relative for every method (REML included: the Fisher scoring follows
//! metafor's path).
mod common;
use common::*;
use relcap_stats::meta::{rma_with, MetaTest, TauMethod};

#[test]
fn hksj_matches_metafor_knha_and_adhoc() {
    let fx = load_json("meta_knha.json");
    let mut worst = 0.0f64;
    for c in fx["cases"].as_array().unwrap() {
        let (yi, vi) = (nums(&c["yi"]), nums(&c["vi"]));
        let m = c["method"].as_str().unwrap();
        let method = match m {
            "FE" => TauMethod::Fixed,
            "DL" => TauMethod::Dl,
            _ => TauMethod::Reml,
        };
        let t = c["test"].as_str().unwrap();
        let test = if t == "knha" {
            MetaTest::Knha
        } else {
            MetaTest::Adhoc
        };
        let fit = rma_with(&yi, &vi, method, 0.95, test).unwrap();
        let label = format!("{} {m} {t}", c["set"].as_str().unwrap());
        for (name, got) in [
            ("estimate", fit.estimate),
            ("se", fit.se),
            ("t", fit.z),
            ("df", fit.df.unwrap()),
            ("p_value", fit.p_value),
            ("conf_low", fit.conf_low),
            ("conf_high", fit.conf_high),
            ("tau2", fit.tau2),
            ("s2w", fit.s2w),
            ("pi_low", fit.pi_low),
            ("pi_high", fit.pi_high),
        ] {
            let want = num(&c[name]);
            let e = if want.abs() < 1e-12 {
                (got - want).abs()
            } else {
                rel_err(got, want)
            };
            worst = worst.max(e);
            assert!(
                e < 1e-8,
                "{label} {name}: got {got:e}, metafor {want:e} (rel {e:e})"
            );
        }
    }
    eprintln!("max relative error vs metafor knha/adhoc: {worst:e}");
}
