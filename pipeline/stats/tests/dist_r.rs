//! dist.rs against R 4.2.2's pt/qt/pf/qf/pchisq/qchisq/pnorm/qnorm (fixture `dist.json`, made by
//! `fixtures/dist.R`), and against high-precision mpmath values (`dist_mpmath.json`, made by
//! `fixtures/dist_mpmath.py`) where R itself is approximate (R's pt uses a normal approximation
//! for df > 4e5, which is off in the far tails).
mod common;
use common::*;
use relcap_stats::dist::*;
use relcap_stats::prec::REL_DIST;

fn quantile(dist: &str, p: f64, df1: f64, df2: f64) -> f64 {
    match dist {
        "t" => t_quantile(p, df1),
        "chisq" => chi2_quantile(p, df1),
        "f" => f_quantile(p, df1, df2),
        "norm" => normal_quantile(p),
        _ => unreachable!(),
    }
}

fn probs(dist: &str, x: f64, df1: f64, df2: f64) -> (f64, f64, f64) {
    match dist {
        "t" => (t_cdf(x, df1), t_sf(x, df1), t_two_sided_p(x, df1)),
        "chisq" => (chi2_cdf(x, df1), chi2_sf(x, df1), f64::NAN),
        "f" => (f_cdf(x, df1, df2), f_sf(x, df1, df2), f64::NAN),
        "norm" => (normal_cdf(x), normal_sf(x), f64::NAN),
        _ => unreachable!(),
    }
}

/// Cases where R's own value is known to be approximate (used only where mpmath has no value):
/// pt with df > 4e5 (normal approximation, error grows like t^5/df^2) and qt built on it; qf with
/// df1 or df2 > 4e5 (R returns a χ² quantile); and qf/qbeta results below 1e-14, which R returns as
/// small multiples of machine epsilon (e.g. qf(1e-20, 2.5, 3) = 2.66e-16, true value 8.23e-17 from
/// the leading term x^a / (a B(a, b)) of the incomplete beta).
fn r_is_approximate(dist: &str, df1: f64, df2: f64, quantile: bool) -> bool {
    (dist == "t" && df1 > 4e5) || (quantile && dist == "f" && (df2 > 4e5 || df1 > 4e5))
}

fn key(dist: &str, p: f64, df1: f64, df2: f64) -> String {
    format!("{dist} {p:e} {df1:e} {df2:e}")
}

fn r_qf_underflow(dist: &str, q: f64) -> bool {
    dist == "f" && q > 0.0 && q < 1e-14
}

#[test]
fn quantiles_match_r() {
    let fx = load_json("dist.json");
    let mp = load_json("dist_mpmath.json");
    let mut exact = std::collections::HashMap::new();
    for c in mp["quantiles"].as_array().unwrap() {
        let d = c["dist"].as_str().unwrap();
        exact.insert(
            key(d, num(&c["p"]), num(&c["df1"]), num(&c["df2"])),
            num(&c["q"]),
        );
    }
    let (mut worst_r, mut worst_mp) = ((0.0f64, String::new()), (0.0f64, String::new()));
    let (mut n_r, mut n_mp, mut n_skipped, mut r_off) = (0, 0, 0, Vec::new());
    let mut bad = Vec::new();
    for c in fx["quantiles"].as_array().unwrap() {
        let dist = c["dist"].as_str().unwrap();
        let (p, df1, df2, q_r) = (num(&c["p"]), num(&c["df1"]), num(&c["df2"]), num(&c["q"]));
        let got = quantile(dist, p, df1, df2);
        let what = format!("{dist} p={p:e} df=({df1},{df2})");
        let (reference, worst) = match exact.get(&key(dist, p, df1, df2)) {
            Some(&q) => {
                n_mp += 1;
                if rel_err(q_r, q) >= REL_DIST {
                    r_off.push(format!("{what}: R {q_r:e}, mpmath {q:e}"));
                }
                (q, &mut worst_mp)
            }
            None if r_is_approximate(dist, df1, df2, true) || r_qf_underflow(dist, q_r) => {
                n_skipped += 1;
                continue;
            }
            None => {
                n_r += 1;
                (q_r, &mut worst_r)
            }
        };
        let e = rel_err(got, reference);
        if e > worst.0 {
            *worst = (e, format!("{what} got={got:e} ref={reference:e}"));
        }
        if e >= REL_DIST {
            bad.push(format!(
                "{what}: got {got:e}, reference {reference:e}, rel {e:e}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    eprintln!(
        "quantiles: {n_r} vs R (max rel {:e}: {}), {n_mp} vs mpmath (max rel {:e}: {}), \
         {n_skipped} left out (R approximate, no mpmath value)",
        worst_r.0, worst_r.1, worst_mp.0, worst_mp.1
    );
    eprintln!(
        "cases where R itself is off by more than 1e-10 (mpmath used):\n{}",
        r_off.join("\n")
    );
}

#[test]
fn probabilities_match_r() {
    let fx = load_json("dist.json");
    let mut worst = (0.0f64, String::new());
    for c in fx["probabilities"].as_array().unwrap() {
        let dist = c["dist"].as_str().unwrap();
        let (x, df1, df2) = (num(&c["x"]), num(&c["df1"]), num(&c["df2"]));
        if r_is_approximate(dist, df1, df2, false) {
            continue;
        }
        let (cdf, sf, two) = probs(dist, x, df1, df2);
        for (name, got, want) in [
            ("cdf", cdf, num(&c["cdf"])),
            ("sf", sf, num(&c["sf"])),
            ("two_sided", two, num(&c["two_sided"])),
        ] {
            if want.is_nan() && got.is_nan() {
                continue;
            }
            // Values below 1e-300 are at the edge of double range (R flushes some to 0).
            if want.abs() < 1e-300 && got.abs() < 1e-300 {
                continue;
            }
            let e = rel_err(got, want);
            if e > worst.0 {
                worst = (
                    e,
                    format!("{dist} {name} x={x:e} df=({df1},{df2}) got={got:e} R={want:e}"),
                );
            }
            assert!(
                e < REL_DIST,
                "{dist} {name} x={x:e} df=({df1},{df2}): got {got:e}, R {want:e}, rel {e:e}"
            );
        }
    }
    eprintln!(
        "max relative error of probabilities vs R: {:e} ({})",
        worst.0, worst.1
    );
}

#[test]
fn large_df_match_mpmath() {
    let fx = load_json("dist_mpmath.json");
    let mut worst = (0.0f64, String::new());
    for c in fx["quantiles"].as_array().unwrap() {
        let dist = c["dist"].as_str().unwrap();
        let (p, df1, df2, q) = (num(&c["p"]), num(&c["df1"]), num(&c["df2"]), num(&c["q"]));
        let got = quantile(dist, p, df1, df2);
        let e = rel_err(got, q);
        if e > worst.0 {
            worst = (
                e,
                format!("{dist} q p={p:e} df=({df1},{df2}) got={got:e} ref={q:e}"),
            );
        }
        assert!(
            e < REL_DIST,
            "{dist} p={p:e} df=({df1},{df2}): got {got:e}, mpmath {q:e}, rel {e:e}"
        );
    }
    for c in fx["probabilities"].as_array().unwrap() {
        let dist = c["dist"].as_str().unwrap();
        let (x, df1, df2) = (num(&c["x"]), num(&c["df1"]), num(&c["df2"]));
        let (cdf, sf, two) = probs(dist, x, df1, df2);
        for (name, got, want) in [
            ("cdf", cdf, num(&c["cdf"])),
            ("sf", sf, num(&c["sf"])),
            ("two_sided", two, num(&c["two_sided"])),
        ] {
            if want.abs() < 1e-300 && got.abs() < 1e-300 {
                continue;
            }
            let e = rel_err(got, want);
            if e > worst.0 {
                worst = (
                    e,
                    format!("{dist} {name} x={x:e} df={df1} got={got:e} ref={want:e}"),
                );
            }
            assert!(
                e < REL_DIST,
                "{dist} {name} x={x:e} df={df1}: got {got:e}, mpmath {want:e}, rel {e:e}"
            );
        }
    }
    eprintln!(
        "max relative error vs mpmath (large df): {:e} ({})",
        worst.0, worst.1
    );
}
