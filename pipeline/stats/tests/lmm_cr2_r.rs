//! CR2 cluster-robust inference on linear mixed models against R's clubSandwich on lme4 fits
//! (`fixtures/lmm_cr2.R` → `lmm_cr2.json`): `vcovCR(fit, type = "CR2", cluster)` in full and
//! `coef_test(..., test = "Satterthwaite")`'s SEs, df and p-values, on a small cluster-randomised
//! difference in differences (units as clusters), the same with two respondents who change unit
//! (relcap merges their units; clubSandwich is given the merged clusters), and sleepstudy.
//! Tolerance 1e-6 relative, as for the mixed models themselves (the fits agree to about 1e-7).
mod common;
use common::data_from_json;
use relcap_stats::fit::{fit_parsed, Estimator};
use relcap_stats::formula::parse;
use serde_json::Value;

use relcap_stats::prec::REL_LMM as TOL;

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(1e-300)
    }
}

#[test]
fn mixed_model_cr2_matches_club_sandwich() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lmm_cr2.json"
    ))
    .expect("fixture lmm_cr2.json");
    let fx: Value = serde_json::from_str(&text).expect("valid JSON");
    let mut worst = [0.0f64; 4]; // vcov, SE, df, p
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap();
        let data = data_from_json(&fx["datasets"][case["data"].as_str().unwrap()]);
        let formula = parse(case["formula"].as_str().unwrap()).unwrap();
        // relcap is given the units; it merges those a respondent spans by itself.
        let cluster = match case["cluster"].as_str().unwrap() {
            "merged" => "unit",
            c => c,
        };
        let est = Estimator::Lmm {
            reml: true,
            cluster: Some(cluster.to_string()),
        };
        let fit = fit_parsed(&formula, &data, &est, 0.95).expect("fit");
        let r = fit
            .robust
            .as_ref()
            .expect("asked for")
            .as_ref()
            .expect("cluster-robust rows");
        assert_eq!(
            r.n_clusters as f64,
            case["n_clusters"].as_f64().unwrap(),
            "{name} clusters"
        );
        let want = case["coefficients"].as_array().unwrap();
        assert_eq!(r.coefficients.len(), want.len(), "{name}");
        for (got, w) in r.coefficients.iter().zip(want) {
            let term = w["term"].as_str().unwrap();
            assert_eq!(got.term, term, "{name}");
            // The estimates are the fit's, checked against lme4 by lmm_fixtures.
            assert!(rel(got.estimate, w["estimate"].as_f64().unwrap()) < TOL);
            for (k, (g, wv)) in [
                (got.std_error, &w["std_error"]),
                (got.df, &w["df"]),
                (got.p_value, &w["p_value"]),
            ]
            .into_iter()
            .enumerate()
            {
                let e = rel(g, wv.as_f64().unwrap());
                worst[k + 1] = worst[k + 1].max(e);
                assert!(
                    e < TOL,
                    "{name} {term} #{k}: {g:e} vs clubSandwich {wv} ({e:e})"
                );
            }
        }
        for (a, row) in case["vcov"].as_array().unwrap().iter().enumerate() {
            for (b, v) in row.as_array().unwrap().iter().enumerate() {
                let (g, w) = (r.vcov[a][b], v.as_f64().unwrap());
                let scale = (r.vcov[a][a] * r.vcov[b][b]).sqrt();
                let e = (g - w).abs() / scale;
                worst[0] = worst[0].max(e);
                assert!(e < TOL, "{name} vcov[{a}][{b}]: {g:e} vs {w:e}");
            }
        }
        // The model-based rows stay lme4's: different from the robust ones here.
        assert_ne!(
            fit.model_coefficients()[1].std_error,
            r.coefficients[1].std_error
        );
    }
    println!(
        "largest relative error: vcov {:.1e} (of sqrt(v_aa v_bb)), SE {:.1e}, df {:.1e}, p {:.1e}",
        worst[0], worst[1], worst[2], worst[3]
    );
}
