//! The kernels of the refinement: compensated (double-double) accumulators and the passes over
//! the scaled design and over Q that every refinement step makes.

// ----- double-double helpers (error-free transformations) -----

#[inline(always)]
pub(super) fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

#[inline(always)]
pub(super) fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// Compensated accumulator (sum with a running error term; ~twice working precision).
#[derive(Clone, Copy, Default)]
pub(super) struct Acc {
    s: f64,
    c: f64,
}

impl Acc {
    /// An accumulator holding `x` (a zeroed one after `add(x)`).
    #[inline(always)]
    pub(super) fn of(x: f64) -> Acc {
        let mut a = Acc::default();
        a.add(x);
        a
    }
    #[inline(always)]
    pub(super) fn add(&mut self, x: f64) {
        let (s, e) = two_sum(self.s, x);
        self.s = s;
        self.c += e;
    }
    #[inline(always)]
    pub(super) fn add_prod(&mut self, a: f64, b: f64) {
        let (p, pe) = two_prod(a, b);
        self.add(p);
        self.c += pe;
    }
    pub(super) fn value(self) -> f64 {
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
pub(super) const ROW_BLOCK: usize = 2048;

/// One scaled design column of the factored design.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Column {
    Dense(Vec<f64>),
    /// Row indices (increasing) and values of the non-zero entries.
    Sparse {
        idx: Vec<u32>,
        val: Vec<f64>,
    },
}

impl Column {
    /// Sparse when at most half of the n entries are non-zero (and row numbers fit in u32).
    pub(super) fn new(values: impl Iterator<Item = f64> + Clone, n: usize) -> Column {
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
pub(super) trait AddProd<Z> {
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
pub(super) fn add_columns_block<T: AddProd<Z>, Z>(
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
pub(super) fn a_mul_kernel(a: &[Column], z: &[f64], out: &mut [Acc]) {
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
pub(super) const LANES: usize = QT_BATCH;
/// Rows per block in [`at_mul_lanes_kernel`].
pub(super) const AT_ROWS: usize = 512;

/// [`LANES`] compensated accumulators side by side, one per system of a batch. Lane `b` receives
/// exactly the operations a lone [`Acc`] would (`add`: two_sum into s, error into c; `add_prod`:
/// two_prod, then `add` of the product, then its error into c), so its value has the same bits;
/// the lanes only let the processor do eight systems' operations in two vector instructions.
#[derive(Clone, Copy, Default)]
pub(super) struct Lanes {
    s: [f64; LANES],
    c: [f64; LANES],
}

impl Lanes {
    /// Lanes holding `x` (zeroed ones after `add(x)`).
    #[inline(always)]
    pub(super) fn of(x: &[f64; LANES]) -> Lanes {
        let mut l = Lanes::default();
        l.add(x);
        l
    }
    #[inline(always)]
    pub(super) fn add(&mut self, x: &[f64; LANES]) {
        for b in 0..LANES {
            let (s, e) = two_sum(self.s[b], x[b]);
            self.s[b] = s;
            self.c[b] += e;
        }
    }
    /// Lane b: `add_prod(a, z[b])` (multiplication and fused multiply-add are commutative, so
    /// the order of the two factors does not matter).
    #[inline(always)]
    pub(super) fn add_prod(&mut self, a: f64, z: &[f64; LANES]) {
        for b in 0..LANES {
            let (p, pe) = two_prod(a, z[b]);
            let (s, e) = two_sum(self.s[b], p);
            self.s[b] = s;
            self.c[b] += e;
            self.c[b] += pe;
        }
    }
    #[inline(always)]
    pub(super) fn value(&self, b: usize) -> f64 {
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
pub(super) fn a_mul_lanes_kernel<I, D>(
    a: &[Column],
    z: &[[f64; LANES]],
    n: usize,
    init: &mut I,
    done: &mut D,
) where
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
pub(super) fn at_mul_lanes_kernel<R>(
    a: &[Column],
    c: &[[f64; LANES]],
    n: usize,
    res: &R,
) -> Vec<Lanes>
where
    R: Fn(usize) -> [f64; LANES],
{
    let mut acc: Vec<Lanes> = c.iter().map(Lanes::of).collect();
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
pub(super) const QT_BATCH: usize = 8;
/// Rows per block in [`qt_mul_kernel`].
pub(super) const QT_ROWS: usize = 512;

/// `out[b][k] = Σ_i q[k][i] f[b][i]` for up to [`QT_BATCH`] vectors `f[b]`, each sum a plain
/// f64 sum with i in order, starting where `Iterator::sum` starts: the bits of
/// `q[k].iter().zip(f[b]).map(|(a, b)| a * b).sum()`. One pass over Q serves the whole batch
/// (Q is n × r and read once per refinement step of every column otherwise), and the batch's
/// sums proceed side by side in vector registers, four columns of Q at a time.
#[inline(always)]
pub(super) fn qt_mul_kernel(q: &[&[f64]], f: &[&[f64]]) -> Vec<Vec<f64>> {
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
pub(super) fn a_mul_fma(a: &[Column], z: &[f64], out: &mut [Acc]) {
    a_mul_kernel(a, z, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
pub(super) fn a_mul_lanes_fma<I, D>(
    a: &[Column],
    z: &[[f64; LANES]],
    n: usize,
    init: &mut I,
    done: &mut D,
) where
    I: FnMut(usize) -> Lanes,
    D: FnMut(usize, &Lanes),
{
    a_mul_lanes_kernel(a, z, n, init, done)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
pub(super) fn at_mul_lanes_fma<R>(a: &[Column], c: &[[f64; LANES]], n: usize, res: &R) -> Vec<Lanes>
where
    R: Fn(usize) -> [f64; LANES],
{
    at_mul_lanes_kernel(a, c, n, res)
}

/// The `fma` feature brings 256-bit vectors; Rust never fuses `a * b + c` on its own, so the
/// sums are those of the generic kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
pub(super) fn qt_mul_fma(q: &[&[f64]], f: &[&[f64]]) -> Vec<Vec<f64>> {
    qt_mul_kernel(q, f)
}

#[cfg(target_arch = "x86_64")]
pub(super) fn has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers spanning many binades (so that rounding matters).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
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
    pub(crate) fn a_mul_plain(a: &[Vec<f64>], z: &[f64], out: &mut [Acc]) {
        for (j, col) in a.iter().enumerate() {
            for i in 0..out.len() {
                out[i].add_prod(col[i], z[j]);
            }
        }
    }

    pub(crate) fn at_mul_plain(a: &[Vec<f64>], c: &[f64], res: &[f64]) -> Vec<f64> {
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

    pub(crate) fn qt_mul_plain(q: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
        q.iter()
            .map(|qc| qc.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// Runs a lane a_mul kernel, handing each row's lanes to the callback.
    type LaneAMul<'a> = &'a dyn Fn(&mut dyn FnMut(usize, &Lanes));

    pub(crate) fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Columns of noise, every third one a dummy-like column (mostly zeros, some exact powers
    /// of two as scaled dummies are, some noise), so that both column kinds are exercised.
    pub(crate) fn mixed_columns(n: usize, r: usize, seed: u64) -> Vec<Vec<f64>> {
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

    pub(crate) fn columns(a: &[Vec<f64>]) -> Vec<Column> {
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
            let start: Vec<Acc> = init.iter().map(|&v| Acc::of(v)).collect();
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
                    let mut want: Vec<Acc> = rk[k].iter().map(|&v| Acc::of(v)).collect();
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
}
