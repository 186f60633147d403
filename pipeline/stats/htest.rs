//! Hypothesis tests and effect sizes: one-sample, paired and Welch two-sample t-tests (as R's
//! `t.test`), Cohen's d with the pooled SD, d_z for paired designs, Hedges' g, and Holm and
//! Benjamini–Hochberg p-value adjustment (as R's `p.adjust`).
//!
//! Limits: inputs must be finite (NaN is an error, not silently dropped: the caller decides about
//! missing data); a sample with zero variance gives a non-finite statistic, reported as an error.
//! Hedges' g uses the exact small-sample correction J(df) = Γ(df/2) / (√(df/2) Γ((df − 1)/2)),
//! df = n₁ + n₂ − 2 (not the approximation 1 − 3/(4df − 1)). `p_adjust_*` pass NaN through and
//! count only the non-NaN p-values in n, as `p.adjust` does with NA.

// `!(x > 0.0)` is deliberate: it is also true for NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use crate::dist::{t_quantile, t_two_sided_p};
use crate::types::StatsError;
use serde::Serialize;
use statrs::function::gamma::ln_gamma;

/// Result of a t-test. `estimate` is the mean (one-sample), the mean difference (paired) or the
/// difference of means x̄ − ȳ (Welch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TTest {
    pub statistic: f64,
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    pub estimate: f64,
    pub std_error: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    /// Observations used: n (one-sample), pairs (paired), n₁ + n₂ (Welch).
    pub n: usize,
}

fn check_finite(x: &[f64], what: &str) -> Result<(), StatsError> {
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite(what.to_string()));
    }
    Ok(())
}

fn check_level(conf_level: f64) -> Result<(), StatsError> {
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "conf_level must be in (0, 1), got {conf_level}"
        )));
    }
    Ok(())
}

/// Mean and sample variance (n − 1), two-pass.
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let m = m + x.iter().map(|v| v - m).sum::<f64>() / n;
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    (m, ss / (n - 1.0))
}

fn finish(
    estimate: f64,
    null: f64,
    se: f64,
    df: f64,
    n: usize,
    conf_level: f64,
) -> Result<TTest, StatsError> {
    if !(se > 0.0) || !se.is_finite() {
        return Err(StatsError::Numerical(
            "t-test: standard error is zero (data are constant)".into(),
        ));
    }
    let t = (estimate - null) / se;
    let q = t_quantile(0.5 + 0.5 * conf_level, df);
    Ok(TTest {
        statistic: t,
        df,
        p_value: t_two_sided_p(t, df),
        estimate,
        std_error: se,
        conf_low: estimate - q * se,
        conf_high: estimate + q * se,
        n,
    })
}

/// One-sample t-test of mean(x) = mu.
pub fn t_test_one_sample(x: &[f64], mu: f64, conf_level: f64) -> Result<TTest, StatsError> {
    check_level(conf_level)?;
    check_finite(x, "t-test sample")?;
    if x.len() < 2 {
        return Err(StatsError::TooFewObservations {
            what: "one-sample t-test",
            needed: 2,
            got: x.len(),
        });
    }
    let (m, v) = mean_var(x);
    let n = x.len();
    finish(m, mu, (v / n as f64).sqrt(), n as f64 - 1.0, n, conf_level)
}

/// Paired t-test of mean(x − y) = mu.
pub fn t_test_paired(x: &[f64], y: &[f64], mu: f64, conf_level: f64) -> Result<TTest, StatsError> {
    if x.len() != y.len() {
        return Err(StatsError::DimensionMismatch(format!(
            "paired t-test: {} and {} values",
            x.len(),
            y.len()
        )));
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    check_finite(x, "paired t-test x")?;
    check_finite(y, "paired t-test y")?;
    t_test_one_sample(&d, mu, conf_level)
}

/// Welch two-sample t-test of mean(x) − mean(y) = mu (unequal variances, Welch–Satterthwaite df).
pub fn t_test_welch(x: &[f64], y: &[f64], mu: f64, conf_level: f64) -> Result<TTest, StatsError> {
    check_level(conf_level)?;
    check_finite(x, "Welch t-test x")?;
    check_finite(y, "Welch t-test y")?;
    if x.len() < 2 || y.len() < 2 {
        return Err(StatsError::TooFewObservations {
            what: "Welch t-test (each group)",
            needed: 2,
            got: x.len().min(y.len()),
        });
    }
    let (mx, vx) = mean_var(x);
    let (my, vy) = mean_var(y);
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let (sx, sy) = (vx / nx, vy / ny);
    let se2 = sx + sy;
    let df = se2 * se2 / (sx * sx / (nx - 1.0) + sy * sy / (ny - 1.0));
    finish(mx - my, mu, se2.sqrt(), df, x.len() + y.len(), conf_level)
}

/// Cohen's d for two independent groups: (x̄ − ȳ) / s_pooled,
/// s_pooled² = ((n₁ − 1)s₁² + (n₂ − 1)s₂²) / (n₁ + n₂ − 2).
pub fn cohens_d(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    check_finite(x, "Cohen's d x")?;
    check_finite(y, "Cohen's d y")?;
    if x.len() < 2 || y.len() < 2 {
        return Err(StatsError::TooFewObservations {
            what: "Cohen's d (each group)",
            needed: 2,
            got: x.len().min(y.len()),
        });
    }
    let (mx, vx) = mean_var(x);
    let (my, vy) = mean_var(y);
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let sp = (((nx - 1.0) * vx + (ny - 1.0) * vy) / (nx + ny - 2.0)).sqrt();
    if !(sp > 0.0) {
        return Err(StatsError::Numerical("Cohen's d: pooled SD is zero".into()));
    }
    Ok((mx - my) / sp)
}

/// Hedges' g: Cohen's d times the exact correction J(n₁ + n₂ − 2).
pub fn hedges_g(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    let d = cohens_d(x, y)?;
    Ok(d * hedges_correction((x.len() + y.len()) as f64 - 2.0))
}

/// Exact Hedges correction J(df) = Γ(df/2) / (√(df/2) Γ((df − 1)/2)); NaN for df ≤ 1.
pub fn hedges_correction(df: f64) -> f64 {
    if !(df > 1.0) {
        return f64::NAN;
    }
    (ln_gamma(df / 2.0) - ln_gamma((df - 1.0) / 2.0) - 0.5 * (df / 2.0).ln()).exp()
}

/// Cohen's d_z for paired data: mean(x − y) / sd(x − y).
pub fn cohens_dz(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    if x.len() != y.len() {
        return Err(StatsError::DimensionMismatch(format!(
            "d_z: {} and {} values",
            x.len(),
            y.len()
        )));
    }
    check_finite(x, "d_z x")?;
    check_finite(y, "d_z y")?;
    if x.len() < 2 {
        return Err(StatsError::TooFewObservations {
            what: "d_z",
            needed: 2,
            got: x.len(),
        });
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    let (m, v) = mean_var(&d);
    if !(v > 0.0) {
        return Err(StatsError::Numerical(
            "d_z: differences are constant".into(),
        ));
    }
    Ok(m / v.sqrt())
}

/// Indices of the non-NaN p-values sorted by p (stable), and their count.
fn order(p: &[f64], decreasing: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| {
        let o = p[a].total_cmp(&p[b]);
        if decreasing {
            o.reverse()
        } else {
            o
        }
    });
    idx
}

/// Holm's step-down adjustment, as R's `p.adjust(p, "holm")`: NaN stays NaN and is not counted.
pub fn p_adjust_holm(p: &[f64]) -> Vec<f64> {
    let o = order(p, false);
    let n = o.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut run = f64::NEG_INFINITY;
    for (i, &k) in o.iter().enumerate() {
        run = run.max((n - i as f64) * p[k]);
        out[k] = run.min(1.0);
    }
    out
}

/// Benjamini–Hochberg step-up adjustment, as R's `p.adjust(p, "BH")`: NaN stays NaN.
pub fn p_adjust_bh(p: &[f64]) -> Vec<f64> {
    let o = order(p, true);
    let n = o.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut run = f64::INFINITY;
    for (j, &k) in o.iter().enumerate() {
        let i = n - j as f64; // rank from the top: n, n-1, ..., 1
        run = run.min(n / i * p[k]);
        out[k] = run.min(1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedges_correction_limits() {
        // J → 1 as df → ∞; J(10) ≈ 1 − 3/(4·10 − 1) to ~1e-3.
        assert!((hedges_correction(1e6) - 1.0).abs() < 1e-6);
        assert!((hedges_correction(10.0) - (1.0 - 3.0 / 39.0)).abs() < 2e-3);
        assert!(hedges_correction(1.0).is_nan());
    }

    #[test]
    fn errors_instead_of_panics() {
        assert!(t_test_one_sample(&[1.0], 0.0, 0.95).is_err());
        assert!(t_test_one_sample(&[1.0, 1.0, 1.0], 0.0, 0.95).is_err());
        assert!(t_test_paired(&[1.0, 2.0], &[1.0], 0.0, 0.95).is_err());
        assert!(t_test_welch(&[1.0, f64::NAN], &[1.0, 2.0], 0.0, 0.95).is_err());
        assert!(t_test_one_sample(&[1.0, 2.0], 0.0, 1.5).is_err());
    }

    #[test]
    fn p_adjust_empty_and_nan() {
        assert!(p_adjust_holm(&[]).is_empty());
        let h = p_adjust_holm(&[f64::NAN, 0.01, 0.04]);
        assert!(h[0].is_nan());
        assert!((h[1] - 0.02).abs() < 1e-15 && (h[2] - 0.04).abs() < 1e-15);
    }
}
