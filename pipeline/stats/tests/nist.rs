//! OLS against NIST StRD linear-regression certified values (fixtures in `fixtures/nist/`, made by
//! `fixtures/nist/extract.py` from scipy's wheel and GSL's Debian source package; Wampler and
//! NoInt from the NIST definitions, verified there by exact rational arithmetic).
//! Requirement: log relative error ≥ 7 for every coefficient and standard error (Wampler5 ≥ 6).
mod common;
use common::*;
use faer::Mat;
use relcap_stats::ols::{ols, OlsOptions};
use relcap_stats::prec::{log_relative_error, NIST_LRE_MIN, NIST_LRE_MIN_WAMPLER5};

struct Lre {
    coef: f64,
    se: f64,
    sd: f64,
}

fn run(name: &str) -> Lre {
    let fx = load_json(&format!("nist/{name}.json"));
    let y = nums(&fx["y"]);
    let n = y.len();
    let x = if fx["model"] == "matrix" {
        let rows: Vec<Vec<f64>> = fx["X"].as_array().unwrap().iter().map(nums).collect();
        Mat::from_fn(n, rows[0].len(), |i, j| rows[i][j])
    } else {
        let xv = nums(&fx["x"]);
        let deg = fx["degree"].as_u64().unwrap() as i32;
        let start = if fx["intercept"].as_bool().unwrap() {
            0
        } else {
            1
        };
        Mat::from_fn(n, (deg - start + 1) as usize, |i, j| {
            xv[i].powi(j as i32 + start)
        })
    };
    let names: Vec<String> = (0..x.ncols()).map(|j| format!("B{j}")).collect();
    let fit = ols(x.as_ref(), &y, &names, &OlsOptions::default()).expect("fit");
    assert!(fit.aliased.is_empty(), "{name}: aliased {:?}", fit.aliased);
    let beta = nums(&fx["beta"]);
    let se = nums(&fx["se"]);
    let mut out = Lre {
        coef: 15.0,
        se: 15.0,
        sd: 15.0,
    };
    for (j, c) in fit.coefficients.iter().enumerate() {
        out.coef = out.coef.min(log_relative_error(c.estimate, beta[j]));
        out.se = out.se.min(log_relative_error(c.std_error, se[j]));
    }
    out.sd = log_relative_error(fit.sigma, num(&fx["resid_sd"]));
    if let Some(r2) = fx.get("r_squared") {
        let l = log_relative_error(fit.r_squared, num(r2));
        assert!(l >= NIST_LRE_MIN, "{name}: R² LRE {l}");
    }
    out
}

#[test]
fn nist_strd_linear_regression() {
    let mut report = String::from("dataset    min LRE coef   min LRE se   LRE resid sd\n");
    let mut failures = Vec::new();
    for name in [
        "Norris", "Pontius", "NoInt1", "NoInt2", "Filip", "Longley", "Wampler1", "Wampler2",
        "Wampler3", "Wampler4", "Wampler5",
    ] {
        let l = run(name);
        report += &format!(
            "{name:<10} {:>12.2} {:>12.2} {:>12.2}\n",
            l.coef, l.se, l.sd
        );
        let min = if name == "Wampler5" {
            NIST_LRE_MIN_WAMPLER5
        } else {
            NIST_LRE_MIN
        };
        if l.coef < min || l.se < min || l.sd < min {
            failures.push(name);
        }
    }
    eprintln!("{report}");
    assert!(
        failures.is_empty(),
        "below the LRE target: {failures:?}\n{report}"
    );
}
