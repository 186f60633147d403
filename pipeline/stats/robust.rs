//! Heteroskedasticity-consistent (HC0–HC3) and cluster-robust (CR1; CR2 is in `cr2`) covariance matrices for least
//! squares, as R's `sandwich` computes them, given the bread (X'X)⁻¹, the design, the residuals
//! and (for HC2/HC3) the leverages.
//!
//! - HC0: B (Σ eᵢ² xᵢxᵢ') B;  HC1: HC0 · n/(n − k);  HC2: eᵢ²/(1 − hᵢ);  HC3: eᵢ²/(1 − hᵢ)²
//!   (`sandwich::vcovHC(type = ...)`), k = rank of the design.
//! - CR1: G/(G − 1) · (N − 1)/(N − K) · B (Σ_g X_g'e_g e_g'X_g) B, which is
//!   `sandwich::vcovCL(type = "HC1", cadjust = TRUE)` and Stata's `vce(cluster)`; inference on
//!   G − 1 degrees of freedom (done by the caller, `ols`).
//!
//! Limits: HC2 and HC3 are undefined when an observation has leverage 1 (e.g. the only member of
//! a dummy's level); that is reported as an error rather than returned as NaN/∞. CR1 needs at
//! least two clusters. The meat is accumulated in plain f64 (it is well conditioned; the bread
//! carries the accuracy).

// index loops mirror the matrix formulas.
#![allow(clippy::needless_range_loop)]

use crate::types::StatsError;
use serde::Serialize;

/// Which covariance matrix of the coefficients to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum VcovType {
    /// σ² (X'X)⁻¹.
    #[default]
    Classical,
    Hc0,
    Hc1,
    Hc2,
    Hc3,
    /// Cluster-robust with the Stata / `vcovCL(type = "HC1")` small-sample factor.
    Cr1,
    /// Bias-reduced cluster-robust (Bell–McCaffrey) with Satterthwaite degrees of freedom per
    /// coefficient (clubSandwich's CR2; see `cr2`).
    Cr2,
}

impl VcovType {
    /// Name as R's `sandwich` spells the type (`"const"` for classical, `"CR1"` for clusters).
    pub fn as_str(&self) -> &'static str {
        match self {
            VcovType::Classical => "const",
            VcovType::Hc0 => "HC0",
            VcovType::Hc1 => "HC1",
            VcovType::Hc2 => "HC2",
            VcovType::Hc3 => "HC3",
            VcovType::Cr1 => "CR1",
            VcovType::Cr2 => "CR2",
        }
    }

    /// Whether the covariance is cluster-robust (needs cluster ids).
    pub fn is_clustered(&self) -> bool {
        matches!(self, VcovType::Cr1 | VcovType::Cr2)
    }
}

/// A B for k × k matrices, each entry summed over l in order.
pub(crate) fn product(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let k = a.len();
    let mut out = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..k {
            let mut s = 0.0;
            for l in 0..k {
                s += a[i][l] * b[l][j];
            }
            out[i][j] = s;
        }
    }
    out
}

/// B M B for symmetric B (k × k) and M (k × k), row-major `Vec<Vec<f64>>`.
pub(crate) fn sandwich(bread: &[Vec<f64>], meat: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let k = bread.len();
    let mut out = product(&product(bread, meat), bread);
    // Symmetrize against rounding.
    for i in 0..k {
        for j in 0..i {
            let m = 0.5 * (out[i][j] + out[j][i]);
            out[i][j] = m;
            out[j][i] = m;
        }
    }
    out
}

/// HC0–HC3 covariance. `x_row(i)` yields row i of the (non-aliased) design, `bread` = (X'X)⁻¹,
/// `leverage` = diagonal of the hat matrix (needed for HC2/HC3).
pub fn vcov_hc(
    kind: VcovType,
    rows: &[Vec<f64>],
    residuals: &[f64],
    leverage: &[f64],
    bread: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>, StatsError> {
    let n = rows.len();
    let k = bread.len();
    if residuals.len() != n || leverage.len() != n {
        return Err(StatsError::DimensionMismatch(
            "residuals/leverage must have one entry per row".into(),
        ));
    }
    let mut meat = vec![vec![0.0; k]; k];
    for i in 0..n {
        let e2 = residuals[i] * residuals[i];
        let w = match kind {
            VcovType::Hc0 | VcovType::Hc1 => e2,
            VcovType::Hc2 | VcovType::Hc3 => {
                let one_minus_h = 1.0 - leverage[i];
                if one_minus_h <= 1e-10 {
                    return Err(StatsError::Numerical(format!(
                        "{} is undefined: observation {} has leverage 1",
                        kind.as_str(),
                        i + 1
                    )));
                }
                if kind == VcovType::Hc2 {
                    e2 / one_minus_h
                } else {
                    e2 / (one_minus_h * one_minus_h)
                }
            }
            _ => {
                return Err(StatsError::InvalidArgument(format!(
                    "vcov_hc called with {}",
                    kind.as_str()
                )))
            }
        };
        let xi = &rows[i];
        for a in 0..k {
            let wa = w * xi[a];
            for b in 0..=a {
                meat[a][b] += wa * xi[b];
            }
        }
    }
    for a in 0..k {
        for b in 0..a {
            meat[b][a] = meat[a][b];
        }
    }
    let mut v = sandwich(bread, &meat);
    if kind == VcovType::Hc1 {
        if n <= k {
            return Err(StatsError::TooFewObservations {
                what: "HC1 covariance",
                needed: k + 1,
                got: n,
            });
        }
        let f = n as f64 / (n - k) as f64;
        v.iter_mut().flatten().for_each(|x| *x *= f);
    }
    Ok(v)
}

/// CR1 cluster-robust covariance; returns (vcov, number of clusters).
pub fn vcov_cr1(
    rows: &[Vec<f64>],
    residuals: &[f64],
    cluster: &[u32],
    bread: &[Vec<f64>],
) -> Result<(Vec<Vec<f64>>, usize), StatsError> {
    vcov_cr1_by(rows.len(), |i, a| rows[i][a], residuals, cluster, bread)
}

/// [`vcov_cr1`] with the design read through `x(i, a)` (row i, kept column a) instead of a copy
/// of its rows: the same arithmetic in the same order, so the same bits.
pub(crate) fn vcov_cr1_by(
    n: usize,
    x: impl Fn(usize, usize) -> f64,
    residuals: &[f64],
    cluster: &[u32],
    bread: &[Vec<f64>],
) -> Result<(Vec<Vec<f64>>, usize), StatsError> {
    let k = bread.len();
    if cluster.len() != n || residuals.len() != n {
        return Err(StatsError::DimensionMismatch(format!(
            "cluster has {} entries, the design {} rows",
            cluster.len(),
            n
        )));
    }
    // Score sums per cluster, in order of first appearance.
    let mut index = std::collections::HashMap::new();
    let mut scores: Vec<Vec<f64>> = Vec::new();
    for i in 0..n {
        let g = *index.entry(cluster[i]).or_insert_with(|| {
            scores.push(vec![0.0; k]);
            scores.len() - 1
        });
        for a in 0..k {
            scores[g][a] += x(i, a) * residuals[i];
        }
    }
    let g = scores.len();
    if g < 2 {
        return Err(StatsError::TooFewObservations {
            what: "cluster-robust covariance (clusters)",
            needed: 2,
            got: g,
        });
    }
    if n <= k {
        return Err(StatsError::TooFewObservations {
            what: "cluster-robust covariance",
            needed: k + 1,
            got: n,
        });
    }
    let mut meat = vec![vec![0.0; k]; k];
    for s in &scores {
        for a in 0..k {
            for b in 0..k {
                meat[a][b] += s[a] * s[b];
            }
        }
    }
    let mut v = sandwich(bread, &meat);
    let adj = (g as f64 / (g as f64 - 1.0)) * ((n as f64 - 1.0) / (n as f64 - k as f64));
    v.iter_mut().flatten().for_each(|x| *x *= adj);
    Ok((v, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hc0_of_intercept_only_model() {
        // y = mean: X = 1, bread = 1/n, HC0 = Σ e² / n².
        let rows = vec![vec![1.0]; 4];
        let e = [1.0, -1.0, 2.0, -2.0];
        let v = vcov_hc(VcovType::Hc0, &rows, &e, &[0.25; 4], &[vec![0.25]]).unwrap();
        assert!((v[0][0] - 10.0 / 16.0).abs() < 1e-15);
        let v3 = vcov_hc(VcovType::Hc3, &rows, &e, &[0.25; 4], &[vec![0.25]]).unwrap();
        assert!((v3[0][0] - 10.0 / 16.0 / 0.5625).abs() < 1e-15);
    }

    #[test]
    fn leverage_one_is_an_error() {
        let rows = vec![vec![1.0]];
        assert!(vcov_hc(VcovType::Hc3, &rows, &[0.0], &[1.0], &[vec![1.0]]).is_err());
    }

    #[test]
    fn one_cluster_is_an_error() {
        let rows = vec![vec![1.0]; 3];
        assert!(vcov_cr1(&rows, &[1.0, 2.0, 3.0], &[7, 7, 7], &[vec![1.0 / 3.0]]).is_err());
    }
}
