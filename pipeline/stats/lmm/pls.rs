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

use super::pack::Packing;
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
    /// How the columns of [Z'X | Z'y] share right-hand sides (`lmm/pack.rs`).
    pack: Packing,
    /// [Z'X | Z'y] packed: q × (colours + 1).
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
    pub(super) fn new(
        x: MatRef<'a, f64>,
        y: &'a [f64],
        groups: &'a [(String, Vec<u32>, usize)],
    ) -> Result<Self, StatsError> {
        Self::with_packing(x, y, groups, true)
    }

    /// [`Problem::new`]; without `pack` the columns are not packed (`lmm/pack.rs`).
    #[allow(clippy::needless_range_loop)]
    fn with_packing(
        x: MatRef<'a, f64>,
        y: &'a [f64],
        groups: &'a [(String, Vec<u32>, usize)],
        pack: bool,
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

        let ZtzPattern {
            col_ptr,
            row_idx,
            counts,
            pair,
            is_diag,
        } = ztz_pattern(n, q, &offsets, &codes, &coord_factor);

        // Cross products. Columns of one colour have no coordinate in common, so each entry of
        // the packed Z'X is the sum of the one column non-zero there, as unpacked.
        let nonzeros = nonzero_rows(x);
        let pack = Packing::new(
            pack,
            p,
            n,
            q,
            &offsets,
            &codes,
            &|j| nonzeros[j].clone(),
            &|i, j| x[(i, j)] != 0.0,
        );
        let m = pack.colours;
        let mut ztxy = Mat::<f64>::zeros(q, m + 1);
        for i in 0..n {
            for f in 0..k {
                let r = offsets[f] + codes[f][i] as usize;
                for j in 0..p {
                    ztxy[(r, pack.colour[j])] += x[(i, j)];
                }
                ztxy[(r, m)] += y[i];
            }
        }
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
            pack,
            ztxy,
            xtxy,
            symbolic,
            scratch,
            work: std::cell::RefCell::new(None),
        })
    }

    /// Solves the penalized least-squares problem at θ.
    pub(super) fn pls(&self, theta: &[f64]) -> Result<Pls, StatsError> {
        let q = self.q;
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
                b: Mat::<f64>::zeros(q, self.pack.colours + 1),
                c: Mat::<f64>::zeros(q, self.pack.colours + 1),
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

        // B = Λ'[Z'X | Z'y] (packed); C = M⁻¹ B. Every entry of B is written.
        let m = self.pack.colours;
        for j in 0..=m {
            let (bj, zj) = (b.col_as_slice_mut(j), self.ztxy.col_as_slice(j));
            for ((br, &zr), &f) in bj.iter_mut().zip(zj).zip(&self.coord_factor) {
                *br = theta[f as usize] * zr;
            }
        }
        c.copy_from(&*b);
        llt.solve_in_place_with_conj(Conj::No, c.as_mut(), Par::Seq, stack);
        let g = self.cross(b.as_ref(), c.as_ref());
        // RX'RX and its right-hand side.
        let rxtrx = Mat::from_fn(p, p, |i, j| self.xtxy[(i, j)] - g[(i, j)]);
        let rhs: Vec<f64> = (0..p).map(|i| self.xtxy[(i, p)] - g[(i, p)]).collect();
        let l = cholesky(rxtrx.as_ref()).ok_or_else(|| {
            StatsError::Numerical("fixed-effects cross-product not positive definite".into())
        })?;
        let ldrx2 = 2.0 * (0..p).map(|i| l[(i, i)].ln()).sum::<f64>();
        let beta = chol_solve(l.as_ref(), &rhs);
        let rx_inv = chol_inverse(l.as_ref());
        // u = c_y − C_x β; residuals. Each u[r] subtracts the terms in the order of the packed
        // columns, as a loop over them inside a loop over r would; going column by column
        // reads C in its storage order. A packed column holds, at r, the column owning r's
        // component (and is zero where none does).
        let mut u = c.col_as_slice(m).to_vec();
        for s in 0..m {
            let cs = c.col_as_slice(s);
            if !self.pack.packs() {
                let bj = beta[s];
                for (ur, &crj) in u.iter_mut().zip(cs) {
                    *ur -= crj * bj;
                }
                continue;
            }
            for (r, (ur, &crj)) in u.iter_mut().zip(cs).enumerate() {
                let o = self.pack.owner(s, self.pack.comp_of_coord[r] as usize);
                if o != super::pack::NONE {
                    *ur -= crj * beta[o as usize];
                }
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

impl Problem<'_> {
    /// G = B'C in the unpacked columns, (p + 1) × (p + 1). Unpacked: one product. Packed: the
    /// products of each component's packed columns, added to the entries of the columns that
    /// own them there (the other entries of the unpacked product are sums of zeros).
    fn cross(&self, b: MatRef<'_, f64>, c: MatRef<'_, f64>) -> Mat<f64> {
        let p = self.p;
        let mut g = Mat::<f64>::zeros(p + 1, p + 1);
        // Sequential: the product is small per evaluation, too small for threads to pay (with
        // the global pool, waiting on the other thread took more time than the product).
        if !self.pack.packs() {
            faer::linalg::matmul::matmul(
                g.as_mut(),
                faer::Accum::Replace,
                b.transpose(),
                c,
                1.0,
                Par::Seq,
            );
            return g;
        }
        let pk = &self.pack;
        let m = pk.colours;
        let mut own = vec![0u32; m + 1];
        for comp in 0..pk.n_comp() {
            for (s, o) in own.iter_mut().enumerate() {
                *o = pk.owner(s, comp);
            }
            let rows = &pk.coords[pk.comp_ptr[comp]..pk.comp_ptr[comp + 1]];
            for (s, &a) in own.iter().enumerate() {
                if a == super::pack::NONE {
                    continue;
                }
                let bs = b.col(s);
                for (t, &bt) in own.iter().enumerate() {
                    if bt == super::pack::NONE {
                        continue;
                    }
                    let ct = c.col(t);
                    let mut acc = 0.0;
                    for &r in rows {
                        acc += bs[r as usize] * ct[r as usize];
                    }
                    g[(a as usize, bt as usize)] += acc;
                }
            }
        }
        g
    }
}

/// The pattern of Z'Z's lower triangle (row ≥ col) in compressed columns, with the count of
/// observations behind each entry and, per entry, the factors of its row and column and whether
/// it is on the diagonal.
struct ZtzPattern {
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
    counts: Vec<f64>,
    pair: Vec<(u8, u8)>,
    is_diag: Vec<bool>,
}

/// [`ZtzPattern`] of `n` observations with the level `codes[f][i]` of factor f, whose
/// coordinates start at `offsets[f]` among `q`.
#[allow(clippy::needless_range_loop)]
fn ztz_pattern(
    n: usize,
    q: usize,
    offsets: &[usize],
    codes: &[&[u32]],
    coord_factor: &[u8],
) -> ZtzPattern {
    let k = offsets.len();
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
    ZtzPattern {
        col_ptr,
        row_idx,
        counts,
        pair,
        is_diag,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 600 observations: 12 municipalities of 5 units, respondents nested in units seen in two
    /// periods (some once), intercept, a covariate, post, an arm column and 11 municipality
    /// dummies: packed and unpacked solves agree on every quantity of the criterion.
    #[test]
    fn packed_and_unpacked_solves_agree() {
        let n = 600;
        let muni = |i: usize| (i / 50) as u32;
        let unit = |i: usize| (i / 10) as u32;
        let resp = |i: usize| (i / 2) as u32 - u32::from(i % 7 == 3);
        let post = |i: usize| (i % 2) as f64;
        let arm = |i: usize| f64::from(u8::from(unit(i) % 2 == 0));
        let cov = |i: usize| ((i * 7919) % 97) as f64 / 13.0 - 3.0;
        let p = 4 + 11;
        let x = Mat::from_fn(n, p, |i, j| match j {
            0 => 1.0,
            1 => cov(i),
            2 => post(i),
            3 => post(i) * arm(i),
            j => f64::from(u8::from(muni(i) as usize == j - 3)),
        });
        let y: Vec<f64> = (0..n)
            .map(|i| {
                0.3 * cov(i)
                    + 0.2 * post(i)
                    + 0.1 * muni(i) as f64
                    + (unit(i) % 5) as f64 * 0.07
                    + ((i * 31) % 17) as f64 / 17.0
            })
            .collect();
        // Respondent codes renumbered from 0 in order of appearance.
        let mut map = std::collections::HashMap::new();
        let resp_codes: Vec<u32> = (0..n)
            .map(|i| {
                let next = map.len() as u32;
                *map.entry(resp(i)).or_insert(next)
            })
            .collect();
        let unit_post: Vec<u32> = (0..n).map(|i| unit(i) * 2 + post(i) as u32).collect();
        let groups = vec![
            ("resp".to_string(), resp_codes, map.len()),
            ("unit".to_string(), (0..n).map(unit).collect(), 60),
            ("unit:post".to_string(), unit_post, 120),
        ];
        let packed = Problem::with_packing(x.as_ref(), &y, &groups, true).unwrap();
        let plain = Problem::with_packing(x.as_ref(), &y, &groups, false).unwrap();
        assert!(packed.pack.packs() && !plain.pack.packs());
        // Intercept, covariate, post, arm × post, then the 11 dummies in two colours: the
        // respondents of observations 98–101 and 448–451 are seen in two municipalities, which
        // puts a unit of municipality 1 and one of 2 (8 and 9) in one block, so 2 and 9 cannot
        // share with 1 and 8 (those of 148–150 and 498–500 join 2 and 3, and 9 and 10, in
        // blocks without units of 1 or 8, so 3 and 10 can).
        assert_eq!(packed.pack.colours, 6);
        assert_eq!(packed.pack.colour[4..], [4, 5, 4, 4, 4, 4, 4, 4, 5, 4, 4]);
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        for theta in [[1.0, 1.0, 1.0], [0.4, 1.3, 0.2], [0.0, 0.7, 2.5]] {
            let (a, b) = (packed.pls(&theta).unwrap(), plain.pls(&theta).unwrap());
            assert!(rel(a.deviance(true, n, p), b.deviance(true, n, p)) < 1e-13);
            assert!(rel(a.pwrss, b.pwrss) < 1e-12, "{} {}", a.pwrss, b.pwrss);
            assert!(rel(a.ldrx2, b.ldrx2) < 1e-12);
            assert_eq!(a.ldl2.to_bits(), b.ldl2.to_bits());
            for (u, v) in a.beta.iter().zip(&b.beta) {
                assert!((u - v).abs() < 1e-11 * (1.0 + v.abs()), "{u} {v}");
            }
            for (u, v) in a.rx_inv.iter().zip(&b.rx_inv) {
                assert!((u - v).abs() < 1e-11 * (1.0 + v.abs()), "{u} {v}");
            }
        }
    }
}
