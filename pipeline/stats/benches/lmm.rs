//! Benchmark: a random-intercept LMM on ~400 000 rows with a 100 000-level factor (respondents)
//! nested in 2 000 units: `y ~ x + C(wave) + (1 | unit/resp)`, REML, with and without
//! Satterthwaite df. Deterministic data (fixed seed). Set `RELCAP_BENCH_CSV=/path/file.csv` to
//! also write the data, for timing lme4 on the same rows (`benches/lmm_bench.R`).
//! Run: `cargo bench -p relcap-stats --bench lmm`.

use std::io::Write;
use std::time::Instant;

use relcap_stats::design::{build, Column, Data};
use relcap_stats::formula::parse;
use relcap_stats::lmm::{lmm, LmmOptions};

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

fn main() {
    let n_units = 2_000usize;
    let n_resp = 100_000usize;
    let waves = 4usize;
    let mut rng = Rng(20_240_611);
    let unit_eff: Vec<f64> = (0..n_units).map(|_| 0.5 * rng.normal()).collect();
    let resp_eff: Vec<f64> = (0..n_resp).map(|_| 0.8 * rng.normal()).collect();
    let (mut y, mut x, mut wave, mut unit, mut resp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (r, &re) in resp_eff.iter().enumerate() {
        let u = r % n_units;
        for w in 1..=waves {
            // about 1 in 40 respondent-waves missing, so the data are unbalanced
            if rng.unif() < 0.025 {
                continue;
            }
            let xv = (rng.normal() * 1e4).round() / 1e4;
            let yv = 2.0 + 0.3 * xv + 0.1 * w as f64 + unit_eff[u] + re + rng.normal();
            y.push(Some((yv * 1e6).round() / 1e6));
            x.push(Some(xv));
            wave.push(Some(w as f64));
            unit.push(Some(format!("U{u:04}")));
            resp.push(Some(format!("R{r:06}")));
        }
    }
    let n = y.len();
    if let Ok(path) = std::env::var("RELCAP_BENCH_CSV") {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create CSV"));
        writeln!(f, "y,x,wave,unit,resp").expect("write");
        for i in 0..n {
            writeln!(
                f,
                "{},{},{},{},{}",
                y[i].unwrap_or(f64::NAN),
                x[i].unwrap_or(f64::NAN),
                wave[i].unwrap_or(f64::NAN),
                unit[i].as_deref().unwrap_or(""),
                resp[i].as_deref().unwrap_or("")
            )
            .expect("write");
        }
        println!("wrote {n} rows to {path}");
    }
    let mut data = Data::new();
    data.push("y", Column::Num(y)).expect("y");
    data.push("x", Column::Num(x)).expect("x");
    data.push("wave", Column::Num(wave)).expect("wave");
    data.push("unit", Column::Str(unit)).expect("unit");
    data.push("resp", Column::Str(resp)).expect("resp");

    let formula = parse("y ~ x + C(wave) + (1 | unit/resp)").expect("formula");
    let t0 = Instant::now();
    let des = build(&formula, &data).expect("design");
    let t_build = t0.elapsed().as_secs_f64();
    println!(
        "rows {}, fixed effects {}, factors {:?}",
        des.n_obs,
        des.names.len(),
        des.random
            .iter()
            .map(|f| (f.name.clone(), f.n_levels))
            .collect::<Vec<_>>()
    );
    println!("design build: {t_build:.2} s");

    for satt in [false, true] {
        let opts = LmmOptions {
            satterthwaite: satt,
            ..LmmOptions::default()
        };
        let t0 = Instant::now();
        let fit = lmm(des.x.as_ref(), &des.y, &des.names, &des.random, &opts).expect("fit");
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "\nREML fit, Satterthwaite {}: {secs:.2} s ({} deviance evaluations, converged {})",
            if satt { "on" } else { "off" },
            fit.iterations,
            fit.converged
        );
        println!("REML criterion {:.6}", fit.deviance);
        for v in &fit.variance_components {
            println!("  {:10} variance {:.8}", v.group, v.variance);
        }
        for c in &fit.coefficients {
            println!(
                "  {:12} {:>12.8} se {:.8} df {:.2} t {:.3}",
                c.term, c.estimate, c.std_error, c.df, c.statistic
            );
        }
    }
}
