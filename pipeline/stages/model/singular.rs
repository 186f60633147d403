//! Singular per-municipality fits and the meta-analysis without them.
//!
//! A mixed model whose random-effect variance sits on the boundary (lme4's `isSingular`) gives
//! a standard error that ignores that level of variation, and its Satterthwaite df can be far
//! larger than its neighbours'. The meta-analysis of a hypothesis's primary estimates includes
//! every municipality (as the analysis plan prescribes); when some of those fits are singular,
//! it is repeated without them (with at least two left) and both are reported: results.json's
//! `meta_without_singular`, the stage's warnings and the report's forest-plot notes.

use serde::Serialize;

use super::tables::fin;
use super::Outcome;
use crate::config::{MetaMethod, ModelSection};
use crate::stats::meta::{rma_with, TauMethod};

/// The meta-analysis of a hypothesis's primary estimates without the singular fits.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetaWithoutSingular {
    pub hypothesis: String,
    pub model: String,
    pub term: String,
    pub method: String,
    /// Municipalities whose primary fit was singular (left out here).
    pub singular: Vec<String>,
    pub k: i64,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub p_value: Option<f64>,
    pub tau2: Option<f64>,
}

/// The municipalities whose primary fit is singular, and the meta-analyses without them (none
/// when no fit is singular or fewer than two are left).
pub(super) fn meta_without_singular(
    o: &Outcome,
    cfg: &ModelSection,
    level: f64,
) -> (Vec<String>, Vec<MetaWithoutSingular>) {
    let Some(run) = o.primary_run() else {
        return (vec![], vec![]);
    };
    let mut singular = Vec::new();
    let (mut yi, mut vi) = (Vec::new(), Vec::new());
    for (m, a) in &run.municipalities {
        let Ok(f) = &a.result else { continue };
        let Some(c) = f.coef(&o.plan.primary_term) else {
            continue;
        };
        let v = c.std_error * c.std_error;
        if !(c.estimate.is_finite() && v.is_finite() && v > 0.0) {
            continue;
        }
        if f.singular == Some(true) {
            singular.push(m.clone());
        } else {
            yi.push(c.estimate);
            vi.push(v);
        }
    }
    if singular.is_empty() || yi.len() < 2 {
        return (singular, vec![]);
    }
    let mut out = Vec::new();
    for method in &cfg.meta.methods {
        let tm = match method {
            MetaMethod::Reml => TauMethod::Reml,
            MetaMethod::Dl => TauMethod::Dl,
            MetaMethod::Fe => TauMethod::Fixed,
        };
        // The same test as the meta-analysis over all municipalities (`model.meta.test`).
        if let Ok(fit) = rma_with(&yi, &vi, tm, level, cfg.meta.test.into()) {
            out.push(MetaWithoutSingular {
                hypothesis: o.plan.id.into(),
                model: run.spec.name.clone(),
                term: o.plan.primary_term.clone(),
                method: method.as_str().to_string(),
                singular: singular.clone(),
                k: fit.k as i64,
                estimate: fin(fit.estimate),
                std_error: fin(fit.se),
                conf_low: fin(fit.conf_low),
                conf_high: fin(fit.conf_high),
                p_value: fin(fit.p_value),
                tau2: fin(fit.tau2),
            });
        }
    }
    (singular, out)
}
