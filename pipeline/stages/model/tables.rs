//! The rows of the model stage's output tables and their conversion to Parquet frames. The
//! schemas are documented in the module doc of `stages::model`; this file only keeps the column
//! names and types in one place. Non-finite numbers are written as nulls.

use anyhow::Result;
use polars::prelude::{Column, DataFrame};
use serde::Serialize;

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
}

/// One row of `fit.parquet`.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    pub k: i64,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
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
            k: m.k as i64,
            estimate: fin(m.estimate),
            std_error: fin(m.se),
            conf_low: fin(m.conf_low),
            conf_high: fin(m.conf_high),
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
            converged: m.converged,
            iterations: m.iterations.map(|i| i as i64),
        }
    }
}

/// Column builder.
#[derive(Default)]
struct Cols(Vec<Column>);

impl Cols {
    fn s<T>(&mut self, name: &str, rows: &[T], f: impl Fn(&T) -> String) -> &mut Self {
        let v: Vec<String> = rows.iter().map(f).collect();
        self.0.push(Column::new(name.into(), v));
        self
    }
    fn os<T>(&mut self, name: &str, rows: &[T], f: impl Fn(&T) -> Option<String>) -> &mut Self {
        let v: Vec<Option<String>> = rows.iter().map(f).collect();
        self.0.push(Column::new(name.into(), v));
        self
    }
    fn f<T>(&mut self, name: &str, rows: &[T], f: impl Fn(&T) -> Option<f64>) -> &mut Self {
        let v: Vec<Option<f64>> = rows.iter().map(|r| ofin(f(r))).collect();
        self.0.push(Column::new(name.into(), v));
        self
    }
    fn i<T>(&mut self, name: &str, rows: &[T], f: impl Fn(&T) -> Option<i64>) -> &mut Self {
        let v: Vec<Option<i64>> = rows.iter().map(f).collect();
        self.0.push(Column::new(name.into(), v));
        self
    }
    fn b<T>(&mut self, name: &str, rows: &[T], f: impl Fn(&T) -> Option<bool>) -> &mut Self {
        let v: Vec<Option<bool>> = rows.iter().map(f).collect();
        self.0.push(Column::new(name.into(), v));
        self
    }
    fn finish(self, height: usize) -> Result<DataFrame> {
        Ok(DataFrame::new(height, self.0)?)
    }
}

pub fn results_frame(rows: &[ResultRow]) -> Result<DataFrame> {
    let mut c = Cols::default();
    c.s("hypothesis", rows, |r| r.hypothesis.clone())
        .s("scope", rows, |r| r.scope.clone())
        .s("model", rows, |r| r.model.clone())
        .b("primary", rows, |r| Some(r.primary))
        .s("term", rows, |r| r.term.clone())
        .f("estimate", rows, |r| r.estimate)
        .f("std_error", rows, |r| r.std_error)
        .f("statistic", rows, |r| r.statistic)
        .f("df", rows, |r| r.df)
        .f("p_value", rows, |r| r.p_value)
        .f("p_holm", rows, |r| r.p_holm)
        .f("p_adjusted", rows, |r| r.p_adjusted)
        .b("supported", rows, |r| r.supported)
        .f("conf_low", rows, |r| r.conf_low)
        .f("conf_high", rows, |r| r.conf_high)
        .f("std_estimate", rows, |r| r.std_estimate)
        .i("n_obs", rows, |r| Some(r.n_obs))
        .i("n_groups", rows, |r| r.n_groups);
    c.finish(rows.len())
}

pub fn fit_frame(rows: &[FitRow]) -> Result<DataFrame> {
    let mut c = Cols::default();
    c.s("hypothesis", rows, |r| r.hypothesis.clone())
        .s("scope", rows, |r| r.scope.clone())
        .s("model", rows, |r| r.model.clone())
        .b("primary", rows, |r| Some(r.primary))
        .s("status", rows, |r| r.status.clone())
        .os("message", rows, |r| r.message.clone())
        .s("formula", rows, |r| r.formula.clone())
        .os("method", rows, |r| r.method.clone())
        .os("vcov", rows, |r| r.vcov.clone())
        .i("rows_in", rows, |r| Some(r.rows_in))
        .i("n_dropped", rows, |r| Some(r.n_dropped))
        .i("n_obs", rows, |r| r.n_obs)
        .i("n_groups", rows, |r| r.n_groups)
        .i("n_clusters", rows, |r| r.n_clusters)
        .f("r_squared", rows, |r| r.r_squared)
        .f("adj_r_squared", rows, |r| r.adj_r_squared)
        .f("sigma", rows, |r| r.sigma)
        .f("df_residual", rows, |r| r.df_residual)
        .f("log_likelihood", rows, |r| r.log_likelihood)
        .f("aic", rows, |r| r.aic)
        .f("bic", rows, |r| r.bic)
        .f("deviance", rows, |r| r.deviance)
        .b("converged", rows, |r| r.converged)
        .b("singular", rows, |r| r.singular)
        .i("iterations", rows, |r| r.iterations)
        .f("sd_outcome", rows, |r| r.sd_outcome)
        .os("warnings", rows, |r| r.warnings.clone());
    c.finish(rows.len())
}

pub fn var_comp_frame(rows: &[VarCompRow]) -> Result<DataFrame> {
    let mut c = Cols::default();
    c.s("hypothesis", rows, |r| r.hypothesis.clone())
        .s("scope", rows, |r| r.scope.clone())
        .s("model", rows, |r| r.model.clone())
        .s("group", rows, |r| r.group.clone())
        .i("n_levels", rows, |r| r.n_levels)
        .f("variance", rows, |r| r.variance)
        .f("std_dev", rows, |r| r.std_dev)
        .f("proportion", rows, |r| r.proportion);
    c.finish(rows.len())
}

pub fn het_frame(rows: &[HetRow]) -> Result<DataFrame> {
    let mut c = Cols::default();
    c.s("hypothesis", rows, |r| r.hypothesis.clone())
        .s("model", rows, |r| r.model.clone())
        .s("term", rows, |r| r.term.clone())
        .s("method", rows, |r| r.method.clone())
        .i("k", rows, |r| Some(r.k))
        .f("estimate", rows, |r| r.estimate)
        .f("std_error", rows, |r| r.std_error)
        .f("conf_low", rows, |r| r.conf_low)
        .f("conf_high", rows, |r| r.conf_high)
        .f("tau2", rows, |r| r.tau2)
        .f("se_tau2", rows, |r| r.se_tau2)
        .f("tau", rows, |r| r.tau)
        .f("q", rows, |r| r.q)
        .f("q_df", rows, |r| r.q_df)
        .f("q_p", rows, |r| r.q_p)
        .f("i2", rows, |r| r.i2)
        .f("h2", rows, |r| r.h2)
        .f("pi_low", rows, |r| r.pi_low)
        .f("pi_high", rows, |r| r.pi_high)
        .b("converged", rows, |r| Some(r.converged))
        .i("iterations", rows, |r| r.iterations);
    c.finish(rows.len())
}
