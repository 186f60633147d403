//! The factored design and the iterative refinement of the augmented system [I A; A' 0] (Björck's
//! method), for the coefficients and for the columns of (A'A)⁻¹.

#[cfg(target_arch = "x86_64")]
use super::kernels::{a_mul_fma, a_mul_lanes_fma, at_mul_lanes_fma, has_fma, qt_mul_fma};
use super::kernels::{
    a_mul_kernel, a_mul_lanes_kernel, at_mul_lanes_kernel, qt_mul_kernel, Acc, Column, Lanes,
    LANES, QT_BATCH,
};

/// The factored, scaled, non-aliased design.
pub(super) struct Factor<'q> {
    pub(super) n: usize,
    pub(super) r: usize,
    /// Scaled kept columns (n × r), in pivot order.
    pub(super) a: Vec<Column>,
    /// Thin Q (n × r) columns.
    pub(super) q: Vec<&'q [f64]>,
    /// Upper-triangular R (r × r), row-major.
    pub(super) rr: Vec<Vec<f64>>,
}

impl Factor<'_> {
    pub(super) fn a_mul(&self, z: &[f64], out_acc: &mut [Acc]) {
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
    pub(super) fn solve_r(&self, b: &[f64]) -> Vec<f64> {
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
    pub(super) fn solve_rt(&self, b: &[f64]) -> Vec<f64> {
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
    pub(super) fn qt_mul_many(&self, vs: &[&[f64]]) -> Vec<Vec<f64>> {
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
    pub(super) fn refine(
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
/// `available_parallelism` threads (a fit with few columns stays on the calling thread). The
/// columns are independent and each one's arithmetic is the same whichever thread does it (see
/// the test below). What the threads buy: on a design like the national H1 pooled fit's
/// (200 000 rows, an intercept, a covariate and 98 dummies), the inverse's columns take 18.4 s
/// on two threads against 26.1–27.6 s on one (debug profile, loaded two-core machine).
pub(super) fn inverse_columns(fac: &Factor) -> Vec<Vec<f64>> {
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

#[cfg(test)]
mod tests {
    use super::super::kernels::tests::{
        a_mul_plain, at_mul_plain, bits, columns, mixed_columns, noise, qt_mul_plain,
    };
    use super::*;
    use faer::Mat;

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
        let mut acc: Vec<Acc> = y.iter().map(|&v| Acc::of(v)).collect();
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
}
