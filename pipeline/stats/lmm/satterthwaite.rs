//! Satterthwaite degrees of freedom as lmerTest computes them: numDeriv's Richardson Hessian of
//! the deviance in (θ, σ) and Jacobian of Var(β̂).

use std::collections::HashMap;

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd;
use faer::{Mat, Par};

use super::pls::{Pls, Problem};
use crate::types::StatsError;

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

/// `f` at x + h e_i and at x − h e_i.
fn central<T>(f: &mut dyn FnMut(&[f64]) -> T, x: &[f64], i: usize, h: f64) -> (T, T) {
    let mut xp = x.to_vec();
    xp[i] += h;
    let mut xm = x.to_vec();
    xm[i] -= h;
    (f(&xp), f(&xm))
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
            let (f1, f2) = central(f, x, i, h[i]);
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
                let (f1, f2) = central(f, x, i, h[i]);
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

/// Eigen-decomposition of a small symmetric matrix (row-major, n × n) by faer, sequential:
/// (values in increasing order, vectors as the columns of a row-major matrix).
fn sym_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>), StatsError> {
    let m = Mat::from_fn(n, n, |i, j| a[i * n + j]);
    let mut s = Diag::<f64>::zeros(n);
    let mut u = Mat::<f64>::zeros(n, n);
    let mut buf = MemBuffer::new(evd::self_adjoint_evd_scratch::<f64>(
        n,
        evd::ComputeEigenvectors::Yes,
        Par::Seq,
        Default::default(),
    ));
    evd::self_adjoint_evd(
        m.as_ref(),
        s.as_mut(),
        Some(u.as_mut()),
        Par::Seq,
        MemStack::new(&mut buf),
        Default::default(),
    )
    .map_err(|e| StatsError::Numerical(format!("eigen-decomposition of the Hessian: {e:?}")))?;
    let values = s.column_vector().iter().copied().collect();
    let vectors = (0..n * n).map(|k| u[(k / n, k % n)]).collect();
    Ok((values, vectors))
}

/// Satterthwaite df per coefficient, as lmerTest's `summary()`; also returns lmerTest's warnings.
pub(super) fn satterthwaite(
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
    let (evals, evecs) = sym_eigen(&hess, m)?;
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
        let (vals, _) = sym_eigen(&a, 2).unwrap();
        let mut v = vals.clone();
        v.sort_by(f64::total_cmp);
        assert!((v[0] - 1.0).abs() < 1e-12 && (v[1] - 3.0).abs() < 1e-12);
    }
}
