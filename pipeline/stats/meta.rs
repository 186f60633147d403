//! Fixed- and random-effects meta-analysis of k estimates yᵢ with sampling variances vᵢ, as
//! metafor's `rma(yi, vi, method = "FE" | "DL" | "REML")` (intercept-only model, z tests) and
//! `predict()` for the prediction interval.
//!
//! - τ²: DerSimonian–Laird, or REML by metafor's Fisher scoring: start at the Hedges (HE)
//!   estimate truncated at 0, step adj = (Y'PPY − tr P) / tr PP, halve a step that would make τ²
//!   negative, stop when a step changes τ² by ≤ 1e-5 (at most 100 iterations), then metafor's
//!   check that τ² = 0 does not have a higher restricted likelihood. Following the same path is what
//!   makes the result agree with metafor to ~1e-9 rather than to its 1e-5 threshold.
//! - SE of τ²: REML √(2 / tr PP); DL the formula metafor uses; none for FE.
//! - Q, its df and p with the fixed-effect weights; I² (in percent, as metafor prints it) and H²:
//!   for FE from Q, for DL/REML from τ² and the "typical" variance (k − 1)/tr P_FE.
//! - Prediction interval μ̂ ± z √(SE² + τ²) (metafor's default `test = "z"`); equals the CI for FE.
//!
//! Limits: intercept-only (no moderators); needs k ≥ 2 and positive finite vᵢ.

use crate::dist::{chi2_sf, normal_quantile, normal_sf};
use crate::types::StatsError;
use serde::Serialize;

/// Estimator of the between-study variance τ².
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TauMethod {
    /// Fixed (common) effect: τ² = 0.
    Fixed,
    /// DerSimonian–Laird moment estimator.
    Dl,
    /// Restricted maximum likelihood (Fisher scoring as metafor).
    Reml,
}

/// Result of [`rma`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaFit {
    pub method: TauMethod,
    pub k: usize,
    pub estimate: f64,
    pub se: f64,
    pub z: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    pub tau2: f64,
    /// Standard error of τ² (REML and DL, as metafor); None for the fixed-effect model.
    pub se_tau2: Option<f64>,
    pub q: f64,
    pub q_df: f64,
    pub q_p: f64,
    /// I² in percent.
    pub i2: f64,
    pub h2: f64,
    pub pi_low: f64,
    pub pi_high: f64,
    /// Fisher-scoring iterations (REML only).
    pub iterations: Option<usize>,
    /// False only when REML did not converge in 100 iterations (estimates are then from the last
    /// iterate; metafor stops with an error in that case).
    pub converged: bool,
    /// Confidence level of the intervals.
    pub level: f64,
}

/// Weighted pieces for weights w: (Σw, Σw², Σw³, μ̂ = Σwy/Σw).
fn sums(yi: &[f64], w: &[f64]) -> (f64, f64, f64, f64) {
    let s1: f64 = w.iter().sum();
    let s2: f64 = w.iter().map(|v| v * v).sum();
    let s3: f64 = w.iter().map(|v| v * v * v).sum();
    let mu = w.iter().zip(yi).map(|(a, b)| a * b).sum::<f64>() / s1;
    (s1, s2, s3, mu)
}

/// tr P and tr PP for P = W − w w'/Σw.
fn traces(s1: f64, s2: f64, s3: f64) -> (f64, f64) {
    (s1 - s2 / s1, s2 - 2.0 * s3 / s1 + s2 * s2 / (s1 * s1))
}

/// Restricted log-likelihood of the intercept-only model at τ² (metafor's ll.REML, up to the
/// constant that does not depend on τ²).
fn ll_reml(yi: &[f64], vi: &[f64], tau2: f64) -> f64 {
    let w: Vec<f64> = vi.iter().map(|v| 1.0 / (v + tau2)).collect();
    let (s1, _, _, mu) = sums(yi, &w);
    let rss: f64 = w.iter().zip(yi).map(|(a, y)| a * (y - mu) * (y - mu)).sum();
    -0.5 * vi.iter().map(|v| (v + tau2).ln()).sum::<f64>() - 0.5 * s1.ln() - 0.5 * rss
}

/// Fit the meta-analysis. `level` is the confidence level (e.g. 0.95) of CI and PI.
pub fn rma(yi: &[f64], vi: &[f64], method: TauMethod, level: f64) -> Result<MetaFit, StatsError> {
    let k = yi.len();
    if vi.len() != k {
        return Err(StatsError::DimensionMismatch(format!(
            "{} estimates but {} variances",
            k,
            vi.len()
        )));
    }
    if k < 2 {
        return Err(StatsError::TooFewObservations {
            what: "meta-analysis (studies)",
            needed: 2,
            got: k,
        });
    }
    if yi.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite("meta-analysis estimates".into()));
    }
    if vi.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(StatsError::InvalidArgument(
            "sampling variances must be positive and finite".into(),
        ));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "level must be in (0, 1), got {level}"
        )));
    }
    let kf = k as f64;
    let dfq = kf - 1.0;

    // Fixed-effect quantities: Q and the FE projection.
    let w0: Vec<f64> = vi.iter().map(|v| 1.0 / v).collect();
    let (s1, s2, s3, mu0) = sums(yi, &w0);
    let q = w0
        .iter()
        .zip(yi)
        .map(|(w, y)| w * (y - mu0) * (y - mu0))
        .sum::<f64>()
        .max(0.0);
    let (tr_p0, tr_pp0) = traces(s1, s2, s3);

    let mut iterations = None;
    let mut converged = true;
    let (tau2, se_tau2) = match method {
        TauMethod::Fixed => (0.0, None),
        TauMethod::Dl => {
            let t = ((q - dfq) / tr_p0).max(0.0);
            let se =
                ((2.0 * dfq + 4.0 * t * tr_p0 + 2.0 * t * t * tr_pp0) / (tr_p0 * tr_p0)).sqrt();
            (t, Some(se))
        }
        TauMethod::Reml => {
            // Hedges (HE) start: (Σ(y − ȳ)² − (k−1)/k Σv) / (k − 1), truncated at 0.
            let ybar = yi.iter().sum::<f64>() / kf;
            let rss0: f64 = yi.iter().map(|y| (y - ybar) * (y - ybar)).sum();
            let tr_pv = vi.iter().sum::<f64>() * (kf - 1.0) / kf;
            let mut tau2 = ((rss0 - tr_pv) / dfq).max(0.0);
            let mut iter = 0usize;
            let mut change = f64::INFINITY;
            while change > 1e-5 {
                iter += 1;
                let old = tau2;
                let w: Vec<f64> = vi.iter().map(|v| 1.0 / (v + tau2)).collect();
                let (a1, a2, a3, mu) = sums(yi, &w);
                let (tr_p, tr_pp) = traces(a1, a2, a3);
                let ypp: f64 = w
                    .iter()
                    .zip(yi)
                    .map(|(wi, y)| wi * wi * (y - mu) * (y - mu))
                    .sum();
                let mut adj = (ypp - tr_p) / tr_pp;
                if adj.is_nan() {
                    adj = 0.0;
                }
                while tau2 + adj < 0.0 {
                    adj /= 2.0;
                }
                tau2 += adj;
                change = (old - tau2).abs();
                if iter > 100 {
                    converged = false;
                    break;
                }
            }
            iterations = Some(iter);
            // metafor's check against a local maximum: if τ² = 0 has a clearly higher restricted
            // likelihood, use 0.
            if converged
                && tau2 > 1e-5
                && ll_reml(yi, vi, 0.0) - ll_reml(yi, vi, tau2) > f64::EPSILON.powf(0.25)
            {
                tau2 = 0.0;
            }
            let w: Vec<f64> = vi.iter().map(|v| 1.0 / (v + tau2)).collect();
            let (a1, a2, a3, _) = sums(yi, &w);
            let (_, tr_pp) = traces(a1, a2, a3);
            (tau2.max(0.0), Some((2.0 / tr_pp).sqrt()))
        }
    };

    let w: Vec<f64> = vi.iter().map(|v| 1.0 / (v + tau2)).collect();
    let (sw, _, _, mu) = sums(yi, &w);
    let se = 1.0 / sw.sqrt();
    let z = mu / se;
    let zq = normal_quantile(0.5 + 0.5 * level);
    let p_value = (2.0 * normal_sf(z.abs())).min(1.0);
    let (i2, h2) = match method {
        TauMethod::Fixed => (
            if q > 0.0 {
                (100.0 * (q - dfq) / q).max(0.0)
            } else {
                0.0
            },
            q / dfq,
        ),
        _ => {
            let vt = dfq / tr_p0;
            (100.0 * tau2 / (vt + tau2), tau2 / vt + 1.0)
        }
    };
    let pi_se = (se * se + tau2).sqrt();
    let around_mu = |s: f64| (mu - zq * s, mu + zq * s);
    let (conf_low, conf_high) = around_mu(se);
    let (pi_low, pi_high) = around_mu(pi_se);
    Ok(MetaFit {
        method,
        k,
        estimate: mu,
        se,
        z,
        p_value,
        conf_low,
        conf_high,
        tau2,
        se_tau2,
        q,
        q_df: dfq,
        q_p: chi2_sf(q, dfq),
        i2,
        h2,
        pi_low,
        pi_high,
        iterations,
        converged,
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_studies_have_no_heterogeneity() {
        let fit = rma(&[0.3, 0.3, 0.3], &[0.01, 0.02, 0.04], TauMethod::Reml, 0.95).unwrap();
        assert_eq!(fit.tau2, 0.0);
        assert!((fit.estimate - 0.3).abs() < 1e-15);
        assert_eq!(fit.i2, 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(rma(&[0.1], &[0.1], TauMethod::Dl, 0.95).is_err());
        assert!(rma(&[0.1, 0.2], &[0.1, 0.0], TauMethod::Dl, 0.95).is_err());
        assert!(rma(&[0.1, 0.2], &[0.1], TauMethod::Dl, 0.95).is_err());
        assert!(rma(&[0.1, f64::NAN], &[0.1, 0.1], TauMethod::Dl, 0.95).is_err());
    }
}
