//! Ordinary least squares by column-pivoted QR, with the summary R's `lm` gives and classical,
//! HC0–HC3 or cluster-robust (CR1, CR2) standard errors.
//!
//! Method: columns are scaled by powers of two to unit-ish norm (exact, changes nothing but the
//! pivoting and the rank decision), factored with faer's column-pivoted Householder QR, and the
//! rank is the number of pivots with |R_ii| > [`RANK_TOL`] · |R_11|. That is 1e-10, not R's 1e-7:
//! on equilibrated columns NIST's Filip (degree-10 polynomial, scaled condition number 5e9) has
//! min |R_ii|/|R_11| = 1.2e-9 and is full rank, yet R's `lm` drops two of its terms; exactly
//! collinear columns (dummy traps, duplicated or multiplied columns) give ratios near 1e-16 and are
//! still caught. Designs whose scaled condition number lies between 1e7 and 1e10 are therefore
//! fitted here where R would alias a term. Columns beyond the rank
//! are *aliased*: reported by name, like R's `NA` coefficients, and left out of the fit. The
//! solution is then polished by iterative refinement of the augmented system [I X; X' 0] with
//! residuals accumulated in double-double arithmetic (Björck's method), which gives NIST StRD
//! accuracy (LRE ≥ 7 on Filip and Wampler4–5; see `tests/nist.rs`); so is (X'X)⁻¹, column by
//! column, where the error bound κ²u of R⁻¹R⁻ᵀ exceeds 1e-10 ([`inverse`]).
//!
//! Conventions (matching R): an *intercept* is a column whose entries are all equal and non-zero;
//! with one, R² is centred and the F test excludes it, without one R² is uncentred (Σy²). The F
//! test is the classical overall F for `Classical`, and the Wald F (β' V⁻¹ β / q, with the robust
//! V) for HC and CR1, as `lmtest::waldtest(fit, vcov = ...)` and statsmodels report it; its
//! denominator df is n − rank, except CR1 and CR2 where it is G − 1 (Stata's convention, also used
//! for the CR1 t tests and intervals; for CR2 it is clubSandwich's `Wald_test(test = "Naive-F")`).
//! CR2's t tests and intervals use each coefficient's Satterthwaite df (`cr2`). Log-likelihood, AIC and BIC are those of R's `logLik.lm` with
//! df = rank + 1.
//!
//! Limits: no weights, no offsets; a design with zero residual degrees of freedom gets NaN
//! standard errors (as R). Input must be finite.

// `!(x > 0.0)` is deliberate: it is also true for NaN; index loops mirror the matrix formulas.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

use crate::cr2::vcov_cr2_by;
use crate::dist::{f_sf, t_quantile, t_two_sided_p};
pub use crate::robust::VcovType;
use crate::robust::{vcov_cr1_by, vcov_hc};
use crate::types::{Coefficient, StatsError};
use faer::{Mat, MatRef};
use serde::Serialize;

mod kernels;
mod refine;

use kernels::{Acc, Column};
use refine::{inverse_columns, Factor};

/// Options for [`ols`].
#[derive(Debug, Clone, Copy)]
pub struct OlsOptions<'a> {
    pub vcov: VcovType,
    /// Cluster id per observation; required for `Cr1` and `Cr2`, ignored otherwise.
    pub cluster: Option<&'a [u32]>,
    /// Confidence level of the coefficient intervals, in (0, 1).
    pub conf_level: f64,
}

impl Default for OlsOptions<'_> {
    fn default() -> Self {
        OlsOptions {
            vcov: VcovType::Classical,
            cluster: None,
            conf_level: 0.95,
        }
    }
}

/// Result of [`ols`].
#[derive(Debug, Clone, Serialize)]
pub struct OlsFit {
    /// Non-aliased terms, in design order.
    pub coefficients: Vec<Coefficient>,
    /// Terms dropped for collinearity (R prints them as NA), in design order.
    pub aliased: Vec<String>,
    pub n_obs: usize,
    pub rank: usize,
    pub df_residual: f64,
    pub r_squared: f64,
    pub adj_r_squared: f64,
    /// Residual standard error √(RSS / (n − rank)).
    pub sigma: f64,
    pub f_statistic: Option<f64>,
    pub f_df: Option<(f64, f64)>,
    pub f_p_value: Option<f64>,
    pub log_likelihood: f64,
    pub aic: f64,
    pub bic: f64,
    pub vcov_type: VcovType,
    pub n_clusters: Option<usize>,
    /// Covariance of the non-aliased coefficients (same order as `coefficients`).
    pub vcov: Vec<Vec<f64>>,
    pub fitted: Vec<f64>,
    pub residuals: Vec<f64>,
    pub has_intercept: bool,
}

/// The t quantile of a two-sided interval at `conf_level` with `df` degrees of freedom (NaN
/// without degrees of freedom): [`conf_interval`] is estimate ∓ this × standard error.
pub fn interval_quantile(df: f64, conf_level: f64) -> f64 {
    if df > 0.0 {
        t_quantile(0.5 + 0.5 * conf_level, df)
    } else {
        f64::NAN
    }
}

/// The interval of a coefficient at `conf_level` from its estimate, standard error and t
/// degrees of freedom, bit for bit as [`ols`] computes it: callers that keep a fit can give it
/// another level without fitting again.
pub fn conf_interval(estimate: f64, std_error: f64, df: f64, conf_level: f64) -> (f64, f64) {
    let tq = interval_quantile(df, conf_level);
    (estimate - tq * std_error, estimate + tq * std_error)
}

/// Relative pivot tolerance of the rank decision (on power-of-two equilibrated columns).
pub const RANK_TOL: f64 = 1e-10;

fn power_of_two_scale(norm: f64) -> f64 {
    if norm > 0.0 && norm.is_finite() {
        // 2^-round(log2 norm): exact scaling.
        (2.0f64).powi(-(norm.log2().round() as i32))
    } else {
        1.0
    }
}

/// Fit y = Xβ + ε by least squares. `names` labels the columns of `x`.
pub fn ols(
    x: MatRef<'_, f64>,
    y: &[f64],
    names: &[String],
    opts: &OlsOptions,
) -> Result<OlsFit, StatsError> {
    let (n, p) = (x.nrows(), x.ncols());
    check_inputs(x, y, names, opts)?;
    let qr = Factorized::new(x)?;
    let rank = qr.piv.len();
    let fac = factor(qr.a, qr.rr, &qr.qthin)?;
    let (residuals, z) = refined_solution(&fac, y);
    let inv_s = inverse(&fac).0;

    // Back to design order and original scale.
    let (piv, scale) = (&qr.piv, &qr.scale);
    let mut order: Vec<usize> = (0..rank).collect();
    order.sort_by_key(|&k| piv[k]);
    let kept: Vec<usize> = order.iter().map(|&k| piv[k]).collect();
    let beta: Vec<f64> = order.iter().map(|&k| z[k] * scale[piv[k]]).collect();
    let bread: Vec<Vec<f64>> = order
        .iter()
        .map(|&a| {
            order
                .iter()
                .map(|&b| inv_s[a][b] * scale[piv[a]] * scale[piv[b]])
                .collect()
        })
        .collect();
    let aliased: Vec<String> = (0..p)
        .filter(|j| !kept.contains(j))
        .map(|j| names[j].clone())
        .collect();

    let fitted: Vec<f64> = y.iter().zip(&residuals).map(|(a, b)| a - b).collect();
    let gof = Goodness::new(x, y, &residuals, &kept, rank);
    let cov = covariance(x, &fac, &kept, &residuals, &bread, gof.sigma2, opts)?;
    let (vcov, n_clusters) = (cov.vcov, cov.n_clusters);
    let df_inf = match n_clusters {
        Some(g) => g as f64 - 1.0,
        None => gof.df_res,
    };
    let dfs = cov.df.unwrap_or_else(|| vec![df_inf; rank]);
    let coefficients = coefficient_rows(names, &kept, &beta, &vcov, &dfs, opts.conf_level);
    let (f_statistic, f_df, f_p_value) = f_test(&gof, &beta, &vcov, df_inf, opts.vcov);

    let nf = n as f64;
    let log_likelihood =
        0.5 * (-nf * ((2.0 * std::f64::consts::PI).ln() + 1.0 - nf.ln() + gof.rss.ln()));
    let dfll = rank as f64 + 1.0;
    Ok(OlsFit {
        coefficients,
        aliased,
        n_obs: n,
        rank,
        df_residual: gof.df_res,
        r_squared: gof.r_squared,
        adj_r_squared: gof.adj_r_squared,
        sigma: gof.sigma2.sqrt(),
        f_statistic,
        f_df,
        f_p_value,
        log_likelihood,
        aic: -2.0 * log_likelihood + 2.0 * dfll,
        bic: -2.0 * log_likelihood + nf.ln() * dfll,
        vcov_type: opts.vcov,
        n_clusters,
        vcov,
        fitted,
        residuals,
        has_intercept: gof.has_intercept,
    })
}

/// The checks of [`ols`]'s arguments: dimensions, level, finiteness, cluster ids for CR1.
fn check_inputs(
    x: MatRef<'_, f64>,
    y: &[f64],
    names: &[String],
    opts: &OlsOptions,
) -> Result<(), StatsError> {
    let (n, p) = (x.nrows(), x.ncols());
    if y.len() != n {
        return Err(StatsError::DimensionMismatch(format!(
            "y has {} values, the design {} rows",
            y.len(),
            n
        )));
    }
    if names.len() != p {
        return Err(StatsError::DimensionMismatch(format!(
            "{} names for {} design columns",
            names.len(),
            p
        )));
    }
    if n == 0 {
        return Err(StatsError::TooFewObservations {
            what: "ols",
            needed: 1,
            got: 0,
        });
    }
    if p == 0 {
        return Err(StatsError::InvalidArgument("design has no columns".into()));
    }
    if !(opts.conf_level > 0.0 && opts.conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "conf_level must be in (0, 1), got {}",
            opts.conf_level
        )));
    }
    if y.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite("response y".into()));
    }
    for j in 0..p {
        for i in 0..n {
            if !x[(i, j)].is_finite() {
                return Err(StatsError::NonFinite(format!("design column {}", names[j])));
            }
        }
    }
    if opts.vcov.is_clustered() {
        match opts.cluster {
            None => {
                return Err(StatsError::InvalidArgument(format!(
                    "{} covariance needs cluster ids",
                    opts.vcov.as_str()
                )))
            }
            Some(c) if c.len() != n => {
                return Err(StatsError::DimensionMismatch(format!(
                    "cluster has {} ids, the design {} rows",
                    c.len(),
                    n
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The pivoted QR of the power-of-two scaled design, cut to its rank: what the refinement needs.
struct Factorized {
    /// Power-of-two scale of each design column.
    scale: Vec<f64>,
    /// Design column of each of the first `rank` pivots.
    piv: Vec<usize>,
    /// Upper-triangular R (rank × rank), row-major.
    rr: Vec<Vec<f64>>,
    /// The scaled kept columns, in pivot order.
    a: Vec<Column>,
    /// Thin Q (n × rank at least).
    qthin: Mat<f64>,
}

impl Factorized {
    fn new(x: MatRef<'_, f64>) -> Result<Self, StatsError> {
        let (n, p) = (x.nrows(), x.ncols());
        // Scale columns by powers of two.
        let scale: Vec<f64> = (0..p)
            .map(|j| {
                let norm = (0..n).map(|i| x[(i, j)] * x[(i, j)]).sum::<f64>().sqrt();
                power_of_two_scale(norm)
            })
            .collect();
        let xs = Mat::from_fn(n, p, |i, j| x[(i, j)] * scale[j]);
        let qr = xs.col_piv_qr();
        let rmat = qr.R();
        let (fwd, _) = qr.P().arrays();
        let kmax = n.min(p);
        let r11 = if kmax > 0 { rmat[(0, 0)].abs() } else { 0.0 };
        let tol = RANK_TOL * r11;
        let mut rank = 0;
        while rank < kmax && rmat[(rank, rank)].abs() > tol && r11 > 0.0 {
            rank += 1;
        }
        if rank == 0 {
            return Err(StatsError::Numerical(
                "design matrix is zero (rank 0)".into(),
            ));
        }
        let piv: Vec<usize> = fwd[..rank].to_vec();
        let rr: Vec<Vec<f64>> = (0..rank)
            .map(|i| {
                (0..rank)
                    .map(|j| if j >= i { rmat[(i, j)] } else { 0.0 })
                    .collect()
            })
            .collect();
        // The scaled design and the factorization are n × p each: keep only what the refinement
        // needs (the kept columns, sparse where mostly zero, and thin Q), freeing each as soon
        // as it is used, so that a large fit holds about two copies of the design, not six.
        let a: Vec<Column> = piv
            .iter()
            .map(|&j| Column::new((0..n).map(|i| xs[(i, j)]), n))
            .collect();
        drop(xs);
        let qthin = qr.compute_thin_Q();
        drop(qr);
        Ok(Self {
            scale,
            piv,
            rr,
            a,
            qthin,
        })
    }
}

/// What the refinement works on: the kept columns `a`, R (`rr`, rank × rank) and the columns
/// of thin Q (`qthin`, borrowed), as [`Factorized`] holds them.
fn factor<'q>(
    a: Vec<Column>,
    rr: Vec<Vec<f64>>,
    qthin: &'q Mat<f64>,
) -> Result<Factor<'q>, StatsError> {
    let rank = rr.len();
    let q: Vec<&[f64]> = (0..rank)
        .map(|k| match qthin.col(k).try_as_col_major() {
            Some(c) => Ok(c.as_slice()),
            None => Err(StatsError::Numerical("Q is not stored by columns".into())),
        })
        .collect::<Result<_, _>>()?;
    Ok(Factor {
        n: qthin.nrows(),
        r: rank,
        a,
        q,
        rr,
    })
}

/// The residuals and the coefficients (scaled, pivot order) of the least-squares solution,
/// refined.
fn refined_solution(fac: &Factor, y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let qty = fac.qt_mul_many(&[y]).pop().unwrap_or_default();
    let z = fac.solve_r(&qty);
    let res = {
        let mut acc: Vec<Acc> = y.iter().map(|&v| Acc::of(v)).collect();
        let nz: Vec<f64> = z.iter().map(|v| -v).collect();
        fac.a_mul(&nz, &mut acc);
        acc.iter().map(|a| a.value()).collect::<Vec<f64>>()
    };
    let (mut res, mut z) = (vec![res], vec![z]);
    fac.refine(y, &[vec![0.0; fac.r]], &mut res, &mut z, 6);
    (res.swap_remove(0), z.swap_remove(0))
}

/// Above this bound on the relative error of the unrefined (A'A)⁻¹, [`inverse`] refines it.
const INVERSE_REFINE_ABOVE: f64 = 1e-10;

/// (A'A)⁻¹ of the scaled design (pivot order), and whether it was refined. First R⁻¹R⁻ᵀ from the
/// triangular factor: R is the exact factor of a design within a few units of rounding u of A,
/// so this inverse is within about κ²u of (A'A)⁻¹ relatively, κ = ‖R‖_F ‖R⁻¹‖_F (and
/// ‖R⁻¹‖_F² = tr R⁻¹R⁻ᵀ, read off the inverse itself). Where κ²u exceeds
/// [`INVERSE_REFINE_ABOVE`] each column is refined in its augmented system ([`refined_inverse`]);
/// a well-conditioned design (the national H1 fits: κ² = 7.7e4, κ²u = 1.7e-11, the unrefined
/// inverse 1.3e-12 from the refined one) keeps R⁻¹R⁻ᵀ, which spares the refinement's passes over
/// the data, its largest cost. Symmetrized.
fn inverse(fac: &Factor) -> (Vec<Vec<f64>>, bool) {
    let rank = fac.r;
    let mut inv = vec![vec![0.0; rank]; rank];
    for j in 0..rank {
        let mut e = vec![0.0; rank];
        e[j] = 1.0;
        let col = fac.solve_r(&fac.solve_rt(&e));
        for (i, v) in col.into_iter().enumerate() {
            inv[i][j] = v;
        }
    }
    let r_norm2: f64 = fac.rr.iter().flatten().map(|v| v * v).sum();
    let r_inv_norm2: f64 = (0..rank).map(|i| inv[i][i]).sum();
    let kappa2 = r_norm2 * r_inv_norm2;
    if !(kappa2 * f64::EPSILON <= INVERSE_REFINE_ABOVE) {
        return (refined_inverse(fac), true);
    }
    symmetrize(&mut inv);
    (inv, false)
}

/// (A'A)⁻¹ of the scaled design (pivot order), refined column by column: the augmented system
/// with right-hand side (0, e_j) has z = −(A'A)⁻¹ e_j. The columns are refined on the available
/// cores ([`inverse_columns`]). Symmetrized.
fn refined_inverse(fac: &Factor) -> Vec<Vec<f64>> {
    let rank = fac.r;
    let inv_cols = inverse_columns(fac);
    let mut inv_s = vec![vec![0.0; rank]; rank];
    for (j, zj) in inv_cols.iter().enumerate() {
        for i in 0..rank {
            inv_s[i][j] = -zj[i];
        }
    }
    symmetrize(&mut inv_s);
    inv_s
}

/// Each pair of off-diagonal entries replaced by their mean.
fn symmetrize(m: &mut [Vec<f64>]) {
    for i in 0..m.len() {
        for j in 0..i {
            let v = 0.5 * (m[i][j] + m[j][i]);
            m[i][j] = v;
            m[j][i] = v;
        }
    }
}

/// Sums of squares and R² of a fit (R's conventions on the intercept, see the module docs).
struct Goodness {
    rss: f64,
    tss: f64,
    df_res: f64,
    /// RSS / (n − rank); NaN without residual degrees of freedom.
    sigma2: f64,
    has_intercept: bool,
    /// Position among the kept columns of a kept intercept.
    intercept_kept: Option<usize>,
    df_int: f64,
    r_squared: f64,
    adj_r_squared: f64,
    rank: usize,
}

impl Goodness {
    fn new(x: MatRef<'_, f64>, y: &[f64], residuals: &[f64], kept: &[usize], rank: usize) -> Self {
        let n = x.nrows();
        let p = x.ncols();
        let mut rss_acc = Acc::default();
        for &e in residuals {
            rss_acc.add_prod(e, e);
        }
        let rss = rss_acc.value();
        let df_res = n as f64 - rank as f64;
        let sigma2 = if df_res > 0.0 { rss / df_res } else { f64::NAN };

        // Intercept: a column of equal non-zero values.
        let is_intercept = |j: usize| {
            let v0 = x[(0, j)];
            v0 != 0.0 && (0..n).all(|i| x[(i, j)] == v0)
        };
        let has_intercept = (0..p).any(is_intercept);
        let intercept_kept: Option<usize> = kept.iter().position(|&j| is_intercept(j));

        let tss = if has_intercept {
            let mean = y.iter().sum::<f64>() / n as f64;
            let mut a = Acc::default();
            for &v in y {
                a.add_prod(v - mean, v - mean);
            }
            a.value()
        } else {
            let mut a = Acc::default();
            for &v in y {
                a.add_prod(v, v);
            }
            a.value()
        };
        let df_int = if has_intercept { 1.0 } else { 0.0 };
        let r_squared = 1.0 - rss / tss;
        let adj_r_squared = 1.0 - (1.0 - r_squared) * ((n as f64 - df_int) / df_res);
        Self {
            rss,
            tss,
            df_res,
            sigma2,
            has_intercept,
            intercept_kept,
            df_int,
            r_squared,
            adj_r_squared,
            rank,
        }
    }
}

/// A covariance of the kept coefficients: the matrix, the number of clusters (CR1, CR2) and
/// the degrees of freedom of each coefficient when they differ (CR2's Satterthwaite df).
struct Covariance {
    vcov: Vec<Vec<f64>>,
    n_clusters: Option<usize>,
    df: Option<Vec<f64>>,
}

/// The covariance of the kept coefficients of the requested type.
fn covariance(
    x: MatRef<'_, f64>,
    fac: &Factor,
    kept: &[usize],
    residuals: &[f64],
    bread: &[Vec<f64>],
    sigma2: f64,
    opts: &OlsOptions,
) -> Result<Covariance, StatsError> {
    let n = x.nrows();
    let plain = |vcov, n_clusters| Covariance {
        vcov,
        n_clusters,
        df: None,
    };
    Ok(match opts.vcov {
        VcovType::Classical => plain(
            bread
                .iter()
                .map(|r| r.iter().map(|v| v * sigma2).collect())
                .collect::<Vec<Vec<f64>>>(),
            None,
        ),
        VcovType::Cr1 => {
            let cl = opts.cluster.unwrap_or(&[]);
            let (v, g) = vcov_cr1_by(n, |i, a| x[(i, kept[a])], residuals, cl, bread)?;
            plain(v, Some(g))
        }
        VcovType::Cr2 => {
            let cl = opts.cluster.unwrap_or(&[]);
            let r = vcov_cr2_by(n, |i, a| x[(i, kept[a])], residuals, cl, bread)?;
            Covariance {
                vcov: r.vcov,
                n_clusters: Some(r.n_clusters),
                df: Some(r.df),
            }
        }
        kind => {
            // Rows of the kept design (original scale), for the sandwich estimators.
            let rows: Vec<Vec<f64>> = (0..n)
                .map(|i| kept.iter().map(|&j| x[(i, j)]).collect())
                .collect();
            // Leverage h_i = ||Q1 row i||².
            let lev: Vec<f64> = (0..n)
                .map(|i| fac.q.iter().map(|qc| qc[i] * qc[i]).sum())
                .collect();
            plain(vcov_hc(kind, &rows, residuals, &lev, bread)?, None)
        }
    })
}

/// The coefficient rows of the kept columns, with t tests and intervals on `dfs[k]` degrees of
/// freedom (one value for all but CR2's).
fn coefficient_rows(
    names: &[String],
    kept: &[usize],
    beta: &[f64],
    vcov: &[Vec<f64>],
    dfs: &[f64],
    conf_level: f64,
) -> Vec<Coefficient> {
    let mut last: Option<(u64, f64)> = None;
    kept.iter()
        .enumerate()
        .map(|(k, &j)| {
            let df_inf = dfs[k];
            let tq = match last {
                Some((bits, q)) if bits == df_inf.to_bits() => q,
                _ => {
                    let q = interval_quantile(df_inf, conf_level);
                    last = Some((df_inf.to_bits(), q));
                    q
                }
            };
            let se = vcov[k][k].sqrt();
            let t = beta[k] / se;
            Coefficient {
                term: names[j].clone(),
                estimate: beta[k],
                std_error: se,
                statistic: t,
                df: df_inf,
                p_value: if df_inf > 0.0 {
                    t_two_sided_p(t, df_inf)
                } else {
                    f64::NAN
                },
                conf_low: beta[k] - tq * se,
                conf_high: beta[k] + tq * se,
                // (the same numbers as `conf_interval(beta[k], se, df_inf, conf_level)`)
            }
        })
        .collect()
}

/// F statistic, its degrees of freedom and p-value.
type FTest = (Option<f64>, Option<(f64, f64)>, Option<f64>);

/// The overall F test of all non-intercept coefficients: classical, or Wald with the robust
/// covariance.
fn f_test(
    g: &Goodness,
    beta: &[f64],
    vcov: &[Vec<f64>],
    df_inf: f64,
    vcov_type: VcovType,
) -> FTest {
    let test_idx: Vec<usize> = (0..g.rank)
        .filter(|&k| Some(k) != g.intercept_kept)
        .collect();
    let q = test_idx.len();
    if q == 0 || !(df_inf > 0.0) {
        (None, None, None)
    } else if vcov_type == VcovType::Classical {
        let f = ((g.tss - g.rss) / (g.rank as f64 - g.df_int)) / g.sigma2;
        let df1 = g.rank as f64 - g.df_int;
        (Some(f), Some((df1, g.df_res)), Some(f_sf(f, df1, g.df_res)))
    } else {
        let b: Vec<f64> = test_idx.iter().map(|&k| beta[k]).collect();
        let v: Vec<Vec<f64>> = test_idx
            .iter()
            .map(|&a| test_idx.iter().map(|&c| vcov[a][c]).collect())
            .collect();
        match solve_spd(&v, &b) {
            Some(vb) => {
                let w: f64 = b.iter().zip(&vb).map(|(x, y)| x * y).sum::<f64>() / q as f64;
                (
                    Some(w),
                    Some((q as f64, df_inf)),
                    Some(f_sf(w, q as f64, df_inf)),
                )
            }
            None => (None, None, None),
        }
    }
}

/// Solve V x = b for symmetric positive definite V by Cholesky; None if not positive definite.
fn solve_spd(v: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let k = b.len();
    let mut l = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = v[i][j];
            for m in 0..j {
                s -= l[i][m] * l[j][m];
            }
            if i == j {
                if !(s > 0.0) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut y = b.to_vec();
    for i in 0..k {
        for m in 0..i {
            y[i] -= l[i][m] * y[m];
        }
        y[i] /= l[i][i];
    }
    for i in (0..k).rev() {
        for m in i + 1..k {
            y[i] -= l[m][i] * y[m];
        }
        y[i] /= l[i][i];
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("x{i}")).collect()
    }

    /// [`inverse`] of `x`'s scaled design, and the refined inverse beside it.
    fn both_inverses(x: MatRef<'_, f64>) -> (Vec<Vec<f64>>, bool, Vec<Vec<f64>>) {
        let qr = Factorized::new(x).unwrap();
        let fac = factor(qr.a, qr.rr, &qr.qthin).unwrap();
        let (inv, refined) = inverse(&fac);
        (inv, refined, refined_inverse(&fac))
    }

    #[test]
    fn a_well_conditioned_inverse_is_not_refined_and_agrees_with_the_refined_one() {
        // An intercept, 30 dummies of unequal groups and a covariate: like H1's design.
        let n = 3000;
        let x = Mat::from_fn(n, 32, |i, j| match j {
            0 => 1.0,
            31 => ((i * 7919) % 1000) as f64 / 100.0,
            _ => f64::from((i % 31 + (i / 97) % 3) % 31 == j),
        });
        let (inv, refined, exact) = both_inverses(x.as_ref());
        assert!(!refined);
        for i in 0..inv.len() {
            for j in 0..inv.len() {
                let scale = (exact[i][i] * exact[j][j]).sqrt();
                assert!((inv[i][j] - exact[i][j]).abs() <= 1e-12 * scale, "{i},{j}");
            }
        }
    }

    #[test]
    fn an_ill_conditioned_inverse_is_refined() {
        // Powers of x up to the sixth (κ² of the scaled design far above 1e-10 / ε).
        let x = Mat::from_fn(50, 7, |i, j| (1.0 + i as f64 / 10.0).powi(j as i32));
        let (inv, refined, exact) = both_inverses(x.as_ref());
        assert!(refined);
        assert_eq!(inv, exact);
    }

    #[test]
    fn exact_line() {
        let x = Mat::from_fn(5, 2, |i, j| if j == 0 { 1.0 } else { i as f64 });
        let y: Vec<f64> = (0..5).map(|i| 2.0 + 3.0 * i as f64).collect();
        let fit = ols(x.as_ref(), &y, &names(2), &OlsOptions::default()).unwrap();
        assert!((fit.coefficients[0].estimate - 2.0).abs() < 1e-14);
        assert!((fit.coefficients[1].estimate - 3.0).abs() < 1e-14);
        assert!(fit.has_intercept);
        assert_eq!(fit.rank, 2);
    }

    #[test]
    fn aliased_column_is_reported_by_name() {
        // x2 = 2 * x1: R's lm reports x2 as NA.
        let x = Mat::from_fn(6, 3, |i, j| match j {
            0 => 1.0,
            1 => i as f64,
            _ => 2.0 * i as f64,
        });
        let y = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0];
        let fit = ols(x.as_ref(), &y, &names(3), &OlsOptions::default()).unwrap();
        assert_eq!(fit.rank, 2);
        assert_eq!(fit.aliased, vec!["x2".to_string()]);
        assert_eq!(fit.coefficients.len(), 2);
        assert!(fit.coefficients.iter().all(|c| c.estimate.abs() < 10.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = Mat::from_fn(3, 1, |_, _| 1.0);
        assert!(ols(x.as_ref(), &[1.0, 2.0], &names(1), &OlsOptions::default()).is_err());
        assert!(ols(
            x.as_ref(),
            &[1.0, f64::NAN, 2.0],
            &names(1),
            &OlsOptions::default()
        )
        .is_err());
        let o = OlsOptions {
            vcov: VcovType::Cr1,
            ..Default::default()
        };
        assert!(ols(x.as_ref(), &[1.0, 2.0, 3.0], &names(1), &o).is_err());
    }
}
