//! Linear mixed models against lme4 + lmerTest reference fits (`fixtures/lmm.R` → `lmm.json`):
//! fixed effects, SEs, variance components, logLik/AIC/BIC, Satterthwaite df and p-values.
//! Run with `--nocapture` to see the measured maximum relative errors.

mod common;
use common::data_from_json;
use relcap_stats::design::build;
use relcap_stats::formula::parse;
use relcap_stats::lmm::{lmm, LmmOptions};
use serde_json::Value;

fn load() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lmm.json"
    ))
    .expect("fixture lmm.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        return 0.0;
    }
    (a - b).abs() / b.abs().max(1e-300)
}

/// Relative error, or absolute when the reference is (near) zero.
fn relabs(a: f64, b: f64) -> f64 {
    if b.abs() < 1e-8 {
        (a - b).abs()
    } else {
        rel(a, b)
    }
}

#[test]
fn lmm_matches_lme4_and_lmertest() {
    let fx = load();
    let mut worst = [0.0f64; 6]; // estimate, se, varcomp, loglik/aic/bic, df, p
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let data = data_from_json(&fx["datasets"][case["data"].as_str().expect("data")]);
        let formula = parse(case["formula"].as_str().expect("formula")).expect("parse");
        let des = build(&formula, &data).expect("design");
        let opts = LmmOptions {
            reml: case["reml"].as_bool().expect("reml"),
            ..LmmOptions::default()
        };
        let fit = lmm(des.x.as_ref(), &des.y, &des.names, &des.random, &opts).expect("fit");
        assert_eq!(
            fit.n_obs as f64,
            case["nobs"].as_f64().unwrap(),
            "{name} nobs"
        );
        let mut errs = [0.0f64; 6];
        let coefs = case["coefficients"].as_array().unwrap();
        assert_eq!(
            fit.coefficients.len(),
            coefs.len(),
            "{name}: number of coefficients"
        );
        for (c, r) in fit.coefficients.iter().zip(coefs) {
            assert_eq!(c.term, r["term"].as_str().unwrap(), "{name}");
            errs[0] = errs[0].max(relabs(c.estimate, r["estimate"].as_f64().unwrap()));
            errs[1] = errs[1].max(rel(c.std_error, r["std_error"].as_f64().unwrap()));
            errs[4] = errs[4].max(rel(c.df, r["df"].as_f64().unwrap()));
            // p-values: relative error of ln p (p spans 1e-40 .. 1, where ln p is the sane scale).
            let pr = r["p_value"].as_f64().unwrap();
            errs[5] = errs[5].max(if pr > 0.01 {
                rel(c.p_value, pr)
            } else {
                rel(c.p_value.ln(), pr.ln())
            });
        }
        let vcs = case["varcomp"].as_array().unwrap();
        assert_eq!(fit.variance_components.len(), vcs.len());
        for (v, r) in fit.variance_components.iter().zip(vcs) {
            assert_eq!(v.group, r["group"].as_str().unwrap(), "{name}");
            errs[2] = errs[2].max(relabs(v.variance, r["variance"].as_f64().unwrap()));
            errs[2] = errs[2].max(relabs(v.std_dev, r["std_dev"].as_f64().unwrap()));
        }
        for (a, key) in [
            (fit.log_likelihood, "log_likelihood"),
            (fit.aic, "aic"),
            (fit.bic, "bic"),
            (fit.deviance, "deviance"),
        ] {
            errs[3] = errs[3].max(rel(a, case[key].as_f64().unwrap()));
        }
        for (g, n) in case["ngrps"].as_object().unwrap() {
            let ours = fit.n_groups.iter().find(|(k, _)| k == g).map(|x| x.1);
            assert_eq!(
                ours,
                n.as_u64().map(|v| v as usize),
                "{name}: groups of {g}"
            );
        }
        assert_eq!(
            fit.singular,
            case["singular"].as_bool().unwrap(),
            "{name} singular"
        );
        let aliased: Vec<String> = match &case["aliased"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        assert_eq!(fit.aliased, aliased, "{name} aliased");
        assert!(
            fit.converged,
            "{name} converged; warnings {:?}",
            fit.warnings
        );
        println!(
            "{name:16} est {:.1e}  se {:.1e}  varcomp {:.1e}  loglik {:.1e}  df {:.1e}  ln-p {:.1e}  (evals {}, theta {:?}, warnings {:?})",
            errs[0], errs[1], errs[2], errs[3], errs[4], errs[5], fit.iterations, fit.theta, fit.warnings
        );
        let tol = [1e-6, 1e-6, 1e-6, 1e-6, 1e-4, 1e-4];
        for (i, (e, t)) in errs.iter().zip(tol).enumerate() {
            assert!(e <= &t, "{name}: error {e:e} in quantity {i} exceeds {t:e}");
        }
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    }
    println!(
        "MAX over fixtures: est {:.1e}  se {:.1e}  varcomp {:.1e}  loglik/aic/bic {:.1e}  satterthwaite df {:.1e}  p/ln-p {:.1e}",
        worst[0], worst[1], worst[2], worst[3], worst[4], worst[5]
    );
}
