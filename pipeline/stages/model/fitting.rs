//! One model on one set of rows: the specification (response, numeric terms, categorical fixed
//! effects, random intercepts, standard errors), the complete-case rows, the formula text, the
//! fit through the statistics engine, and the standardized effects.
//!
//! Categorical fixed effects (`C(municipality)`, `C(wave)`) enter the formula only when the rows
//! have at least two of their levels, so a municipality's own model has no municipality term
//! and a one-wave subset no wave term. Rows missing any column the model uses are dropped first
//! and counted by the first such column (`missing_<column>`).
//!
//! # Standardized effects
//!
//! `std_estimate = estimate × s_x / s_y` for a numeric predictor, `estimate / s_y` for a 0/1
//! column (a dummy of a factor, `post`, `post:intervention`: the effect of the contrast in SD
//! units of the outcome), none for the intercept. `s_y` is the sample SD (n − 1) of the outcome
//! and `s_x` that of the predictor's model-matrix column, both over the rows the model used (for
//! mixed models: over observations, the total SD, not a variance component). For the paired
//! t-test it is Cohen's d_z (mean difference / SD of the differences).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::frame::Table;
use crate::memo::Memo;
use crate::stats::design::Design;
use crate::stats::fit::{coefficient_rows, fit_parsed, Estimator, Model, ReportCoefficient};
use crate::stats::formula;
use crate::stats::htest::{cohens_dz, t_test_paired};
use crate::stats::lmm::LmmFit;
use crate::stats::ols::{OlsFit, VcovType};

/// How a model is estimated.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// OLS with the given standard errors; `cluster` names the cluster column for CR1.
    Ols {
        vcov: VcovType,
        cluster: Option<String>,
    },
    /// Random-intercept linear mixed model, REML or ML, Satterthwaite t-tests; with `cr2_by`,
    /// also CR2 cluster-robust inference by that column, kept in `Fitted::cr2` (the stage
    /// reports it as the model `<name>_cr2`).
    Lmm { reml: bool, cr2_by: Option<String> },
    /// Paired t-test of `response` between `post` = 1 and `post` = 0 within (unit, respondent).
    PairedT,
}

/// A model: `response ~ terms + C(factors) + (1 | random)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Name in the output tables (`case_rcap`, `between_within`, `diff_in_diff`, ...).
    pub name: String,
    pub kind: Kind,
    pub response: String,
    /// Numeric terms as R writes them (`case_rcap`, `post`, `post:intervention`).
    pub terms: Vec<String>,
    /// Columns entered as categorical fixed effects, `C(column)`.
    pub factors: Vec<String>,
    /// Grouping columns of random intercepts, `(1 | column)`.
    pub random: Vec<String>,
    /// The column whose distinct values count as the model's groups (`n_groups`) and clusters
    /// (for `min_clusters`): the CR1 cluster, or the unit.
    pub group: Option<String>,
    /// Columns that must take at least two values on the rows for the model to be fitted (e.g.
    /// `intervention` for a difference in differences).
    pub must_vary: Vec<String>,
}

impl ModelSpec {
    /// The variables named by the numeric terms (`post:intervention` → post, intervention).
    fn term_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.terms {
            for v in t.split(':') {
                if !out.iter().any(|o| o == v) {
                    out.push(v.to_string());
                }
            }
        }
        out
    }

    /// Every column the model needs, in the order missing values are attributed to them.
    pub fn columns(&self) -> Vec<String> {
        let mut out = vec![self.response.clone()];
        let push = |out: &mut Vec<String>, c: &String| {
            if !out.contains(c) {
                out.push(c.clone());
            }
        };
        for c in self.term_columns() {
            push(&mut out, &c);
        }
        for c in &self.factors {
            push(&mut out, c);
        }
        // A random intercept's grouping may be an interaction (`unit_id:post`): its columns.
        for c in self.random.iter().flat_map(|g| g.split(':')) {
            push(&mut out, &c.to_string());
        }
        if let Kind::Ols {
            cluster: Some(c), ..
        }
        | Kind::Lmm {
            cr2_by: Some(c), ..
        } = &self.kind
        {
            push(&mut out, c);
        }
        if let Some(g) = &self.group {
            push(&mut out, g);
        }
        if self.kind == Kind::PairedT {
            for c in ["post", "unit_id", "respondent_id"] {
                push(&mut out, &c.to_string());
            }
        }
        out
    }

    /// The same model without the categorical fixed effect `factor` (a municipality's own model).
    pub fn without_factor(&self, factor: &str) -> ModelSpec {
        let mut s = self.clone();
        s.factors.retain(|f| f != factor);
        s
    }

    /// The name of the CR2 twin of a mixed model that also has CR2 inference.
    pub fn cr2_twin(&self) -> Option<String> {
        match &self.kind {
            Kind::Lmm {
                cr2_by: Some(_), ..
            } => Some(format!("{}_cr2", self.name)),
            _ => None,
        }
    }

    /// Whether `term` is one of the model's numeric terms.
    pub fn has_term(&self, term: &str) -> bool {
        self.terms.iter().any(|t| t == term)
    }
}

/// One coefficient of a fitted model: the engine's coefficient row (read through it: `c.term`,
/// `c.estimate`, ...) and the standardization factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coef {
    /// Term, estimate, SE, statistic, df (None for z-based inference), p, interval.
    pub row: ReportCoefficient,
    /// Multiply the estimate by this to get the standardized effect (None: not defined).
    pub std_factor: Option<f64>,
}

impl std::ops::Deref for Coef {
    type Target = ReportCoefficient;

    fn deref(&self) -> &ReportCoefficient {
        &self.row
    }
}

impl Coef {
    pub fn std_estimate(&self) -> Option<f64> {
        self.std_factor.map(|f| self.estimate * f)
    }
}

/// One variance component of a mixed model (or the residual).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarComp {
    pub group: String,
    pub variance: f64,
    pub std_dev: f64,
    /// Levels of the grouping factor (None for the residual).
    pub n_levels: Option<usize>,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fitted {
    pub formula: String,
    /// `ols`, `reml`, `ml` or `paired_t`.
    pub method: String,
    /// Standard errors: `classical`, `hc0`..`hc3`, `cr1`, `cr2`, `model` (mixed models),
    /// `paired`.
    pub vcov: String,
    pub n_obs: usize,
    pub n_groups: Option<usize>,
    pub n_clusters: Option<usize>,
    pub coefficients: Vec<Coef>,
    pub aliased: Vec<String>,
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
    pub iterations: Option<usize>,
    /// Sample SD of the outcome over the rows used.
    pub sd_outcome: Option<f64>,
    pub var_comps: Vec<VarComp>,
    pub warnings: Vec<String>,
    /// A mixed model that also has CR2 inference: those rows, and the clusters (after merging
    /// those a random-effect level spans).
    #[serde(default)]
    pub cr2: Vec<Coef>,
    #[serde(default)]
    pub cr2_clusters: Option<usize>,
    /// Why the CR2 rows could not be computed (the fit itself stands).
    #[serde(default)]
    pub cr2_failed: Option<String>,
}

impl Fitted {
    pub fn coef(&self, term: &str) -> Option<&Coef> {
        self.coefficients.iter().find(|c| c.term == term)
    }

    /// The CR2 twin of a fit that also has CR2 inference: the same fit with its CR2 rows, or
    /// why they could not be computed.
    pub fn cr2_twin(&self) -> std::result::Result<Fitted, Skip> {
        if let Some(why) = &self.cr2_failed {
            return Err(Skip::Failed(format!("CR2 standard errors: {why}")));
        }
        Ok(Fitted {
            vcov: "cr2".into(),
            n_clusters: self.cr2_clusters,
            coefficients: self.cr2.clone(),
            cr2: vec![],
            cr2_clusters: None,
            ..self.clone()
        })
    }
}

/// Why a model was not fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Skip {
    /// Fewer groups than `min_clusters` (a per-municipality model).
    TooFewClusters { have: usize, need: usize },
    /// A column in `must_vary` is constant on the rows.
    NoVariation { column: String },
    /// No complete rows at all.
    NoRows,
    /// The engine refused or failed (message).
    Failed(String),
}

impl Skip {
    /// Short code for tables and counts.
    pub fn code(&self) -> String {
        match self {
            Skip::TooFewClusters { .. } => "skipped_too_few_clusters".into(),
            Skip::NoVariation { column } => format!("skipped_no_variation_in_{column}"),
            Skip::NoRows => "skipped_no_rows".into(),
            Skip::Failed(_) => "failed".into(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Skip::TooFewClusters { have, need } => {
                format!("{have} clusters, fewer than model.min_clusters = {need}")
            }
            Skip::NoVariation { column } => format!("`{column}` takes only one value"),
            Skip::NoRows => "no rows with all the model's columns".into(),
            Skip::Failed(m) => m.clone(),
        }
    }
}

/// The outcome of one attempt: which rows were dropped (by reason) and the fit or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub spec_name: String,
    pub formula: String,
    pub rows_in: usize,
    /// Rows dropped for a missing value, by `missing_<column>`.
    pub dropped: BTreeMap<String, usize>,
    pub result: std::result::Result<Fitted, Skip>,
}

/// Rows of `rows` with every column of the model present, and the others counted by reason.
pub fn complete_rows(
    table: &Table,
    rows: &[usize],
    columns: &[String],
) -> Result<(Vec<usize>, BTreeMap<String, usize>)> {
    let cols = columns
        .iter()
        .map(|c| table.col(c).map(|col| (c, col)))
        .collect::<Result<Vec<_>>>()?;
    let mut keep = Vec::with_capacity(rows.len());
    let mut dropped = BTreeMap::new();
    for &i in rows {
        match cols.iter().find(|(_, col)| col.is_missing(i)) {
            None => keep.push(i),
            Some((name, _)) => *dropped.entry(format!("missing_{name}")).or_insert(0) += 1,
        }
    }
    Ok((keep, dropped))
}

fn distinct(table: &Table, col: &str, rows: &[usize]) -> usize {
    // Text columns are counted by reference: this runs per model on every sample row, and
    // cloning each label into a set was a large part of the stage's time at national scale.
    match table.col(col) {
        Ok(super::frame::Col::Str(v)) => rows
            .iter()
            .filter_map(|&i| v[i].as_deref())
            .collect::<std::collections::HashSet<&str>>()
            .len(),
        // Numbers count by their labels (as R prints them), a function of the value: each
        // distinct value is labelled once, not each row (labelling was most of a rerun's time).
        Ok(super::frame::Col::Num(v)) => rows
            .iter()
            .filter_map(|&i| v[i].filter(|x| !x.is_nan()))
            .map(f64::to_bits)
            .collect::<std::collections::HashSet<u64>>()
            .into_iter()
            .map(|b| crate::stats::formula::format_r_number(f64::from_bits(b)))
            .collect::<BTreeSet<String>>()
            .len(),
        Err(_) => 0,
    }
}

/// The formula of `spec` on `rows` (factors with fewer than two levels left out).
pub fn formula_text(spec: &ModelSpec, table: &Table, rows: &[usize]) -> String {
    let mut rhs: Vec<String> = spec.terms.clone();
    for f in &spec.factors {
        if distinct(table, f, rows) >= 2 {
            rhs.push(format!("C({f})"));
        }
    }
    for g in &spec.random {
        rhs.push(format!("(1 | {g})"));
    }
    if rhs.is_empty() {
        rhs.push("1".into());
    }
    format!("{} ~ {}", spec.response, rhs.join(" + "))
}

/// Fits `spec` on `rows` of `table`. `min_clusters` is enforced when given (per-municipality
/// models); the pooled model is fitted whatever its number of clusters.
pub fn fit(
    table: &Table,
    rows: &[usize],
    spec: &ModelSpec,
    conf_level: f64,
    min_clusters: Option<usize>,
    memo: &Memo,
) -> Result<Attempt> {
    let columns = spec.columns();
    let (keep, dropped) = complete_rows(table, rows, &columns)?;
    let formula = if spec.kind == Kind::PairedT {
        format!("{} ~ post, paired by respondent", spec.response)
    } else {
        formula_text(spec, table, &keep)
    };
    let mut attempt = Attempt {
        spec_name: spec.name.clone(),
        formula: formula.clone(),
        rows_in: rows.len(),
        dropped,
        result: Err(Skip::NoRows),
    };
    if keep.is_empty() {
        return Ok(attempt);
    }
    if let (Some(need), Some(g)) = (min_clusters, &spec.group) {
        let have = distinct(table, g, &keep);
        if have < need {
            attempt.result = Err(Skip::TooFewClusters { have, need });
            return Ok(attempt);
        }
    }
    for c in &spec.must_vary {
        if distinct(table, c, &keep) < 2 {
            attempt.result = Err(Skip::NoVariation { column: c.clone() });
            return Ok(attempt);
        }
    }
    attempt.result = match &spec.kind {
        Kind::PairedT => paired(table, &keep, spec, conf_level),
        _ => regression(table, &keep, spec, &formula, conf_level, memo),
    }?;
    Ok(attempt)
}

/// Sample SD (n − 1); None with fewer than two values or no spread.
fn sd(x: impl Iterator<Item = f64> + Clone) -> Option<f64> {
    let n = x.clone().count();
    if n < 2 {
        return None;
    }
    let mean = x.clone().sum::<f64>() / n as f64;
    let ss: f64 = x.map(|v| (v - mean) * (v - mean)).sum();
    let s = (ss / (n as f64 - 1.0)).sqrt();
    (s > 0.0 && s.is_finite()).then_some(s)
}

// ----- fits kept between runs -----
//
// A fit depends on the values of the columns it uses on its rows, its formula, its estimator
// and this code, not on `model.alpha` or anything downstream of it. The stage therefore keeps
// every regression's result in the orchestrator's store (`crate::memo`), keyed by a hash of
// exactly those, with the coefficients' raw degrees of freedom; a later run with the same key
// (after changing `model.alpha`, `model.correction`, a direction, the meta-analysis methods, or
// one hypothesis's estimator) takes the kept result and recomputes only the intervals at its
// level, with the engine's own interval functions: the same bits as fitting again.

/// Bump whenever this file or the statistics engine changes what a regression returns: kept
/// fits of another version are then never found.
const FIT_CACHE_VERSION: u32 = 5;
/// The store's namespace (the stage's name).
pub(super) const MEMO_STAGE: &str = "model";

/// A regression's result as kept: the fit (or why not) and the t degrees of freedom of each
/// coefficient as the engine gave them (`Coef::df` folds infinite and NaN into None).
#[derive(Serialize, Deserialize)]
struct KeptFit {
    result: std::result::Result<Fitted, Skip>,
    dfs: Vec<f64>,
    /// The raw df of `Fitted::cr2`.
    #[serde(default)]
    cr2_dfs: Vec<f64>,
}

impl KeptFit {
    /// The result with its intervals at `conf_level`; None if the entry does not fit the model.
    fn at_level(self, kind: &Kind, conf_level: f64) -> Option<std::result::Result<Fitted, Skip>> {
        let mut fitted = match self.result {
            Ok(f) => f,
            Err(skip) => return Some(Err(skip)),
        };
        if fitted.coefficients.len() != self.dfs.len() || fitted.cr2.len() != self.cr2_dfs.len() {
            return None;
        }
        let quantile = match kind {
            Kind::Ols { .. } => crate::stats::ols::interval_quantile,
            Kind::Lmm { .. } => crate::stats::lmm::interval_quantile,
            Kind::PairedT => return None,
        };
        // The engine's `conf_interval`, with the quantile computed once per distinct df (an OLS
        // fit has one df for all its coefficients).
        let mut last: Option<(u64, f64)> = None;
        let rows = fitted.coefficients.iter_mut().zip(&self.dfs);
        for (c, &df) in rows.chain(fitted.cr2.iter_mut().zip(&self.cr2_dfs)) {
            let q = match last {
                Some((bits, q)) if bits == df.to_bits() => q,
                _ => {
                    let q = quantile(df, conf_level);
                    last = Some((df.to_bits(), q));
                    q
                }
            };
            let row = &mut c.row;
            row.conf_low = row.estimate - q * row.std_error;
            row.conf_high = row.estimate + q * row.std_error;
        }
        Some(Ok(fitted))
    }
}

/// The key of a regression: everything its result depends on.
fn fit_key(
    table: &Table,
    rows: &[usize],
    spec: &ModelSpec,
    formula: &str,
    columns: &[String],
) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let head = format!(
        "relcap {} fit cache {FIT_CACHE_VERSION}\n{formula}\n{:?}\n{:?}\n",
        env!("CARGO_PKG_VERSION"),
        spec.kind,
        spec.group
    );
    h.update(&(head.len() as u64).to_le_bytes());
    h.update(head.as_bytes());
    table.hash_rows(columns, rows, &mut h)?;
    Ok(h.finalize())
}

/// Fits a regression, or takes its kept result (see above).
fn regression(
    table: &Table,
    rows: &[usize],
    spec: &ModelSpec,
    formula: &str,
    conf_level: f64,
    memo: &Memo,
) -> Result<std::result::Result<Fitted, Skip>> {
    let key = fit_key(table, rows, spec, formula, &spec.columns())?;
    let kept = memo.get(MEMO_STAGE, &key, |bytes| {
        rmp_serde::from_slice::<KeptFit>(&bytes)
            .ok()?
            .at_level(&spec.kind, conf_level)
    });
    if let Some(result) = kept {
        return Ok(result);
    }
    let (result, dfs, cr2_dfs) = regression_fit(table, rows, spec, formula, conf_level)?;
    // Kept without its intervals (they are recomputed at the level of the run that reads it),
    // so that the store's bytes do not depend on `model.alpha` either.
    let mut kept = KeptFit {
        result: result.clone(),
        dfs,
        cr2_dfs,
    };
    if let Ok(f) = &mut kept.result {
        for c in f.coefficients.iter_mut().chain(&mut f.cr2) {
            c.row.conf_low = f64::NAN;
            c.row.conf_high = f64::NAN;
        }
    }
    let bytes =
        rmp_serde::to_vec(&kept).with_context(|| format!("cannot encode the fit of {formula}"))?;
    memo.put(MEMO_STAGE, &key, &bytes)?;
    Ok(result)
}

/// The fit of a regression (or why not), its coefficients' raw degrees of freedom and those of
/// its CR2 rows (mixed models that also have CR2 inference).
type FitAndDfs = (std::result::Result<Fitted, Skip>, Vec<f64>, Vec<f64>);

fn regression_fit(
    table: &Table,
    rows: &[usize],
    spec: &ModelSpec,
    formula: &str,
    conf_level: f64,
) -> Result<FitAndDfs> {
    let parsed = match formula::parse(formula) {
        Ok(f) => f,
        Err(e) => return Ok((Err(Skip::Failed(format!("{formula}: {e}"))), vec![], vec![])),
    };
    let data = table.data(&spec.columns(), rows)?;
    let estimator = match &spec.kind {
        Kind::Ols { vcov, cluster } => Estimator::Ols {
            vcov: *vcov,
            cluster: cluster.clone(),
        },
        Kind::Lmm { reml, cr2_by } => Estimator::Lmm {
            reml: *reml,
            cluster: cr2_by.clone(),
        },
        Kind::PairedT => return Ok((unreachable_paired()?, vec![], vec![])),
    };
    let fit = match fit_parsed(&parsed, &data, &estimator, conf_level) {
        Ok(f) => f,
        Err(e) => return Ok((Err(Skip::Failed(e.to_string())), vec![], vec![])),
    };
    let des = &fit.design;
    let sd_y = sd(des.y.iter().copied());
    let factors = std_factors(des, sd_y);
    let coefs = |c: &[crate::stats::Coefficient]| -> Vec<Coef> {
        coefficient_rows(c)
            .into_iter()
            .map(|row| Coef {
                std_factor: factors.get(&row.term).copied().flatten(),
                row,
            })
            .collect()
    };
    let coefficients = coefs(fit.model_coefficients());
    let dfs = fit.model_coefficients().iter().map(|c| c.df).collect();
    let (cr2, cr2_dfs) = match &fit.robust {
        Some(Ok(r)) => (
            coefs(&r.coefficients),
            r.coefficients.iter().map(|c| c.df).collect(),
        ),
        _ => (vec![], vec![]),
    };
    let n_groups = spec
        .group
        .as_ref()
        .map(|g| distinct(table, g, rows))
        .filter(|_| des.n_dropped == 0);
    let common = Fitted {
        formula: formula.to_string(),
        coefficients,
        sd_outcome: sd_y,
        ..Fitted::default()
    };
    let fitted = match &fit.model {
        Model::Ols(f) => ols_fitted(f, common, n_groups),
        Model::Lmm(f) => {
            let mut fitted = lmm_fitted(f, common, spec);
            if let Some(Err(e)) = &fit.robust {
                fitted.cr2_failed = Some(e.to_string());
            }
            if let Some(Ok(r)) = &fit.robust {
                fitted.cr2 = cr2;
                fitted.cr2_clusters = Some(r.n_clusters);
                if r.n_clusters < r.n_clusters_given {
                    fitted.warnings.push(format!(
                        "CR2: the {} clusters of `{}` merged into {} where a random-effect level (a respondent in two units) spans them",
                        r.n_clusters_given,
                        spec.group.as_deref().unwrap_or("?"),
                        r.n_clusters
                    ));
                }
            }
            fitted
        }
    };
    Ok((Ok(fitted), dfs, cr2_dfs))
}

/// Standardization factor per model-matrix column name (see the module docs): none for the
/// intercept, 1 / s_y for a 0/1 column, s_x / s_y otherwise.
fn std_factors(des: &Design, sd_y: Option<f64>) -> BTreeMap<String, Option<f64>> {
    let n = des.n_obs;
    let mut factors: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for (j, name) in des.names.iter().enumerate() {
        let col = (0..n).map(|i| des.x[(i, j)]);
        let f = if name == "(Intercept)" {
            None
        } else if col.clone().all(|v| v == 0.0 || v == 1.0) {
            sd_y.map(|s| 1.0 / s)
        } else {
            match (sd(col), sd_y) {
                (Some(sx), Some(sy)) => Some(sx / sy),
                _ => None,
            }
        };
        factors.insert(name.clone(), f);
    }
    factors
}

/// An OLS fit as the stage keeps it; `common` holds the formula, coefficients and outcome SD,
/// `n_groups` the groups counted on the rows (used when there are no clusters).
fn ols_fitted(f: &OlsFit, common: Fitted, n_groups: Option<usize>) -> Fitted {
    let mut warnings = Vec::new();
    if !f.aliased.is_empty() {
        warnings.push(format!("not estimable (aliased): {}", f.aliased.join(", ")));
    }
    Fitted {
        method: "ols".into(),
        vcov: vcov_name(f.vcov_type).into(),
        n_obs: f.n_obs,
        n_groups: f.n_clusters.or(n_groups),
        n_clusters: f.n_clusters,
        aliased: f.aliased.clone(),
        r_squared: Some(f.r_squared),
        adj_r_squared: Some(f.adj_r_squared),
        sigma: Some(f.sigma),
        df_residual: Some(f.df_residual),
        log_likelihood: Some(f.log_likelihood),
        aic: Some(f.aic),
        bic: Some(f.bic),
        warnings,
        ..common
    }
}

/// A mixed model as the stage keeps it; `common` as in [`ols_fitted`].
fn lmm_fitted(f: &LmmFit, common: Fitted, spec: &ModelSpec) -> Fitted {
    let mut warnings: Vec<String> = f.warnings.clone();
    if !f.aliased.is_empty() {
        warnings.push(format!("not estimable (aliased): {}", f.aliased.join(", ")));
    }
    let levels: BTreeMap<&str, usize> = f.n_groups.iter().map(|(g, n)| (g.as_str(), *n)).collect();
    let var_comps = f
        .variance_components
        .iter()
        .map(|v| VarComp {
            group: v.group.clone(),
            variance: v.variance,
            std_dev: v.std_dev,
            n_levels: levels.get(v.group.as_str()).copied(),
        })
        .collect();
    let n_groups = spec
        .group
        .as_ref()
        .and_then(|g| levels.get(g.as_str()).copied());
    Fitted {
        method: if f.reml { "reml" } else { "ml" }.into(),
        vcov: "model".into(),
        n_obs: f.n_obs,
        n_groups,
        aliased: f.aliased.clone(),
        sigma: Some(f.sigma),
        log_likelihood: Some(f.log_likelihood),
        aic: Some(f.aic),
        bic: Some(f.bic),
        deviance: Some(f.deviance),
        converged: Some(f.converged),
        singular: Some(f.singular),
        iterations: Some(f.iterations),
        var_comps,
        warnings,
        ..common
    }
}

/// `regression` is never called for the paired test; kept as an error rather than a panic.
fn unreachable_paired() -> Result<std::result::Result<Fitted, Skip>> {
    Ok(Err(Skip::Failed(
        "internal: a paired test is not a regression".into(),
    )))
}

fn vcov_name(v: VcovType) -> &'static str {
    match v {
        VcovType::Classical => "classical",
        VcovType::Hc0 => "hc0",
        VcovType::Hc1 => "hc1",
        VcovType::Hc2 => "hc2",
        VcovType::Hc3 => "hc3",
        VcovType::Cr1 => "cr1",
        VcovType::Cr2 => "cr2",
    }
}

/// The respondents of `rows` observed exactly once before (`post` = 0) and once after
/// (`post` = 1) in the same unit: (unit, respondent) → (pre, post) outcome.
pub fn pairs(
    table: &Table,
    rows: &[usize],
    response: &str,
) -> BTreeMap<(String, String), (f64, f64)> {
    let mut seen: BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for &i in rows {
        let (Some(u), Some(r), Some(p), Some(y)) = (
            table.str_at("unit_id", i),
            table.label_at("respondent_id", i),
            table.num_at("post", i),
            table.num_at(response, i),
        ) else {
            continue;
        };
        let e = seen.entry((u.to_string(), r)).or_default();
        if p == 0.0 {
            e.0.push(y);
        } else if p == 1.0 {
            e.1.push(y);
        }
    }
    seen.into_iter()
        .filter(|(_, (a, b))| a.len() == 1 && b.len() == 1)
        .map(|(k, (a, b))| (k, (a[0], b[0])))
        .collect()
}

fn paired(
    table: &Table,
    rows: &[usize],
    spec: &ModelSpec,
    conf_level: f64,
) -> Result<std::result::Result<Fitted, Skip>> {
    let pairs = pairs(table, rows, &spec.response);
    let pre: Vec<f64> = pairs.values().map(|p| p.0).collect();
    let post: Vec<f64> = pairs.values().map(|p| p.1).collect();
    let units = pairs.keys().map(|k| &k.0).collect::<BTreeSet<_>>().len();
    let t = match t_test_paired(&post, &pre, 0.0, conf_level) {
        Ok(t) => t,
        Err(e) => return Ok(Err(Skip::Failed(format!("paired t-test: {e}")))),
    };
    let dz = cohens_dz(&post, &pre).ok();
    let std_factor = dz.and_then(|d| (t.estimate != 0.0).then(|| d / t.estimate));
    let diffs = post.iter().zip(&pre).map(|(a, b)| a - b);
    Ok(Ok(Fitted {
        formula: format!(
            "{} ~ post, paired by respondent (respondents in both waves)",
            spec.response
        ),
        method: "paired_t".into(),
        vcov: "paired".into(),
        n_obs: t.n,
        n_groups: Some(units),
        coefficients: vec![Coef {
            row: ReportCoefficient {
                term: "post".into(),
                estimate: t.estimate,
                std_error: t.std_error,
                statistic: t.statistic,
                df: Some(t.df),
                p_value: t.p_value,
                conf_low: t.conf_low,
                conf_high: t.conf_high,
            },
            std_factor,
        }],
        sigma: sd(diffs),
        df_residual: Some(t.df),
        sd_outcome: sd(pre.iter().chain(&post).copied()),
        ..Fitted::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::super::frame::Col;
    use super::*;

    fn table() -> Table {
        // y = 1 + 2x + g effect, two groups, a missing x in row 5.
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let mut t = Table::new("t.parquet", 8);
        let y: Vec<Option<f64>> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Some(1.0 + 2.0 * v + if i % 2 == 0 { 0.5 } else { -0.5 } + 0.1 * (i as f64).sin())
            })
            .collect();
        let mut xs: Vec<Option<f64>> = x.iter().map(|v| Some(*v)).collect();
        xs[5] = None;
        t.insert("y", Col::Num(y)).unwrap();
        t.insert("x", Col::Num(xs)).unwrap();
        t.insert(
            "g",
            Col::Str((0..8).map(|i| Some(format!("g{}", i % 2))).collect()),
        )
        .unwrap();
        t.insert("m", Col::Str(vec![Some("A".into()); 8])).unwrap();
        t
    }

    fn spec() -> ModelSpec {
        ModelSpec {
            name: "m".into(),
            kind: Kind::Ols {
                vcov: VcovType::Classical,
                cluster: None,
            },
            response: "y".into(),
            terms: vec!["x".into()],
            factors: vec!["g".into(), "m".into()],
            random: vec![],
            group: Some("g".into()),
            must_vary: vec![],
        }
    }

    #[test]
    fn one_level_factors_are_left_out_and_missing_rows_counted() {
        let t = table();
        let rows: Vec<usize> = (0..8).collect();
        let a = fit(&t, &rows, &spec(), 0.95, None, &Memo::disabled()).unwrap();
        assert_eq!(a.formula, "y ~ x + C(g)");
        assert_eq!(a.dropped.get("missing_x"), Some(&1));
        let f = a.result.unwrap();
        assert_eq!(f.n_obs, 7);
        assert_eq!(f.n_groups, Some(2));
        // Standardization: x numeric → b sd(x)/sd(y); the g dummy → b / sd(y).
        let keep: Vec<f64> = [0, 1, 2, 3, 4, 6, 7].iter().map(|&i| i as f64).collect();
        let ys: Vec<f64> = [0usize, 1, 2, 3, 4, 6, 7]
            .iter()
            .map(|&i| t.num_at("y", i).unwrap())
            .collect();
        let sx = sd(keep.iter().copied()).unwrap();
        let sy = sd(ys.iter().copied()).unwrap();
        let cx = f.coef("x").unwrap();
        assert!((cx.std_estimate().unwrap() - cx.estimate * sx / sy).abs() < 1e-12);
        let cg = f.coef("C(g)g1").unwrap();
        assert!((cg.std_estimate().unwrap() - cg.estimate / sy).abs() < 1e-12);
        assert_eq!(f.coef("(Intercept)").unwrap().std_estimate(), None);
    }

    /// 48 rows in 8 groups: y = 1 + 0.5 x + group effect + noise (deterministic).
    fn grouped() -> Table {
        let n = 48;
        let mut t = Table::new("g.parquet", n);
        let x: Vec<Option<f64>> = (0..n).map(|i| Some(((i * 7) % 11) as f64)).collect();
        let y: Vec<Option<f64>> = (0..n)
            .map(|i| {
                let g = (i % 8) as f64;
                Some(1.0 + 0.5 * ((i * 7) % 11) as f64 + 0.3 * (g - 3.5) + (i as f64 * 1.7).sin())
            })
            .collect();
        t.insert("y", Col::Num(y)).unwrap();
        t.insert("x", Col::Num(x)).unwrap();
        t.insert(
            "g",
            Col::Str((0..n).map(|i| Some(format!("g{}", i % 8))).collect()),
        )
        .unwrap();
        t
    }

    /// CR2 rows that cannot be computed (here every g spans both clusters of h, so they merge
    /// into one) fail the CR2 reading only: the mixed model's own rows stand.
    #[test]
    fn a_cr2_that_cannot_be_computed_leaves_the_fit_standing() {
        let mut t = grouped();
        let h = (0..48).map(|i| Some(format!("h{}", (i / 8) % 2))).collect();
        t.insert("h", Col::Str(h)).unwrap();
        let spec = ModelSpec {
            name: "lmm".into(),
            kind: Kind::Lmm {
                reml: true,
                cr2_by: Some("h".into()),
            },
            response: "y".into(),
            terms: vec!["x".into()],
            factors: vec![],
            random: vec!["g".into()],
            group: Some("g".into()),
            must_vary: vec![],
        };
        let rows: Vec<usize> = (0..48).collect();
        let a = fit(&t, &rows, &spec, 0.95, None, &Memo::disabled()).unwrap();
        let f = a.result.expect("the mixed model is fitted");
        assert_eq!(f.coefficients.len(), 2);
        assert!(f.cr2.is_empty());
        match f.cr2_twin() {
            Err(Skip::Failed(why)) => assert!(why.contains("CR2"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_kept_fit_at_another_level_is_the_fresh_fit_at_that_level() {
        let dir = tempfile::tempdir().unwrap();
        let t = grouped();
        let rows: Vec<usize> = (0..48).collect();
        let ols_spec = ModelSpec {
            name: "ols".into(),
            kind: Kind::Ols {
                vcov: VcovType::Cr1,
                cluster: Some("g".into()),
            },
            response: "y".into(),
            terms: vec!["x".into()],
            factors: vec![],
            random: vec![],
            group: Some("g".into()),
            must_vary: vec![],
        };
        let lmm_spec = ModelSpec {
            name: "lmm".into(),
            kind: Kind::Lmm {
                reml: true,
                cr2_by: None,
            },
            random: vec!["g".into()],
            ..ols_spec.clone()
        };
        // Also read with CR2 by g: its rows are kept, and re-levelled, with the fit's.
        let cr2_spec = ModelSpec {
            name: "lmm_cr2".into(),
            kind: Kind::Lmm {
                reml: true,
                cr2_by: Some("g".into()),
            },
            ..lmm_spec.clone()
        };
        for spec in [&ols_spec, &lmm_spec, &cr2_spec] {
            let memo = Memo::new(dir.path(), true);
            let first = fit(&t, &rows, spec, 0.95, None, &memo).unwrap();
            let kept = fit(&t, &rows, spec, 0.8, None, &memo).unwrap();
            assert_eq!(
                memo.stats(),
                crate::memo::MemoStats { hits: 1, misses: 1 },
                "{}",
                spec.name
            );
            let fresh = fit(&t, &rows, spec, 0.8, None, &Memo::disabled()).unwrap();
            assert_eq!(kept, fresh, "{}", spec.name);
            let (k, f0) = (kept.result.unwrap(), first.result.unwrap());
            let f = fresh.result.unwrap();
            assert_eq!(k.cr2.is_empty(), spec.name != "lmm_cr2", "{}", spec.name);
            if spec.name == "lmm_cr2" {
                assert_eq!(k.cr2_twin().unwrap().coefficients.len(), k.cr2.len());
            }
            let rows = |x: &Fitted| -> Vec<Coef> {
                x.coefficients.iter().chain(&x.cr2).cloned().collect()
            };
            for ((a, b), c) in rows(&k).iter().zip(&rows(&f)).zip(&rows(&f0)) {
                assert_eq!(a.conf_low.to_bits(), b.conf_low.to_bits(), "{}", spec.name);
                assert_eq!(
                    a.conf_high.to_bits(),
                    b.conf_high.to_bits(),
                    "{}",
                    spec.name
                );
                // The 80% interval is inside the 95% one: the level was applied.
                assert!(a.conf_low > c.conf_low && a.conf_high < c.conf_high);
            }
        }
        // Other rows, or the same rows with one value changed, are another fit.
        let memo = Memo::new(dir.path(), true);
        fit(&t, &rows[..40], &ols_spec, 0.95, None, &memo).unwrap();
        let mut t2 = grouped();
        let mut y: Vec<Option<f64>> = (0..48).map(|i| t.num_at("y", i)).collect();
        y[3] = y[3].map(|v| v + 1e-12);
        t2.insert("y", Col::Num(y)).unwrap();
        fit(&t2, &rows, &ols_spec, 0.95, None, &memo).unwrap();
        let mut hc = ols_spec.clone();
        hc.kind = Kind::Ols {
            vcov: VcovType::Hc1,
            cluster: None,
        };
        fit(&t, &rows, &hc, 0.95, None, &memo).unwrap();
        assert_eq!(memo.stats(), crate::memo::MemoStats { hits: 0, misses: 3 });
    }

    #[test]
    fn too_few_clusters_and_no_variation_skip() {
        let t = table();
        let rows: Vec<usize> = (0..8).collect();
        let a = fit(&t, &rows, &spec(), 0.95, Some(3), &Memo::disabled()).unwrap();
        assert_eq!(a.result, Err(Skip::TooFewClusters { have: 2, need: 3 }));
        let mut s = spec();
        s.must_vary = vec!["m".into()];
        let a = fit(&t, &rows, &s, 0.95, None, &Memo::disabled()).unwrap();
        assert_eq!(a.result.unwrap_err().code(), "skipped_no_variation_in_m");
    }

    #[test]
    fn pairs_need_one_pre_and_one_post_in_the_same_unit() {
        let mut t = Table::new("p.parquet", 6);
        t.insert(
            "unit_id",
            Col::Str(
                ["u1", "u1", "u1", "u2", "u2", "u1"]
                    .iter()
                    .map(|s| Some(s.to_string()))
                    .collect(),
            ),
        )
        .unwrap();
        t.insert(
            "respondent_id",
            Col::Str(
                ["a", "a", "b", "a", "c", "c"]
                    .iter()
                    .map(|s| Some(s.to_string()))
                    .collect(),
            ),
        )
        .unwrap();
        t.insert(
            "post",
            Col::Num(
                [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
                    .iter()
                    .map(|v| Some(*v))
                    .collect(),
            ),
        )
        .unwrap();
        t.insert(
            "rcap",
            Col::Num(
                [3.0, 3.5, 2.0, 4.0, 1.0, 5.0]
                    .iter()
                    .map(|v| Some(*v))
                    .collect(),
            ),
        )
        .unwrap();
        let p = pairs(&t, &(0..6).collect::<Vec<_>>(), "rcap");
        // Only (u1, a) has both waves in the same unit: (u2, a) is post only, c changed unit.
        assert_eq!(p.len(), 1);
        assert_eq!(p[&("u1".to_string(), "a".to_string())], (3.0, 3.5));
    }
}
