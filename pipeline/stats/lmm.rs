//! Linear mixed models with random intercepts (one grouping factor, nested or crossed factors),
//! fitted the way lme4's `lmer` fits them, with lmerTest's Satterthwaite t-tests.
//!
//! Method (Bates et al., "Fitting Linear Mixed-Effects Models Using lme4", JSS 2015): the
//! relative covariance factor Λ(θ) is diagonal with one θ per grouping factor; for a given θ the
//! penalized least-squares problem is solved with a sparse Cholesky factor L of Λ'Z'ZΛ + I
//! (faer's sparse Cholesky, fill-reducing ordering and symbolic analysis done once, numeric
//! factorization per θ) and a dense Cholesky of the Schur complement RX'RX for the fixed effects.
//! This gives the profiled deviance (ML) or REML criterion. θ is optimized by Nelder–Mead and
//! then polished by Newton steps on Richardson-extrapolated finite differences, to a much tighter
//! tolerance than lme4's default. The deviance is even in each θ_k, so the search runs
//! unconstrained and reports |θ|, which is the same as lme4's bound θ ≥ 0. As lme4 does
//! (`boundary.tol = 1e-5`), a θ_k that comes within 1e-5 of zero is tried at zero and kept
//! there when the deviance is not higher; the polish then goes on over the other θ.
//!
//! Reported: fixed effects with σ²(RX'RX)⁻¹ covariance; t statistics with Satterthwaite degrees of
//! freedom as lmerTest's `summary()` computes them (Hessian of the deviance in (θ, σ) and Jacobian
//! of Var(β̂) by numDeriv's Richardson scheme, pseudo-inverse of the Hessian over its
//! eigenvalues > 1e-8). One deliberate difference: the relative step is 1e-2 instead of
//! numDeriv's 1e-4, because with 1e-4 rounding noise in the deviance moves the df by up to ~1e-4
//! relative; with 1e-2 and four Richardson levels the derivatives are accurate to ~1e-9, and
//! lmerTest's own values agree with that to ~1e-6 on the fixtures. Also reported: variance
//! components; logLik, AIC, BIC as lme4 (for REML fits the REML criterion, with
//! df = p + #θ + 1). A singular fit (some θ below lme4's 1e-4) is flagged and warned about;
//! non-convergence is a flag and a warning, never a panic. Aliased fixed-effect columns are
//! dropped (sequential QR with R's tolerance 1e-7, as lme4 does) and listed.
//!
//! Limits: random intercepts only (no slopes, no correlated terms), Gaussian response, no
//! weights or offsets. Unused levels of a grouping factor are dropped (as R's `factor()` would).

mod optimize;
mod pack;
mod pls;
mod rank;
mod satterthwaite;

use faer::{Mat, MatRef};
use serde::Serialize;

use optimize::{nelder_mead, newton_polish};
use pls::Problem;
use rank::independent_columns;
use satterthwaite::satterthwaite;

use crate::dist;
use crate::types::{Coefficient, RandomFactor, StatsError};

/// Options for [`lmm`].
#[derive(Debug, Clone, PartialEq)]
pub struct LmmOptions {
    /// REML (default) or maximum likelihood.
    pub reml: bool,
    /// Level of the confidence intervals of the fixed effects.
    pub conf_level: f64,
    /// Satterthwaite degrees of freedom and t-based p-values and intervals (lmerTest). When false,
    /// inference is z-based (df = ∞).
    pub satterthwaite: bool,
    /// Maximum number of deviance evaluations in the optimizer.
    pub max_evaluations: usize,
    /// Relative tolerance on θ for convergence of the Newton polish.
    pub theta_tol: f64,
    /// lme4's `boundary.tol`: a θ_k below it is tried at zero, and kept there when the
    /// deviance is not higher.
    pub boundary_tol: f64,
}

impl Default for LmmOptions {
    fn default() -> Self {
        Self {
            reml: true,
            conf_level: 0.95,
            satterthwaite: true,
            max_evaluations: 5000,
            theta_tol: 1e-10,
            boundary_tol: 1e-5,
        }
    }
}

/// One variance component as lme4's `VarCorr()` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VarComp {
    /// Grouping factor name, or `Residual`.
    pub group: String,
    /// `(Intercept)` for random intercepts; `None` for the residual.
    pub term: Option<String>,
    pub variance: f64,
    pub std_dev: f64,
}

/// Result of [`lmm`].
#[derive(Debug, Clone, PartialEq)]
pub struct LmmFit {
    /// Fixed effects: estimate, SE, t, Satterthwaite df (∞ if not requested), p, interval.
    pub coefficients: Vec<Coefficient>,
    /// Fixed-effect columns dropped as linearly dependent on earlier ones.
    pub aliased: Vec<String>,
    /// One per grouping factor (in the given order), then the residual.
    pub variance_components: Vec<VarComp>,
    pub sigma: f64,
    /// Relative standard deviations θ_k = σ_k / σ, one per factor.
    pub theta: Vec<f64>,
    pub log_likelihood: f64,
    /// −2 log-likelihood: the REML criterion for REML fits, the deviance for ML fits.
    pub deviance: f64,
    pub aic: f64,
    pub bic: f64,
    pub n_obs: usize,
    /// Number of (used) levels per grouping factor.
    pub n_groups: Vec<(String, usize)>,
    pub converged: bool,
    pub singular: bool,
    /// Deviance evaluations used by the optimizer.
    pub iterations: usize,
    pub warnings: Vec<String>,
    /// Covariance matrix of the (non-aliased) fixed effects.
    pub vcov: Vec<Vec<f64>>,
    pub reml: bool,
}

/// The interval of a coefficient at `conf_level` from its estimate, standard error and
/// Satterthwaite degrees of freedom (infinite: a z interval; NaN: none), bit for bit as [`lmm`]
/// computes it, so that a kept fit can be given another level without fitting again.
pub fn conf_interval(estimate: f64, std_error: f64, df: f64, conf_level: f64) -> (f64, f64) {
    let q = interval_quantile(df, conf_level);
    (estimate - q * std_error, estimate + q * std_error)
}

/// The quantile of [`conf_interval`]: normal for infinite df, t otherwise, NaN for NaN df.
pub fn interval_quantile(df: f64, conf_level: f64) -> f64 {
    let alpha = 1.0 - conf_level;
    if df.is_infinite() {
        dist::normal_quantile(1.0 - alpha / 2.0)
    } else if df.is_nan() {
        f64::NAN
    } else {
        dist::t_quantile(1.0 - alpha / 2.0, df)
    }
}

/// Cluster-robust inference on a fitted mixed model's fixed effects: the coefficients with
/// CR2 standard errors and Satterthwaite (Bell–McCaffrey) df, their covariance, the clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct LmmRobust {
    pub coefficients: Vec<Coefficient>,
    pub vcov: Vec<Vec<f64>>,
    /// Clusters after merging those a random-effect level spans ([`crate::cr2::nesting_clusters`]).
    pub n_clusters: usize,
    /// Clusters as given.
    pub n_clusters_given: usize,
}

/// CR2 by `cluster` on the fit `fit` of `lmm(x, y, names, factors, ..)` (clubSandwich's
/// `coef_test(fit, vcov = "CR2", cluster = ..., test = "Satterthwaite")` on an lmer fit): the
/// fitted model is the working model, the estimates stay the fit's. Clusters that share a level
/// of a random-effect factor (a respondent seen in two units) are merged first, so that the
/// random effects nest in them.
pub fn cluster_robust(
    fit: &LmmFit,
    x: MatRef<'_, f64>,
    y: &[f64],
    names: &[String],
    factors: &[RandomFactor],
    cluster: &[u32],
    conf_level: f64,
) -> Result<LmmRobust, StatsError> {
    let n = y.len();
    if x.nrows() != n || names.len() != x.ncols() || cluster.len() != n {
        return Err(StatsError::DimensionMismatch(format!(
            "{n} observations, a design of {} × {} with {} names, {} cluster codes",
            x.nrows(),
            x.ncols(),
            names.len(),
            cluster.len()
        )));
    }
    if fit.theta.len() != factors.len() {
        return Err(StatsError::DimensionMismatch(format!(
            "{} relative SDs for {} grouping factors",
            fit.theta.len(),
            factors.len()
        )));
    }
    // The fit's (non-aliased) columns, in its coefficients' order.
    let cols: Vec<usize> = fit
        .coefficients
        .iter()
        .map(|c| {
            names.iter().position(|nm| *nm == c.term).ok_or_else(|| {
                StatsError::InvalidArgument(format!("coefficient `{}` is not a column", c.term))
            })
        })
        .collect::<Result<_, _>>()?;
    let kept = Mat::from_fn(n, cols.len(), |i, a| x[(i, cols[a])]);
    let residuals: Vec<f64> = (0..n)
        .map(|i| {
            y[i] - fit
                .coefficients
                .iter()
                .enumerate()
                .map(|(a, c)| kept[(i, a)] * c.estimate)
                .sum::<f64>()
        })
        .collect();
    let levels: Vec<&[u32]> = factors.iter().map(|f| f.levels.as_slice()).collect();
    let merged = crate::cr2::nesting_clusters(cluster, &levels);
    let r = crate::cr2::vcov_cr2_mixed(kept.as_ref(), &residuals, &levels, &fit.theta, &merged)?;
    let beta: Vec<f64> = fit.coefficients.iter().map(|c| c.estimate).collect();
    let terms: Vec<String> = fit.coefficients.iter().map(|c| c.term.clone()).collect();
    let given = cluster
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    Ok(LmmRobust {
        coefficients: coefficients(&terms, &beta, &r.vcov, &r.df, conf_level),
        vcov: r.vcov,
        n_clusters: r.n_clusters,
        n_clusters_given: given,
    })
}

/// Fits `y = Xβ + Σ_k Z_k b_k + ε` with independent random intercepts `b_k ~ N(0, σ_k² I)`.
///
/// `x` is the fixed-effect model matrix (with its intercept column if wanted), `names` its column
/// names, `factors` the grouping factors (`design::build` gives them in lme4's order).
pub fn lmm(
    x: MatRef<'_, f64>,
    y: &[f64],
    names: &[String],
    factors: &[RandomFactor],
    opts: &LmmOptions,
) -> Result<LmmFit, StatsError> {
    let n = y.len();
    check_inputs(x, y, names, factors, opts)?;
    let groups = used_levels(factors, n)?;
    let fixed = FixedEffects::new(x, names)?;
    let p = fixed.names.len();
    let prob = Problem::new(fixed.x.as_ref(), y, &groups)?;
    let reml = opts.reml;
    let Optimum {
        theta,
        converged,
        evals,
        mut warnings,
    } = optimize_theta(&prob, groups.len(), n, p, opts);
    let fit = prob.pls(&theta)?;
    let deviance = fit.deviance(reml, n, p);
    if !deviance.is_finite() {
        return Err(StatsError::Numerical(
            "deviance is not finite at the optimum".into(),
        ));
    }
    let denom = if reml { (n - p) as f64 } else { n as f64 };
    let sigma2 = fit.pwrss / denom;
    let sigma = sigma2.sqrt();
    let singular = theta.iter().any(|&t| t < 1e-4);
    if singular {
        warnings.push("boundary (singular) fit: a random-effect variance is (near) zero".into());
    }

    let vcov: Vec<Vec<f64>> = (0..p)
        .map(|i| (0..p).map(|j| sigma2 * fit.rx_inv[i * p + j]).collect())
        .collect();

    // Satterthwaite df as lmerTest.
    let df: Vec<f64> = if opts.satterthwaite && p > 0 {
        match satterthwaite(&prob, &theta, sigma, reml, n, p, &vcov) {
            Ok((df, w)) => {
                warnings.extend(w);
                df
            }
            Err(e) => {
                warnings.push(format!("Satterthwaite df not computed: {e}"));
                vec![f64::NAN; p]
            }
        }
    } else {
        vec![f64::INFINITY; p]
    };

    let coefficients = coefficients(&fixed.names, &fit.beta, &vcov, &df, opts.conf_level);
    let variance_components = variance_components(&groups, &theta, sigma2, sigma);
    let k = groups.len();
    let n_par = (p + k + 1) as f64;
    let log_likelihood = -deviance / 2.0;
    Ok(LmmFit {
        coefficients,
        aliased: fixed.aliased,
        variance_components,
        sigma,
        theta,
        log_likelihood,
        deviance,
        aic: deviance + 2.0 * n_par,
        bic: deviance + (n as f64).ln() * n_par,
        n_obs: n,
        n_groups: groups.iter().map(|(nm, _, nl)| (nm.clone(), *nl)).collect(),
        converged,
        singular,
        iterations: evals,
        warnings,
        vcov,
        reml,
    })
}

/// The checks of [`lmm`]'s arguments that need no computation.
fn check_inputs(
    x: MatRef<'_, f64>,
    y: &[f64],
    names: &[String],
    factors: &[RandomFactor],
    opts: &LmmOptions,
) -> Result<(), StatsError> {
    let n = y.len();
    if x.nrows() != n {
        return Err(StatsError::DimensionMismatch(format!(
            "x has {} rows, y has {n}",
            x.nrows()
        )));
    }
    if names.len() != x.ncols() {
        return Err(StatsError::DimensionMismatch(format!(
            "{} names for {} columns",
            names.len(),
            x.ncols()
        )));
    }
    if factors.is_empty() {
        return Err(StatsError::InvalidArgument(
            "a mixed model needs at least one random-effect grouping factor".into(),
        ));
    }
    if !(opts.conf_level > 0.0 && opts.conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "conf_level must be in (0, 1), got {}",
            opts.conf_level
        )));
    }
    if y.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite("response".into()));
    }
    for j in 0..x.ncols() {
        if (0..n).any(|i| !x[(i, j)].is_finite()) {
            return Err(StatsError::NonFinite(format!("column `{}`", names[j])));
        }
    }
    Ok(())
}

/// A grouping factor as the fit uses it: name, level code per observation (levels renumbered
/// in order of first appearance, unused ones dropped), number of levels.
pub(crate) type Group = (String, Vec<u32>, usize);

/// The grouping factors, validated, with unused levels dropped (as R's `factor()` would).
fn used_levels(factors: &[RandomFactor], n: usize) -> Result<Vec<Group>, StatsError> {
    let mut groups: Vec<Group> = Vec::with_capacity(factors.len());
    for f in factors {
        if f.levels.len() != n {
            return Err(StatsError::DimensionMismatch(format!(
                "factor `{}` has {} observations, y has {n}",
                f.name,
                f.levels.len()
            )));
        }
        let mut map = vec![u32::MAX; f.n_levels];
        let mut next = 0u32;
        let mut codes = Vec::with_capacity(n);
        for &l in &f.levels {
            let l = l as usize;
            if l >= f.n_levels {
                return Err(StatsError::InvalidArgument(format!(
                    "factor `{}` has level index {l} ≥ n_levels {}",
                    f.name, f.n_levels
                )));
            }
            if map[l] == u32::MAX {
                map[l] = next;
                next += 1;
            }
            codes.push(map[l]);
        }
        let nl = next as usize;
        if nl < 2 {
            return Err(StatsError::InvalidArgument(format!(
                "grouping factor `{}` must have more than one sampled level",
                f.name
            )));
        }
        if nl >= n {
            return Err(StatsError::InvalidArgument(format!(
                "number of levels of grouping factor `{}` ({nl}) must be < number of observations ({n})",
                f.name
            )));
        }
        groups.push((f.name.clone(), codes, nl));
    }
    Ok(groups)
}

/// The fixed-effect columns kept for the fit (those not linearly dependent on earlier ones) and
/// the names of the dropped ones.
struct FixedEffects {
    x: Mat<f64>,
    names: Vec<String>,
    aliased: Vec<String>,
}

impl FixedEffects {
    fn new(x: MatRef<'_, f64>, names: &[String]) -> Result<Self, StatsError> {
        let n = x.nrows();
        let keep = independent_columns(x, 1e-7);
        let aliased: Vec<String> = (0..x.ncols())
            .filter(|j| !keep.contains(j))
            .map(|j| names[j].clone())
            .collect();
        let xk = Mat::from_fn(n, keep.len(), |i, j| x[(i, keep[j])]);
        let kept_names: Vec<String> = keep.iter().map(|&j| names[j].clone()).collect();
        let p = keep.len();
        if n <= p {
            return Err(StatsError::TooFewObservations {
                what: "mixed model",
                needed: p + 1,
                got: n,
            });
        }
        Ok(Self {
            x: xk,
            names: kept_names,
            aliased,
        })
    }
}

/// Where the search for θ ended.
struct Optimum {
    /// |θ|, with values below 1e-10 set to zero.
    theta: Vec<f64>,
    converged: bool,
    /// Deviance evaluations used.
    evals: usize,
    warnings: Vec<String>,
}

/// Nelder–Mead from θ = 1, then Newton polish with lme4's boundary check; the deviance is even
/// in each θ_k, so the search runs unconstrained and reports |θ|.
fn optimize_theta(prob: &Problem, k: usize, n: usize, p: usize, opts: &LmmOptions) -> Optimum {
    let mut warnings = Vec::new();
    let mut evals = 0usize;
    let reml = opts.reml;
    let dev = |theta: &[f64], evals: &mut usize| -> f64 {
        *evals += 1;
        match prob.pls(theta) {
            Ok(s) => s.deviance(reml, n, p),
            Err(_) => f64::INFINITY,
        }
    };
    let theta0 = vec![1.0; k];
    let (mut theta, nm_ok) = nelder_mead(
        &mut |t: &[f64]| dev(t, &mut evals),
        &theta0,
        0.5,
        opts.max_evaluations,
        1e-5,
    );
    let mut converged = nm_ok;
    match newton_polish(
        &mut |t: &[f64]| dev(t, &mut evals),
        &mut theta,
        opts.theta_tol,
        60,
        opts.boundary_tol,
    ) {
        Ok(true) => converged = true,
        Ok(false) => warnings.push(
            "Newton polish of θ did not reach its tolerance; the estimates may be slightly off the optimum"
                .into(),
        ),
        Err(msg) => warnings.push(msg),
    }
    if !converged {
        warnings.push(format!(
            "optimizer did not converge within {} deviance evaluations",
            opts.max_evaluations
        ));
    }
    for t in theta.iter_mut() {
        *t = t.abs();
        if *t < 1e-10 {
            *t = 0.0;
        }
    }
    Optimum {
        theta,
        converged,
        evals,
        warnings,
    }
}

/// The fixed-effect rows: estimate, SE, t, df, p and interval (z-based for infinite df, none
/// for NaN df).
fn coefficients(
    names: &[String],
    beta: &[f64],
    vcov: &[Vec<f64>],
    df: &[f64],
    conf_level: f64,
) -> Vec<Coefficient> {
    (0..names.len())
        .map(|j| {
            let est = beta[j];
            let se = vcov[j][j].sqrt();
            let t = est / se;
            let d = df[j];
            let pval = if d.is_infinite() {
                2.0 * dist::normal_sf(t.abs())
            } else if d.is_nan() {
                f64::NAN
            } else {
                dist::t_two_sided_p(t, d)
            };
            let (conf_low, conf_high) = conf_interval(est, se, d, conf_level);
            Coefficient {
                term: names[j].clone(),
                estimate: est,
                std_error: se,
                statistic: t,
                df: d,
                p_value: pval,
                conf_low,
                conf_high,
            }
        })
        .collect()
}

/// One variance component per grouping factor (σ²θ_k²), then the residual (σ²).
fn variance_components(groups: &[Group], theta: &[f64], sigma2: f64, sigma: f64) -> Vec<VarComp> {
    let mut out: Vec<VarComp> = groups
        .iter()
        .zip(theta)
        .map(|((name, _, _), &t)| VarComp {
            group: name.clone(),
            term: Some("(Intercept)".into()),
            variance: sigma2 * t * t,
            std_dev: sigma * t,
        })
        .collect();
    out.push(VarComp {
        group: "Residual".into(),
        term: None,
        variance: sigma2,
        std_dev: sigma,
    });
    out
}
