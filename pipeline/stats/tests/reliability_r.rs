//! reliability.rs against R (`psych::alpha`, `aov`, formula-based ICC and rwg(j); fixture
//! `fixtures/reliability.json` from `fixtures/reliability.R`) and against NIST StRD one-way ANOVA
//! certified values (`fixtures/nist/anova/*.dat`, copied from scipy's wheel by extract.py).
mod common;
use common::*;
use proptest::prelude::*;
use relcap_stats::prec::{log_relative_error, REL_CLOSED_FORM};
use relcap_stats::reliability::*;

fn read_csv(name: &str) -> Vec<Vec<Option<f64>>> {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|v| v.trim().parse::<f64>().ok()).collect())
        .collect()
}

#[test]
fn corrected_item_total_matches_psych_r_drop() {
    let fx = load_json("item_total.json");
    let mut items = read_csv("reliability_items.csv");
    let got = corrected_item_total(&items).unwrap();
    assert_eq!(got.n_complete as f64, num(&fx["n_complete"]));
    for (g, w) in got.r_drop.iter().zip(nums(&fx["r_drop"])) {
        let g = g.unwrap();
        assert!(rel_err(g, w) < REL_CLOSED_FORM, "{g} vs {w}");
    }
    // Item 3 reversed: its r.drop turns negative, the others fall.
    for r in items.iter_mut() {
        r[2] = r[2].map(|v| 6.0 - v);
    }
    let got = corrected_item_total(&items).unwrap();
    for (g, w) in got.r_drop.iter().zip(nums(&fx["r_drop_i3_reversed"])) {
        let g = g.unwrap();
        assert!(rel_err(g, w) < REL_CLOSED_FORM, "{g} vs {w}");
    }
    assert!(got.r_drop[2].unwrap() < 0.0);
    // A constant item has no correlation; too few complete rows is an error.
    let flat: Vec<Vec<Option<f64>>> = (0..5)
        .map(|i| vec![Some(3.0), Some(i as f64), Some((i * i) as f64)])
        .collect();
    assert_eq!(corrected_item_total(&flat).unwrap().r_drop[0], None);
    assert!(corrected_item_total(&flat[..2]).is_err());
}

#[test]
fn alpha_icc_rwg_match_r() {
    let fx = load_json("reliability.json");
    let items = read_csv("reliability_items.csv");
    let a = cronbach_alpha(&items).unwrap();
    let mut worst = 0.0f64;
    for (name, got) in [("raw_alpha", a.raw_alpha), ("std_alpha", a.std_alpha)] {
        let e = rel_err(got, num(&fx[name]));
        worst = worst.max(e);
        assert!(e < REL_CLOSED_FORM, "{name}: {got} vs {}", fx[name]);
    }
    assert_eq!(a.n_complete as f64, num(&fx["n_complete"]));
    assert_eq!(a.k, 5);

    let icc_rows = read_csv("reliability_icc.csv");
    let groups: Vec<u32> = icc_rows.iter().map(|r| r[0].unwrap() as u32).collect();
    let y: Vec<f64> = icc_rows.iter().map(|r| r[1].unwrap()).collect();
    let icc = icc_oneway(&y, &groups).unwrap();
    for (name, got) in [
        ("msb", icc.msb),
        ("msw", icc.msw),
        ("f", icc.f),
        ("f_p", icc.f_p_value),
        ("k0", icc.k0),
        ("icc1", icc.icc1),
        ("icc2", icc.icc2),
    ] {
        let e = rel_err(got, num(&fx[name]));
        worst = worst.max(e);
        assert!(e < REL_CLOSED_FORM, "{name}: {got} vs {}", fx[name]);
    }

    let size = num(&fx["rwg_groups_of"]) as usize;
    for (j, want) in nums(&fx["rwg"]).iter().enumerate() {
        let got = rwg_j(&items[j * size..(j + 1) * size], 2.0).unwrap();
        let e = rel_err(got, *want);
        worst = worst.max(e);
        assert!(e < REL_CLOSED_FORM, "rwg group {j}: {got} vs {want}");
    }
    eprintln!("max relative error vs R (alpha, ICC, rwg): {worst:e}");
}

/// Certified (df, SS, MS[, F]) lines and the data of a NIST ANOVA file.
fn parse_anova(text: &str) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<u32>) {
    let numbers = |l: &str| -> Vec<f64> {
        l.split_whitespace()
            .filter_map(|t| t.parse::<f64>().ok())
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let between = numbers(
        lines
            .iter()
            .find(|l| l.trim_start().starts_with("Between"))
            .unwrap(),
    );
    let within = numbers(
        lines
            .iter()
            .find(|l| l.trim_start().starts_with("Within"))
            .unwrap(),
    );
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("Data:"))
        .unwrap();
    let (mut y, mut g) = (Vec::new(), Vec::new());
    let mut shift: Option<i64> = None;
    for l in &lines[start + 1..] {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.len() == 2 && numbers(l).len() == 2 {
            g.push(t[0].parse::<f64>().unwrap() as u32);
            // SmLs07-09 (values like 1000000000000.4) are not representable in f64 (spacing
            // 1.2e-4 at 1e12). Subtract the first value's integer part exactly, in decimal, before
            // converting: the ANOVA is shift invariant, so this tests the algorithm rather than
            // the rounding of the input.
            let (ip, fp) = t[1].split_once('.').unwrap_or((t[1], "0"));
            let ip: i64 = ip.parse().unwrap();
            let s0 = *shift.get_or_insert(ip);
            let frac: f64 = format!("0.{fp}").parse().unwrap();
            y.push((ip - s0) as f64 + frac);
        }
    }
    (between, within, y, g)
}

#[test]
fn icc_anova_matches_nist_certified_values() {
    let mut report = String::from("dataset   LRE MSB   LRE MSW   LRE F\n");
    for name in [
        "SiRstv", "AtmWtAg", "SmLs01", "SmLs02", "SmLs03", "SmLs04", "SmLs05", "SmLs06", "SmLs07",
        "SmLs08", "SmLs09",
    ] {
        let text =
            std::fs::read_to_string(fixture_path(&format!("nist/anova/{name}.dat"))).unwrap();
        let (between, within, y, g) = parse_anova(&text);
        let icc = icc_oneway(&y, &g).unwrap();
        assert_eq!(icc.df_between, between[0], "{name}");
        assert_eq!(icc.df_within, within[0], "{name}");
        let l_msb = log_relative_error(icc.msb, between[2]);
        let l_msw = log_relative_error(icc.msw, within[2]);
        let l_f = log_relative_error(icc.f, between[3]);
        report += &format!("{name:<9} {l_msb:>7.2} {l_msw:>9.2} {l_f:>7.2}\n");
        assert!(
            l_msb >= 9.0 && l_msw >= 9.0 && l_f >= 9.0,
            "{name}: {report}"
        );
    }
    eprintln!("{report}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Alpha does not depend on the order of the items.
    #[test]
    fn alpha_invariant_to_item_order(
        rows in proptest::collection::vec(proptest::collection::vec(1u8..=5, 4), 8..40),
        rot in 1usize..4,
    ) {
        let a: Vec<Vec<Option<f64>>> = rows.iter().map(|r| r.iter().map(|&v| Some(v as f64)).collect()).collect();
        let b: Vec<Vec<Option<f64>>> = a.iter().map(|r| {
            let mut r = r.clone();
            r.rotate_left(rot);
            r.swap(0, 3);
            r
        }).collect();
        match (cronbach_alpha(&a), cronbach_alpha(&b)) {
            (Ok(x), Ok(y)) => {
                prop_assert!((x.raw_alpha - y.raw_alpha).abs() < 1e-12);
                prop_assert!((x.std_alpha - y.std_alpha).abs() < 1e-12);
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "one order failed, the other did not"),
        }
    }
}
