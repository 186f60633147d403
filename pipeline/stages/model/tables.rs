//! The rows of the model stage's output tables, collected from the fits, and their conversion
//! to Parquet frames. The schemas are documented in the module doc of `stages::model`; this
//! file only keeps the column names and types in one place. Non-finite numbers are written as
//! nulls.

use anyhow::Result;
use polars::prelude::DataFrame;
use serde::Serialize;

use super::{Attempt, ModelRun, Outcome, Verdict, POOLED};
use crate::stages::frame::FrameBuilder;

/// A finite number or None.
pub fn fin(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn ofin(x: Option<f64>) -> Option<f64> {
    x.and_then(fin)
}

/// One row of `results.parquet`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResultRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub primary: bool,
    pub term: String,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub statistic: Option<f64>,
    pub df: Option<f64>,
    pub p_value: Option<f64>,
    pub p_holm: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub supported: Option<bool>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub std_estimate: Option<f64>,
    pub n_obs: i64,
    pub n_groups: Option<i64>,
    /// The fit is singular (a random-effect variance at zero); None for OLS, tests, meta rows.
    pub singular: Option<bool>,
}

/// One row of `fit.parquet` (the default: a model not fitted, every statistic null).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FitRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub primary: bool,
    pub status: String,
    pub message: Option<String>,
    pub formula: String,
    pub method: Option<String>,
    pub vcov: Option<String>,
    pub same_fit_as: Option<String>,
    pub rows_in: i64,
    pub n_dropped: i64,
    pub n_obs: Option<i64>,
    pub n_groups: Option<i64>,
    pub n_clusters: Option<i64>,
    pub r_squared: Option<f64>,
    pub adj_r_squared: Option<f64>,
    pub sigma: Option<f64>,
    pub df_residual: Option<f64>,
    pub log_likelihood: Option<f64>,
    pub aic: Option<f64>,
    pub bic: Option<f64>,
    pub deviance: Option<f64>,
    pub converged: Option<bool>,
    pub singular: Option<bool>,
    pub iterations: Option<i64>,
    pub sd_outcome: Option<f64>,
    pub warnings: Option<String>,
}

/// One row of `variance_components.parquet`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VarCompRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub group: String,
    pub n_levels: Option<i64>,
    pub variance: Option<f64>,
    pub std_dev: Option<f64>,
    pub proportion: Option<f64>,
}

/// One row of `heterogeneity.parquet`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HetRow {
    pub hypothesis: String,
    pub model: String,
    pub term: String,
    pub method: String,
    pub test: String,
    pub k: i64,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub df: Option<f64>,
    pub s2w: Option<f64>,
    pub tau2: Option<f64>,
    pub se_tau2: Option<f64>,
    pub tau: Option<f64>,
    pub q: Option<f64>,
    pub q_df: Option<f64>,
    pub q_p: Option<f64>,
    pub i2: Option<f64>,
    pub h2: Option<f64>,
    pub pi_low: Option<f64>,
    pub pi_high: Option<f64>,
    pub pi_df: Option<f64>,
    pub converged: bool,
    pub iterations: Option<i64>,
}

impl HetRow {
    pub fn new(
        hypothesis: &str,
        model: &str,
        term: &str,
        method: &str,
        m: &crate::stats::meta::MetaFit,
    ) -> Self {
        HetRow {
            hypothesis: hypothesis.into(),
            model: model.into(),
            term: term.into(),
            method: method.into(),
            test: m.test.as_str().into(),
            k: m.k as i64,
            estimate: fin(m.estimate),
            std_error: fin(m.se),
            conf_low: fin(m.conf_low),
            conf_high: fin(m.conf_high),
            df: ofin(m.df),
            s2w: fin(m.s2w),
            tau2: fin(m.tau2),
            se_tau2: ofin(m.se_tau2),
            tau: fin(m.tau2.max(0.0).sqrt()),
            q: fin(m.q),
            q_df: fin(m.q_df),
            q_p: fin(m.q_p),
            i2: fin(m.i2),
            h2: fin(m.h2),
            pi_low: fin(m.pi_low),
            pi_high: fin(m.pi_high),
            pi_df: ofin(m.pi_df),
            converged: m.converged,
            iterations: m.iterations.map(|i| i as i64),
        }
    }
}

/// Everything the stage writes, in memory.
#[derive(Default)]
pub(super) struct Out {
    pub(super) results: Vec<ResultRow>,
    pub(super) fits: Vec<FitRow>,
    pub(super) var_comps: Vec<VarCompRow>,
    pub(super) het: Vec<HetRow>,
}

fn push_attempt(
    out: &mut Out,
    o: &Outcome,
    run: &ModelRun,
    scope: &str,
    a: &Attempt,
    v: Option<&Verdict>,
) {
    let h = o.plan.id;
    let n_dropped: usize = a.dropped.values().sum();
    match &a.result {
        Ok(f) => {
            out.fits.push(FitRow {
                hypothesis: h.into(),
                scope: scope.into(),
                model: run.spec.name.clone(),
                primary: run.primary,
                same_fit_as: run.same_fit_as.clone(),
                status: "fitted".into(),
                message: None,
                formula: f.formula.clone(),
                method: Some(f.method.clone()),
                vcov: Some(f.vcov.clone()),
                rows_in: a.rows_in as i64,
                n_dropped: n_dropped as i64,
                n_obs: Some(f.n_obs as i64),
                n_groups: f.n_groups.map(|g| g as i64),
                n_clusters: f.n_clusters.map(|g| g as i64),
                r_squared: f.r_squared,
                adj_r_squared: f.adj_r_squared,
                sigma: f.sigma,
                df_residual: f.df_residual,
                log_likelihood: f.log_likelihood,
                aic: f.aic,
                bic: f.bic,
                deviance: f.deviance,
                converged: f.converged,
                singular: f.singular,
                iterations: f.iterations.map(|i| i as i64),
                sd_outcome: f.sd_outcome,
                warnings: (!f.warnings.is_empty()).then(|| f.warnings.join("; ")),
            });
            let total: f64 = f.var_comps.iter().map(|v| v.variance).sum();
            for vc in &f.var_comps {
                out.var_comps.push(VarCompRow {
                    hypothesis: h.into(),
                    scope: scope.into(),
                    model: run.spec.name.clone(),
                    group: vc.group.clone(),
                    n_levels: vc.n_levels.map(|n| n as i64),
                    variance: fin(vc.variance),
                    std_dev: fin(vc.std_dev),
                    proportion: (total > 0.0).then(|| vc.variance / total).and_then(fin),
                });
            }
            for c in &f.coefficients {
                let primary = run.primary && c.term == o.plan.primary_term;
                let pooled_primary = primary && scope == POOLED;
                out.results.push(ResultRow {
                    hypothesis: h.into(),
                    scope: scope.into(),
                    model: run.spec.name.clone(),
                    primary,
                    term: c.term.clone(),
                    estimate: fin(c.estimate),
                    std_error: fin(c.std_error),
                    statistic: fin(c.statistic),
                    df: c.df.and_then(fin),
                    p_value: fin(c.p_value),
                    p_holm: v.filter(|_| pooled_primary).and_then(|v| v.p_holm),
                    p_adjusted: v.filter(|_| pooled_primary).and_then(|v| v.p_adjusted),
                    supported: v.filter(|_| pooled_primary).and_then(|v| v.supported),
                    conf_low: fin(c.conf_low),
                    conf_high: fin(c.conf_high),
                    std_estimate: c.std_estimate().and_then(fin),
                    n_obs: f.n_obs as i64,
                    n_groups: f.n_groups.map(|g| g as i64),
                    singular: f.singular,
                });
            }
        }
        Err(skip) => {
            out.fits.push(FitRow {
                hypothesis: h.into(),
                scope: scope.into(),
                model: run.spec.name.clone(),
                primary: run.primary,
                same_fit_as: run.same_fit_as.clone(),
                status: skip.code(),
                message: Some(skip.message()),
                formula: a.formula.clone(),
                rows_in: a.rows_in as i64,
                n_dropped: n_dropped as i64,
                ..FitRow::default()
            });
        }
    }
}

/// The rows of the four tables, in the order documented in the stage's module doc.
pub(super) fn collect(outcomes: &[Outcome], verdicts: &[Verdict]) -> Out {
    let mut out = Out::default();
    for (o, v) in outcomes.iter().zip(verdicts) {
        for run in &o.runs {
            push_attempt(&mut out, o, run, POOLED, &run.pooled, Some(v));
            for (m, a) in &run.municipalities {
                push_attempt(&mut out, o, run, m, a, None);
            }
            if run.primary {
                for mr in &o.meta {
                    let m = &mr.fit;
                    out.results.push(ResultRow {
                        hypothesis: o.plan.id.into(),
                        scope: format!("meta_{}", mr.method),
                        model: run.spec.name.clone(),
                        primary: true,
                        term: o.plan.primary_term.clone(),
                        estimate: fin(m.estimate),
                        std_error: fin(m.se),
                        statistic: fin(m.z),
                        df: ofin(m.df),
                        p_value: fin(m.p_value),
                        p_holm: None,
                        p_adjusted: None,
                        supported: None,
                        conf_low: fin(m.conf_low),
                        conf_high: fin(m.conf_high),
                        std_estimate: o.primary_std_factor.map(|f| m.estimate * f).and_then(fin),
                        n_obs: mr.n_obs as i64,
                        n_groups: Some(m.k as i64),
                        singular: None,
                    });
                    out.het.push(HetRow::new(
                        o.plan.id,
                        &run.spec.name,
                        &o.plan.primary_term,
                        &mr.method,
                        m,
                    ));
                }
            }
        }
    }
    out
}

/// The columns of one table, each computed from its rows (built by the stages' one frame
/// builder, `stages::frame::FrameBuilder`); numbers that are not finite become nulls.
struct Cols<'a, T> {
    rows: &'a [T],
    frame: FrameBuilder,
}

impl<'a, T> Cols<'a, T> {
    fn new(rows: &'a [T]) -> Self {
        Cols {
            rows,
            frame: FrameBuilder::new(),
        }
    }
    fn s<S: AsRef<str>>(&mut self, name: &str, f: impl Fn(&'a T) -> S) -> &mut Self {
        self.frame.str(name, self.rows.iter().map(f));
        self
    }
    fn os<S: AsRef<str>>(&mut self, name: &str, f: impl Fn(&'a T) -> Option<S>) -> &mut Self {
        self.frame.opt_str(name, self.rows.iter().map(f));
        self
    }
    fn f(&mut self, name: &str, f: impl Fn(&'a T) -> Option<f64>) -> &mut Self {
        self.frame.f64(name, self.rows.iter().map(|r| ofin(f(r))));
        self
    }
    fn i(&mut self, name: &str, f: impl Fn(&'a T) -> Option<i64>) -> &mut Self {
        self.frame.opt_i64(name, self.rows.iter().map(f));
        self
    }
    fn b(&mut self, name: &str, f: impl Fn(&'a T) -> Option<bool>) -> &mut Self {
        self.frame.opt_bool(name, self.rows.iter().map(f));
        self
    }
    fn finish(self) -> Result<DataFrame> {
        self.frame.finish()
    }
}

pub fn results_frame(rows: &[ResultRow]) -> Result<DataFrame> {
    let mut c = Cols::new(rows);
    c.s("hypothesis", |r| &r.hypothesis)
        .s("scope", |r| &r.scope)
        .s("model", |r| &r.model)
        .b("primary", |r| Some(r.primary))
        .s("term", |r| &r.term)
        .f("estimate", |r| r.estimate)
        .f("std_error", |r| r.std_error)
        .f("statistic", |r| r.statistic)
        .f("df", |r| r.df)
        .f("p_value", |r| r.p_value)
        .f("p_holm", |r| r.p_holm)
        .f("p_adjusted", |r| r.p_adjusted)
        .b("supported", |r| r.supported)
        .f("conf_low", |r| r.conf_low)
        .f("conf_high", |r| r.conf_high)
        .f("std_estimate", |r| r.std_estimate)
        .i("n_obs", |r| Some(r.n_obs))
        .i("n_groups", |r| r.n_groups)
        .b("singular", |r| r.singular);
    c.finish()
}

pub fn fit_frame(rows: &[FitRow]) -> Result<DataFrame> {
    let mut c = Cols::new(rows);
    c.s("hypothesis", |r| &r.hypothesis)
        .s("scope", |r| &r.scope)
        .s("model", |r| &r.model)
        .b("primary", |r| Some(r.primary))
        .s("status", |r| &r.status)
        .os("message", |r| r.message.as_deref())
        .s("formula", |r| &r.formula)
        .os("method", |r| r.method.as_deref())
        .os("vcov", |r| r.vcov.as_deref())
        .os("same_fit_as", |r| r.same_fit_as.as_deref())
        .i("rows_in", |r| Some(r.rows_in))
        .i("n_dropped", |r| Some(r.n_dropped))
        .i("n_obs", |r| r.n_obs)
        .i("n_groups", |r| r.n_groups)
        .i("n_clusters", |r| r.n_clusters)
        .f("r_squared", |r| r.r_squared)
        .f("adj_r_squared", |r| r.adj_r_squared)
        .f("sigma", |r| r.sigma)
        .f("df_residual", |r| r.df_residual)
        .f("log_likelihood", |r| r.log_likelihood)
        .f("aic", |r| r.aic)
        .f("bic", |r| r.bic)
        .f("deviance", |r| r.deviance)
        .b("converged", |r| r.converged)
        .b("singular", |r| r.singular)
        .i("iterations", |r| r.iterations)
        .f("sd_outcome", |r| r.sd_outcome)
        .os("warnings", |r| r.warnings.as_deref());
    c.finish()
}

pub fn var_comp_frame(rows: &[VarCompRow]) -> Result<DataFrame> {
    let mut c = Cols::new(rows);
    c.s("hypothesis", |r| &r.hypothesis)
        .s("scope", |r| &r.scope)
        .s("model", |r| &r.model)
        .s("group", |r| &r.group)
        .i("n_levels", |r| r.n_levels)
        .f("variance", |r| r.variance)
        .f("std_dev", |r| r.std_dev)
        .f("proportion", |r| r.proportion);
    c.finish()
}

pub fn het_frame(rows: &[HetRow]) -> Result<DataFrame> {
    let mut c = Cols::new(rows);
    c.s("hypothesis", |r| &r.hypothesis)
        .s("model", |r| &r.model)
        .s("term", |r| &r.term)
        .s("method", |r| &r.method)
        .s("test", |r| &r.test)
        .i("k", |r| Some(r.k))
        .f("estimate", |r| r.estimate)
        .f("std_error", |r| r.std_error)
        .f("conf_low", |r| r.conf_low)
        .f("conf_high", |r| r.conf_high)
        .f("df", |r| r.df)
        .f("s2w", |r| r.s2w)
        .f("tau2", |r| r.tau2)
        .f("se_tau2", |r| r.se_tau2)
        .f("tau", |r| r.tau)
        .f("q", |r| r.q)
        .f("q_df", |r| r.q_df)
        .f("q_p", |r| r.q_p)
        .f("i2", |r| r.i2)
        .f("h2", |r| r.h2)
        .f("pi_low", |r| r.pi_low)
        .f("pi_high", |r| r.pi_high)
        .f("pi_df", |r| r.pi_df)
        .b("converged", |r| Some(r.converged))
        .i("iterations", |r| r.iterations);
    c.finish()
}
