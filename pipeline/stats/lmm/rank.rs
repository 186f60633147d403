//! Which fixed-effect columns are kept: those not linearly dependent on earlier ones.

use faer::{Mat, MatRef};

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
pub(super) fn independent_columns(x: MatRef<'_, f64>, tol: f64) -> Vec<usize> {
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
pub(super) fn nonzero_rows(x: MatRef<'_, f64>) -> Vec<Option<Vec<u32>>> {
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
pub(super) fn cross_products(x: MatRef<'_, f64>, nz: &[Option<Vec<u32>>]) -> Mat<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
