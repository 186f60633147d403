//! Penalized least squares at one θ: the sparse Cholesky factor of Λ'Z'ZΛ + I, the dense
//! Schur complement for the fixed effects, and the profiled deviance or REML criterion.
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::{self as llt_factor, LltRegularization};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, supernodal::SupernodalLltRef, LltRef, SymbolicCholesky,
    SymbolicCholeskyRaw, SymmetricOrdering,
};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, Mat, MatRef, Par, Side, Spec};

use super::rank::{cross_products, nonzero_rows};
use crate::types::StatsError;

/// Everything that does not depend on θ.
pub(super) struct Problem<'a> {
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
pub(super) struct Pls {
    ldl2: f64,
    ldrx2: f64,
    pub(super) pwrss: f64,
    pub(super) beta: Vec<f64>,
    /// (RX'RX)⁻¹, p × p row-major.
    pub(super) rx_inv: Vec<f64>,
}

impl Pls {
    pub(super) fn deviance(&self, reml: bool, n: usize, p: usize) -> f64 {
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
    pub(super) fn deviance_sigma(&self, reml: bool, n: usize, p: usize, sigma: f64) -> f64 {
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
    pub(super) fn new(
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
    pub(super) fn pls(&self, theta: &[f64]) -> Result<Pls, StatsError> {
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
        let rxtrx = Mat::from_fn(p, p, |i, j| self.xtxy[(i, j)] - g[(i, j)]);
        let rhs: Vec<f64> = (0..p).map(|i| self.xtxy[(i, p)] - g[(i, p)]).collect();
        let l = cholesky(rxtrx.as_ref()).ok_or_else(|| {
            StatsError::Numerical("fixed-effects cross-product not positive definite".into())
        })?;
        let ldrx2 = 2.0 * (0..p).map(|i| l[(i, i)].ln()).sum::<f64>();
        let beta = chol_solve(l.as_ref(), &rhs);
        let rx_inv = chol_inverse(l.as_ref());
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

// Small dense helpers: faer's Cholesky (LLᵀ), sequential, on p × p matrices.

/// The Cholesky factor L (lower triangle; the upper one zeroed) of the symmetric matrix whose
/// lower triangle `a` holds; None unless positive definite (a pivot ≤ 0 or NaN).
pub(super) fn cholesky(a: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let p = a.nrows();
    let mut l = a.to_owned();
    let mut buf = MemBuffer::new(llt_factor::cholesky_in_place_scratch::<f64>(
        p,
        Par::Seq,
        Default::default(),
    ));
    llt_factor::cholesky_in_place(
        l.as_mut(),
        LltRegularization::default(),
        Par::Seq,
        MemStack::new(&mut buf),
        Default::default(),
    )
    .ok()?;
    for j in 1..p {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    Some(l)
}

/// x with L Lᵀ x = b.
pub(super) fn chol_solve(l: MatRef<'_, f64>, b: &[f64]) -> Vec<f64> {
    let mut x = Mat::from_fn(b.len(), 1, |i, _| b[i]);
    let mut buf = MemBuffer::new(StackReq::EMPTY);
    faer::linalg::cholesky::llt::solve::solve_in_place(
        l,
        x.as_mut(),
        Par::Seq,
        MemStack::new(&mut buf),
    );
    x.col_as_slice(0).to_vec()
}

/// (L Lᵀ)⁻¹, row-major p × p, exactly symmetric.
fn chol_inverse(l: MatRef<'_, f64>) -> Vec<f64> {
    let p = l.nrows();
    let mut inv = Mat::<f64>::zeros(p, p);
    let mut buf =
        MemBuffer::new(faer::linalg::cholesky::llt::inverse::inverse_scratch::<f64>(p, Par::Seq));
    faer::linalg::cholesky::llt::inverse::inverse(
        inv.as_mut(),
        l,
        Par::Seq,
        MemStack::new(&mut buf),
    );
    // faer writes the lower triangle.
    (0..p * p)
        .map(|k| {
            let (i, j) = (k / p, k % p);
            if i >= j {
                inv[(i, j)]
            } else {
                inv[(j, i)]
            }
        })
        .collect()
}

// Small dense helpers (p × p, row-major).
