//! htest.rs against R's `t.test` and `p.adjust` (fixture `fixtures/htest.json` from
//! `fixtures/htest.R`; effect sizes there by their textbook formulas in R).
mod common;
use common::*;
use relcap_stats::htest::*;
use relcap_stats::prec::REL_CLOSED_FORM;

fn check_t(label: &str, got: &TTest, want: &serde_json::Value, worst: &mut f64) {
    for (name, g) in [
        ("statistic", got.statistic),
        ("df", got.df),
        ("p_value", got.p_value),
        ("estimate", got.estimate),
        ("std_error", got.std_error),
        ("conf_low", got.conf_low),
        ("conf_high", got.conf_high),
    ] {
        let w = num(&want[name]);
        let e = rel_err(g, w);
        *worst = worst.max(e);
        assert!(e < REL_CLOSED_FORM, "{label} {name}: got {g:e}, R {w:e}");
    }
}

#[test]
fn t_tests_effect_sizes_and_adjustments_match_r() {
    let fx = load_json("htest.json");
    let (x, y, z) = (nums(&fx["x"]), nums(&fx["y"]), nums(&fx["z"]));
    let mut worst = 0.0f64;
    check_t(
        "one-sample",
        &t_test_one_sample(&x, 3.0, 0.95).unwrap(),
        &fx["one_sample"],
        &mut worst,
    );
    check_t(
        "one-sample 90%",
        &t_test_one_sample(&x, 3.0, 0.90).unwrap(),
        &fx["one_sample_90"],
        &mut worst,
    );
    check_t(
        "paired",
        &t_test_paired(&x, &y, 0.1, 0.95).unwrap(),
        &fx["paired"],
        &mut worst,
    );
    check_t(
        "welch",
        &t_test_welch(&x, &z, 0.0, 0.95).unwrap(),
        &fx["welch"],
        &mut worst,
    );
    assert_eq!(
        t_test_welch(&x, &z, 0.0, 0.95).unwrap().n,
        x.len() + z.len()
    );
    for (name, g, w) in [
        ("d", cohens_d(&x, &z).unwrap(), num(&fx["cohens_d_xz"])),
        ("g", hedges_g(&x, &z).unwrap(), num(&fx["hedges_g_xz"])),
        (
            "J",
            hedges_correction((x.len() + z.len() - 2) as f64),
            num(&fx["hedges_J"]),
        ),
        ("d_z", cohens_dz(&x, &y).unwrap(), num(&fx["dz_xy"])),
    ] {
        let e = rel_err(g, w);
        worst = worst.max(e);
        assert!(e < REL_CLOSED_FORM, "{name}: got {g:e}, R {w:e}");
    }
    for (p, key_h, key_b) in [("p", "holm", "bh"), ("p_ties", "holm_ties", "bh_ties")] {
        let pv = nums(&fx[p]);
        for (got, want) in [
            (p_adjust_holm(&pv), nums(&fx[key_h])),
            (p_adjust_bh(&pv), nums(&fx[key_b])),
        ] {
            for (g, w) in got.iter().zip(&want) {
                let e = rel_err(*g, *w);
                worst = worst.max(e);
                assert!(e < 1e-15, "{p}: got {got:?}, R {want:?}");
            }
        }
    }
    eprintln!("max relative error vs R (t.test, effect sizes, p.adjust): {worst:e}");
}
