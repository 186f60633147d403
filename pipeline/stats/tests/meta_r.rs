//! meta.rs against metafor's `rma(method = "FE" | "DL" | "REML")` and `predict()` (fixture
//! `fixtures/meta.json` from `fixtures/meta.R`). Tolerances: 1e-8 relative for FE and DL,
//! 1e-6 (REL_LMM) for REML quantities, which come from metafor's Fisher scoring.
mod common;
use common::*;
use relcap_stats::meta::{rma, TauMethod};
use relcap_stats::prec::{REL_CLOSED_FORM, REL_LMM};

#[test]
fn rma_matches_metafor() {
    let fx = load_json("meta.json");
    let mut worst_fe_dl = 0.0f64;
    let mut worst_reml = 0.0f64;
    for c in fx["cases"].as_array().unwrap() {
        let (yi, vi) = (nums(&c["yi"]), nums(&c["vi"]));
        let m = c["method"].as_str().unwrap();
        let method = match m {
            "FE" => TauMethod::Fixed,
            "DL" => TauMethod::Dl,
            _ => TauMethod::Reml,
        };
        let fit = rma(&yi, &vi, method, 0.95).unwrap();
        let tol = if m == "REML" {
            REL_LMM
        } else {
            REL_CLOSED_FORM
        };
        let label = format!("{} {m}", c["set"].as_str().unwrap());
        let se_tau2 = fit.se_tau2.unwrap_or(f64::NAN);
        for (name, got) in [
            ("estimate", fit.estimate),
            ("se", fit.se),
            ("z", fit.z),
            ("p_value", fit.p_value),
            ("conf_low", fit.conf_low),
            ("conf_high", fit.conf_high),
            ("tau2", fit.tau2),
            ("se_tau2", se_tau2),
            ("q", fit.q),
            ("q_p", fit.q_p),
            ("i2", fit.i2),
            ("h2", fit.h2),
            ("pi_low", fit.pi_low),
            ("pi_high", fit.pi_high),
        ] {
            let want = num(&c[name]);
            let e = rel_err(got, want);
            if m == "REML" {
                worst_reml = worst_reml.max(e);
            } else {
                worst_fe_dl = worst_fe_dl.max(e);
            }
            assert!(
                e < tol,
                "{label} {name}: got {got:e}, metafor {want:e} (rel {e:e})"
            );
        }
        if m == "REML" {
            assert_eq!(
                fit.iterations.unwrap() as f64,
                num(&c["iterations"]),
                "{label} iterations"
            );
            assert!(fit.converged);
        }
    }
    eprintln!("max relative error vs metafor: FE/DL {worst_fe_dl:e}, REML {worst_reml:e}");
}
