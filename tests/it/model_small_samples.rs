//! The model stage's small-sample inference (its defaults) against R on the demo study's linked
//! tables (`tests/fixtures/model_r/`, script `check_small_samples.R`, output
//! `expected_small_samples.json`):
//!
//! - H1, both models, pooled and per municipality: CR2 standard errors and Satterthwaite df per
//!   coefficient equal clubSandwich's `coef_test(vcov = "CR2", test = "Satterthwaite")` to 1e-8
//!   (estimate, SE, t, df, p, interval);
//! - the meta-analyses (REML and DL) of the three hypotheses equal metafor's `rma(test = "knha")`
//!   with `predict(pi.type = "riley")`: to 1e-8 given R's inputs (the engine on the fixture's
//!   yi and SEs), and end to end to 1e-7 for H1 and 1e-5 for H2 and H3 (whose inputs are mixed-
//!   model estimates, equal to lme4's to 1e-6).

use relcap::stats::meta::{rma_with, MetaTest, TauMethod};
use relcap::stats::prec::rel_err;
use serde_json::Value;

use crate::common::read_json;
use crate::model::{fixture_dir, model_on_demo_tables, num, results_by_key};

fn expected() -> Value {
    read_json(&fixture_dir().join("expected_small_samples.json"))
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let e = rel_err(got, want);
    assert!(
        e <= tol,
        "{what}: relcap {got} vs R {want} ({e:e} > {tol:e})"
    );
}

#[test]
fn hksj_on_the_demo_estimates_matches_metafor() {
    for m in expected()["meta"].as_array().unwrap() {
        let (yi, sei) = (nums(&m["yi"]), nums(&m["sei"]));
        let vi: Vec<f64> = sei.iter().map(|s| s * s).collect();
        let method = if m["method"] == "reml" {
            TauMethod::Reml
        } else {
            TauMethod::Dl
        };
        let f = rma_with(&yi, &vi, method, 0.95, MetaTest::Knha).unwrap();
        let at = format!("{} {}", m["hypothesis"], m["method"]);
        for (name, got) in [
            ("estimate", f.estimate),
            ("se", f.se),
            ("t", f.z),
            ("df", f.df.unwrap()),
            ("p_value", f.p_value),
            ("conf_low", f.conf_low),
            ("conf_high", f.conf_high),
            ("s2w", f.s2w),
            ("pi_low", f.pi_low),
            ("pi_high", f.pi_high),
        ] {
            close(&format!("{at} {name}"), got, num(&m[name]), 1e-8);
        }
    }
}

#[test]
fn cr2_h1_and_hksj_meta_match_r_end_to_end() {
    let (_tmp, out) = model_on_demo_tables(None);
    let ours = results_by_key(&out);
    let fx = expected();
    let mut checked = 0;
    for m in fx["models"].as_array().unwrap() {
        let (scope, model) = (m["scope"].as_str().unwrap(), m["model"].as_str().unwrap());
        for c in m["coefficients"].as_array().unwrap() {
            let term = c["term"].as_str().unwrap();
            let at = format!("H1 {scope} {model} {term}");
            let row = ours
                .get(&("H1".into(), scope.into(), model.into(), term.into()))
                .unwrap_or_else(|| panic!("{at}: no row in results.json"));
            for k in [
                "estimate",
                "std_error",
                "statistic",
                "df",
                "p_value",
                "conf_low",
                "conf_high",
            ] {
                close(
                    &format!("{at} {k}"),
                    row[k].unwrap_or(f64::NAN),
                    num(&c[k]),
                    1e-8,
                );
                checked += 1;
            }
            assert_eq!(row["n_groups"], Some(num(&m["n_groups"])), "{at}");
        }
    }
    let het = relcap::io::read_parquet(&out.join("model/heterogeneity.parquet")).unwrap();
    let col = |c: &str, i: usize| het.column(c).unwrap().f64().unwrap().get(i).unwrap();
    let s = |c: &str, i: usize| het.column(c).unwrap().str().unwrap().get(i).unwrap();
    for m in fx["meta"].as_array().unwrap() {
        let (h, meth) = (
            m["hypothesis"].as_str().unwrap(),
            m["method"].as_str().unwrap(),
        );
        let tol = if h == "H1" { 1e-7 } else { 1e-5 };
        let at = format!("{h} meta_{meth}");
        let i = (0..het.height())
            .find(|&i| s("hypothesis", i) == h && s("method", i) == meth)
            .unwrap_or_else(|| panic!("{at}: no heterogeneity row"));
        assert_eq!(s("test", i), "knha");
        for (ours_c, r_c) in [
            ("estimate", "estimate"),
            ("std_error", "se"),
            ("conf_low", "conf_low"),
            ("conf_high", "conf_high"),
            ("df", "df"),
            ("s2w", "s2w"),
            ("pi_low", "pi_low"),
            ("pi_high", "pi_high"),
        ] {
            close(&format!("{at} {ours_c}"), col(ours_c, i), num(&m[r_c]), tol);
            checked += 1;
        }
        let model = match h {
            "H1" => "case_rcap",
            "H2" => "unit_wave_within",
            _ => "cluster_did",
        };
        let term = het.column("term").unwrap().str().unwrap().get(i).unwrap();
        let row = &ours[&(h.into(), format!("meta_{meth}"), model.into(), term.into())];
        close(&at, row["p_value"].unwrap(), num(&m["p_value"]), tol);
        close(&at, row["statistic"].unwrap(), num(&m["t"]), tol);
        assert_eq!(row["df"], Some(num(&m["df"])), "{at} df");
    }
    // H3 without the singular primary fits, on the same (Knapp–Hartung) test.
    let ns = crate::model::meta_without_singular_pairs(&out, &fx["meta_nonsingular"]);
    for (at, ours, r) in ns {
        close(&at, ours, r, 1e-5);
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // k = 5 municipalities: the prediction interval is on t with k − 2 = 3 df.
    assert_eq!(
        het.column("pi_df").unwrap().f64().unwrap().get(0),
        Some(3.0)
    );
}

#[test]
fn relcap_fit_vcov_cr2_matches_club_sandwich() {
    let fx = expected();
    let pooled = fx["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["scope"] == "pooled" && m["model"] == "case_rcap")
        .unwrap();
    // Every complete row of the linked table is in the model sample (the excluded rows lack
    // `quality` or `case_rcap`), so fitting the CSV as it is gives the pooled model's rows.
    let out = crate::common::relcap()
        .arg("fit")
        .arg("--data")
        .arg(fixture_dir().join("h1_cases.csv"))
        .args(["--formula", pooled["formula"].as_str().unwrap()])
        .args([
            "--cluster",
            "lead_unit_id",
            "--vcov",
            "cr2",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["n_obs"], pooled["n_obs"]);
    let want = pooled["coefficients"].as_array().unwrap();
    let coefs = got["coefficients"].as_array().unwrap();
    assert_eq!(coefs.len(), want.len());
    for (c, w) in coefs.iter().zip(want) {
        assert_eq!(c["term"], w["term"]);
        for k in [
            "estimate",
            "std_error",
            "df",
            "p_value",
            "conf_low",
            "conf_high",
        ] {
            close(
                &format!("fit {} {k}", w["term"]),
                num(&c[k]),
                num(&w[k]),
                1e-8,
            );
        }
    }
}

#[test]
fn simulated_heterogeneity_is_recorded_and_validate_reports_meta_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    // The municipalities' own effects: drawn around the mean, recorded in truth.json.
    let data = crate::common::simulate(
        &tmp.path().join("sim"),
        "--municipalities 3 --employees-per-municipality 60 --citizens-per-municipality 40 \
         --seed 3 --effect-h3 0.2 --effect-sd-h3 0.15",
    );
    let truth = read_json(&data.join("truth.json"));
    let effects = truth["params"]["municipality_effects"].as_array().unwrap();
    assert_eq!(effects.len(), 3);
    let h3: Vec<f64> = effects.iter().map(|e| e["h3"].as_f64().unwrap()).collect();
    assert!(h3.iter().all(|v| (v - 0.2).abs() > 1e-12), "{h3:?}");
    assert!(effects.iter().all(|e| e["h1"] == 0.5 && e["h2"] == 0.25));
    assert_eq!(truth["params"]["effect_sd"]["h3"], 0.15);

    crate::common::relcap()
        .current_dir(crate::common::repo())
        .args(["validate", "-q", "--replications", "2", "--seed", "5"])
        .args(["--reference-replications", "0"])
        .args(["--municipalities", "3", "--citizens-per-municipality", "60"])
        .args([
            "--employees-per-municipality",
            "80",
            "--effect-sd-h3",
            "0.1",
        ])
        .arg("--out")
        .arg(tmp.path().join("v"))
        .assert()
        .success();
    let v = read_json(&tmp.path().join("v/validate.json"));
    assert_eq!(v["design"]["effect_sd"]["h3"], 0.1);
    let rows = v["meta_analysis"].as_array().unwrap();
    let tests: Vec<&str> = rows
        .iter()
        .filter(|r| r["hypothesis"] == "H3" && r["target"] == "simulated_effect")
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["z", "knha", "adhoc"]);
    for r in rows {
        let c = r["coverage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{r}");
        assert!(r["mean_width"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["n"], 2, "{r}");
    }
}
