//! Property tests: LMM estimates do not depend on the order of the rows or on how the levels of
//! the grouping factors are numbered (one factor, and two crossed factors).

use faer::Mat;
use proptest::prelude::*;
use relcap_stats::lmm::{lmm, LmmFit, LmmOptions};
use relcap_stats::RandomFactor;

mod common;
use common::rng::Rng;

struct Sim {
    y: Vec<f64>,
    x: Vec<f64>,
    g: Vec<Vec<u32>>,
    nl: Vec<usize>,
}

fn simulate(seed: u64, n: usize, levels: &[usize]) -> Sim {
    let mut r = Rng(seed);
    let effs: Vec<Vec<f64>> = levels
        .iter()
        .map(|&l| (0..l).map(|_| 0.8 * r.normal()).collect())
        .collect();
    let mut g: Vec<Vec<u32>> = vec![Vec::new(); levels.len()];
    let (mut y, mut x) = (Vec::new(), Vec::new());
    for i in 0..n {
        let xi = r.normal();
        let mut yi = 1.0 + 0.5 * xi + r.normal();
        for (k, &l) in levels.iter().enumerate() {
            // every level appears (first rows cycle through them)
            let lev = if i < l {
                i
            } else {
                (r.next_u64() % l as u64) as usize
            };
            g[k].push(lev as u32);
            yi += effs[k][lev];
        }
        x.push(xi);
        y.push(yi);
    }
    Sim {
        y,
        x,
        g,
        nl: levels.to_vec(),
    }
}

fn fit(s: &Sim, rows: &[usize], relabel: &[Vec<usize>]) -> LmmFit {
    let n = rows.len();
    let xm = Mat::from_fn(n, 2, |i, j| if j == 0 { 1.0 } else { s.x[rows[i]] });
    let y: Vec<f64> = rows.iter().map(|&i| s.y[i]).collect();
    let factors: Vec<RandomFactor> =
        s.g.iter()
            .enumerate()
            .map(|(k, codes)| RandomFactor {
                name: format!("g{k}"),
                levels: rows
                    .iter()
                    .map(|&i| relabel[k][codes[i] as usize] as u32)
                    .collect(),
                n_levels: s.nl[k],
                level_names: (0..s.nl[k]).map(|l| l.to_string()).collect(),
            })
            .collect();
    let names = vec!["(Intercept)".to_string(), "x".to_string()];
    lmm(xm.as_ref(), &y, &names, &factors, &LmmOptions::default()).expect("fit")
}

fn close(a: &LmmFit, b: &LmmFit) -> Result<(), TestCaseError> {
    let rel = |u: f64, v: f64| (u - v).abs() / v.abs().max(1e-3);
    for (c, d) in a.coefficients.iter().zip(&b.coefficients) {
        prop_assert!(
            rel(c.estimate, d.estimate) < 1e-7,
            "{} vs {}",
            c.estimate,
            d.estimate
        );
        prop_assert!(rel(c.std_error, d.std_error) < 1e-6);
        prop_assert!(rel(c.df, d.df) < 1e-4, "df {} vs {}", c.df, d.df);
    }
    for (v, w) in a.variance_components.iter().zip(&b.variance_components) {
        prop_assert!((v.variance - w.variance).abs() < 1e-6 * w.variance.max(1e-2));
    }
    prop_assert!(rel(a.log_likelihood, b.log_likelihood) < 1e-10);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn invariant_to_row_order_and_labels(seed in any::<u64>(), n in 40usize..90, l in 4usize..9) {
        let s = simulate(seed, n, &[l]);
        let base = fit(&s, &(0..n).collect::<Vec<_>>(), &[(0..l).collect()]);
        let mut r = Rng(seed ^ 0xABCDEF);
        let rows = r.perm(n);
        close(&fit(&s, &rows, &[(0..l).collect()]), &base)?;
        let relabel = vec![r.perm(l)];
        close(&fit(&s, &(0..n).collect::<Vec<_>>(), &relabel), &base)?;
    }

    #[test]
    fn crossed_invariant_to_row_order_and_labels(seed in any::<u64>(), n in 60usize..100) {
        let levels = [7usize, 5];
        let s = simulate(seed, n, &levels);
        let id: Vec<Vec<usize>> = levels.iter().map(|&l| (0..l).collect()).collect();
        let base = fit(&s, &(0..n).collect::<Vec<_>>(), &id);
        let mut r = Rng(seed ^ 0x1234);
        let rows = r.perm(n);
        let relabel: Vec<Vec<usize>> = levels.iter().map(|&l| r.perm(l)).collect();
        close(&fit(&s, &rows, &relabel), &base)?;
    }
}
