//! OLS and robust covariances against R's `lm` and `sandwich` (`vcovHC` HC0–HC3,
//! `vcovCL(type = "HC1", cadjust = TRUE)`). Fixture: `fixtures/ols.json` from `fixtures/ols.R`,
//! data `fixtures/ols_data.csv` (simulated there with a fixed seed).
mod common;
use common::*;
use faer::Mat;
use proptest::prelude::*;
use relcap_stats::ols::{ols, OlsOptions, VcovType};
use relcap_stats::prec::REL_OLS;

struct Data {
    cols: std::collections::HashMap<String, Vec<String>>,
    n: usize,
}

fn read_data() -> Data {
    let text = std::fs::read_to_string(fixture_path("ols_data.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    let mut cols: std::collections::HashMap<String, Vec<String>> =
        header.iter().map(|h| (h.clone(), Vec::new())).collect();
    let mut n = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        for (h, v) in header.iter().zip(line.split(',')) {
            cols.get_mut(h)
                .unwrap()
                .push(v.trim_matches('"').to_string());
        }
        n += 1;
    }
    Data { cols, n }
}

impl Data {
    fn num(&self, c: &str) -> Vec<f64> {
        self.cols[c].iter().map(|v| v.parse().unwrap()).collect()
    }
    /// A model.matrix column by its R name.
    fn column(&self, name: &str) -> Vec<f64> {
        match name {
            "(Intercept)" => vec![1.0; self.n],
            "fb" | "fc" => {
                let lvl = &name[1..];
                self.cols["f"]
                    .iter()
                    .map(|v| (v == lvl) as u8 as f64)
                    .collect()
            }
            other => self.num(other),
        }
    }
}

fn check(label: &str, what: &str, got: &[f64], want: &[f64], worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{label} {what}: length");
    for (g, w) in got.iter().zip(want) {
        let e = rel_err(*g, *w);
        *worst = worst.max(e);
        assert!(
            e < REL_OLS,
            "{label} {what}: got {g:e}, R {w:e} (rel {e:e})"
        );
    }
}

#[test]
fn ols_matches_lm_and_sandwich() {
    let fx = load_json("ols.json");
    let data = read_data();
    let y = data.num("y");
    let cluster: Vec<u32> = data.num("g").iter().map(|v| *v as u32).collect();
    let mut worst = 0.0f64;
    for case in fx["cases"].as_array().unwrap() {
        let label = case["label"].as_str().unwrap();
        let names: Vec<String> = case["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let cols: Vec<Vec<f64>> = names.iter().map(|c| data.column(c)).collect();
        let x = Mat::from_fn(data.n, names.len(), |i, j| cols[j][i]);
        for (key, kind) in [
            ("vcov_const", VcovType::Classical),
            ("vcov_HC0", VcovType::Hc0),
            ("vcov_HC1", VcovType::Hc1),
            ("vcov_HC2", VcovType::Hc2),
            ("vcov_HC3", VcovType::Hc3),
            ("vcov_CR1", VcovType::Cr1),
        ] {
            let opts = OlsOptions {
                vcov: kind,
                cluster: Some(&cluster),
                conf_level: 0.95,
            };
            let fit = ols(x.as_ref(), &y, &names, &opts).unwrap();
            let aliased: Vec<String> = case["aliased"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(fit.aliased, aliased, "{label}");
            assert_eq!(fit.rank, case["rank"].as_u64().unwrap() as usize);
            let est: Vec<f64> = fit.coefficients.iter().map(|c| c.estimate).collect();
            check(
                label,
                "estimate",
                &est,
                &nums(&case["estimate"]),
                &mut worst,
            );
            let r = &case[key];
            let se: Vec<f64> = fit.coefficients.iter().map(|c| c.std_error).collect();
            check(
                label,
                &format!("{key} se"),
                &se,
                &nums(&r["se"]),
                &mut worst,
            );
            let k = se.len();
            let v: Vec<f64> = (0..k * k).map(|i| fit.vcov[i % k][i / k]).collect();
            check(
                label,
                &format!("{key} vcov"),
                &v,
                &nums(&r["vcov"]),
                &mut worst,
            );
            let p: Vec<f64> = fit.coefficients.iter().map(|c| c.p_value).collect();
            check(label, &format!("{key} p"), &p, &nums(&r["t_p"]), &mut worst);
            let lo: Vec<f64> = fit.coefficients.iter().map(|c| c.conf_low).collect();
            check(
                label,
                &format!("{key} conf_low"),
                &lo,
                &nums(&r["conf_low"]),
                &mut worst,
            );
            let hi: Vec<f64> = fit.coefficients.iter().map(|c| c.conf_high).collect();
            check(
                label,
                &format!("{key} conf_high"),
                &hi,
                &nums(&r["conf_high"]),
                &mut worst,
            );
            assert_eq!(fit.coefficients[0].df, num(&r["df"]));
            if kind == VcovType::Classical {
                let fs = nums(&case["f_classical"]);
                let f = [
                    fit.f_statistic.unwrap(),
                    fit.f_df.unwrap().0,
                    fit.f_df.unwrap().1,
                ];
                check(label, "F", &f, &fs, &mut worst);
                check(
                    label,
                    "F p",
                    &[fit.f_p_value.unwrap()],
                    &[num(&case["classical_f_p"])],
                    &mut worst,
                );
            } else {
                check(
                    label,
                    &format!("{key} Wald F"),
                    &[fit.f_statistic.unwrap()],
                    &[num(&r["wald_f"])],
                    &mut worst,
                );
                check(
                    label,
                    &format!("{key} Wald p"),
                    &[fit.f_p_value.unwrap()],
                    &[num(&r["wald_p"])],
                    &mut worst,
                );
            }
            let scalars = [
                ("sigma", fit.sigma),
                ("r_squared", fit.r_squared),
                ("adj_r_squared", fit.adj_r_squared),
                ("log_lik", fit.log_likelihood),
                ("aic", fit.aic),
                ("bic", fit.bic),
                ("df_residual", fit.df_residual),
            ];
            for (name, got) in scalars {
                check(label, name, &[got], &[num(&case[name])], &mut worst);
            }
            check(
                label,
                "residuals",
                &fit.residuals,
                &nums(&case["residuals"]),
                &mut worst,
            );
            assert_eq!(fit.has_intercept, names.iter().any(|n| n == "(Intercept)"));
        }
    }
    eprintln!("max relative error vs lm/sandwich: {worst:e}");
}

fn design(rows: &[(f64, f64, f64)]) -> (Mat<f64>, Vec<f64>) {
    let x = Mat::from_fn(rows.len(), 3, |i, j| match j {
        0 => 1.0,
        1 => rows[i].0,
        _ => rows[i].1,
    });
    (x, rows.iter().map(|r| r.2).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Estimates do not depend on the order of the rows.
    #[test]
    fn invariant_to_row_order(rows in proptest::collection::vec((-10.0f64..10.0, -5.0f64..5.0, -20.0f64..20.0), 6..30),
                              seed in any::<u64>()) {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (x, y) = design(&rows);
        let fit = ols(x.as_ref(), &y, &names, &OlsOptions::default()).unwrap();
        let mut perm: Vec<usize> = (0..rows.len()).collect();
        let mut s = seed;
        for i in (1..perm.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let shuffled: Vec<_> = perm.iter().map(|&i| rows[i]).collect();
        let (x2, y2) = design(&shuffled);
        let fit2 = ols(x2.as_ref(), &y2, &names, &OlsOptions::default()).unwrap();
        prop_assert_eq!(fit.rank, fit2.rank);
        for (a, b) in fit.coefficients.iter().zip(&fit2.coefficients) {
            let scale = 1.0 + a.estimate.abs();
            prop_assert!((a.estimate - b.estimate).abs() < 1e-9 * scale);
            prop_assert!((a.std_error - b.std_error).abs() < 1e-9 * (1.0 + a.std_error));
        }
    }

    /// Rescaling a column by c scales its estimate by 1/c and leaves the others alone.
    #[test]
    fn rescaling_a_column(rows in proptest::collection::vec((-10.0f64..10.0, -5.0f64..5.0, -20.0f64..20.0), 6..30),
                          c in prop_oneof![1e-6f64..1e-3, 0.5f64..2.0, 1e3f64..1e6]) {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (x, y) = design(&rows);
        let fit = ols(x.as_ref(), &y, &names, &OlsOptions::default()).unwrap();
        prop_assume!(fit.rank == 3);
        let x2 = Mat::from_fn(x.nrows(), 3, |i, j| if j == 1 { x[(i, j)] * c } else { x[(i, j)] });
        let fit2 = ols(x2.as_ref(), &y, &names, &OlsOptions::default()).unwrap();
        prop_assert_eq!(fit2.rank, 3);
        let b1 = fit.coefficients[1].estimate;
        let b1c = fit2.coefficients[1].estimate;
        prop_assert!((b1c * c - b1).abs() < 1e-9 * (1.0 + b1.abs()));
        for j in [0, 2] {
            let (a, b) = (fit.coefficients[j].estimate, fit2.coefficients[j].estimate);
            prop_assert!((a - b).abs() < 1e-9 * (1.0 + a.abs()));
        }
    }
}
