//! Ordinary least squares by column-pivoted QR, with the summary R's `lm` gives and classical,
//! HC0–HC3 or cluster-robust (CR1) standard errors.
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
//! solution and (X'X)⁻¹ are then polished by iterative refinement of the augmented system
//! [I X; X' 0] with residuals accumulated in double-double arithmetic (Björck's method), which
//! gives NIST StRD accuracy (LRE ≥ 7 on Filip and Wampler4–5; see `tests/nist.rs`).
//!
//! Conventions (matching R): an *intercept* is a column whose entries are all equal and non-zero;
//! with one, R² is centred and the F test excludes it, without one R² is uncentred (Σy²). The F
//! test is the classical overall F for `Classical`, and the Wald F (β' V⁻¹ β / q, with the robust
//! V) for HC and CR1, as `lmtest::waldtest(fit, vcov = ...)` and statsmodels report it; its
//! denominator df is n − rank, except CR1 where it is G − 1 (Stata's convention, also used for the
//! CR1 t tests and intervals). Log-likelihood, AIC and BIC are those of R's `logLik.lm` with
//! df = rank + 1.
//!
//! Limits: no weights, no offsets; a design with zero residual degrees of freedom gets NaN
//! standard errors (as R). Input must be finite.

// `!(x > 0.0)` is deliberate: it is also true for NaN; index loops mirror the matrix formulas.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

use crate::dist::{f_sf, t_quantile, t_two_sided_p};
pub use crate::robust::VcovType;
use crate::robust::{vcov_cr1_by, vcov_hc};
use crate::types::{Coefficient, StatsError};
use faer::{Mat, MatRef};
use serde::Serialize;

/// Options for [`ols`].
#[derive(Debug, Clone, Copy)]
pub struct OlsOptions<'a> {
    pub vcov: VcovType,
    /// Cluster id per observation; required for `Cr1`, ignored otherwise.
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

// ----- double-double helpers (error-free transformations) -----

#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

#[inline(always)]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// Compensated accumulator (sum with a running error term; ~twice working precision).
#[derive(Clone, Copy, Default)]
struct Acc {
    s: f64,
    c: f64,
}

impl Acc {
    #[inline(always)]
    fn add(&mut self, x: f64) {
        let (s, e) = two_sum(self.s, x);
        self.s = s;
        self.c += e;
    }
    #[inline(always)]
    fn add_prod(&mut self, a: f64, b: f64) {
        let (p, pe) = two_prod(a, b);
        self.add(p);
        self.c += pe;
    }
    fn value(self) -> f64 {
        self.s + self.c
    }
}

// ----- the kernels of the refinement -----
//
// The refinement passes over the n × r scaled design many times (r + 1 refined solves of up to
// six iterations each), so these loops are where a large fit spends its time. They are written
// so that every accumulator receives exactly the same operations in exactly the same order as
// the plain loops `for j { for i { acc[i] += a[j][i] z[j] } }` and `for j { for i { g[j] += .. } }`
// would give: rows are processed in cache-sized blocks (each row's accumulator still sees the
// columns in order), and four columns share one pass over the rows (each column's accumulator
// still sees the rows in order). The results are therefore bit for bit those of the plain loops.
// `f64::mul_add` is a correctly rounded fused multiply-add whether the processor has the
// instruction or a software routine computes it, so the variants compiled with the `fma`
// target feature (chosen at run time) give the same bits as well, only faster.
//
// Columns that are mostly zeros (the dummies of a factor with many levels) are kept as their
// non-zero entries and the zero terms are skipped. Adding the double-double product of a zero
// leaves an accumulator's value unchanged (at most the sign of an exactly zero sum can differ),
// so the results are still those of the plain loops, at a cost of the non-zeros: a design with
// 98 municipality dummies costs about four columns per pass instead of a hundred.
//
// The refinement steps up to eight systems side by side (the columns of (X'X)⁻¹ come in batches
// of eight), and the double-double passes over A serve the whole batch: each accumulator is
// eight lanes (`Lanes`), lane b receiving exactly the operations of system b's lone `Acc`, so a
// row's non-zeros are read once for eight systems and the lanes fill vector registers. The lane
// kernels are checked bit for bit against the plain loops, lane by lane.

/// Rows per block in [`a_mul_kernel`]: a block's accumulators (16 bytes each) stay in L1/L2
/// while every column passes over them.
const ROW_BLOCK: usize = 2048;

/// One scaled design column of the factored design.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Dense(Vec<f64>),
    /// Row indices (increasing) and values of the non-zero entries.
    Sparse {
        idx: Vec<u32>,
        val: Vec<f64>,
    },
}

impl Column {
    /// Sparse when at most half of the n entries are non-zero (and row numbers fit in u32).
    fn new(values: impl Iterator<Item = f64> + Clone, n: usize) -> Column {
        let nnz = values.clone().filter(|&v| v != 0.0).count();
        if nnz * 2 <= n && n <= u32::MAX as usize {
            let mut idx = Vec::with_capacity(nnz);
            let mut val = Vec::with_capacity(nnz);
            for (i, v) in values.enumerate() {
                if v != 0.0 {
                    idx.push(i as u32);
                    val.push(v);
                }
            }
            Column::Sparse { idx, val }
        } else {
            Column::Dense(values.collect())
        }
    }
}

/// An accumulator that takes `x · z` for a column entry x: [`Acc`] for one system (z a number),
/// [`Lanes`] for a batch (z one number per system).
trait AddProd<Z> {
    fn add_entry(&mut self, x: f64, z: &Z);
}

impl AddProd<f64> for Acc {
    #[inline(always)]
    fn add_entry(&mut self, x: f64, z: &f64) {
        self.add_prod(x, *z);
    }
}

/// `block[k] += Σ_j a[j][start + k] z[j]`, j in order for every row. `cursor[j]` is where column
/// j's sparse entries resume: blocks must come in row order, starting from zeroed cursors.
#[inline(always)]
fn add_columns_block<T: AddProd<Z>, Z>(
    a: &[Column],
    z: &[Z],
    cursor: &mut [usize],
    start: usize,
    block: &mut [T],
) {
    let end = start + block.len();
    for ((col, zj), k) in a.iter().zip(z).zip(cursor.iter_mut()) {
        match col {
            Column::Dense(v) => {
                for (acc, &x) in block.iter_mut().zip(&v[start..end]) {
                    acc.add_entry(x, zj);
                }
            }
            Column::Sparse { idx, val } => {
                while *k < idx.len() && (idx[*k] as usize) < end {
                    block[idx[*k] as usize - start].add_entry(val[*k], zj);
                    *k += 1;
                }
            }
        }
    }
}

/// `out[i] += Σ_j a[j][i] z[j]` in double-double, j in order for every i.
#[inline(always)]
fn a_mul_kernel(a: &[Column], z: &[f64], out: &mut [Acc]) {
    let n = out.len();
    let mut cursor = vec![0usize; a.len()];
    let mut start = 0;
    while start < n {
        let end = (start + ROW_BLOCK).min(n);
        add_columns_block(a, z, &mut cursor, start, &mut out[start..end]);
        start = end;
    }
}

/// Systems stepped side by side by the lane kernels (the same batch as [`qt_mul_kernel`]'s).
const LANES: usize = QT_BATCH;
/// Rows per block in [`at_mul_lanes_kernel`].
const AT_ROWS: usize = 512;

/// [`LANES`] compensated accumulators side by side, one per system of a batch. Lane `b` receives
/// exactly the operations a lone [`Acc`] would (`add`: two_sum into s, error into c; `add_prod`:
/// two_prod, then `add` of the product, then its error into c), so its value has the same bits;
/// the lanes only let the processor do eight systems' operations in two vector instructions.
#[derive(Clone, Copy, Default)]
struct Lanes {
    s: [f64; LANES],
    c: [f64; LANES],
}

impl Lanes {
    #[inline(always)]
    fn add(&mut self, x: &[f64; LANES]) {
        for b in 0..LANES {
            let (s, e) = two_sum(self.s[b], x[b]);
            self.s[b] = s;
            self.c[b] += e;
        }
    }
    /// Lane b: `add_prod(a, z[b])` (multiplication and fused multiply-add are commutative, so
    /// the order of the two factors does not matter).
    #[inline(always)]
    fn add_prod(&mut self, a: f64, z: &[f64; LANES]) {
        for b in 0..LANES {
            let (p, pe) = two_prod(a, z[b]);
            let (s, e) = two_sum(self.s[b], p);
            self.s[b] = s;
            self.c[b] += e;
            self.c[b] += pe;
        }
    }
    #[inline(always)]
    fn value(&self, b: usize) -> f64 {
        self.s[b] + self.c[b]
    }
}

impl AddProd<[f64; LANES]> for Lanes {
    #[inline(always)]
    fn add_entry(&mut self, x: f64, z: &[f64; LANES]) {
        self.add_prod(x, z);
    }
}

/// For every row i: `init(i)` gives its accumulators, then `Σ_j a[j][i] z[j]` is added lane by
/// lane with j in order, then `done(i, ..)` takes them: [`a_mul_kernel`] for a batch of systems,
/// each lane's arithmetic that of the one-system kernel.
#[inline(always)]
fn a_mul_lanes_kernel<I, D>(a: &[Column], z: &[[f64; LANES]], n: usize, init: &mut I, done: &mut D)
where
    I: FnMut(usize) -> Lanes,
    D: FnMut(usize, &Lanes),
{
    let mut cursor = vec![0usize; a.len()];
    let mut block = vec![Lanes::default(); ROW_BLOCK.min(n.max(1))];
    let mut start = 0;
    while start < n {
        let end = (start + ROW_BLOCK).min(n);
        let block = &mut block[..end - start];
        for (k, l) in block.iter_mut().enumerate() {
            *l = init(start + k);
        }
        add_columns_block(a, z, &mut cursor, start, block);
        for (k, l) in block.iter().enumerate() {
            done(start + k, l);
        }
        start = end;
    }
}

/// Lane b of column j: `c[j][b] + Σ_i (−a[j][i]) res_b[i]` in double-double, i in order, where
/// `res(i)` gives row i of every system: the one-system `c − A'res` for a batch. Two dense
/// columns go through a block together so that their four dependency chains overlap.
#[inline(always)]
fn at_mul_lanes_kernel<R>(a: &[Column], c: &[[f64; LANES]], n: usize, res: &R) -> Vec<Lanes>
where
    R: Fn(usize) -> [f64; LANES],
{
    let mut acc: Vec<Lanes> = c
        .iter()
        .map(|cj| {
            let mut l = Lanes::default();
            l.add(cj);
            l
        })
        .collect();
    let dense: Vec<usize> = (0..a.len())
        .filter(|&j| matches!(a[j], Column::Dense(_)))
        .collect();
    let mut cursor = vec![0usize; a.len()];
    let mut buf = vec![[0.0f64; LANES]; AT_ROWS.min(n.max(1))];
    let mut start = 0;
    while start < n {
        let end = (start + AT_ROWS).min(n);
        let blk = &mut buf[..end - start];
        for (k, row) in blk.iter_mut().enumerate() {
            *row = res(start + k);
        }
        let blk = &*blk;
        let mut pairs = dense.chunks_exact(2);
        for pair in pairs.by_ref() {
            let (j0, j1) = (pair[0], pair[1]);
            if let (Column::Dense(v0), Column::Dense(v1)) = (&a[j0], &a[j1]) {
                let (mut l0, mut l1) = (acc[j0], acc[j1]);
                for ((&x0, &x1), row) in v0[start..end].iter().zip(&v1[start..end]).zip(blk) {
                    l0.add_prod(-x0, row);
                    l1.add_prod(-x1, row);
                }
                acc[j0] = l0;
                acc[j1] = l1;
            }
        }
        for &j in pairs.remainder() {
            if let Column::Dense(v) = &a[j] {
                let mut l = acc[j];
                for (&x, row) in v[start..end].iter().zip(blk) {
                    l.add_prod(-x, row);
                }
                acc[j] = l;
            }
        }
        for (j, col) in a.iter().enumerate() {
            if let Column::Sparse { idx, val } = col {
                let mut l = acc[j];
                let k = &mut cursor[j];
                while *k < idx.len() && (idx[*k] as usize) < end {
                    l.add_prod(-val[*k], &blk[idx[*k] as usize - start]);
                    *k += 1;
                }
                acc[j] = l;
            }
        }
        start = end;
    }
    acc
}

/// Right-hand sides per call of [`qt_mul_kernel`]; fewer are padded with zeros.
const QT_BATCH: usize = 8;
/// Rows per block in [`qt_mul_kernel`].
const QT_ROWS: usize = 512;

/// `out[b][k] = Σ_i q[k][i] f[b][i]` for up to [`QT_BATCH`] vectors `f[b]`, each sum a plain
/// f64 sum with i in order, starting where `Iterator::sum` starts: the bits of
/// `q[k].iter().zip(f[b]).map(|(a, b)| a * b).sum()`. One pass over Q serves the whole batch
/// (Q is n × r and read once per refinement step of every column otherwise), and the batch's
/// sums proceed side by side in vector registers, four columns of Q at a time.
#[inline(always)]
fn qt_mul_kernel(q: &[&[f64]], f: &[&[f64]]) -> Vec<Vec<f64>> {
    let nb = f.len();
    assert!(
        nb <= QT_BATCH,
        "qt_mul_kernel takes at most {QT_BATCH} vectors"
    );
    let n = f.first().map_or(0, |v| v.len());
    let r = q.len();
    let init: f64 = std::iter::empty::<f64>().sum();
    let mut acc = vec![[init; QT_BATCH]; r];
    let mut fb = vec![[0.0f64; QT_BATCH]; QT_ROWS];
    let mut start = 0;
    while start < n {
        let end = (start + QT_ROWS).min(n);
        let len = end - start;
        for (b, v) in f.iter().enumerate() {
            for (row, &x) in fb.iter_mut().zip(&v[start..end]) {
                row[b] = x;
            }
        }
        let fb = &fb[..len];
        let mut k = 0;
        while k + 4 <= r {
            let (q0, q1, q2, q3) = (
                &q[k][start..end],
                &q[k + 1][start..end],
                &q[k + 2][start..end],
                &q[k + 3][start..end],
            );
            let (mut a0, mut a1, mut a2, mut a3) = (acc[k], acc[k + 1], acc[k + 2], acc[k + 3]);
            for (i, row) in fb.iter().enumerate() {
                let (v0, v1, v2, v3) = (q0[i], q1[i], q2[i], q3[i]);
                for b in 0..QT_BATCH {
                    a0[b] += v0 * row[b];
                    a1[b] += v1 * row[b];
                    a2[b] += v2 * row[b];
                    a3[b] += v3 * row[b];
                }
            }
            acc[k] = a0;
            acc[k + 1] = a1;
            acc[k + 2] = a2;
            acc[k + 3] = a3;
            k += 4;
        }
        while k < r {
            let qk = &q[k][start..end];
            let mut a = acc[k];
            for (row, &v) in fb.iter().zip(qk) {
                for b in 0..QT_BATCH {
                    a[b] += v * row[b];
                }
            }
            acc[k] = a;
            k += 1;
        }
        start = end;
    }
    (0..nb)
        .map(|b| acc.iter().map(|a| a[b]).collect())
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn a_mul_fma(a: &[Column], z: &[f64], out: &mut [Acc]) {
    a_mul_kernel(a, z, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn a_mul_lanes_fma<I, D>(a: &[Column], z: &[[f64; LANES]], n: usize, init: &mut I, done: &mut D)
where
    I: FnMut(usize) -> Lanes,
    D: FnMut(usize, &Lanes),
{
    a_mul_lanes_kernel(a, z, n, init, done)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn at_mul_lanes_fma<R>(a: &[Column], c: &[[f64; LANES]], n: usize, res: &R) -> Vec<Lanes>
where
    R: Fn(usize) -> [f64; LANES],
{
    at_mul_lanes_kernel(a, c, n, res)
}

/// The `fma` feature brings 256-bit vectors; Rust never fuses `a * b + c` on its own, so the
/// sums are those of the generic kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn qt_mul_fma(q: &[&[f64]], f: &[&[f64]]) -> Vec<Vec<f64>> {
    qt_mul_kernel(q, f)
}

#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

/// The factored, scaled, non-aliased design.
struct Factor<'q> {
    n: usize,
    r: usize,
    /// Scaled kept columns (n × r), in pivot order.
    a: Vec<Column>,
    /// Thin Q (n × r) columns.
    q: Vec<&'q [f64]>,
    /// Upper-triangular R (r × r), row-major.
    rr: Vec<Vec<f64>>,
}

impl Factor<'_> {
    fn a_mul(&self, z: &[f64], out_acc: &mut [Acc]) {
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // SAFETY: the processor has the instructions the `fma` feature enables.
            return unsafe { a_mul_fma(&self.a, z, out_acc) };
        }
        a_mul_kernel(&self.a, z, out_acc)
    }

    /// [`a_mul_lanes_kernel`] on this design.
    fn a_mul_lanes<I, D>(&self, z: &[[f64; LANES]], init: &mut I, done: &mut D)
    where
        I: FnMut(usize) -> Lanes,
        D: FnMut(usize, &Lanes),
    {
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // SAFETY: as in `a_mul`.
            return unsafe { a_mul_lanes_fma(&self.a, z, self.n, init, done) };
        }
        a_mul_lanes_kernel(&self.a, z, self.n, init, done)
    }

    /// `c − A' res` for a batch of systems, accumulated in double-double.
    fn c_minus_at_lanes<R>(&self, c: &[[f64; LANES]], res: &R) -> Vec<Lanes>
    where
        R: Fn(usize) -> [f64; LANES],
    {
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // SAFETY: as in `a_mul`.
            return unsafe { at_mul_lanes_fma(&self.a, c, self.n, res) };
        }
        at_mul_lanes_kernel(&self.a, c, self.n, res)
    }
    fn solve_r(&self, b: &[f64]) -> Vec<f64> {
        let r = self.r;
        let mut x = b.to_vec();
        for i in (0..r).rev() {
            let mut s = x[i];
            for j in i + 1..r {
                s -= self.rr[i][j] * x[j];
            }
            x[i] = s / self.rr[i][i];
        }
        x
    }
    fn solve_rt(&self, b: &[f64]) -> Vec<f64> {
        let r = self.r;
        let mut x = b.to_vec();
        for i in 0..r {
            let mut s = x[i];
            for j in 0..i {
                s -= self.rr[j][i] * x[j];
            }
            x[i] = s / self.rr[i][i];
        }
        x
    }
    /// Q'v for every v, in batches of [`QT_BATCH`].
    fn qt_mul_many(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
        let mut out = Vec::with_capacity(vs.len());
        for batch in vs.chunks(QT_BATCH) {
            #[cfg(target_arch = "x86_64")]
            if has_fma() {
                // SAFETY: as in `a_mul`.
                out.extend(unsafe { qt_mul_fma(&self.q, batch) });
                continue;
            }
            out.extend(qt_mul_kernel(&self.q, batch));
        }
        out
    }

    /// Refine every (res[t], z[t]) solving [I A; A' 0][r; z] = [b; c[t]] (b: n, c[t]: r),
    /// starting from the given values, for at most `max_iter` steps each. Residuals of both block
    /// equations are accumulated in double-double. The systems are stepped side by side so that
    /// one pass over Q serves all of them; each system's arithmetic is exactly what refining it
    /// alone would do, and it stops at the step it would stop at alone.
    fn refine(
        &self,
        b: &[f64],
        c: &[Vec<f64>],
        res: &mut [Vec<f64>],
        z: &mut [Vec<f64>],
        max_iter: usize,
    ) {
        let (n, r) = (self.n, self.r);
        let mut active: Vec<usize> = (0..c.len()).collect();
        let mut f: Vec<Vec<f64>> = vec![Vec::new(); c.len()];
        // Column j of a batch's vectors as lanes (padding lanes 0).
        let lanes_of = |chunk: &[usize], v: &dyn Fn(usize, usize) -> f64| -> Vec<[f64; LANES]> {
            (0..r)
                .map(|j| {
                    let mut l = [0.0; LANES];
                    for (k, &t) in chunk.iter().enumerate() {
                        l[k] = v(t, j);
                    }
                    l
                })
                .collect()
        };
        for _ in 0..max_iter {
            if active.is_empty() {
                break;
            }
            // f = b - res - A z,  g = c - A' res; eight systems per pass over A.
            let mut g: Vec<Vec<f64>> = Vec::with_capacity(active.len());
            for chunk in active.chunks(LANES) {
                for &t in chunk {
                    f[t].resize(n, 0.0);
                }
                let neg_z = lanes_of(chunk, &|t, j| -z[t][j]);
                {
                    let res = &*res;
                    let mut init = |i: usize| {
                        let (mut bi, mut ri) = ([0.0; LANES], [0.0; LANES]);
                        for (k, &t) in chunk.iter().enumerate() {
                            bi[k] = b[i];
                            ri[k] = -res[t][i];
                        }
                        let mut l = Lanes::default();
                        l.add(&bi);
                        l.add(&ri);
                        l
                    };
                    let mut done = |i: usize, l: &Lanes| {
                        for (k, &t) in chunk.iter().enumerate() {
                            f[t][i] = l.value(k);
                        }
                    };
                    self.a_mul_lanes(&neg_z, &mut init, &mut done);
                }
                let cl = lanes_of(chunk, &|t, j| c[t][j]);
                let res = &*res;
                let gl = self.c_minus_at_lanes(&cl, &|i| {
                    let mut row = [0.0; LANES];
                    for (k, &t) in chunk.iter().enumerate() {
                        row[k] = res[t][i];
                    }
                    row
                });
                for k in 0..chunk.len() {
                    g.push(gl.iter().map(|l| l.value(k)).collect());
                }
            }
            // h = R^-T g;  dz = R^-1 (Q'f - h);  dres = f - A dz
            let fs: Vec<&[f64]> = active.iter().map(|&t| f[t].as_slice()).collect();
            let qtf = self.qt_mul_many(&fs);
            let dzs: Vec<Vec<f64>> = g
                .iter()
                .zip(&qtf)
                .map(|(gt, qt)| {
                    let h = self.solve_rt(gt);
                    let rhs: Vec<f64> = qt.iter().zip(&h).map(|(a, b)| a - b).collect();
                    self.solve_r(&rhs)
                })
                .collect();
            let mut still = Vec::with_capacity(active.len());
            for (ci, chunk) in active.chunks(LANES).enumerate() {
                let dz = &dzs[ci * LANES..ci * LANES + chunk.len()];
                let mut neg_dz = vec![[0.0; LANES]; r];
                for (k, d) in dz.iter().enumerate() {
                    for (lj, dj) in neg_dz.iter_mut().zip(d) {
                        lj[k] = -dj;
                    }
                }
                let f = &f;
                let mut init = |i: usize| {
                    let mut fi = [0.0; LANES];
                    for (k, &t) in chunk.iter().enumerate() {
                        fi[k] = f[t][i];
                    }
                    let mut l = Lanes::default();
                    l.add(&fi);
                    l
                };
                let mut done = |i: usize, l: &Lanes| {
                    for (k, &t) in chunk.iter().enumerate() {
                        res[t][i] += l.value(k);
                    }
                };
                self.a_mul_lanes(&neg_dz, &mut init, &mut done);
                for (&t, d) in chunk.iter().zip(dz) {
                    let mut small = true;
                    for (zj, dj) in z[t].iter_mut().zip(d) {
                        if dj.abs() > 1e-17 * zj.abs() {
                            small = false;
                        }
                        *zj += dj;
                    }
                    if !small {
                        still.push(t);
                    }
                }
            }
            active = still;
        }
    }
}

/// Column j of −(A'A)⁻¹ for every j, each from its refined augmented system, computed on up to
/// `available_parallelism` threads (a fit with few columns stays on the calling thread).
fn inverse_columns(fac: &Factor) -> Vec<Vec<f64>> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1);
    // Below ~1e6 multiply-adds per column a thread costs more than it saves.
    let threads = if fac.n * fac.r < 1 << 20 { 1 } else { threads };
    inverse_columns_on(fac, threads)
}

/// The columns `cols` of −(A'A)⁻¹, refined side by side.
fn inverse_batch(fac: &Factor, cols: std::ops::Range<usize>) -> Vec<Vec<f64>> {
    let rank = fac.r;
    let zeros = vec![0.0; fac.n];
    let mut c = Vec::new();
    let mut z = Vec::new();
    for j in cols {
        let mut e = vec![0.0; rank];
        e[j] = 1.0;
        let w = fac.solve_rt(&e);
        z.push(fac.solve_r(&w).iter().map(|v| -v).collect::<Vec<f64>>());
        c.push(e);
    }
    // The starting residuals −A z, eight columns per pass over A.
    let mut res: Vec<Vec<f64>> = vec![vec![0.0; fac.n]; z.len()];
    for (zs, rs) in z.chunks(LANES).zip(res.chunks_mut(LANES)) {
        let mut neg = vec![[0.0; LANES]; rank];
        for (k, zk) in zs.iter().enumerate() {
            for (l, v) in neg.iter_mut().zip(zk) {
                l[k] = -v;
            }
        }
        let mut init = |_: usize| Lanes::default();
        let mut done = |i: usize, l: &Lanes| {
            for (k, r) in rs.iter_mut().enumerate() {
                r[i] = l.value(k);
            }
        };
        fac.a_mul_lanes(&neg, &mut init, &mut done);
    }
    fac.refine(&zeros, &c, &mut res, &mut z, 4);
    z
}

fn inverse_columns_on(fac: &Factor, threads: usize) -> Vec<Vec<f64>> {
    let rank = fac.r;
    let batches: Vec<std::ops::Range<usize>> = (0..rank)
        .step_by(QT_BATCH)
        .map(|s| s..(s + QT_BATCH).min(rank))
        .collect();
    let threads = threads.min(batches.len());
    if threads <= 1 {
        return batches
            .into_iter()
            .flat_map(|b| inverse_batch(fac, b))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<Option<Vec<Vec<f64>>>> = vec![None; batches.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= batches.len() {
                            break mine;
                        }
                        mine.push((k, inverse_batch(fac, batches[k].clone())));
                    }
                })
            })
            .collect();
        for w in workers {
            // A worker only panics if the arithmetic above does; pass that on unchanged.
            let mine = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            for (k, cols) in mine {
                done[k] = Some(cols);
            }
        }
    });
    done.into_iter().flatten().flatten().collect()
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
    let n = x.nrows();
    let p = x.ncols();
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
    if opts.vcov == VcovType::Cr1 {
        match opts.cluster {
            None => {
                return Err(StatsError::InvalidArgument(
                    "CR1 covariance needs cluster ids".into(),
                ))
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
    // needs (the kept columns, sparse where mostly zero, and thin Q), freeing each as soon as
    // it is used, so that a large fit holds about two copies of the design, not six.
    let a: Vec<Column> = piv
        .iter()
        .map(|&j| Column::new((0..n).map(|i| xs[(i, j)]), n))
        .collect();
    drop(xs);
    let qthin = qr.compute_thin_Q();
    drop(qr);
    let q: Vec<&[f64]> = (0..rank)
        .map(|k| match qthin.col(k).try_as_col_major() {
            Some(c) => Ok(c.as_slice()),
            None => Err(StatsError::Numerical("Q is not stored by columns".into())),
        })
        .collect::<Result<_, _>>()?;
    let fac = Factor {
        n,
        r: rank,
        a,
        q,
        rr,
    };

    // Coefficients (scaled, pivot order), refined.
    let qty = fac.qt_mul_many(&[y]).pop().unwrap_or_default();
    let z = fac.solve_r(&qty);
    let res = {
        let mut acc: Vec<Acc> = y
            .iter()
            .map(|&v| {
                let mut a = Acc::default();
                a.add(v);
                a
            })
            .collect();
        let nz: Vec<f64> = z.iter().map(|v| -v).collect();
        fac.a_mul(&nz, &mut acc);
        acc.iter().map(|a| a.value()).collect::<Vec<f64>>()
    };
    let (mut res, mut z) = (vec![res], vec![z]);
    fac.refine(y, &[vec![0.0; rank]], &mut res, &mut z, 6);
    let (res, z) = (res.swap_remove(0), z.swap_remove(0));

    // (A'A)^-1 of the scaled design, refined column by column: the augmented system with
    // right-hand side (0, e_j) has z = -(A'A)^-1 e_j.
    // The columns are independent, so they are refined on the available cores; each column's
    // arithmetic is the same whichever thread does it.
    let inv_cols = inverse_columns(&fac);
    let mut inv_s = vec![vec![0.0; rank]; rank];
    for (j, zj) in inv_cols.iter().enumerate() {
        for i in 0..rank {
            inv_s[i][j] = -zj[i];
        }
    }
    for i in 0..rank {
        for j in 0..i {
            let m = 0.5 * (inv_s[i][j] + inv_s[j][i]);
            inv_s[i][j] = m;
            inv_s[j][i] = m;
        }
    }

    // Back to design order and original scale.
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

    let residuals = res;
    let fitted: Vec<f64> = y.iter().zip(&residuals).map(|(a, b)| a - b).collect();
    let mut rss_acc = Acc::default();
    for &e in &residuals {
        rss_acc.add_prod(e, e);
    }
    let rss = rss_acc.value();
    let df_res = n as f64 - rank as f64;
    let sigma2 = if df_res > 0.0 { rss / df_res } else { f64::NAN };

    // Intercept: a column of equal non-zero values.
    let has_intercept = (0..p).any(|j| {
        let v0 = x[(0, j)];
        v0 != 0.0 && (0..n).all(|i| x[(i, j)] == v0)
    });
    let intercept_kept: Option<usize> = kept.iter().position(|&j| {
        let v0 = x[(0, j)];
        v0 != 0.0 && (0..n).all(|i| x[(i, j)] == v0)
    });

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

    // Rows of the kept design (original scale), for the sandwich estimators.
    let rows = || -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| kept.iter().map(|&j| x[(i, j)]).collect())
            .collect()
    };
    let (vcov, n_clusters) = match opts.vcov {
        VcovType::Classical => (
            bread
                .iter()
                .map(|r| r.iter().map(|v| v * sigma2).collect())
                .collect::<Vec<Vec<f64>>>(),
            None,
        ),
        VcovType::Cr1 => {
            let cl = opts.cluster.unwrap_or(&[]);
            let (v, g) = vcov_cr1_by(n, |i, a| x[(i, kept[a])], &residuals, cl, &bread)?;
            (v, Some(g))
        }
        kind => {
            // Leverage h_i = ||Q1 row i||².
            let lev: Vec<f64> = (0..n)
                .map(|i| fac.q.iter().map(|qc| qc[i] * qc[i]).sum())
                .collect();
            (vcov_hc(kind, &rows(), &residuals, &lev, &bread)?, None)
        }
    };
    let df_inf = match n_clusters {
        Some(g) => g as f64 - 1.0,
        None => df_res,
    };
    let tq = interval_quantile(df_inf, opts.conf_level);
    let coefficients: Vec<Coefficient> = kept
        .iter()
        .enumerate()
        .map(|(k, &j)| {
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
        .collect();

    // Overall F test of all non-intercept coefficients.
    let test_idx: Vec<usize> = (0..rank).filter(|&k| Some(k) != intercept_kept).collect();
    let q = test_idx.len();
    let (f_statistic, f_df, f_p_value) = if q == 0 || !(df_inf > 0.0) {
        (None, None, None)
    } else if opts.vcov == VcovType::Classical {
        let f = ((tss - rss) / (rank as f64 - df_int)) / sigma2;
        let df1 = rank as f64 - df_int;
        (Some(f), Some((df1, df_res)), Some(f_sf(f, df1, df_res)))
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
    };

    let nf = n as f64;
    let log_likelihood =
        0.5 * (-nf * ((2.0 * std::f64::consts::PI).ln() + 1.0 - nf.ln() + rss.ln()));
    let dfll = rank as f64 + 1.0;
    Ok(OlsFit {
        coefficients,
        aliased,
        n_obs: n,
        rank,
        df_residual: df_res,
        r_squared,
        adj_r_squared,
        sigma: sigma2.sqrt(),
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
        has_intercept,
    })
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

    /// Deterministic pseudo-random numbers spanning many binades (so that rounding matters).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let m = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                m * (2.0f64).powi(((x >> 3) % 40) as i32 - 20)
            })
            .collect()
    }

    /// The loops the kernels replace, written plainly on dense columns: the reference for
    /// bit-identity.
    fn a_mul_plain(a: &[Vec<f64>], z: &[f64], out: &mut [Acc]) {
        for (j, col) in a.iter().enumerate() {
            for i in 0..out.len() {
                out[i].add_prod(col[i], z[j]);
            }
        }
    }

    fn at_mul_plain(a: &[Vec<f64>], c: &[f64], res: &[f64]) -> Vec<f64> {
        (0..a.len())
            .map(|j| {
                let mut acc = Acc::default();
                acc.add(c[j]);
                for i in 0..res.len() {
                    acc.add_prod(-a[j][i], res[i]);
                }
                acc.value()
            })
            .collect()
    }

    fn qt_mul_plain(q: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
        q.iter()
            .map(|qc| qc.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// Runs a lane a_mul kernel, handing each row's lanes to the callback.
    type LaneAMul<'a> = &'a dyn Fn(&mut dyn FnMut(usize, &Lanes));

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Columns of noise, every third one a dummy-like column (mostly zeros, some exact powers
    /// of two as scaled dummies are, some noise), so that both column kinds are exercised.
    fn mixed_columns(n: usize, r: usize, seed: u64) -> Vec<Vec<f64>> {
        (0..r)
            .map(|j| {
                let v = noise(n, seed + j as u64);
                match j % 3 {
                    2 => v
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| match (i + j) % 7 {
                            0 => 0.125,
                            3 => x,
                            _ => 0.0,
                        })
                        .collect(),
                    _ => v,
                }
            })
            .collect()
    }

    fn columns(a: &[Vec<f64>]) -> Vec<Column> {
        a.iter()
            .map(|c| Column::new(c.iter().copied(), c.len()))
            .collect()
    }

    #[test]
    fn kernels_give_the_bits_of_the_plain_loops() {
        // Sizes around the row blocks and the four-column groups.
        for (n, r) in [(1, 1), (5, 3), (2049, 7), (4100, 9), (6000, 4), (1500, 13)] {
            let a = mixed_columns(n, r, 1);
            let cols = columns(&a);
            if n > 100 && r > 2 {
                assert!(matches!(cols[2], Column::Sparse { .. }), "n={n}");
                assert!(matches!(cols[0], Column::Dense(_)), "n={n}");
            }
            let z = noise(r, 99);
            let init = noise(n, 7);
            let start: Vec<Acc> = init
                .iter()
                .map(|&v| {
                    let mut acc = Acc::default();
                    acc.add(v);
                    acc
                })
                .collect();
            let mut want = start.clone();
            a_mul_plain(&a, &z, &mut want);
            let mut got = start.clone();
            a_mul_kernel(&cols, &z, &mut got);
            let val = |v: &[Acc]| bits(&v.iter().map(|x| x.value()).collect::<Vec<_>>());
            assert_eq!(val(&got), val(&want), "a_mul n={n} r={r}");
            let c = noise(r, 5);
            // The lane kernels: lane k is a system of its own (k = 0 the one above).
            let lanes_of = |first: &[f64], len: usize, seed: u64| -> Vec<Vec<f64>> {
                (0..LANES)
                    .map(|k| {
                        if k == 0 {
                            first.to_vec()
                        } else {
                            noise(len, seed + k as u64)
                        }
                    })
                    .collect()
            };
            let zk = lanes_of(&z, r, 200);
            let rk = lanes_of(&init, n, 300);
            let ck = lanes_of(&c, r, 400);
            let zl: Vec<[f64; LANES]> = (0..r).map(|j| std::array::from_fn(|k| zk[k][j])).collect();
            let cl: Vec<[f64; LANES]> = (0..r).map(|j| std::array::from_fn(|k| ck[k][j])).collect();
            let row = |i: usize| -> [f64; LANES] { std::array::from_fn(|k| rk[k][i]) };
            let check_lanes = |name: &str, amul: LaneAMul, atmul: &dyn Fn() -> Vec<Lanes>| {
                let mut got = vec![vec![0.0; n]; LANES];
                amul(&mut |i, l| {
                    for (k, g) in got.iter_mut().enumerate() {
                        g[i] = l.value(k);
                    }
                });
                let g = atmul();
                for k in 0..LANES {
                    let mut want: Vec<Acc> = rk[k]
                        .iter()
                        .map(|&v| {
                            let mut acc = Acc::default();
                            acc.add(v);
                            acc
                        })
                        .collect();
                    a_mul_plain(&a, &zk[k], &mut want);
                    assert_eq!(
                        bits(&got[k]),
                        val(&want),
                        "{name} a_mul lane {k} n={n} r={r}"
                    );
                    let gk: Vec<f64> = g.iter().map(|l| l.value(k)).collect();
                    assert_eq!(
                        bits(&gk),
                        bits(&at_mul_plain(&a, &ck[k], &rk[k])),
                        "{name} at_mul lane {k} n={n} r={r}"
                    );
                }
            };
            let init_lanes = |i: usize| {
                let mut l = Lanes::default();
                l.add(&row(i));
                l
            };
            check_lanes(
                "generic",
                &|done| {
                    a_mul_lanes_kernel(&cols, &zl, n, &mut init_lanes.clone(), &mut |i, l| {
                        done(i, l)
                    })
                },
                &|| at_mul_lanes_kernel(&cols, &cl, n, &row),
            );
            #[cfg(target_arch = "x86_64")]
            if has_fma() {
                check_lanes(
                    "fma",
                    // SAFETY: the processor has FMA (checked above).
                    &|done| unsafe {
                        a_mul_lanes_fma(&cols, &zl, n, &mut init_lanes.clone(), &mut |i, l| {
                            done(i, l)
                        })
                    },
                    &|| unsafe { at_mul_lanes_fma(&cols, &cl, n, &row) },
                );
            }
            // Q'f for 1, 8 and 11 right-hand sides (one batch padded, two batches).
            let fs: Vec<Vec<f64>> = (0..11).map(|b| noise(n, 40 + b)).collect();
            let qs: Vec<&[f64]> = a.iter().map(Vec::as_slice).collect();
            for nb in [1, 8] {
                let fr: Vec<&[f64]> = fs[..nb].iter().map(Vec::as_slice).collect();
                let got = qt_mul_kernel(&qs, &fr);
                for (b, g) in got.iter().enumerate() {
                    assert_eq!(bits(g), bits(&qt_mul_plain(&a, &fs[b])), "qt n={n} r={r}");
                }
            }
            #[cfg(target_arch = "x86_64")]
            if has_fma() {
                let mut got = start.clone();
                // SAFETY: the processor has FMA (checked above).
                unsafe { a_mul_fma(&cols, &z, &mut got) };
                assert_eq!(val(&got), val(&want), "a_mul fma n={n} r={r}");
                let fr: Vec<&[f64]> = fs[..8].iter().map(Vec::as_slice).collect();
                let got = unsafe { qt_mul_fma(&qs, &fr) };
                for (b, g) in got.iter().enumerate() {
                    assert_eq!(bits(g), bits(&qt_mul_plain(&a, &fs[b])), "qt fma n={n}");
                }
            }
        }
    }

    /// The factorization of `a` as `ols` builds it (no pivoting needed by the tests that use
    /// it: they only compare two ways of refining the same factorization).
    fn factor_of<'q>(a: &[Vec<f64>], qcols: &'q [Vec<f64>], rm: &Mat<f64>) -> Factor<'q> {
        let r = a.len();
        Factor {
            n: a[0].len(),
            r,
            a: columns(a),
            q: qcols.iter().map(Vec::as_slice).collect(),
            rr: (0..r)
                .map(|i| {
                    (0..r)
                        .map(|j| if j >= i { rm[(i, j)] } else { 0.0 })
                        .collect()
                })
                .collect(),
        }
    }

    /// The refinement of one system as it was before systems were stepped side by side, on
    /// dense columns with the plain loops.
    #[allow(clippy::too_many_arguments)]
    fn refine_reference(
        fac: &Factor,
        a: &[Vec<f64>],
        q: &[Vec<f64>],
        b: &[f64],
        c: &[f64],
        res: &mut [f64],
        z: &mut [f64],
        max_iter: usize,
    ) {
        let n = fac.n;
        for _ in 0..max_iter {
            let mut acc = vec![Acc::default(); n];
            for i in 0..n {
                acc[i].add(b[i]);
                acc[i].add(-res[i]);
            }
            let neg_z: Vec<f64> = z.iter().map(|v| -v).collect();
            a_mul_plain(a, &neg_z, &mut acc);
            let f: Vec<f64> = acc.iter().map(|a| a.value()).collect();
            let g = at_mul_plain(a, c, res);
            let h = fac.solve_rt(&g);
            let qtf = qt_mul_plain(q, &f);
            let rhs: Vec<f64> = qtf.iter().zip(&h).map(|(a, b)| a - b).collect();
            let dz = fac.solve_r(&rhs);
            let mut acc = vec![Acc::default(); n];
            for i in 0..n {
                acc[i].add(f[i]);
            }
            let neg_dz: Vec<f64> = dz.iter().map(|v| -v).collect();
            a_mul_plain(a, &neg_dz, &mut acc);
            let mut small = true;
            for (zj, dj) in z.iter_mut().zip(&dz) {
                if dj.abs() > 1e-17 * zj.abs() {
                    small = false;
                }
                *zj += dj;
            }
            for (ri, ai) in res.iter_mut().zip(&acc) {
                *ri += ai.value();
            }
            if small {
                break;
            }
        }
    }

    #[test]
    fn batched_refinement_gives_the_bits_of_one_system_at_a_time() {
        // A design like H1's: intercept, a covariate and dummies of a 12-level factor.
        let n = 2600;
        let cov = noise(n, 3);
        let mut a = vec![
            vec![0.5; n],
            cov.iter().map(|v| v * 1e3).collect::<Vec<_>>(),
        ];
        for l in 1..12 {
            a.push(
                (0..n)
                    .map(|i| if i % 12 == l { 0.25 } else { 0.0 })
                    .collect(),
            );
        }
        let r = a.len();
        let x = Mat::from_fn(n, r, |i, j| a[j][i]);
        let qr = x.col_piv_qr();
        let (fwd, _) = qr.P().arrays();
        let a: Vec<Vec<f64>> = fwd.iter().map(|&j| a[j].clone()).collect();
        let qm = qr.compute_thin_Q();
        let qcols: Vec<Vec<f64>> = (0..r)
            .map(|k| (0..n).map(|i| qm[(i, k)]).collect())
            .collect();
        let rm = qr.R().to_owned();
        let fac = factor_of(&a, &qcols, &rm);
        let got = inverse_columns_on(&fac, 1);
        let zeros = vec![0.0; n];
        for j in 0..r {
            let mut e = vec![0.0; r];
            e[j] = 1.0;
            let w = fac.solve_rt(&e);
            let mut zj: Vec<f64> = fac.solve_r(&w).iter().map(|v| -v).collect();
            let mut acc = vec![Acc::default(); n];
            let nz: Vec<f64> = zj.iter().map(|v| -v).collect();
            a_mul_plain(&a, &nz, &mut acc);
            let mut rj: Vec<f64> = acc.iter().map(|a| a.value()).collect();
            refine_reference(&fac, &a, &qcols, &zeros, &e, &mut rj, &mut zj, 4);
            assert_eq!(bits(&got[j]), bits(&zj), "column {j}");
        }
        // The coefficients' refinement (one system, six steps).
        let y: Vec<f64> = (0..n).map(|i| cov[i] * 2.0 + (i % 12) as f64).collect();
        let mut z = vec![fac.solve_r(&qt_mul_plain(&qcols, &y))];
        let mut acc: Vec<Acc> = y
            .iter()
            .map(|&v| {
                let mut a = Acc::default();
                a.add(v);
                a
            })
            .collect();
        let nz: Vec<f64> = z[0].iter().map(|v| -v).collect();
        a_mul_plain(&a, &nz, &mut acc);
        let mut res = vec![acc.iter().map(|a| a.value()).collect::<Vec<f64>>()];
        let (mut res0, mut z0) = (res[0].clone(), z[0].clone());
        refine_reference(&fac, &a, &qcols, &y, &vec![0.0; r], &mut res0, &mut z0, 6);
        fac.refine(&y, &[vec![0.0; r]], &mut res, &mut z, 6);
        assert_eq!(bits(&z[0]), bits(&z0));
        assert_eq!(bits(&res[0]), bits(&res0));
    }

    #[test]
    fn inverse_columns_do_not_depend_on_threads() {
        let (n, r) = (3000, 19);
        let a = mixed_columns(n, r, 11);
        let x = Mat::from_fn(n, r, |i, j| a[j][i]);
        let qr = x.col_piv_qr();
        let q = qr.compute_thin_Q();
        let qcols: Vec<Vec<f64>> = (0..r)
            .map(|k| (0..n).map(|i| q[(i, k)]).collect())
            .collect();
        let rm = qr.R().to_owned();
        let fac = factor_of(&a, &qcols, &rm);
        let serial = inverse_columns_on(&fac, 1);
        for threads in [2, 3, 8] {
            let par = inverse_columns_on(&fac, threads);
            for (s, p) in serial.iter().zip(&par) {
                assert_eq!(bits(s), bits(p), "threads {threads}");
            }
        }
    }

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("x{i}")).collect()
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
