//! CR2 cluster-robust standard errors with Satterthwaite df against R's clubSandwich
//! (`vcovCR(type = "CR2")`, `coef_test(test = "Satterthwaite")`, `Wald_test(test = "Naive-F")`).
//! Fixture: `fixtures/cr2.json` from `fixtures/cr2.R` (small datasets with unequal clusters, one
//! of them a singleton whose I − H_jj is singular). Tolerance 1e-8 relative (REL_OLS).
mod common;
use common::*;
use faer::Mat;
use relcap_stats::ols::{ols, OlsOptions, VcovType};
use relcap_stats::prec::REL_OLS;

#[test]
fn cr2_and_satterthwaite_df_match_club_sandwich() {
    let fx = load_json("cr2.json");
    let mut worst = 0.0f64;
    for c in fx["cases"].as_array().unwrap() {
        let label = c["label"].as_str().unwrap();
        let rows: Vec<Vec<f64>> = c["x"].as_array().unwrap().iter().map(nums).collect();
        let names: Vec<String> = c["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let (n, k) = (rows.len(), names.len());
        let x = Mat::from_fn(n, k, |i, j| rows[i][j]);
        let y = nums(&c["y"]);
        let cluster: Vec<u32> = nums(&c["cluster"]).iter().map(|v| *v as u32).collect();
        let opts = OlsOptions {
            vcov: VcovType::Cr2,
            cluster: Some(&cluster),
            conf_level: 0.95,
        };
        let fit = ols(x.as_ref(), &y, &names, &opts).unwrap();
        assert_eq!(fit.n_clusters, Some(8), "{label}");
        let mut cmp = |what: &str, got: f64, want: f64| {
            let e = rel_err(got, want);
            worst = worst.max(e);
            assert!(
                e < REL_OLS,
                "{label} {what}: {got:e} vs clubSandwich {want:e} ({e:e})"
            );
        };
        for (i, co) in fit.coefficients.iter().enumerate() {
            let at = |f: &str| num(&c[f].as_array().map_or(c[f].clone(), |a| a[i].clone()));
            cmp("estimate", co.estimate, at("estimate"));
            cmp("std_error", co.std_error, at("std_error"));
            cmp("df", co.df, at("df"));
            cmp("p_value", co.p_value, at("p_value"));
            cmp("conf_low", co.conf_low, at("conf_low"));
            cmp("conf_high", co.conf_high, at("conf_high"));
        }
        let v = c["vcov"].as_array().unwrap();
        for (a, row) in v.iter().enumerate() {
            for (b, want) in nums(row).iter().enumerate() {
                cmp("vcov", fit.vcov[a][b], *want);
            }
        }
        if c["wald"].is_object() {
            let w = &c["wald"];
            cmp("wald F", fit.f_statistic.unwrap(), num(&w["f"]));
            let (d1, d2) = fit.f_df.unwrap();
            cmp("wald df_num", d1, num(&w["df_num"]));
            cmp("wald df_denom", d2, num(&w["df_denom"]));
            cmp("wald p", fit.f_p_value.unwrap(), num(&w["p"]));
        }
    }
    eprintln!("max relative error vs clubSandwich CR2: {worst:e}");
}
