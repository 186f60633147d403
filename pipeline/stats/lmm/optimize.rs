//! The search for θ: Nelder–Mead, then Newton steps on extrapolated finite differences.

use faer::Mat;

use super::pls::{chol_solve, cholesky};

/// Nelder–Mead (standard coefficients). Returns the best point and whether it converged.
pub(super) fn nelder_mead(
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
///
/// The boundary check of lme4 (`lmerControl(boundary.tol = 1e-5)`), made at every iteration:
/// the θ_k below `boundary_tol` in absolute value are set to zero together, and kept there if
/// the deviance is not higher. A θ_k at zero stays there and leaves the search (the deviance is
/// even in θ_k, so its gradient at zero is zero). Without the check a variance at the boundary
/// is approached only linearly (the deviance is flat in θ_k there) and takes some fifty Newton
/// iterations to reach the tolerance, or never does.
pub(super) fn newton_polish(
    f: &mut dyn FnMut(&[f64]) -> f64,
    theta: &mut [f64],
    tol: f64,
    max_iter: usize,
    boundary_tol: f64,
) -> Result<bool, String> {
    let mut f0 = f(theta);
    if !f0.is_finite() {
        return Err("deviance not finite at the Nelder–Mead optimum".into());
    }
    let mut at_zero = vec![false; theta.len()];
    let mut prev_rel_step = f64::INFINITY;
    for _ in 0..max_iter {
        f0 = to_boundary(f, theta, f0, &mut at_zero, boundary_tol);
        // The coordinates still searched.
        let free: Vec<usize> = (0..theta.len()).filter(|&i| !at_zero[i]).collect();
        let k = free.len();
        if k == 0 {
            return Ok(true);
        }
        let h: Vec<f64> = free
            .iter()
            .map(|&i| 1e-3 * theta[i].abs().max(0.05))
            .collect();
        let mut g = vec![0.0; k];
        let mut hess = vec![0.0; k * k];
        let at = |t: &[f64], i: usize, d: f64| -> Vec<f64> {
            let mut v = t.to_vec();
            v[free[i]] += d;
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
                let (a, b) = (free[i], free[j]);
                let mut t = theta.to_vec();
                t[a] += h[i];
                t[b] += h[j];
                let fpp = f(&t);
                t[b] -= 2.0 * h[j];
                let fpm = f(&t);
                t[a] -= 2.0 * h[i];
                let fmm = f(&t);
                t[b] += 2.0 * h[j];
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
            if let Some(l) = cholesky(Mat::from_fn(k, k, |i, j| hd[i * k + j]).as_ref()) {
                let s = chol_solve(l.as_ref(), &g);
                break s.iter().map(|v| -v).collect::<Vec<f64>>();
            }
            lambda = if lambda == 0.0 { 1e-6 } else { lambda * 10.0 };
            if lambda > 1e6 {
                return Ok(false);
            }
        };
        let rel_step = step
            .iter()
            .zip(&free)
            .map(|(s, &i)| s.abs() / theta[i].abs().max(1e-3))
            .fold(0.0, f64::max);
        if rel_step <= 1e-4 {
            // Close to the optimum, differences of the deviance drown in rounding while the
            // extrapolated gradient does not: take the Newton step as it is.
            for (s, &i) in step.iter().zip(&free) {
                theta[i] += s;
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
            for (s, &i) in step.iter().zip(&free) {
                new_theta[i] = theta[i] + t * s;
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

/// lme4's boundary check: the θ_k not yet at zero whose size is below `tol` are set to zero
/// together, and kept there (marked in `at_zero`) when the deviance is not higher than `f0`.
/// Returns the deviance at the θ kept.
fn to_boundary(
    f: &mut dyn FnMut(&[f64]) -> f64,
    theta: &mut [f64],
    f0: f64,
    at_zero: &mut [bool],
    tol: f64,
) -> f64 {
    let near: Vec<usize> = (0..theta.len())
        .filter(|&i| !at_zero[i] && theta[i].abs() < tol)
        .collect();
    if near.is_empty() {
        return f0;
    }
    let mut t = theta.to_vec();
    for &i in &near {
        t[i] = 0.0;
    }
    let ft = f(&t);
    if ft <= f0 {
        theta.copy_from_slice(&t);
        for &i in &near {
            at_zero[i] = true;
        }
        ft
    } else {
        f0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deviance-like criterion (large, with rounding-like noise, even in θ_1) whose optimum is
    /// θ_1 = 0 with a nearly flat approach to it, polished from where Nelder–Mead leaves such a
    /// fit (θ_1 of the order of 1e-7, as in the national study's singular fits).
    fn polish_quartic(boundary_tol: f64) -> (Vec<f64>, Result<bool, String>, usize) {
        let mut evals = 0;
        let mut f = |t: &[f64]| {
            evals += 1;
            3e5 + (t[0] - 1.1).powi(2) + 1e-3 * t[1] * t[1] + t[1].powi(4) + noise(t)
        };
        let mut theta = vec![1.0999, 3.8e-7];
        let res = newton_polish(&mut f, &mut theta, 1e-10, 60, boundary_tol);
        (theta, res, evals)
    }

    /// Rounding-like noise of the criterion: ±1e-10, a fixed function of θ's bits.
    fn noise(t: &[f64]) -> f64 {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for v in t {
            h = (h ^ v.to_bits()).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 31;
        }
        ((h >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2e-10
    }

    #[test]
    fn a_variance_at_the_boundary_is_set_to_zero_at_once() {
        let (theta, res, evals) = polish_quartic(1e-5);
        assert_eq!(res, Ok(true));
        assert_eq!(theta[1], 0.0);
        // Within what the noise allows (its square root, 1e-5).
        assert!((theta[0] - 1.1).abs() < 1e-6, "{theta:?}");
        assert!(evals < 60, "{evals} evaluations");
        // Without the check the polish wanders in the noise and gives up.
        let (theta, res, slow) = polish_quartic(0.0);
        assert_eq!(res, Ok(false));
        assert!(
            theta[1] != 0.0 && slow > 10 * evals,
            "{slow} against {evals}"
        );
    }

    #[test]
    fn a_small_interior_optimum_is_not_set_to_zero() {
        // Optimum at θ_1 = 8e-6, below the boundary tolerance: zero has the higher criterion.
        let mut f = |t: &[f64]| (t[0] - 1.0).powi(2) + 1e12 * (t[1] * t[1] - 6.4e-11).powi(2);
        let mut theta = vec![1.0001, 8.1e-6];
        let res = newton_polish(&mut f, &mut theta, 1e-10, 60, 1e-5);
        assert_eq!(res, Ok(true));
        assert!((theta[1] - 8e-6).abs() < 1e-12, "{theta:?}");
    }
}
