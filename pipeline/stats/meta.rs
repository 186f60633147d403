//! Fixed- and random-effects meta-analysis of k estimates yᵢ with sampling variances vᵢ, as
//! metafor's `rma(yi, vi, method = "FE" | "DL" | "REML", test = "z" | "knha" | "adhoc")`
//! (intercept-only model) and `predict()` for the prediction interval.
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
//! Inference on μ ([`MetaTest`], [`rma_with`]; [`rma`] is z):
//!
//! - `Z`: SE = 1/√Σwᵢ with wᵢ = 1/(vᵢ + τ²), z test, normal interval (metafor `test = "z"`).
//! - `Knha`: Hartung–Knapp–Sidik–Jonkman. SE² = s² / Σwᵢ with s² = Σwᵢ(yᵢ − μ̂)² / (k − 1); t
//!   test and interval on k − 1 df. No truncation: when s² < 1 the adjusted SE is *smaller* than
//!   the z SE (the t quantile still widens the interval, but not always enough to make it wider
//!   than the z interval). This is metafor's `test = "knha"` exactly, including its rule that
//!   s² = 0 when Σwᵢ(yᵢ − μ̂)² ≤ machine epsilon.
//! - `Adhoc`: the same with s² replaced by max(1, s²) (Knapp & Hartung's ad hoc variance
//!   correction), so the SE is never below the z SE: metafor's `test = "adhoc"`.
//!
//! With `Knha` and `Adhoc` the prediction interval is μ̂ ± t_{k−2} √(SE² + τ²), with the
//! adjusted SE and k − 2 df (Higgins, Thompson & Spiegelhalter 2009; df set to 1 when k − 2 < 1,
//! as metafor): metafor's `predict(fit, pi.type = "riley")` on the adjusted fit. For the fixed
//! effect model (τ² not estimated) its df are k − 1.
//!
//! Limits: intercept-only (no moderators); needs k ≥ 2 and positive finite vᵢ.

use crate::dist::{chi2_sf, normal_quantile, normal_sf, t_quantile, t_two_sided_p};
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

/// How the pooled effect is tested and its intervals formed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum MetaTest {
    /// Normal (z) test and intervals.
    #[default]
    Z,
    /// Hartung–Knapp–Sidik–Jonkman: scaled SE, t on k − 1 df (metafor `test = "knha"`).
    Knha,
    /// HKSJ with the scale factor truncated at 1 (metafor `test = "adhoc"`).
    Adhoc,
}

impl MetaTest {
    /// metafor's name of the test.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetaTest::Z => "z",
            MetaTest::Knha => "knha",
            MetaTest::Adhoc => "adhoc",
        }
    }
}

/// Result of [`rma`] and [`rma_with`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaFit {
    pub method: TauMethod,
    pub test: MetaTest,
    pub k: usize,
    pub estimate: f64,
    pub se: f64,
    /// The test statistic: z, or t for `Knha` and `Adhoc`.
    pub z: f64,
    /// Degrees of freedom of the t test and CI (k − 1); None for z.
    pub df: Option<f64>,
    /// HKSJ scale factor s² applied to the variance (1 for z).
    pub s2w: f64,
    /// Degrees of freedom of the prediction interval; None when it is normal.
    pub pi_df: Option<f64>,
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

/// The checks of [`rma_with`]'s arguments.
fn check_inputs(yi: &[f64], vi: &[f64], level: f64) -> Result<(), StatsError> {
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
    Ok(())
}

/// Fit the meta-analysis with z tests. `level` is the confidence level (e.g. 0.95) of CI and PI.
pub fn rma(yi: &[f64], vi: &[f64], method: TauMethod, level: f64) -> Result<MetaFit, StatsError> {
    rma_with(yi, vi, method, level, MetaTest::Z)
}

/// Fit the meta-analysis with the given inference on the pooled effect.
pub fn rma_with(
    yi: &[f64],
    vi: &[f64],
    method: TauMethod,
    level: f64,
    test: MetaTest,
) -> Result<MetaFit, StatsError> {
    check_inputs(yi, vi, level)?;
    let k = yi.len();
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
    let inf = Inference::new(yi, &w, sw, mu, test, method, level);
    let se = inf.se;
    let z = mu / se;
    let zq = inf.crit;
    let p_value = inf.p_value(z);
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
    let (conf_low, conf_high) = (mu - zq * se, mu + zq * se);
    let (pi_low, pi_high) = (mu - inf.pi_crit * pi_se, mu + inf.pi_crit * pi_se);
    Ok(MetaFit {
        method,
        test,
        k,
        estimate: mu,
        se,
        z,
        df: inf.df,
        s2w: inf.s2w,
        pi_df: inf.pi_df,
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

/// The SE of μ̂, the quantiles of its CI and PI and their df, under `test`.
struct Inference {
    se: f64,
    s2w: f64,
    df: Option<f64>,
    crit: f64,
    pi_df: Option<f64>,
    pi_crit: f64,
}

impl Inference {
    fn new(
        yi: &[f64],
        w: &[f64],
        sw: f64,
        mu: f64,
        test: MetaTest,
        method: TauMethod,
        level: f64,
    ) -> Self {
        let k = yi.len() as f64;
        let q = 0.5 + 0.5 * level;
        if test == MetaTest::Z {
            let crit = normal_quantile(q);
            return Inference {
                se: 1.0 / sw.sqrt(),
                s2w: 1.0,
                df: None,
                crit,
                pi_df: None,
                pi_crit: crit,
            };
        }
        // metafor: RSS of the weighted fit; s² = 0 at (numerically) zero RSS.
        let rss: f64 = w.iter().zip(yi).map(|(a, y)| a * (y - mu) * (y - mu)).sum();
        let mut s2w = if rss <= f64::EPSILON {
            0.0
        } else {
            rss / (k - 1.0)
        };
        if test == MetaTest::Adhoc && s2w < 1.0 {
            s2w = 1.0;
        }
        let df = k - 1.0;
        // predict(pi.type = "riley"): df − (parameters) + (coefficients): k − 2 when τ² is
        // estimated, k − 1 for the fixed-effect model; at least 1.
        let pi_df = match method {
            TauMethod::Fixed => df,
            _ => df - 1.0,
        }
        .max(1.0);
        Inference {
            se: (s2w / sw).sqrt(),
            s2w,
            df: Some(df),
            crit: t_quantile(q, df),
            pi_df: Some(pi_df),
            pi_crit: t_quantile(q, pi_df),
        }
    }

    fn p_value(&self, stat: f64) -> f64 {
        match self.df {
            None => (2.0 * normal_sf(stat.abs())).min(1.0),
            Some(df) => t_two_sided_p(stat, df),
        }
    }
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
