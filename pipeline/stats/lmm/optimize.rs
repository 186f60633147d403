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
pub(super) fn newton_polish(
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
