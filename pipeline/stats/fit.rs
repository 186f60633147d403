//! The engine behind `relcap fit`: formula text + plain columns → OLS (with classical, HC or
//! cluster-robust standard errors) or, when the formula has random-intercept terms, a REML/ML
//! linear mixed model with Satterthwaite t-tests; the result as one serializable report and as a
//! plain-text summary laid out like R's `summary()`.
//!
//! JSON shape of [`FitReport`] (fields that do not apply are `null`; an infinite df — none occur
//! in OLS or Satterthwaite output, only if a caller builds z-based rows — is `null`):
//! `{"formula", "method": "ols"|"reml"|"ml", "n_obs", "n_dropped", "coefficients": [{"term",
//! "estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high"}], "fit":
//! {"r_squared", "adj_r_squared", "sigma", "df_residual", "log_likelihood", "aic", "bic",
//! "f_statistic", "f_p_value"}, "random_effects": [{"group", "term", "variance", "std_dev"}],
//! "n_groups": {"<factor>": n}, "aliased": [terms], "warnings": [...]}`.
//!
//! Limits: HC and CR1 standard errors are for OLS only; a mixed model takes CR2 by a cluster
//! column (clubSandwich's on an lmer fit) or none (any other asked of it is an error, not
//! silently ignored); the cluster column, when given, also drops rows where it is missing. For mixed models `log_likelihood`/`aic`/`bic` are lme4's (REML criterion for REML).

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::design::{build_with, Data, Design};
use crate::formula::{format_r_number, parse, Formula};
use crate::lmm::{cluster_robust, lmm, LmmFit, LmmOptions, LmmRobust};
use crate::ols::{ols, OlsFit, OlsOptions, VcovType};
use crate::types::{Coefficient, StatsError};

/// Estimation method for mixed models (ignored by OLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Method {
    #[default]
    Reml,
    Ml,
}

/// Options for [`fit_formula`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Standard errors for OLS. `Cr1` and `Cr2` need `cluster`.
    pub vcov: VcovType,
    /// Column whose values define clusters (OLS with `Cr1` or `Cr2`).
    pub cluster: Option<String>,
    /// REML or ML for mixed models.
    pub method: Method,
    /// Confidence level of the coefficient intervals.
    pub conf_level: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            vcov: VcovType::Classical,
            cluster: None,
            method: Method::Reml,
            conf_level: 0.95,
        }
    }
}

/// One coefficient row as reports and tables carry it; `df` is `None` when infinite (z-based)
/// or undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportCoefficient {
    pub term: String,
    pub estimate: f64,
    pub std_error: f64,
    pub statistic: f64,
    pub df: Option<f64>,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

impl From<&Coefficient> for ReportCoefficient {
    fn from(c: &Coefficient) -> Self {
        Self {
            term: c.term.clone(),
            estimate: c.estimate,
            std_error: c.std_error,
            statistic: c.statistic,
            df: c.df.is_finite().then_some(c.df),
            p_value: c.p_value,
            conf_low: c.conf_low,
            conf_high: c.conf_high,
        }
    }
}

/// The coefficient rows of a fit: the one conversion from the engine's coefficients to the rows
/// that reports and the model stage's tables carry.
pub fn coefficient_rows(coefficients: &[Coefficient]) -> Vec<ReportCoefficient> {
    coefficients.iter().map(Into::into).collect()
}

/// Model-level statistics; `None` where they do not apply (R², F for mixed models).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitStats {
    pub r_squared: Option<f64>,
    pub adj_r_squared: Option<f64>,
    pub sigma: f64,
    pub df_residual: Option<f64>,
    pub log_likelihood: f64,
    pub aic: f64,
    pub bic: f64,
    pub f_statistic: Option<f64>,
    pub f_p_value: Option<f64>,
}

/// One random-effect variance (or the residual, with `term` null).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomEffect {
    pub group: String,
    pub term: Option<String>,
    pub variance: f64,
    pub std_dev: f64,
}

/// Number of levels per grouping factor, serialized as a JSON object in lme4's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Groups(pub Vec<(String, usize)>);

impl Serialize for Groups {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The result of [`fit_formula`]: serializes to the documented JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitReport {
    pub formula: String,
    /// `ols`, `reml` or `ml`.
    pub method: String,
    pub n_obs: usize,
    pub n_dropped: usize,
    pub coefficients: Vec<ReportCoefficient>,
    pub fit: FitStats,
    pub random_effects: Option<Vec<RandomEffect>>,
    pub n_groups: Option<Groups>,
    pub aliased: Vec<String>,
    pub warnings: Vec<String>,
    /// For the text table only: how the standard errors were computed.
    #[serde(skip)]
    pub se_note: String,
    /// For the text table only: F numerator and denominator df, number of clusters, level.
    #[serde(skip)]
    pub f_df: Option<(f64, f64)>,
    #[serde(skip)]
    pub n_clusters: Option<usize>,
    #[serde(skip)]
    pub conf_level: f64,
    #[serde(skip)]
    pub converged: Option<bool>,
    #[serde(skip)]
    pub singular: Option<bool>,
}

/// The estimator of [`fit_parsed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Estimator {
    /// OLS with the given standard errors; `cluster` names the cluster column (for CR1 and
    /// CR2), whose missing rows are dropped with the others.
    Ols {
        vcov: VcovType,
        cluster: Option<String>,
    },
    /// Random-intercept linear mixed model, REML or ML, with Satterthwaite t tests; with a
    /// `cluster` column, also CR2 cluster-robust inference by it (the column's missing rows are
    /// dropped with the others).
    Lmm { reml: bool, cluster: Option<String> },
}

/// The fitted model of [`fit_parsed`].
#[derive(Debug, Clone)]
pub enum Model {
    Ols(OlsFit),
    Lmm(LmmFit),
}

/// A fit and the design it was fitted on.
#[derive(Debug, Clone)]
pub struct ModelFit {
    pub design: Design,
    pub model: Model,
    /// A mixed model's CR2 inference, when a cluster column was given (or why it could not be
    /// computed: the fit itself stands).
    pub robust: Option<Result<LmmRobust, StatsError>>,
}

impl ModelFit {
    /// The engine's coefficients of the fit (with raw degrees of freedom), with the inference
    /// asked for: a mixed model's cluster-robust rows when it has them.
    pub fn coefficients(&self) -> &[Coefficient] {
        match (&self.model, &self.robust) {
            (_, Some(Ok(r))) => &r.coefficients,
            (Model::Ols(f), _) => &f.coefficients,
            (Model::Lmm(f), _) => &f.coefficients,
        }
    }

    /// The model-based coefficients (a mixed model's Satterthwaite rows even when it also has
    /// cluster-robust ones).
    pub fn model_coefficients(&self) -> &[Coefficient] {
        match &self.model {
            Model::Ols(f) => &f.coefficients,
            Model::Lmm(f) => &f.coefficients,
        }
    }
}

/// The one path from a parsed formula and plain columns to a fit: the design (complete cases
/// over the formula's columns and the cluster column), then OLS or the mixed model as asked.
/// No check beyond those of the design and the estimator: [`fit_formula`] adds its own.
pub fn fit_parsed(
    formula: &Formula,
    data: &Data,
    estimator: &Estimator,
    conf_level: f64,
) -> Result<ModelFit, StatsError> {
    let extra: Vec<&str> = match estimator {
        Estimator::Ols {
            cluster: Some(c), ..
        }
        | Estimator::Lmm {
            cluster: Some(c), ..
        } => vec![c.as_str()],
        _ => vec![],
    };
    let design = build_with(formula, data, &extra)?;
    let mut robust = None;
    let model = match estimator {
        Estimator::Lmm { reml, cluster } => {
            let opts = LmmOptions {
                reml: *reml,
                conf_level,
                ..LmmOptions::default()
            };
            let (x, y) = (design.x.as_ref(), &design.y);
            let fit = lmm(x, y, &design.names, &design.random, &opts)?;
            if let Some(c) = cluster {
                let codes = cluster_codes(data, c, &design.kept_rows)?;
                robust = Some(cluster_robust(
                    &fit,
                    x,
                    y,
                    &design.names,
                    &design.random,
                    &codes,
                    conf_level,
                ));
            }
            Model::Lmm(fit)
        }
        Estimator::Ols { vcov, cluster } => {
            let codes = match cluster {
                None => None,
                Some(c) => Some(cluster_codes(data, c, &design.kept_rows)?),
            };
            let opts = OlsOptions {
                vcov: *vcov,
                cluster: codes.as_deref(),
                conf_level,
            };
            Model::Ols(ols(design.x.as_ref(), &design.y, &design.names, &opts)?)
        }
    };
    Ok(ModelFit {
        design,
        model,
        robust,
    })
}

/// Cluster ids of the design rows: the rank of each row's label of column `c` among the
/// distinct labels, sorted.
fn cluster_codes(data: &Data, c: &str, kept_rows: &[usize]) -> Result<Vec<u32>, StatsError> {
    let col = data.get(c).ok_or_else(|| {
        StatsError::Formula(format!("cluster column `{c}` not found in the data"))
    })?;
    let mut labels: Vec<String> = Vec::with_capacity(kept_rows.len());
    for &i in kept_rows {
        labels.push(col.label(i).unwrap_or_default());
    }
    let mut uniq = labels.clone();
    uniq.sort_unstable();
    uniq.dedup();
    Ok(labels
        .iter()
        .map(|l| uniq.binary_search(l).unwrap_or(0) as u32)
        .collect())
}

/// Fits `formula` on `data`: OLS when the formula has no random terms, otherwise an LMM.
pub fn fit_formula(data: &Data, formula: &str, opts: &FitOptions) -> Result<FitReport, StatsError> {
    if !(opts.conf_level > 0.0 && opts.conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "conf_level must be in (0, 1), got {}",
            opts.conf_level
        )));
    }
    let f = parse(formula)?;
    let estimator = estimator_of(&f, opts)?;
    let ModelFit {
        design,
        model,
        robust,
    } = fit_parsed(&f, data, &estimator, opts.conf_level)?;
    let mut warnings = Vec::new();
    if design.n_dropped > 0 {
        warnings.push(format!(
            "{} row(s) dropped for missing values in the model's columns",
            design.n_dropped
        ));
    }
    // Asked for by name here, so a CR2 that cannot be computed is the call's error.
    let robust = robust.transpose()?;
    let mut report = match &model {
        Model::Lmm(fit) => mixed_report(fit, robust.as_ref(), opts.cluster.as_deref(), warnings),
        Model::Ols(fit) => ols_report(fit, opts.cluster.as_deref(), warnings),
    };
    report.formula = formula.to_string();
    report.n_dropped = design.n_dropped;
    report.conf_level = opts.conf_level;
    Ok(report)
}

/// The estimator `opts` asks for on formula `f`: a mixed model when it has random terms (with
/// model-based standard errors, or CR2 ones with a cluster column), otherwise OLS with a cluster
/// column exactly for CR1 and CR2.
fn estimator_of(f: &Formula, opts: &FitOptions) -> Result<Estimator, StatsError> {
    if f.is_mixed() {
        let cluster = match (&opts.cluster, opts.vcov) {
            (None, VcovType::Classical) => None,
            (Some(c), VcovType::Cr2) => Some(c.clone()),
            (None, VcovType::Cr2) => {
                return Err(StatsError::InvalidArgument(
                    "cluster-robust (CR2) standard errors need a cluster column".into(),
                ))
            }
            _ => return Err(StatsError::InvalidArgument(
                "a mixed model reports model-based standard errors, or CR2 ones with a cluster column; HC and CR1 are for OLS".into(),
            )),
        };
        return Ok(Estimator::Lmm {
            reml: opts.method == Method::Reml,
            cluster,
        });
    }
    match (&opts.cluster, opts.vcov) {
        (None, v) if v.is_clustered() => Err(StatsError::InvalidArgument(format!(
            "cluster-robust ({}) standard errors need a cluster column",
            v.as_str()
        ))),
        (Some(c), v) if !v.is_clustered() => Err(StatsError::InvalidArgument(format!(
            "a cluster column (`{c}`) was given but the standard errors are {}; use CR1 or CR2",
            v.as_str()
        ))),
        _ => Ok(Estimator::Ols {
            vcov: opts.vcov,
            cluster: opts.cluster.clone(),
        }),
    }
}

/// The report of a mixed model (formula, rows dropped and level are filled in by the caller).
fn mixed_report(
    fit: &LmmFit,
    robust: Option<&LmmRobust>,
    cluster: Option<&str>,
    mut warnings: Vec<String>,
) -> FitReport {
    if !fit.aliased.is_empty() {
        warnings.push(format!(
            "fixed-effect model matrix is rank deficient so dropping {} column(s): {}",
            fit.aliased.len(),
            fit.aliased.join(", ")
        ));
    }
    warnings.extend(fit.warnings.iter().cloned());
    FitReport {
        formula: String::new(),
        method: if fit.reml { "reml" } else { "ml" }.into(),
        n_obs: fit.n_obs,
        n_dropped: 0,
        coefficients: coefficient_rows(robust.map_or(&fit.coefficients, |r| &r.coefficients)),
        fit: FitStats {
            r_squared: None,
            adj_r_squared: None,
            sigma: fit.sigma,
            df_residual: None,
            log_likelihood: fit.log_likelihood,
            aic: fit.aic,
            bic: fit.bic,
            f_statistic: None,
            f_p_value: None,
        },
        random_effects: Some(
            fit.variance_components
                .iter()
                .map(|v| RandomEffect {
                    group: v.group.clone(),
                    term: v.term.clone(),
                    variance: v.variance,
                    std_dev: v.std_dev,
                })
                .collect(),
        ),
        n_groups: Some(Groups(fit.n_groups.clone())),
        aliased: fit.aliased.clone(),
        warnings,
        se_note: match robust {
            None => "Satterthwaite's method for t-tests".into(),
            Some(r) => format!(
                "cluster-robust (CR2, Bell-McCaffrey) standard errors with Satterthwaite df, {} clusters of `{}`{}",
                r.n_clusters,
                cluster.unwrap_or("?"),
                if r.n_clusters < r.n_clusters_given {
                    format!(" ({} given; those sharing a random-effect level merged)", r.n_clusters_given)
                } else {
                    String::new()
                }
            ),
        },
        f_df: None,
        n_clusters: robust.map(|r| r.n_clusters),
        conf_level: f64::NAN,
        converged: Some(fit.converged),
        singular: Some(fit.singular),
    }
}

/// The report of an OLS fit (formula, rows dropped and level are filled in by the caller).
fn ols_report(fit: &OlsFit, cluster: Option<&str>, mut warnings: Vec<String>) -> FitReport {
    if !fit.aliased.is_empty() {
        warnings.push(format!(
            "{} coefficient(s) not defined because of singularities: {}",
            fit.aliased.len(),
            fit.aliased.join(", ")
        ));
    }
    let se_note = match fit.vcov_type {
        VcovType::Classical => "classical standard errors".to_string(),
        VcovType::Cr1 => format!(
            "cluster-robust (CR1) standard errors, {} clusters of `{}`",
            fit.n_clusters.unwrap_or(0),
            cluster.unwrap_or("?")
        ),
        VcovType::Cr2 => format!(
            "cluster-robust (CR2, Bell-McCaffrey) standard errors with Satterthwaite df, {} clusters of `{}`",
            fit.n_clusters.unwrap_or(0),
            cluster.unwrap_or("?")
        ),
        v => format!(
            "heteroskedasticity-consistent ({}) standard errors",
            v.as_str()
        ),
    };
    FitReport {
        formula: String::new(),
        method: "ols".into(),
        n_obs: fit.n_obs,
        n_dropped: 0,
        coefficients: coefficient_rows(&fit.coefficients),
        fit: FitStats {
            r_squared: Some(fit.r_squared),
            adj_r_squared: Some(fit.adj_r_squared),
            sigma: fit.sigma,
            df_residual: Some(fit.df_residual),
            log_likelihood: fit.log_likelihood,
            aic: fit.aic,
            bic: fit.bic,
            f_statistic: fit.f_statistic,
            f_p_value: fit.f_p_value,
        },
        random_effects: None,
        n_groups: None,
        aliased: fit.aliased.clone(),
        warnings,
        se_note,
        f_df: fit.f_df,
        n_clusters: fit.n_clusters,
        conf_level: f64::NAN,
        converged: None,
        singular: None,
    }
}

/// Formats a number with `sig` significant digits, switching to scientific for very small or
/// large magnitudes (as R's `format()` roughly does); whole numbers print without decimals.
fn num(v: f64, sig: usize) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    if !v.is_finite() {
        return if v.is_nan() {
            "NA".into()
        } else if v > 0.0 {
            "Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        return format!("{:.*e}", sig.saturating_sub(1), v);
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    format!("{:.*}", decimals, v)
}

/// Formats a column of numbers with common decimals: `sig` significant digits for the largest
/// magnitude (as R's `printCoefmat` aligns a column).
fn column(values: &[f64], sig: usize) -> Vec<String> {
    let max = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if values
        .iter()
        .all(|v| v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15)
    {
        return values.iter().map(|&v| format!("{v:.0}")).collect();
    }
    if max == 0.0 || !(1e-4..1e10).contains(&max) {
        return values.iter().map(|&v| num(v, sig)).collect();
    }
    let mag = max.log10().floor() as i32;
    let decimals = (sig as i32 - 1 - mag).clamp(0, 10) as usize;
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                format!("{:.*}", decimals, v)
            } else {
                num(v, sig)
            }
        })
        .collect()
}

/// p-value as R's `format.pval` prints it in coefficient tables.
fn pval(p: f64) -> String {
    if p.is_nan() {
        "NA".into()
    } else if p < 2.2e-16 {
        "< 2e-16".into()
    } else if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

fn stars(p: f64) -> &'static str {
    if p.is_nan() {
        ""
    } else if p < 0.001 {
        "***"
    } else if p < 0.01 {
        "**"
    } else if p < 0.05 {
        "*"
    } else if p < 0.1 {
        "."
    } else {
        ""
    }
}

/// Table with the first `n_left` columns left-aligned, the others right-aligned.
fn table(header: &[String], rows: &[Vec<String>], n_left: usize) -> String {
    let ncol = header.len();
    let mut w = vec![0usize; ncol];
    for r in std::iter::once(header).chain(rows.iter().map(|r| r.as_slice())) {
        for (j, c) in r.iter().enumerate().take(ncol) {
            w[j] = w[j].max(c.chars().count());
        }
    }
    let line = |r: &[String]| -> String {
        let mut s = String::new();
        for (j, c) in r.iter().enumerate().take(ncol) {
            let pad = w[j] - c.chars().count();
            if j > 0 {
                s.push_str("  ");
            }
            if j < n_left {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

impl FitReport {
    /// A plain-text summary laid out like R's `summary()` (with confidence intervals).
    pub fn to_table(&self) -> String {
        let mixed = self.method != "ols";
        let mut s = self.heading(mixed);
        if mixed {
            s.push_str(&self.random_effects_section());
        }
        s.push_str(&self.coefficient_section(mixed));
        if !mixed {
            s.push_str(&self.ols_summary());
        } else {
            match (self.converged, self.singular) {
                (Some(false), _) => s.push_str("Convergence: the optimizer did NOT converge.\n"),
                (_, Some(true)) => s.push_str("Convergence: converged, boundary (singular) fit.\n"),
                _ => s.push_str("Convergence: converged.\n"),
            }
        }
        if !self.warnings.is_empty() {
            s.push_str("Notes:\n");
            for w in &self.warnings {
                s.push_str(&format!("  - {w}\n"));
            }
        }
        s
    }

    /// The model, the formula and the rows used.
    fn heading(&self, mixed: bool) -> String {
        let mut s = String::new();
        if mixed {
            s.push_str(&format!(
                "Linear mixed model fit by {} ({})\n",
                if self.method == "reml" {
                    "REML"
                } else {
                    "maximum likelihood"
                },
                self.se_note
            ));
        } else {
            s.push_str(&format!("Linear regression (OLS), {}\n", self.se_note));
        }
        s.push_str(&format!("Formula: {}\n", self.formula));
        s.push_str(&format!(
            "Observations: {} used, {} dropped for missing values\n\n",
            self.n_obs, self.n_dropped
        ));
        s
    }

    /// A mixed model's criterion, variance components and group counts.
    fn random_effects_section(&self) -> String {
        let mut s = String::new();
        let crit = -2.0 * self.fit.log_likelihood;
        s.push_str(&format!(
            "{} {}   logLik {}   AIC {}   BIC {}\n\n",
            if self.method == "reml" {
                "REML criterion at convergence:"
            } else {
                "Deviance:"
            },
            num(crit, 6),
            num(self.fit.log_likelihood, 6),
            num(self.fit.aic, 6),
            num(self.fit.bic, 6)
        ));
        s.push_str("Random effects:\n");
        let rows: Vec<Vec<String>> = self
            .random_effects
            .iter()
            .flatten()
            .map(|r| {
                vec![
                    format!(" {}", r.group),
                    r.term.clone().unwrap_or_default(),
                    num(r.variance, 5),
                    num(r.std_dev, 5),
                ]
            })
            .collect();
        let header: Vec<String> = [" Groups", "Name", "Variance", "Std.Dev."]
            .iter()
            .map(|h| h.to_string())
            .collect();
        s.push_str(&table(&header, &rows, 2));
        if let Some(g) = &self.n_groups {
            let parts: Vec<String> = g.0.iter().map(|(k, v)| format!("{k}, {v}")).collect();
            s.push_str(&format!(
                "Number of obs: {}, groups:  {}\n\n",
                self.n_obs,
                parts.join("; ")
            ));
        }
        s
    }

    /// The coefficient table with significance codes and the aliased terms.
    fn coefficient_section(&self, mixed: bool) -> String {
        let mut s = String::from(if mixed {
            "Fixed effects:\n"
        } else {
            "Coefficients:\n"
        });
        let tail = 50.0 * (1.0 - self.conf_level);
        let lo = format!("{} %", format_r_number(tail));
        let hi = format!("{} %", format_r_number(100.0 - tail));
        let header: Vec<String> = [
            "",
            "Estimate",
            "Std. Error",
            "df",
            "t value",
            "Pr(>|t|)",
            "",
            lo.as_str(),
            hi.as_str(),
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let cs = &self.coefficients;
        let est = column(&cs.iter().map(|c| c.estimate).collect::<Vec<_>>(), 6);
        let se = column(&cs.iter().map(|c| c.std_error).collect::<Vec<_>>(), 5);
        let df = column(
            &cs.iter()
                .map(|c| c.df.unwrap_or(f64::INFINITY))
                .collect::<Vec<_>>(),
            5,
        );
        let ci = column(
            &cs.iter()
                .flat_map(|c| [c.conf_low, c.conf_high])
                .collect::<Vec<_>>(),
            6,
        );
        let rows: Vec<Vec<String>> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    c.term.clone(),
                    est[i].clone(),
                    se[i].clone(),
                    df[i].clone(),
                    format!("{:.3}", c.statistic),
                    pval(c.p_value),
                    stars(c.p_value).to_string(),
                    ci[2 * i].clone(),
                    ci[2 * i + 1].clone(),
                ]
            })
            .collect();
        s.push_str(&table(&header, &rows, 1));
        s.push_str("---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n");
        if !self.aliased.is_empty() {
            s.push_str(&format!(
                "Not estimable (aliased, dropped): {}\n",
                self.aliased.join(", ")
            ));
        }
        s.push('\n');
        s
    }

    /// An OLS fit's residual standard error, R², F test and likelihood.
    fn ols_summary(&self) -> String {
        let mut s = format!(
            "Residual standard error: {} on {} degrees of freedom\n",
            num(self.fit.sigma, 4),
            self.fit.df_residual.map_or("NA".into(), |d| num(d, 6))
        );
        s.push_str(&format!(
            "Multiple R-squared:  {},\tAdjusted R-squared:  {}\n",
            self.fit.r_squared.map_or("NA".into(), |v| num(v, 4)),
            self.fit.adj_r_squared.map_or("NA".into(), |v| num(v, 4))
        ));
        if let (Some(fs), Some((d1, d2))) = (self.fit.f_statistic, self.f_df) {
            s.push_str(&format!(
                "{}F-statistic: {} on {} and {} DF,  p-value: {}\n",
                if self.se_note.starts_with("classical") {
                    ""
                } else {
                    "Wald "
                },
                num(fs, 4),
                num(d1, 6),
                num(d2, 6),
                self.fit.f_p_value.map_or("NA".into(), pval)
            ));
        }
        s.push_str(&format!(
            "logLik {}   AIC {}   BIC {}\n",
            num(self.fit.log_likelihood, 6),
            num(self.fit.aic, 6),
            num(self.fit.bic, 6)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::Column;

    fn small() -> Data {
        let mut d = Data::new();
        let g: Vec<Option<String>> = (0..30).map(|i| Some(format!("g{}", i % 6))).collect();
        let x: Vec<Option<f64>> = (0..30).map(|i| Some((i as f64 * 0.37).sin())).collect();
        let y: Vec<Option<f64>> = (0..30)
            .map(|i| {
                Some(
                    1.0 + 0.5 * (i as f64 * 0.37).sin()
                        + ((i % 6) as f64) * 0.3
                        + (i as f64 * 1.7).cos(),
                )
            })
            .collect();
        d.push("y", Column::Num(y)).unwrap();
        d.push("x", Column::Num(x)).unwrap();
        d.push("g", Column::Str(g)).unwrap();
        d
    }

    #[test]
    fn json_shape_mixed_and_ols() {
        let d = small();
        let r = fit_formula(&d, "y ~ x + (1 | g)", &FitOptions::default()).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "formula",
            "method",
            "n_obs",
            "n_dropped",
            "coefficients",
            "fit",
            "random_effects",
            "n_groups",
            "aliased",
            "warnings",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(keys.len(), 10);
        assert_eq!(v["method"], "reml");
        assert!(v["fit"]["r_squared"].is_null());
        assert_eq!(v["n_groups"]["g"], 6);
        assert!(r.to_table().contains("Random effects"));
        let r = fit_formula(&d, "y ~ x + g", &FitOptions::default()).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["method"], "ols");
        assert!(v["random_effects"].is_null());
        assert!(r.to_table().contains("Residual standard error"));
        let e = fit_formula(
            &d,
            "y ~ x + (1 | g)",
            &FitOptions {
                vcov: VcovType::Hc1,
                ..FitOptions::default()
            },
        );
        assert!(e.is_err());
    }
}
