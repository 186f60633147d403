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
//! unconstrained and reports |θ|, which is the same as lme4's bound θ ≥ 0.
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

use std::collections::HashMap;

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, supernodal::SupernodalLltRef, LltRef, SymbolicCholesky,
    SymbolicCholeskyRaw, SymmetricOrdering,
};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, Mat, MatRef, Par, Side, Spec};
use serde::Serialize;

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
}

impl Default for LmmOptions {
    fn default() -> Self {
        Self {
            reml: true,
            conf_level: 0.95,
            satterthwaite: true,
            max_evaluations: 5000,
            theta_tol: 1e-10,
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
    // Grouping factors: validate, drop unused levels.
    let mut groups: Vec<(String, Vec<u32>, usize)> = Vec::with_capacity(factors.len());
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

    // Rank: drop columns linearly dependent on earlier ones.
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

    let prob = Problem::new(xk.as_ref(), y, &groups)?;
    let k = groups.len();
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

    // Nelder–Mead from θ = 1, then Newton polish.
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

    let coefficients = (0..p)
        .map(|j| {
            let est = fit.beta[j];
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
            let (conf_low, conf_high) = conf_interval(est, se, d, opts.conf_level);
            Coefficient {
                term: kept_names[j].clone(),
                estimate: est,
                std_error: se,
                statistic: t,
                df: d,
                p_value: pval,
                conf_low,
                conf_high,
            }
        })
        .collect();

    let mut variance_components: Vec<VarComp> = groups
        .iter()
        .zip(&theta)
        .map(|((name, _, _), &t)| VarComp {
            group: name.clone(),
            term: Some("(Intercept)".into()),
            variance: sigma2 * t * t,
            std_dev: sigma * t,
        })
        .collect();
    variance_components.push(VarComp {
        group: "Residual".into(),
        term: None,
        variance: sigma2,
        std_dev: sigma,
    });
    let n_par = (p + k + 1) as f64;
    let log_likelihood = -deviance / 2.0;
    Ok(LmmFit {
        coefficients,
        aliased,
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

// ---------------------------------------------------------------------------------------------
// Penalized least squares.

/// Everything that does not depend on θ.
struct Problem<'a> {
    x: MatRef<'a, f64>,
    /// Rows of the non-zero entries of the mostly-zero columns of x (see [`nonzero_rows`]).
    nonzeros: Vec<Option<Vec<u32>>>,
    y: &'a [f64],
    p: usize,
    /// Column offset of each factor in u and its level per observation.
    offsets: Vec<usize>,
    codes: Vec<&'a [u32]>,
    /// Factor of each random-effect coordinate.
    coord_factor: Vec<u8>,
    q: usize,
    /// Lower triangle of Z'Z in CSC form; `pair` holds the two factor indices of each entry.
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
    counts: Vec<f64>,
    pair: Vec<(u8, u8)>,
    is_diag: Vec<bool>,
    /// [Z'X | Z'y], q × (p + 1).
    ztxy: Mat<f64>,
    /// [X'X | X'y], p × (p + 1).
    xtxy: Mat<f64>,
    symbolic: SymbolicCholesky<usize>,
    scratch: StackReq,
    /// Buffers of [`Problem::pls`], kept between evaluations: at national scale B and C are
    /// q × (p + 1) = 111 000 × 101 (90 MB each), and allocating them afresh for each of a few
    /// hundred evaluations spent a quarter of the fit in the kernel, zeroing new pages.
    work: std::cell::RefCell<Option<PlsWork>>,
}

/// The reusable buffers of one [`Problem::pls`] evaluation.
struct PlsWork {
    lvals: Vec<f64>,
    buf: MemBuffer,
    b: Mat<f64>,
    c: Mat<f64>,
}

/// Results of the penalized least-squares solve at one θ.
#[derive(Debug, Clone)]
struct Pls {
    ldl2: f64,
    ldrx2: f64,
    pwrss: f64,
    beta: Vec<f64>,
    /// (RX'RX)⁻¹, p × p row-major.
    rx_inv: Vec<f64>,
}

impl Pls {
    fn deviance(&self, reml: bool, n: usize, p: usize) -> f64 {
        let two_pi = 2.0 * std::f64::consts::PI;
        if reml {
            let nmp = (n - p) as f64;
            self.ldl2 + self.ldrx2 + nmp * (1.0 + (two_pi * self.pwrss / nmp).ln())
        } else {
            let nf = n as f64;
            self.ldl2 + nf * (1.0 + (two_pi * self.pwrss / nf).ln())
        }
    }

    /// lmerTest's deviance at given (θ, σ) (not profiled over σ).
    fn deviance_sigma(&self, reml: bool, n: usize, p: usize, sigma: f64) -> f64 {
        let s2 = sigma * sigma;
        let two_pi = 2.0 * std::f64::consts::PI;
        let dev = self.ldl2 + self.pwrss / s2 + n as f64 * (two_pi * s2).ln();
        if reml {
            dev + self.ldrx2 - p as f64 * (two_pi * s2).ln()
        } else {
            dev
        }
    }
}

impl<'a> Problem<'a> {
    #[allow(clippy::needless_range_loop)]
    fn new(
        x: MatRef<'a, f64>,
        y: &'a [f64],
        groups: &'a [(String, Vec<u32>, usize)],
    ) -> Result<Self, StatsError> {
        let n = y.len();
        let p = x.ncols();
        let k = groups.len();
        if k > 255 {
            return Err(StatsError::InvalidArgument(
                "too many grouping factors".into(),
            ));
        }
        let mut offsets = Vec::with_capacity(k);
        let mut q = 0usize;
        for g in groups {
            offsets.push(q);
            q += g.2;
        }
        let codes: Vec<&[u32]> = groups.iter().map(|g| g.1.as_slice()).collect();
        let mut coord_factor = vec![0u8; q];
        for (f, g) in groups.iter().enumerate() {
            for c in &mut coord_factor[offsets[f]..offsets[f] + g.2] {
                *c = f as u8;
            }
        }

        // Lower-triangle entries (row ≥ col) of Z'Z, keyed col-major.
        let mut keys: Vec<u64> = Vec::with_capacity(n * k * (k + 1) / 2);
        let mut idx = vec![0usize; k];
        for i in 0..n {
            for (f, slot) in idx.iter_mut().enumerate() {
                *slot = offsets[f] + codes[f][i] as usize;
            }
            for a in 0..k {
                for b in a..k {
                    let (r, c) = if idx[a] >= idx[b] {
                        (idx[a], idx[b])
                    } else {
                        (idx[b], idx[a])
                    };
                    keys.push(((c as u64) << 32) | r as u64);
                }
            }
        }
        keys.sort_unstable();
        let mut col_ptr = vec![0usize; q + 1];
        let mut row_idx = Vec::new();
        let mut counts: Vec<f64> = Vec::new();
        let mut last = u64::MAX;
        for &key in &keys {
            if key == last {
                if let Some(c) = counts.last_mut() {
                    *c += 1.0;
                }
                continue;
            }
            last = key;
            let c = (key >> 32) as usize;
            let r = (key & 0xffff_ffff) as usize;
            row_idx.push(r);
            counts.push(1.0);
            col_ptr[c + 1] += 1;
        }
        drop(keys);
        for c in 0..q {
            col_ptr[c + 1] += col_ptr[c];
        }
        let mut pair = Vec::with_capacity(row_idx.len());
        let mut is_diag = Vec::with_capacity(row_idx.len());
        for c in 0..q {
            for &r in &row_idx[col_ptr[c]..col_ptr[c + 1]] {
                pair.push((coord_factor[r], coord_factor[c]));
                is_diag.push(r == c);
            }
        }

        // Cross products.
        let mut ztxy = Mat::<f64>::zeros(q, p + 1);
        for i in 0..n {
            for f in 0..k {
                let r = offsets[f] + codes[f][i] as usize;
                for j in 0..p {
                    ztxy[(r, j)] += x[(i, j)];
                }
                ztxy[(r, p)] += y[i];
            }
        }
        let nonzeros = nonzero_rows(x);
        let xtx = cross_products(x, &nonzeros);
        let mut xtxy = Mat::<f64>::zeros(p, p + 1);
        for a in 0..p {
            for b in 0..p {
                xtxy[(a, b)] = xtx[(a, b)];
            }
            let mut s = 0.0;
            match &nonzeros[a] {
                None => {
                    for i in 0..n {
                        s += x[(i, a)] * y[i];
                    }
                }
                Some(rows) => {
                    for &i in rows {
                        s += x[(i as usize, a)] * y[i as usize];
                    }
                }
            }
            xtxy[(a, p)] = s;
        }

        let sym = SymbolicSparseColMatRef::new_checked(q, q, &col_ptr, None, &row_idx);
        let symbolic = factorize_symbolic_cholesky(
            sym,
            Side::Lower,
            SymmetricOrdering::Amd,
            Default::default(),
        )
        .map_err(|e| StatsError::Numerical(format!("sparse symbolic factorization: {e:?}")))?;
        let scratch = StackReq::any_of(&[
            symbolic.factorize_numeric_llt_scratch::<f64>(Par::Seq, Spec::default()),
            symbolic.solve_in_place_scratch::<f64>(p + 1, Par::Seq),
        ]);
        Ok(Self {
            x,
            nonzeros,
            y,
            p,
            offsets,
            codes,
            coord_factor,
            q,
            col_ptr,
            row_idx,
            counts,
            pair,
            is_diag,
            ztxy,
            xtxy,
            symbolic,
            scratch,
            work: std::cell::RefCell::new(None),
        })
    }

    /// Solves the penalized least-squares problem at θ.
    fn pls(&self, theta: &[f64]) -> Result<Pls, StatsError> {
        let (p, q) = (self.p, self.q);
        let values: Vec<f64> = (0..self.counts.len())
            .map(|e| {
                let (a, b) = self.pair[e];
                let v = self.counts[e] * theta[a as usize] * theta[b as usize];
                if self.is_diag[e] {
                    v + 1.0
                } else {
                    v
                }
            })
            .collect();
        let sym = SymbolicSparseColMatRef::new_checked(q, q, &self.col_ptr, None, &self.row_idx);
        let a = SparseColMatRef::new(sym, &values);
        // The workspace is taken out of its cell for the evaluation and put back after it.
        let taken = self.work.borrow_mut().take();
        let mut w = match taken {
            Some(w) => w,
            None => PlsWork {
                lvals: vec![0.0f64; self.symbolic.len_val()],
                buf: MemBuffer::try_new(self.scratch)
                    .map_err(|_| StatsError::Numerical("out of memory".into()))?,
                b: Mat::<f64>::zeros(q, p + 1),
                c: Mat::<f64>::zeros(q, p + 1),
            },
        };
        let out = self.pls_with(theta, a, &mut w);
        *self.work.borrow_mut() = Some(w);
        out
    }

    /// [`Problem::pls`] with its buffers; `a` is M = Λ'Z'ZΛ + I at θ.
    fn pls_with(
        &self,
        theta: &[f64],
        a: SparseColMatRef<'_, usize, f64>,
        w: &mut PlsWork,
    ) -> Result<Pls, StatsError> {
        let p = self.p;
        let PlsWork { lvals, buf, b, c } = w;
        // The numeric factorization starts from a zeroed value array, as a new one would be.
        lvals.fill(0.0);
        let stack = MemStack::new(buf);
        self.symbolic
            .factorize_numeric_llt::<f64>(
                lvals,
                a,
                Side::Lower,
                LltRegularization::default(),
                Par::Seq,
                stack,
                Spec::default(),
            )
            .map_err(|e| StatsError::Numerical(format!("sparse Cholesky: {e:?}")))?;
        let llt = LltRef::new(&self.symbolic, lvals);
        let ldl2 = 2.0 * log_diag_sum(&self.symbolic, lvals);

        // B = Λ'[Z'X | Z'y]; C = M⁻¹ B. Every entry of B is written.
        for j in 0..=p {
            let (bj, zj) = (b.col_as_slice_mut(j), self.ztxy.col_as_slice(j));
            for ((br, &zr), &f) in bj.iter_mut().zip(zj).zip(&self.coord_factor) {
                *br = theta[f as usize] * zr;
            }
        }
        c.copy_from(&*b);
        llt.solve_in_place_with_conj(Conj::No, c.as_mut(), Par::Seq, stack);
        // Sequential: the product is (p+1)² × q, too small per evaluation for threads to pay
        // (with the global pool, waiting on the other thread took more time than the product).
        let mut g = Mat::<f64>::zeros(p + 1, p + 1);
        faer::linalg::matmul::matmul(
            g.as_mut(),
            faer::Accum::Replace,
            b.as_ref().transpose(),
            c.as_ref(),
            1.0,
            Par::Seq,
        );
        // RX'RX and its right-hand side.
        let mut rxtrx = vec![0.0; p * p];
        let mut rhs = vec![0.0; p];
        for i in 0..p {
            for j in 0..p {
                rxtrx[i * p + j] = self.xtxy[(i, j)] - g[(i, j)];
            }
            rhs[i] = self.xtxy[(i, p)] - g[(i, p)];
        }
        let l = dense_cholesky(&rxtrx, p).ok_or_else(|| {
            StatsError::Numerical("fixed-effects cross-product not positive definite".into())
        })?;
        let ldrx2 = 2.0 * (0..p).map(|i| l[i * p + i].ln()).sum::<f64>();
        let beta = chol_solve(&l, p, &rhs);
        let rx_inv = chol_inverse(&l, p);
        // u = c_y − C_x β; residuals. Each u[r] subtracts the terms in the order j = 0..p, as
        // a loop over j inside a loop over r would; going column by column reads C in its
        // storage order (row by row, each of the q rows was p strided reads).
        let mut u = c.col_as_slice(p).to_vec();
        for (j, &bj) in beta.iter().enumerate() {
            for (ur, &crj) in u.iter_mut().zip(c.col_as_slice(j)) {
                *ur -= crj * bj;
            }
        }
        let mut pwrss: f64 = u.iter().map(|v| v * v).sum();
        let mut resid = self.y.to_vec();
        for (j, &bj) in beta.iter().enumerate() {
            match &self.nonzeros[j] {
                None => {
                    for (i, r) in resid.iter_mut().enumerate() {
                        *r -= self.x[(i, j)] * bj;
                    }
                }
                // Skipping the rows where the column is zero changes at most the sign of a zero
                // residual, which only enters as its square.
                Some(rows) => {
                    for &i in rows {
                        resid[i as usize] -= self.x[(i as usize, j)] * bj;
                    }
                }
            }
        }
        for (f, codes) in self.codes.iter().enumerate() {
            let (tf, off) = (theta[f], self.offsets[f]);
            for (r, &c) in resid.iter_mut().zip(codes.iter()) {
                *r -= tf * u[off + c as usize];
            }
        }
        pwrss += resid.iter().map(|r| r * r).sum::<f64>();
        Ok(Pls {
            ldl2,
            ldrx2,
            pwrss,
            beta,
            rx_inv,
        })
    }
}

/// Σ log diag(L) of a numeric sparse Cholesky factor.
fn log_diag_sum(symbolic: &SymbolicCholesky<usize>, values: &[f64]) -> f64 {
    match symbolic.raw() {
        SymbolicCholeskyRaw::Simplicial(s) => {
            let cp = s.col_ptr();
            (0..s.ncols()).map(|j| values[cp[j]].ln()).sum()
        }
        SymbolicCholeskyRaw::Supernodal(s) => {
            let l = SupernodalLltRef::new(s, values);
            let mut acc = 0.0;
            for sn in 0..s.n_supernodes() {
                let v = l.supernode(sn).val();
                for j in 0..v.ncols() {
                    acc += v[(j, j)].ln();
                }
            }
            acc
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small dense helpers (p × p, row-major).

fn dense_cholesky(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= l[j * p + k] * l[j * p + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        l[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = s / d;
        }
    }
    Some(l)
}

fn chol_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..p {
        for k in 0..i {
            z[i] -= l[i * p + k] * z[k];
        }
        z[i] /= l[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            z[i] -= l[k * p + i] * z[k];
        }
        z[i] /= l[i * p + i];
    }
    z
}

fn chol_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    let mut e = vec![0.0; p];
    for j in 0..p {
        e.iter_mut().for_each(|v| *v = 0.0);
        e[j] = 1.0;
        let col = chol_solve(l, p, &e);
        for i in 0..p {
            inv[i * p + j] = col[i];
        }
    }
    // Symmetrize.
    for i in 0..p {
        for j in 0..i {
            let m = 0.5 * (inv[i * p + j] + inv[j * p + i]);
            inv[i * p + j] = m;
            inv[j * p + i] = m;
        }
    }
    inv
}

/// Indices of columns not linearly dependent on earlier ones: a column is dropped when the norm
/// of its residual on the kept columns falls below `tol` times its own norm (as R's `qr()` with
/// LINPACK's limited pivoting, which lme4 uses to drop columns).
///
/// The sequential projections cost about n·p² operations, which at national scale (hundreds of
/// thousands of rows, a hundred municipality dummies) took longer than the fit. So the residual
/// ratios are first computed from a Cholesky factorization of X'X, which costs only the
/// non-zeros: when every ratio exceeds `SURE_KEEP` (1e-5, a hundred times R's tolerance, while
/// the Cholesky ratios are accurate to about 1e-7 absolute), the projections would keep every
/// column too, and they are skipped. Otherwise (some column is dependent or nearly so) the
/// projections decide, exactly as before.
pub(crate) fn independent_columns(x: MatRef<'_, f64>, tol: f64) -> Vec<usize> {
    const SURE_KEEP: f64 = 1e-5;
    if tol < SURE_KEEP {
        if let Some(keep) = clearly_independent(x, SURE_KEEP) {
            return keep;
        }
    }
    independent_columns_by_projection(x, tol)
}

/// The non-zero columns, if every one's residual on the columns before it, relative to its norm,
/// is above `sure` according to the Cholesky factor of X'X (squared ratio d_j / (X'X)_jj; its
/// rounding error is about p·ε absolute, far below `sure`² = 1e-10); otherwise `None`. A column
/// is zero when its (X'X)_jj is, exactly when the projections find its norm zero (the same sum
/// of squares).
fn clearly_independent(x: MatRef<'_, f64>, sure: f64) -> Option<Vec<usize>> {
    let g = cross_products(x, &nonzero_rows(x));
    // Zero columns are dropped by either method.
    let cols: Vec<usize> = (0..x.ncols()).filter(|&j| g[(j, j)] > 0.0).collect();
    let m = cols.len();
    let mut l = vec![0.0; m * m];
    for (a, &ja) in cols.iter().enumerate() {
        for (b, &jb) in cols[..a].iter().enumerate() {
            let mut s = g[(ja, jb)];
            for c in 0..b {
                s -= l[a * m + c] * l[b * m + c];
            }
            l[a * m + b] = s / l[b * m + b];
        }
        let mut d = g[(ja, ja)];
        for c in 0..a {
            d -= l[a * m + c] * l[a * m + c];
        }
        // Also declines on NaN.
        if d.partial_cmp(&(sure * sure * g[(ja, ja)])) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        l[a * m + a] = d.sqrt();
    }
    Some(cols)
}

/// The rows of the non-zero entries of every column that is at least half zeros (dummies);
/// `None` for the other columns.
fn nonzero_rows(x: MatRef<'_, f64>) -> Vec<Option<Vec<u32>>> {
    let n = x.nrows();
    (0..x.ncols())
        .map(|j| {
            let nnz = (0..n).filter(|&i| x[(i, j)] != 0.0).count();
            if nnz * 2 > n || n > u32::MAX as usize {
                return None;
            }
            Some(
                (0..n)
                    .filter(|&i| x[(i, j)] != 0.0)
                    .map(|i| i as u32)
                    .collect(),
            )
        })
        .collect()
}

/// X'X, each entry the plain sum of x_ia·x_ib over the rows in order, skipping rows where a
/// sparse column is zero. That leaves every sum's bits unchanged: it starts at +0, adding ±0 to
/// a non-zero sum changes nothing, and in round-to-nearest a sum is never −0 unless both terms
/// are, so it never becomes −0.
fn cross_products(x: MatRef<'_, f64>, nz: &[Option<Vec<u32>>]) -> Mat<f64> {
    let (n, p) = (x.nrows(), x.ncols());
    let mut g = Mat::<f64>::zeros(p, p);
    for a in 0..p {
        for b in 0..=a {
            let rows = match (&nz[a], &nz[b]) {
                (None, None) => None,
                (Some(r), None) | (None, Some(r)) => Some(r),
                (Some(ra), Some(rb)) => Some(if ra.len() <= rb.len() { ra } else { rb }),
            };
            let mut s = 0.0;
            match rows {
                None => {
                    for i in 0..n {
                        s += x[(i, a)] * x[(i, b)];
                    }
                }
                Some(rows) => {
                    for &i in rows {
                        let i = i as usize;
                        s += x[(i, a)] * x[(i, b)];
                    }
                }
            }
            g[(a, b)] = s;
            g[(b, a)] = s;
        }
    }
    g
}

/// The sequential projections (modified Gram–Schmidt, twice) that decide which columns to keep.
fn independent_columns_by_projection(x: MatRef<'_, f64>, tol: f64) -> Vec<usize> {
    let n = x.nrows();
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut keep = Vec::new();
    for j in 0..x.ncols() {
        let mut v: Vec<f64> = (0..n).map(|i| x[(i, j)]).collect();
        let norm0 = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm0 == 0.0 {
            continue;
        }
        for _ in 0..2 {
            for b in &basis {
                let d: f64 = v.iter().zip(b).map(|(a, c)| a * c).sum();
                for (vi, bi) in v.iter_mut().zip(b) {
                    *vi -= d * bi;
                }
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > tol * norm0 {
            v.iter_mut().for_each(|a| *a /= norm);
            basis.push(v);
            keep.push(j);
        }
    }
    keep
}

// ---------------------------------------------------------------------------------------------
// Optimizer.

/// Nelder–Mead (standard coefficients). Returns the best point and whether it converged.
fn nelder_mead(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
    max_eval: usize,
    tol: f64,
) -> (Vec<f64>, bool) {
    let k = x0.len();
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..k {
        let mut p = x0.to_vec();
        p[i] += step;
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| f(p)).collect();
    let mut nev = k + 1;
    loop {
        // Sort.
        let mut order: Vec<usize> = (0..=k).collect();
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = order.iter().map(|&i| pts[i].clone()).collect();
        vals = order.iter().map(|&i| vals[i]).collect();
        let spread_x = pts[1..]
            .iter()
            .flat_map(|p| p.iter().zip(&pts[0]).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        let scale_x = pts[0].iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let spread_f = (vals[k] - vals[0]).abs();
        if spread_x <= tol * scale_x.max(1.0) && spread_f <= 1e-10 * (1.0 + vals[0].abs()) {
            return (pts[0].clone(), true);
        }
        if nev >= max_eval {
            return (pts[0].clone(), false);
        }
        let centroid: Vec<f64> = (0..k)
            .map(|j| pts[..k].iter().map(|p| p[j]).sum::<f64>() / k as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&pts[k])
                .map(|(c, w)| c + t * (w - c))
                .collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        nev += 1;
        if fr < vals[0] {
            let xe = along(-2.0);
            let fe = f(&xe);
            nev += 1;
            if fe < fr {
                pts[k] = xe;
                vals[k] = fe;
            } else {
                pts[k] = xr;
                vals[k] = fr;
            }
        } else if fr < vals[k - 1] {
            pts[k] = xr;
            vals[k] = fr;
        } else {
            let (xc, fc) = if fr < vals[k] {
                let xc = along(-0.5);
                let fc = f(&xc);
                (xc, fc)
            } else {
                let xc = along(0.5);
                let fc = f(&xc);
                (xc, fc)
            };
            nev += 1;
            if fc < vals[k].min(fr) {
                pts[k] = xc;
                vals[k] = fc;
            } else {
                // Shrink towards the best point.
                for i in 1..=k {
                    let p: Vec<f64> = pts[i]
                        .iter()
                        .zip(&pts[0])
                        .map(|(a, b)| b + 0.5 * (a - b))
                        .collect();
                    vals[i] = f(&p);
                    pts[i] = p;
                    nev += 1;
                }
            }
        }
    }
}

/// Newton iterations with finite-difference derivatives (Richardson-extrapolated gradient).
/// Returns Ok(true) when the step fell below the tolerance.
fn newton_polish(
    f: &mut dyn FnMut(&[f64]) -> f64,
    theta: &mut [f64],
    tol: f64,
    max_iter: usize,
) -> Result<bool, String> {
    let k = theta.len();
    let mut f0 = f(theta);
    if !f0.is_finite() {
        return Err("deviance not finite at the Nelder–Mead optimum".into());
    }
    let mut prev_rel_step = f64::INFINITY;
    for _ in 0..max_iter {
        let h: Vec<f64> = theta.iter().map(|t| 1e-3 * t.abs().max(0.05)).collect();
        let mut g = vec![0.0; k];
        let mut hess = vec![0.0; k * k];
        let at = |t: &[f64], i: usize, d: f64| -> Vec<f64> {
            let mut v = t.to_vec();
            v[i] += d;
            v
        };
        for i in 0..k {
            let fp = f(&at(theta, i, h[i]));
            let fm = f(&at(theta, i, -h[i]));
            let fp2 = f(&at(theta, i, h[i] / 2.0));
            let fm2 = f(&at(theta, i, -h[i] / 2.0));
            let d1 = (fp - fm) / (2.0 * h[i]);
            let d2 = (fp2 - fm2) / h[i];
            g[i] = (4.0 * d2 - d1) / 3.0;
            let s1 = (fp - 2.0 * f0 + fm) / (h[i] * h[i]);
            let s2 = (fp2 - 2.0 * f0 + fm2) / (h[i] * h[i] / 4.0);
            hess[i * k + i] = (4.0 * s2 - s1) / 3.0;
        }
        for i in 0..k {
            for j in 0..i {
                let mut t = theta.to_vec();
                t[i] += h[i];
                t[j] += h[j];
                let fpp = f(&t);
                t[j] -= 2.0 * h[j];
                let fpm = f(&t);
                t[i] -= 2.0 * h[i];
                let fmm = f(&t);
                t[j] += 2.0 * h[j];
                let fmp = f(&t);
                let v = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j]);
                hess[i * k + j] = v;
                hess[j * k + i] = v;
            }
        }
        if g.iter().chain(&hess).any(|v| !v.is_finite()) {
            return Err("non-finite derivatives in the Newton polish".into());
        }
        // Newton direction (Levenberg damping if H is not positive definite).
        let mut lambda = 0.0;
        let step = loop {
            let mut hd = hess.clone();
            let diag_scale = (0..k).map(|i| hess[i * k + i].abs()).fold(1e-8, f64::max);
            for i in 0..k {
                hd[i * k + i] += lambda * diag_scale;
            }
            if let Some(l) = dense_cholesky(&hd, k) {
                let s = chol_solve(&l, k, &g);
                break s.iter().map(|v| -v).collect::<Vec<f64>>();
            }
            lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
            if lambda > 1e6 {
                return Ok(false);
            }
        };
        let rel_step = step
            .iter()
            .zip(theta.iter())
            .map(|(s, th)| s.abs() / th.abs().max(1e-3))
            .fold(0.0, f64::max);
        if rel_step <= 1e-4 {
            // Close to the optimum, differences of the deviance drown in rounding while the
            // extrapolated gradient does not: take the Newton step as it is.
            for (th, s) in theta.iter_mut().zip(&step) {
                *th += s;
            }
            f0 = f(theta);
            if rel_step <= tol || (rel_step < 1e-7 && rel_step > 0.3 * prev_rel_step) {
                // Converged, or stalled at the rounding floor of the derivatives.
                return Ok(true);
            }
            prev_rel_step = rel_step;
            continue;
        }
        prev_rel_step = rel_step;
        // Backtracking.
        let mut t = 1.0;
        let mut accepted = false;
        let mut new_theta = theta.to_vec();
        for _ in 0..30 {
            for i in 0..k {
                new_theta[i] = theta[i] + t * step[i];
            }
            let fnew = f(&new_theta);
            if fnew <= f0 {
                theta.copy_from_slice(&new_theta);
                f0 = fnew;
                accepted = true;
                break;
            }
            t /= 2.0;
        }
        if !accepted {
            return Ok(false);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Satterthwaite (lmerTest).

/// Richardson parameters: numDeriv's defaults except the relative step (see the module docs).
const ND_EPS: f64 = 1e-4;
const ND_D: f64 = 1e-2;
const ND_R: usize = 4;

fn nd_h0(x: &[f64]) -> Vec<f64> {
    let zero_tol = (f64::EPSILON / 7e-7).sqrt();
    x.iter()
        .map(|v| (ND_D * v).abs() + if v.abs() < zero_tol { ND_EPS } else { 0.0 })
        .collect()
}

fn richardson(a: &mut [Vec<f64>]) -> Vec<f64> {
    // a[k] are the approximations at h/2^k; repeatedly combine.
    let r = a.len();
    for m in 1..r {
        let w = 4f64.powi(m as i32);
        for k in 0..r - m {
            let next = a[k + 1].clone();
            for (ak, nk) in a[k].iter_mut().zip(&next) {
                *ak = (nk * w - *ak) / (w - 1.0);
            }
        }
    }
    a[0].clone()
}

/// Hessian as numDeriv::hessian (genD, Richardson, r = 4, v = 2).
fn nd_hessian(f: &mut dyn FnMut(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let f0 = f(x);
    let h0 = nd_h0(x);
    let mut hdiag = vec![0.0; n];
    let mut hess = vec![0.0; n * n];
    for i in 0..n {
        let mut h = h0.clone();
        let mut ha: Vec<Vec<f64>> = Vec::with_capacity(ND_R);
        for _ in 0..ND_R {
            let mut xp = x.to_vec();
            xp[i] += h[i];
            let mut xm = x.to_vec();
            xm[i] -= h[i];
            let (f1, f2) = (f(&xp), f(&xm));
            ha.push(vec![(f1 - 2.0 * f0 + f2) / (h[i] * h[i])]);
            h.iter_mut().for_each(|v| *v /= 2.0);
        }
        hdiag[i] = richardson(&mut ha)[0];
        hess[i * n + i] = hdiag[i];
    }
    for i in 0..n {
        for j in 0..i {
            let mut h = h0.clone();
            let mut da: Vec<Vec<f64>> = Vec::with_capacity(ND_R);
            for _ in 0..ND_R {
                let mut xp = x.to_vec();
                xp[i] += h[i];
                xp[j] += h[j];
                let mut xm = x.to_vec();
                xm[i] -= h[i];
                xm[j] -= h[j];
                let (f1, f2) = (f(&xp), f(&xm));
                da.push(vec![
                    (f1 - 2.0 * f0 + f2 - hdiag[i] * h[i] * h[i] - hdiag[j] * h[j] * h[j])
                        / (2.0 * h[i] * h[j]),
                ]);
                h.iter_mut().for_each(|v| *v /= 2.0);
            }
            let v = richardson(&mut da)[0];
            hess[i * n + j] = v;
            hess[j * n + i] = v;
        }
    }
    hess
}

/// Jacobian as numDeriv::jacobian (Richardson): column i = d f / d x_i.
fn nd_jacobian(f: &mut dyn FnMut(&[f64]) -> Vec<f64>, x: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let h0 = nd_h0(x);
    (0..n)
        .map(|i| {
            let mut h = h0.clone();
            let mut a: Vec<Vec<f64>> = Vec::with_capacity(ND_R);
            for _ in 0..ND_R {
                let mut xp = x.to_vec();
                xp[i] += h[i];
                let mut xm = x.to_vec();
                xm[i] -= h[i];
                let (f1, f2) = (f(&xp), f(&xm));
                a.push(
                    f1.iter()
                        .zip(&f2)
                        .map(|(a, b)| (a - b) / (2.0 * h[i]))
                        .collect(),
                );
                h.iter_mut().for_each(|v| *v /= 2.0);
            }
            richardson(&mut a)
        })
        .collect()
}

/// Eigen-decomposition of a small symmetric matrix (cyclic Jacobi). Returns (values, vectors
/// as columns of a row-major matrix).
fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Satterthwaite df per coefficient, as lmerTest's `summary()`; also returns lmerTest's warnings.
fn satterthwaite(
    prob: &Problem,
    theta: &[f64],
    sigma: f64,
    reml: bool,
    n: usize,
    p: usize,
    vcov: &[Vec<f64>],
) -> Result<(Vec<f64>, Vec<String>), StatsError> {
    let k = theta.len();
    let mut cache: HashMap<Vec<u64>, Pls> = HashMap::new();
    let mut pls_at = |t: &[f64]| -> Result<Pls, StatsError> {
        let key: Vec<u64> = t.iter().map(|v| v.to_bits()).collect();
        if let Some(s) = cache.get(&key) {
            return Ok(s.clone());
        }
        let s = prob.pls(t)?;
        cache.insert(key, s.clone());
        Ok(s)
    };
    let mut varpar = theta.to_vec();
    varpar.push(sigma);
    let mut failure: Option<StatsError> = None;
    let hess = {
        let mut dev = |vp: &[f64]| -> f64 {
            match pls_at(&vp[..k]) {
                Ok(s) => s.deviance_sigma(reml, n, p, vp[k]),
                Err(e) => {
                    failure = Some(e);
                    f64::NAN
                }
            }
        };
        nd_hessian(&mut dev, &varpar)
    };
    let jac = {
        let mut cov = |vp: &[f64]| -> Vec<f64> {
            match pls_at(&vp[..k]) {
                Ok(s) => s.rx_inv.iter().map(|v| v * vp[k] * vp[k]).collect(),
                Err(e) => {
                    failure = Some(e);
                    vec![f64::NAN; p * p]
                }
            }
        };
        nd_jacobian(&mut cov, &varpar)
    };
    if let Some(e) = failure {
        return Err(e);
    }
    let m = k + 1;
    let (evals, evecs) = sym_eigen(&hess, m);
    let tol = 1e-8;
    let mut warnings = Vec::new();
    let neg: Vec<f64> = evals.iter().copied().filter(|&e| e < -tol).collect();
    let zero: Vec<f64> = evals
        .iter()
        .copied()
        .filter(|&e| e > -tol && e < tol)
        .collect();
    if !neg.is_empty() {
        warnings.push(format!(
            "Model failed to converge with {} negative eigenvalue(s) of the deviance Hessian: {}",
            neg.len(),
            neg.iter()
                .map(|e| format!("{e:.1e}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !zero.is_empty() {
        warnings.push(format!(
            "Model may not have converged with {} eigenvalue(s) of the deviance Hessian close to zero: {}",
            zero.len(),
            zero.iter()
                .map(|e| format!("{e:.1e}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    // A = 2 H⁺ over positive eigenvalues.
    let mut a = vec![0.0; m * m];
    for (e, &lam) in evals.iter().enumerate() {
        if lam > tol {
            for i in 0..m {
                for j in 0..m {
                    a[i * m + j] += 2.0 * evecs[i * m + e] * evecs[j * m + e] / lam;
                }
            }
        }
    }
    let df = (0..p)
        .map(|c| {
            let var_con = vcov[c][c];
            let grad: Vec<f64> = jac.iter().map(|col| col[c * p + c]).collect();
            let mut denom = 0.0;
            for i in 0..m {
                for j in 0..m {
                    denom += grad[i] * a[i * m + j] * grad[j];
                }
            }
            2.0 * var_con * var_con / denom
        })
        .collect();
    Ok((df, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_small() {
        let a = [2.0, 1.0, 1.0, 2.0];
        let (vals, _) = sym_eigen(&a, 2);
        let mut v = vals.clone();
        v.sort_by(f64::total_cmp);
        assert!((v[0] - 1.0).abs() < 1e-12 && (v[1] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn rank_drop() {
        let x = Mat::from_fn(5, 3, |i, j| match j {
            0 => 1.0,
            1 => i as f64,
            _ => 2.0 + 3.0 * i as f64,
        });
        assert_eq!(independent_columns(x.as_ref(), 1e-7), vec![0, 1]);
    }

    #[test]
    fn rank_shortcut_agrees_with_the_projections() {
        // Intercept, a covariate, a zero column and the dummies of an 8-level factor.
        let n = 400;
        let cov = |i: usize| ((i * 7919) % 101) as f64 / 7.0;
        let base = |i: usize, j: usize| match j {
            0 => 1.0,
            1 => cov(i),
            2 => 0.0,
            j => f64::from(u8::from(i % 8 == j - 2)),
        };
        let x = Mat::from_fn(n, 10, base);
        assert_eq!(
            clearly_independent(x.as_ref(), 1e-5),
            Some(vec![0, 1, 3, 4, 5, 6, 7, 8, 9])
        );
        assert_eq!(
            independent_columns(x.as_ref(), 1e-7),
            independent_columns_by_projection(x.as_ref(), 1e-7)
        );
        // The full dummy set (collinear with the intercept), and a column that is the covariate
        // up to 1e-9: the shortcut declines and the projections decide.
        for extra in [0, 1] {
            let y = Mat::from_fn(n, 11, |i, j| match (j, extra) {
                (10, 0) => f64::from(u8::from(i % 8 == 0)),
                (10, _) => cov(i) * (1.0 + 1e-9 * (i % 3) as f64),
                _ => base(i, j),
            });
            assert_eq!(clearly_independent(y.as_ref(), 1e-5), None);
            let keep = independent_columns(y.as_ref(), 1e-7);
            assert_eq!(keep, independent_columns_by_projection(y.as_ref(), 1e-7));
            assert_eq!(keep, vec![0, 1, 3, 4, 5, 6, 7, 8, 9]);
        }
    }

    #[test]
    fn cross_products_skip_zeros_without_changing_bits() {
        let n = 300;
        let x = Mat::from_fn(n, 4, |i, j| match j {
            0 => ((i * 31) % 17) as f64 * 0.1 - 0.8,
            1 => f64::from(u8::from(i % 5 == 1)) * 0.37,
            2 => f64::from(u8::from(i % 3 == 0)) * -1.1,
            _ => 1.0 / (1.0 + i as f64),
        });
        let nz = nonzero_rows(x.as_ref());
        assert!(nz[0].is_none() && nz[1].is_some() && nz[2].is_some());
        let g = cross_products(x.as_ref(), &nz);
        for a in 0..4 {
            for b in 0..4 {
                let mut s = 0.0;
                for i in 0..n {
                    s += x[(i, a)] * x[(i, b)];
                }
                assert_eq!(g[(a, b)].to_bits(), s.to_bits(), "({a}, {b})");
            }
        }
    }
}
