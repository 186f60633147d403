//! The `model` stage: tests H1, H2 and H3 as the study's analysis plan prescribes, pooled over the
//! municipalities (municipality as a fixed effect) and within each municipality; combines the
//! per-municipality estimates of each primary term by random-effects meta-analysis; adjusts the
//! three primary p-values for multiplicity; says whether the data support each hypothesis.
//!
//! Reads `OUT/link/{h1_cases,h2_respondents,h3_panel}.parquet` (and `h1_dyad_errors.parquet`
//! for H1 corrected for measurement error, when it is there) and uses the rows whose
//! `exclusion` is empty (all rows when the column is absent). Every statistic comes from the
//! engine (`relcap::stats`: OLS with cluster-robust CR2 (or CR1) errors, REML/ML random-intercept models
//! with Satterthwaite t-tests, metafor-style meta-analysis, t-tests, Holm). Every regression
//! is kept in the orchestrator's store and reused by a later run that fits the same model on the
//! same values, with its intervals recomputed at that run's level (`model/fitting.rs`, "fits
//! kept between runs"): the outputs are the bytes a fresh fit gives.
//!
//! # Models (names as in the `model` column)
//!
//! Municipality and wave are categorical fixed effects, treatment-coded with the first level in
//! sorted order as reference; a factor with one level on the rows is left out (so the
//! per-municipality models have no municipality term). Intervals are at 1 − `model.alpha`.
//!
//! | hypothesis | model | formula (pooled) | estimation |
//! | --- | --- | --- | --- |
//! | H1 | `case_rcap` | `quality ~ case_rcap + C(municipality) + C(wave)` | OLS, `model.h1.vcov` (CR2 by `model.h1.cluster`) |
//! | H1 | `unit_rcap_mean` | `quality ~ unit_rcap_mean + C(municipality) + C(wave)` (sensitivity) | as above |
//! | H1 | `h1_corrected` | the `case_rcap` slope corrected for the sampling error of case RCap (not primary) | regression calibration, lead-unit cluster bootstrap (`model/h1_correction.rs`) |
//! | H2 | `between_within` | `rcap ~ srm_between + srm_within + C(municipality) + C(wave) + (1 \| unit_id)` | `model.h2.method` |
//! | H2 | `leave_one_out` | `rcap ~ srm_others + C(municipality) + C(wave) + (1 \| unit_id)` | as above |
//! | H2 | `own_rating` | `rcap ~ srm + C(municipality) + C(wave) + (1 \| unit_id)` | as above |
//! | H2 | `unit_wave_within` | `rcap ~ srm_unit + srm_wave + srm_within + C(municipality) + C(wave) + (1 \| unit_id)` | as above |
//! | H2 | `unit_wave_within_adjusted` | the primary H2 model `+ intervention + intervention_post` (sensitivity) | as above |
//! | H3 | `cluster_did` | `rcap ~ post + intervention + post:intervention + C(municipality) + (1 \| respondent_id) + (1 \| unit_id) + (1 \| unit_id:post)` | `model.h3.method` |
//! | H3 | `cluster_did_cr2` | `cluster_did`'s fit with CR2 standard errors by unit, Satterthwaite df (sensitivity; `same_fit_as` in `fit`) | clubSandwich's CR2 on a mixed model |
//! | H3 | `diff_in_diff` | `rcap ~ post + post:intervention + C(municipality) + (1 \| respondent_id) + (1 \| unit_id)` (the analysis plan's formula; sensitivity) | as above |
//! | H3 | `cluster_did_both_waves` | `cluster_did` on the respondents in both waves of the window (sensitivity) | as above |
//! | H3 | `event_study` | `rcap ~ intervention + arm_post1 + ... + C(municipality) + C(wave) + (1 \| respondent_id) + (1 \| unit_id) + (1 \| unit_id:wave)`, every wave | as above |
//! | H3 | `pre_post` | `rcap ~ post + C(municipality) + (1 \| respondent_id) + (1 \| unit_id) + (1 \| unit_id:post)` (no control units; descriptive) | as above |
//! | H3 | `paired_t` | paired t-test of `rcap` after − before, respondents in both waves (no control units; descriptive) | t-test, Cohen's d_z |
//!
//! **H2's primary term is `srm_unit` of `unit_wave_within` (a deliberate departure from the
//! analysis plan, which names `srm_between`; set `model.h2.primary_term = "srm_between"` to
//! follow the plan).** `unit_wave_within` splits `srm_between` into `srm_unit`, the unit's mean of
//! `srm_between` over the sample rows of all waves, and `srm_wave` = `srm_between − srm_unit`.
//! Why: with a unit random intercept, the `srm_between` slope of `between_within` mixes the
//! between-unit slope with the slope on a unit's wave-to-wave changes in mean rating. A manager's
//! SRM does not change between waves in the model of the study, but the raters' wave-specific
//! same-source (common-method) variance does, and a unit-wave mean carries 1/n of every rater's
//! own same-source term into the unit's mean RCap as well, so those wave-to-wave changes produce
//! a slope with no manager effect behind it. Measured with `relcap validate` (200 replications
//! of the demo design, seed 20261123, no manager effect): `srm_between` averages 0.152 and is
//! "supported" in 59.5% of the replications (its 95% CI covers the true 0 in 40.5%); `srm_unit`
//! averages 0.012, is supported in 3.5%, and its CI covers 0 in 94.0%. `between_within` stays in
//! the results as the analysis plan's model.
//!
//! H3 uses the rows `link` put in each unit's window (`after_wave` = `post` 0, `after_wave + 1` =
//! `post` 1). With control units in the sample the design is `cluster_did`, the cluster-
//! randomised difference in differences: the arm main effect (`intervention`) and a unit × period
//! random intercept `(1 | unit_id:post)`, so that the test of `post:intervention` has
//! unit-level degrees of freedom (Satterthwaite ≈ 40 on the demo's 51 units, not ≈ 575). The
//! analysis plan's formula stays as `diff_in_diff` (sensitivity). `cluster_did_both_waves` fits
//! the primary model on the respondents in the sample in both waves. `event_study` uses every
//! wave of the units in the design (the window's rows and those link left out as
//! `wave_outside_window`): calendar-wave fixed effects, the arm main effect, one arm × event-time
//! term per event time other than 0 (`arm_preK` / `arm_postK` = intervention × (wave −
//! after_wave = ∓K); 0, the last wave before the intervention, is the reference) and a unit ×
//! wave random intercept. It is refused (a `failed` fit row with the reason, and a warning) when
//! the units differ in `after_wave`, or the table has no `after_wave`. With intervention units
//! only the design is `pre_post` (+ `paired_t`): the primary term is `post`, which is the
//! intervention plus any secular trend, so it is reported descriptively, takes no part in the
//! multiplicity correction, and H3's verdict is `not_testable_without_control_units` (never
//! `supported`). With `model.h3.design = "cross_section"` (anonymous waves) the
//! `(1 | respondent_id)` term, the paired test and the both-waves model are left out.
//! H2's `unit_wave_within_adjusted` adds the arm (`intervention`) and `intervention_post` =
//! intervention × (wave > after_wave), the unit's design as the H3 table carries it, to the
//! primary H2 model: the managers' SRM may mediate the intervention (left out with a warning
//! when the H3 table has no design). The primary model of a hypothesis is the first of its
//! models that has the configured `primary_term`; a term no model has is a configuration error.
//! The same models are fitted within each municipality that has at least `model.min_clusters`
//! clusters (H1: values of the cluster column; H2, H3: units) and in which the design's
//! contrasts vary; the others are skipped with a warning and a `fit` row saying why.
//!
//! Holm's adjustment (`p_holm`) runs over the three pooled primary tests; `p_adjusted` is the
//! configured `model.correction` (holm, bonferroni or none; equal to `p_holm` by default). A
//! hypothesis is *supported* when `p_adjusted < alpha` and the estimate has the sign of
//! `direction`. The standardized effects are defined in `model/fitting.rs`: estimate × s_x / s_y
//! for numeric predictors, estimate / s_y for 0/1 columns, sample SDs over the model's rows;
//! Cohen's d_z for the paired test; meta-analytic rows use the pooled model's s_x / s_y.
//!
//! # `results.parquet` (and `results.json`): one row per hypothesis × model × scope × term
//!
//! Rows are in the order hypothesis, model (as in the table above), scope (`pooled`, the
//! municipalities in sorted order, then `meta_<method>` in `model.meta.methods` order), term
//! (model-matrix order).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | hypothesis | str | `H1`, `H2`, `H3` |
//! | scope | str | `pooled`, a municipality name, `meta_reml`, `meta_dl` (or `meta_fe`) |
//! | model | str | model name (see above) |
//! | primary | bool | the hypothesis's primary term in its primary model (in every scope) |
//! | term | str | coefficient as R names it: `(Intercept)`, `case_rcap`, `C(wave)2`, `post:intervention` |
//! | estimate | f64 | coefficient (paired test: mean after − before; meta: pooled estimate) |
//! | std_error | f64? | standard error (OLS: `vcov` setting; LMM: model-based; meta: as metafor) |
//! | statistic | f64? | t (meta rows: t under `model.meta.test` = `knha`/`adhoc`, z under `z`) |
//! | df | f64? | t degrees of freedom: OLS n − p (CR1: clusters − 1; CR2: the coefficient's Satterthwaite df), LMM Satterthwaite, paired n − 1, meta (HKSJ) k − 1; null for z |
//! | p_value | f64? | two-sided p |
//! | p_holm | f64? | Holm-adjusted p over the three pooled primary tests (pooled primary rows only) |
//! | p_adjusted | f64? | p adjusted by `model.correction` (pooled primary rows only) |
//! | supported | bool? | pooled primary rows: p_adjusted < alpha and the sign of `direction` |
//! | conf_low, conf_high | f64? | 1 − alpha interval |
//! | std_estimate | f64? | standardized effect (see above); null for the intercept |
//! | n_obs | i64 | observations used (paired test: respondents; meta: sum over municipalities) |
//! | n_groups | i64? | OLS: clusters (or distinct lead units); LMM: units; paired: units; meta: municipalities (k) |
//! | singular | bool? | mixed models: the fit is singular (a random-effect variance at zero); null otherwise |
//!
//! `results.json` is `{"alpha", "conf_level", "correction", "h1_corrected": [per scope: scope,
//! status, reason, lambda, naive, corrected], "hypotheses": [per hypothesis:
//! hypothesis, design, model, primary_term, direction, estimate, std_error, conf_low, conf_high,
//! std_estimate, p_value, p_holm, p_adjusted, supported, verdict, n_obs, n_groups], "attrition":
//! [H3 rows as below], "meta_without_singular": [per hypothesis whose primary fit is singular in
//! some municipality and method: hypothesis, model, term, method, singular (the municipalities
//! left out), k, estimate, std_error, conf_low, conf_high, p_value, tau2; on `model.meta.test`], "h3_event_study":
//! {fitted, formula, singular, reference_event_time, terms: [term, event_time, estimate,
//! std_error, df, p_value, conf_low, conf_high], pre_trend: {tested, terms, method, p_value}}
//! (null without control units), "results": [the rows above]}`. `verdict` is `supported`,
//! `not_supported`, `not_tested` or `not_testable_without_control_units` (H3).
//!
//! # `fit.parquet`: one row per model attempted (hypothesis × model × scope, same order)
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | hypothesis, scope, model | str | |
//! | primary | bool | the hypothesis's primary model |
//! | status | str | `fitted`, `skipped_too_few_clusters`, `skipped_no_variation_in_<column>`, `skipped_no_rows`, `failed` |
//! | message | str? | why it was skipped or failed |
//! | formula | str | the formula fitted (or that would have been) |
//! | method | str? | `ols`, `reml`, `ml`, `paired_t` |
//! | vcov | str? | `classical`, `hc0`..`hc3`, `cr1`, `cr2`, `model` (LMM), `paired` |
//! | same_fit_as | str? | the model whose fit this row is (`cluster_did` for `cluster_did_cr2`, the same fit read with CR2 standard errors); null for a fit of its own |
//! | rows_in | i64 | sample rows in the scope |
//! | n_dropped | i64 | of those, rows missing a column the model uses |
//! | n_obs | i64? | observations used |
//! | n_groups | i64? | as in results |
//! | n_clusters | i64? | CR1/CR2 clusters |
//! | r_squared, adj_r_squared | f64? | OLS |
//! | sigma | f64? | residual SD (paired: SD of the differences) |
//! | df_residual | f64? | OLS n − rank; paired n − 1 |
//! | log_likelihood, aic, bic | f64? | OLS as R's logLik.lm; LMM as lme4 (REML criterion for REML) |
//! | deviance | f64? | LMM: −2 log-likelihood (REML criterion for REML fits) |
//! | converged, singular | bool? | LMM optimizer verdicts |
//! | iterations | i64? | LMM deviance evaluations |
//! | sd_outcome | f64? | sample SD of the outcome over the rows used (the s_y of std_estimate) |
//! | warnings | str? | the engine's warnings, `; `-joined |
//!
//! # `variance_components.parquet`: one row per mixed model × grouping factor (and residual)
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | hypothesis, scope, model | str | |
//! | group | str | `unit_id`, `respondent_id`, `Residual` (lme4's order) |
//! | n_levels | i64? | levels of the grouping factor (null for the residual) |
//! | variance, std_dev | f64? | |
//! | proportion | f64? | variance / sum of the model's variances (for the unit: the ICC) |
//!
//! # `heterogeneity.parquet`: one row per hypothesis × meta-analysis method
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | hypothesis, model, term | str | the primary model and term combined |
//! | method | str | `reml`, `dl`, `fe` |
//! | k | i64 | municipalities with an estimate |
//! | test | str | `knha`, `adhoc` or `z` (`model.meta.test`) |
//! | estimate, std_error, conf_low, conf_high | f64? | pooled effect; SE and interval under `test` |
//! | df | f64? | t df of the interval and test (k − 1); null for z |
//! | s2w | f64? | HKSJ scale factor of the variance (1 for z) |
//! | tau2, se_tau2, tau | f64? | between-municipality variance, its SE, its square root |
//! | q, q_df, q_p | f64? | Cochran's Q, k − 1, p |
//! | i2 | f64? | I² in percent |
//! | h2 | f64? | H² |
//! | pi_low, pi_high | f64? | 1 − alpha prediction interval: t on k − 2 df (`pi_df`) with the adjusted SE under `knha`/`adhoc`, normal under `z` |
//! | pi_df | f64? | t df of the prediction interval; null for z |
//! | converged | bool | REML iterations converged |
//! | iterations | i64? | REML Fisher-scoring iterations |
//!
//! # `h1_reliability.parquet`: one row per scope of H1 corrected for measurement error
//!
//! The reliability λ of case RCap, the naive and corrected slopes and the bootstrap; its schema
//! is in `model/h1_correction.rs`, next to the code that computes it.
//!
//! # `summary.json`
//!
//! `tables.<link table>`: rows_in, rows_out = rows used by the pooled primary model, excluded by
//! `link_<reason>` and `missing_<column>` (or `model_not_fitted`). `counts`: models fitted,
//! skipped and failed by reason, singular and non-converged fits, meta-analyses. `warnings`:
//! every skip, failure, singular fit, non-convergence. `facts`: the verdicts, the H3 design and
//! attrition (per scope and arm: respondents before, after, in both waves, left, joined, and
//! attrition = left / before; under `cross_section` respondents are not linked and no attrition
//! is given).

mod fitting;
mod frame;
pub mod h1_correction;
mod h3;
mod singular;
mod tables;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::{StageContext, StageSummary, TableCount};
use crate::config::{
    ConfigError, Correction, Direction, HypothesisSpec, Linkage, MetaMethod, Method, ModelSection,
};
use crate::io::{write_json, write_parquet};
use crate::jobs::{map_in_two_lanes, map_on_two_threads};
use crate::memo::Memo;
use crate::stats::htest::p_adjust_holm;
use crate::stats::meta::{rma_with, MetaFit, TauMethod};
use crate::stats::ols::VcovType;
use fitting::{fit, Attempt, Kind, ModelSpec, Skip};
use frame::{Table, Want};
use tables::fin;

pub use fitting::pairs as h3_pairs;
pub use h3::{event_term, term_event_time, Attrition, NOT_TESTABLE};

const STAGE: &str = "model";

/// The scope name of the pooled models.
pub const POOLED: &str = "pooled";

/// The linked table of each hypothesis (H1, H2, H3).
const TABLES: [&str; 3] = ["h1_cases", "h2_respondents", "h3_panel"];

/// A hypothesis ready to fit: its table, sample and models.
struct Plan {
    id: &'static str,
    table_name: &'static str,
    table: Table,
    /// Rows in the model sample (`exclusion` empty).
    sample: Vec<usize>,
    /// Rows left out by link, by reason.
    link_excluded: BTreeMap<String, u64>,
    models: Vec<ModelSpec>,
    /// Index into `models`; None when the hypothesis cannot be tested on these data.
    primary_model: Option<usize>,
    primary_term: String,
    positive: bool,
    /// `diff_in_diff`, `pre_post`, ... (H3), or the primary model's name.
    design: String,
    notes: Vec<String>,
    /// The rows of a model fitted on other rows than `sample` (H3's sensitivity models).
    model_rows: BTreeMap<String, Vec<usize>>,
    /// Models not fitted in any scope, and why (H3's event study with units of different timing).
    refused: BTreeMap<String, String>,
    /// Whether the primary test tests the hypothesis (false: H3 without control units, whose
    /// pre/post change is descriptive and never "supported").
    testable: bool,
}

/// The fits of one model in every scope.
struct ModelRun {
    spec: ModelSpec,
    primary: bool,
    /// The model whose fit this run's rows come from (a CR2 twin), if not its own.
    same_fit_as: Option<String>,
    pooled: Attempt,
    municipalities: Vec<(String, Attempt)>,
}

/// One meta-analysis of a hypothesis's per-municipality primary estimates.
struct MetaRun {
    method: String,
    fit: MetaFit,
    n_obs: usize,
}

struct Outcome {
    plan: Plan,
    runs: Vec<ModelRun>,
    meta: Vec<MetaRun>,
    /// Pooled std factor of the primary term (to standardize the meta rows).
    primary_std_factor: Option<f64>,
}

impl Outcome {
    fn primary_run(&self) -> Option<&ModelRun> {
        self.runs.iter().find(|r| r.primary)
    }

    /// The pooled primary coefficient (and its fit).
    fn primary_pooled(&self) -> Option<(&fitting::Fitted, &fitting::Coef)> {
        let run = self.primary_run()?;
        let f = run.pooled.result.as_ref().ok()?;
        let c = f.coef(&self.plan.primary_term)?;
        Some((f, c))
    }
}

fn config_error(key: &str, message: String) -> anyhow::Error {
    ConfigError::Invalid {
        key: key.to_string(),
        message,
    }
    .into()
}

/// Rows with an empty `exclusion` and the others counted by reason.
fn sample(table: &Table) -> (Vec<usize>, BTreeMap<String, u64>) {
    let mut keep = Vec::new();
    let mut excluded = BTreeMap::new();
    for i in 0..table.n_rows() {
        match table.str_at("exclusion", i) {
            Some(reason) if table.has("exclusion") => {
                *excluded.entry(format!("link_{reason}")).or_insert(0) += 1
            }
            _ => keep.push(i),
        }
    }
    (keep, excluded)
}

/// Picks the primary model: the first with the configured term.
fn choose_primary(models: &[ModelSpec], term: &str, key: &str) -> Result<usize> {
    match models.iter().position(|m| m.has_term(term)) {
        Some(i) => Ok(i),
        None => {
            let terms: BTreeSet<&str> = models
                .iter()
                .flat_map(|m| m.terms.iter().map(|t| t.as_str()))
                .collect();
            Err(config_error(
                &format!("model.{key}.primary_term"),
                format!(
                    "{term:?} is not a term of any of this hypothesis's models (terms: {})",
                    terms.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ))
        }
    }
}

fn plan_h1(cfg: &ModelSection, table: Table) -> Result<Plan> {
    let h = &cfg.h1;
    let vcov = VcovType::from(h.vcov());
    let cluster = if vcov.is_clustered() {
        match &h.cluster {
            Some(c) => Some(c.clone()),
            None => {
                return Err(config_error(
                    "model.h1.cluster",
                    "cr1 and cr2 standard errors need a cluster column".into(),
                ))
            }
        }
    } else {
        None
    };
    let group = Some(cluster.clone().unwrap_or_else(|| "lead_unit_id".into()));
    let model = |name: &str, x: &str| ModelSpec {
        name: name.into(),
        kind: Kind::Ols {
            vcov,
            cluster: cluster.clone(),
        },
        response: "quality".into(),
        terms: vec![x.into()],
        factors: vec!["municipality".into(), "wave".into()],
        random: vec![],
        group: group.clone(),
        must_vary: vec![],
    };
    let models = vec![
        model("case_rcap", "case_rcap"),
        model("unit_rcap_mean", "unit_rcap_mean"),
    ];
    let rows = sample(&table);
    fixed_plan(1, h, table, rows, models, vec![])
}

/// The plan of a hypothesis whose models do not depend on the data (H1, H2): the primary
/// model is the first with the configured term.
fn fixed_plan(
    h: u8,
    spec: &HypothesisSpec,
    table: Table,
    (rows, excluded): (Vec<usize>, BTreeMap<String, u64>),
    models: Vec<ModelSpec>,
    notes: Vec<String>,
) -> Result<Plan> {
    let primary = choose_primary(&models, &spec.primary_term, &format!("h{h}"))?;
    Ok(Plan {
        id: ["H1", "H2", "H3"][usize::from(h) - 1],
        table_name: TABLES[usize::from(h) - 1],
        design: models[primary].name.clone(),
        table,
        sample: rows,
        link_excluded: excluded,
        models,
        primary_model: Some(primary),
        primary_term: spec.primary_term.clone(),
        positive: spec.direction == Direction::Positive,
        notes,
        model_rows: BTreeMap::new(),
        refused: BTreeMap::new(),
        testable: true,
    })
}

/// Adds `srm_unit` (the unit's mean of `srm_between` over the sample rows of all waves, i.e.
/// weighted by respondents) and `srm_wave` (`srm_between − srm_unit`) to the H2 table; rows
/// outside the sample or without `srm_between` get nulls.
fn add_unit_wave_split(table: &mut Table, sample: &[usize]) -> Result<()> {
    let n = table.n_rows();
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for &i in sample {
        if let (Some(u), Some(b)) = (table.str_at("unit_id", i), table.num_at("srm_between", i)) {
            let e = sums.entry(u.to_string()).or_insert((0.0, 0));
            e.0 += b;
            e.1 += 1;
        }
    }
    let mut unit = vec![None; n];
    let mut wave = vec![None; n];
    for &i in sample {
        if let (Some(u), Some(b)) = (table.str_at("unit_id", i), table.num_at("srm_between", i)) {
            if let Some((s, k)) = sums.get(u) {
                let m = s / *k as f64;
                unit[i] = Some(m);
                wave[i] = Some(b - m);
            }
        }
    }
    table.insert("srm_unit", frame::Col::Num(unit))?;
    table.insert("srm_wave", frame::Col::Num(wave))?;
    Ok(())
}

fn plan_h2(cfg: &ModelSection, mut table: Table, design: Option<h3::Design>) -> Result<Plan> {
    let h = &cfg.h2;
    let reml = h.method() == Method::Reml;
    let mut notes = vec![];
    if h.vcov.is_some() || h.cluster.is_some() {
        notes.push(
            "model.h2.vcov / cluster are for OLS models; the mixed models report model-based standard errors"
                .to_string(),
        );
    }
    let model = |name: &str, x: &[&str]| ModelSpec {
        name: name.into(),
        kind: Kind::Lmm { reml, cr2_by: None },
        response: "rcap".into(),
        terms: x.iter().map(|s| s.to_string()).collect(),
        factors: vec!["municipality".into(), "wave".into()],
        random: vec!["unit_id".into()],
        group: Some("unit_id".into()),
        must_vary: vec![],
    };
    let mut models = vec![
        model("between_within", &["srm_between", "srm_within"]),
        model("leave_one_out", &["srm_others"]),
        model("own_rating", &["srm"]),
        model("unit_wave_within", &["srm_unit", "srm_wave", "srm_within"]),
    ];
    let rows = sample(&table);
    add_unit_wave_split(&mut table, &rows.0)?;
    // Sensitivity: the primary model adjusted for the intervention (after the others, so that
    // the primary model stays the first with the primary term).
    let primary = choose_primary(&models, &h.primary_term, "h2")?;
    match design.filter(|d| !d.is_empty()) {
        Some(d) => {
            let adjusted = h3::h2_adjusted(&mut table, &d, &models[primary])?;
            models.push(adjusted);
        }
        None => notes.push(
            "no intervention design in the H3 table: the H2 model adjusted for the intervention is not fitted"
                .to_string(),
        ),
    }
    fixed_plan(2, h, table, rows, models, notes)
}

/// Sorted municipalities of the sample rows.
fn municipalities(plan: &Plan) -> Vec<String> {
    plan.sample
        .iter()
        .filter_map(|&i| plan.table.str_at("municipality", i))
        .map(String::from)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The sample rows of `rows` by municipality, in row order (one pass, not one per municipality).
fn by_municipality<'a>(table: &'a Table, rows: &[usize]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut by_muni: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in rows {
        if let Some(m) = table.str_at("municipality", i) {
            by_muni.entry(m).or_default().push(i);
        }
    }
    by_muni
}

/// A model the plan refuses to fit: the attempt says why.
fn refused(plan: &Plan, spec: &ModelSpec, rows: &[usize], why: &str) -> Attempt {
    Attempt {
        spec_name: spec.name.clone(),
        formula: fitting::formula_text(spec, &plan.table, rows),
        rows_in: rows.len(),
        dropped: BTreeMap::new(),
        result: Err(Skip::Failed(why.to_string())),
    }
}

/// What one plan's fits need besides the plan: the plan's municipalities and, per model, its
/// rows in each scope.
struct Scopes<'a> {
    munis: Vec<String>,
    models: Vec<ModelScopes<'a>>,
}

/// One model's rows (pooled and by municipality) and its per-municipality formula.
struct ModelScopes<'a> {
    rows: &'a [usize],
    by_muni: BTreeMap<&'a str, Vec<usize>>,
    local: ModelSpec,
}

impl<'a> Scopes<'a> {
    fn new(plan: &'a Plan) -> Self {
        let models = (plan.models.iter())
            .map(|spec| {
                let rows: &[usize] = plan.model_rows.get(&spec.name).unwrap_or(&plan.sample);
                ModelScopes {
                    rows,
                    by_muni: by_municipality(&plan.table, rows),
                    local: spec.without_factor("municipality"),
                }
            })
            .collect();
        Scopes {
            munis: municipalities(plan),
            models,
        }
    }
}

/// One piece of the model stage's work: a model fitted in one scope, or one scope of H1's
/// measurement-error correction. Each is computed exactly as it would be alone.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Plan `plan`'s model `model`, pooled (`None`) or in the plan's municipality `Some(k)`.
    Fit {
        plan: usize,
        model: usize,
        scope: Option<usize>,
    },
    /// Scope `k` of H1's correction (0: pooled).
    Correct(usize),
}

/// What a [`Job`] gives.
enum Done {
    Fit(Result<Attempt>),
    Correct(Result<h1_correction::ScopeRow>),
}

/// Fits `model` of `plan`, pooled or in one municipality.
fn fit_in_scope(
    plan: &Plan,
    scopes: &Scopes,
    model: usize,
    scope: Option<usize>,
    cfg: &ModelSection,
    level: f64,
    memo: &Memo,
) -> Result<Attempt> {
    let spec = &plan.models[model];
    let ModelScopes {
        rows,
        by_muni,
        local,
    } = &scopes.models[model];
    let why = plan.refused.get(&spec.name);
    match scope {
        None => match why {
            Some(why) => Ok(refused(plan, spec, rows, why)),
            None => fit(&plan.table, rows, spec, level, None, memo),
        },
        Some(k) => {
            let rows = by_muni
                .get(scopes.munis[k].as_str())
                .map_or(&[][..], Vec::as_slice);
            match why {
                Some(why) => Ok(refused(plan, local, rows, why)),
                None => {
                    let min = Some(cfg.min_clusters as usize);
                    fit(&plan.table, rows, local, level, min, memo)
                }
            }
        }
    }
}

/// The plan's fits (per model: pooled, then each municipality in order) made into its outcome:
/// the CR2 twins of mixed models and the meta-analysis of the primary estimates.
fn outcome(
    plan: Plan,
    fits: Vec<(Attempt, Vec<Attempt>)>,
    munis: &[String],
    cfg: &ModelSection,
    level: f64,
) -> Outcome {
    let mut runs = Vec::new();
    for (mi, (spec, (pooled, per))) in plan.models.iter().zip(fits).enumerate() {
        let per: Vec<(String, Attempt)> = munis.iter().cloned().zip(per).collect();
        // A mixed model that also has CR2 inference: those rows as a model of their own.
        let twin = spec.cr2_twin().map(|name| {
            let derive = |a: &Attempt| Attempt {
                spec_name: name.clone(),
                result: match &a.result {
                    Ok(f) => f.cr2_twin(),
                    Err(skip) => Err(skip.clone()),
                },
                ..a.clone()
            };
            let mut twin_spec = spec.clone();
            twin_spec.name = name.clone();
            ModelRun {
                spec: twin_spec,
                primary: false,
                same_fit_as: Some(spec.name.clone()),
                pooled: derive(&pooled),
                municipalities: per.iter().map(|(m, a)| (m.clone(), derive(a))).collect(),
            }
        });
        runs.push(ModelRun {
            spec: spec.clone(),
            primary: plan.primary_model == Some(mi),
            same_fit_as: None,
            pooled,
            municipalities: per,
        });
        runs.extend(twin);
    }
    let mut outcome = Outcome {
        plan,
        runs,
        meta: vec![],
        primary_std_factor: None,
    };
    outcome.primary_std_factor = outcome.primary_pooled().and_then(|(_, c)| c.std_factor);
    // Meta-analysis of the per-municipality primary estimates.
    let mut yi = Vec::new();
    let mut vi = Vec::new();
    let mut n_obs = 0;
    if let Some(run) = outcome.primary_run() {
        for (_, a) in &run.municipalities {
            if let Ok(f) = &a.result {
                if let Some(c) = f.coef(&outcome.plan.primary_term) {
                    let v = c.std_error * c.std_error;
                    if c.estimate.is_finite() && v.is_finite() && v > 0.0 {
                        yi.push(c.estimate);
                        vi.push(v);
                        n_obs += f.n_obs;
                    }
                }
            }
        }
    }
    let mut meta = Vec::new();
    if yi.len() >= 2 {
        for method in &cfg.meta.methods {
            let tm = match method {
                MetaMethod::Reml => TauMethod::Reml,
                MetaMethod::Dl => TauMethod::Dl,
                MetaMethod::Fe => TauMethod::Fixed,
            };
            match rma_with(&yi, &vi, tm, level, cfg.meta.test.into()) {
                Ok(fit) => meta.push(MetaRun {
                    method: method.as_str().to_string(),
                    fit,
                    n_obs,
                }),
                Err(e) => outcome.plan.notes.push(format!(
                    "meta-analysis ({method}) of {} estimates failed: {e}",
                    yi.len()
                )),
            }
        }
    } else if outcome.plan.primary_model.is_some() && !cfg.meta.methods.is_empty() {
        outcome.plan.notes.push(format!(
            "meta-analysis needs at least 2 municipalities with an estimate of `{}`, got {}",
            outcome.plan.primary_term,
            yi.len()
        ));
    }
    outcome.meta = meta;
    outcome
}

/// The verdict of one hypothesis, as written to results.json and summary.json.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub hypothesis: String,
    pub design: String,
    pub model: Option<String>,
    pub primary_term: String,
    pub direction: String,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub std_estimate: Option<f64>,
    pub p_value: Option<f64>,
    pub p_holm: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub supported: Option<bool>,
    /// `supported`, `not_supported` or `not_tested`.
    pub verdict: String,
    pub n_obs: Option<i64>,
    pub n_groups: Option<i64>,
}

/// p-values adjusted by `correction` (NaN entries stay NaN and are not counted).
fn adjust(p: &[f64], correction: Correction) -> Vec<f64> {
    match correction {
        Correction::Holm => p_adjust_holm(p),
        Correction::Bonferroni => {
            let m = p.iter().filter(|v| !v.is_nan()).count() as f64;
            p.iter().map(|v| (v * m).min(1.0)).collect()
        }
        Correction::None => p.to_vec(),
    }
}

fn verdicts(outcomes: &[Outcome], cfg: &ModelSection) -> Vec<Verdict> {
    // A primary estimate that does not test its hypothesis (H3 without control units) is
    // descriptive: it takes no part in the multiplicity correction.
    let p: Vec<f64> = outcomes
        .iter()
        .map(|o| match o.primary_pooled() {
            Some((_, c)) if o.plan.testable => c.p_value,
            _ => f64::NAN,
        })
        .collect();
    let holm = p_adjust_holm(&p);
    let adjusted = adjust(&p, cfg.correction);
    outcomes
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let pp = o.primary_pooled();
            let supported = pp.filter(|_| o.plan.testable).and_then(|(_, c)| {
                let sign_ok = if o.plan.positive {
                    c.estimate > 0.0
                } else {
                    c.estimate < 0.0
                };
                fin(adjusted[k]).map(|pa| pa < cfg.alpha && sign_ok)
            });
            Verdict {
                hypothesis: o.plan.id.into(),
                design: o.plan.design.clone(),
                model: o.primary_run().map(|r| r.spec.name.clone()),
                primary_term: o.plan.primary_term.clone(),
                direction: if o.plan.positive {
                    "positive"
                } else {
                    "negative"
                }
                .into(),
                estimate: pp.and_then(|(_, c)| fin(c.estimate)),
                std_error: pp.and_then(|(_, c)| fin(c.std_error)),
                conf_low: pp.and_then(|(_, c)| fin(c.conf_low)),
                conf_high: pp.and_then(|(_, c)| fin(c.conf_high)),
                std_estimate: pp.and_then(|(_, c)| c.std_estimate()).and_then(fin),
                p_value: fin(p[k]),
                p_holm: fin(holm[k]),
                p_adjusted: fin(adjusted[k]),
                supported,
                verdict: match supported {
                    _ if !o.plan.testable => h3::NOT_TESTABLE,
                    Some(true) => "supported",
                    Some(false) => "not_supported",
                    None => "not_tested",
                }
                .into(),
                n_obs: pp.map(|(f, _)| f.n_obs as i64),
                n_groups: pp.and_then(|(f, _)| f.n_groups.map(|g| g as i64)),
            }
        })
        .collect()
}

/// Warnings, counts and row accounting for summary.json.
fn account(outcomes: &[Outcome], summary: &mut StageSummary) {
    let bump = |k: String, summary: &mut StageSummary| *summary.counts.entry(k).or_insert(0) += 1;
    for o in outcomes {
        let h = o.plan.id;
        for n in &o.plan.notes {
            summary.warnings.push(format!("{h}: {n}"));
        }
        // A CR2 twin is another reading of a fit counted already.
        for run in o.runs.iter().filter(|r| r.same_fit_as.is_none()) {
            let scopes = std::iter::once((POOLED, &run.pooled))
                .chain(run.municipalities.iter().map(|(m, a)| (m.as_str(), a)));
            for (scope, a) in scopes {
                let at = format!("{h} {} ({scope})", run.spec.name);
                match &a.result {
                    Ok(f) => {
                        bump("models_fitted".into(), summary);
                        if f.singular == Some(true) {
                            bump("singular_fits".into(), summary);
                        }
                        if f.converged == Some(false) {
                            bump("nonconverged_fits".into(), summary);
                        }
                        for w in &f.warnings {
                            summary.warnings.push(format!("{at}: {w}"));
                        }
                    }
                    Err(skip) => {
                        bump(format!("models_{}", skip.code()), summary);
                        summary.warnings.push(format!(
                            "{at}: {} ({})",
                            match skip {
                                Skip::Failed(_) => "not fitted",
                                _ => "skipped",
                            },
                            skip.message()
                        ));
                    }
                }
            }
        }
        for _ in &o.meta {
            bump("meta_analyses".into(), summary);
        }
        // Row accounting of the link table against the pooled primary model.
        let mut tc = TableCount {
            rows_in: o.plan.table.n_rows() as u64,
            excluded: o.plan.link_excluded.clone(),
            ..TableCount::default()
        };
        let sample = o.plan.sample.len() as u64;
        match o.primary_run().map(|r| &r.pooled) {
            Some(a) => {
                for (k, n) in &a.dropped {
                    *tc.excluded.entry(k.clone()).or_insert(0) += *n as u64;
                }
                let dropped: u64 = a.dropped.values().map(|n| *n as u64).sum();
                match &a.result {
                    Ok(f) => {
                        tc.rows_out = f.n_obs as u64;
                        let other = sample - dropped - tc.rows_out;
                        if other > 0 {
                            *tc.excluded.entry("model_other".into()).or_insert(0) += other;
                        }
                    }
                    Err(_) => {
                        *tc.excluded.entry("model_not_fitted".into()).or_insert(0) +=
                            sample - dropped
                    }
                }
            }
            None => {
                if sample > 0 {
                    *tc.excluded.entry("model_not_fitted".into()).or_insert(0) += sample;
                }
            }
        }
        summary.tables.insert(o.plan.table_name.into(), tc);
    }
    for o in outcomes {
        if let Some((f, _)) = o.primary_pooled() {
            if o.plan.id == "H1" {
                if let (Some(g), "cr1") = (f.n_clusters, f.vcov.as_str()) {
                    if g < 20 {
                        summary.warnings.push(format!(
                            "H1: {g} clusters for the pooled cluster-robust standard errors; CR1 can be too small with fewer than about 20 (model.h1.vcov = \"cr2\" corrects for few clusters)"
                        ));
                    }
                }
            }
        }
    }
}

/// H1 corrected for measurement error (`model/h1_correction.rs`): its `results` and `fit` rows
/// after H1's others, its warnings, and the `h1_reliability` frame.
fn add_h1_correction(
    rows: Vec<h1_correction::ScopeRow>,
    out: &mut tables::Out,
    summary: &mut StageSummary,
) -> Result<(polars::prelude::DataFrame, serde_json::Value)> {
    let at = (out.results.iter())
        .rposition(|r| r.hypothesis == "H1")
        .map_or(0, |p| p + 1);
    out.results
        .splice(at..at, h1_correction::result_rows(&rows));
    let at = (out.fits.iter())
        .rposition(|r| r.hypothesis == "H1")
        .map_or(0, |p| p + 1);
    out.fits.splice(at..at, h1_correction::fit_rows(&rows));
    for r in &rows {
        if let Some(reason) = r.reason.as_ref().filter(|_| r.status != "corrected") {
            summary.warnings.push(format!(
                "H1 {} ({}): not corrected for measurement error ({reason}); the naive estimate only",
                h1_correction::MODEL,
                r.scope
            ));
        }
    }
    let facts = json!(rows
        .iter()
        .map(|r| json!({
            "scope": r.scope,
            "status": r.status,
            "reason": r.reason,
            "lambda": r.cal.as_ref().map(|c| c.lambda).and_then(fin),
            "naive": r.cal.as_ref().map(|c| c.naive).and_then(fin),
            "corrected": r.corrected().and_then(fin),
        }))
        .collect::<Vec<_>>());
    summary.facts.insert("h1_corrected".into(), facts.clone());
    Ok((h1_correction::reliability_frame(&rows)?, facts))
}

/// The columns every linked table has that the model stage reads (besides its own).
const KEY_COLUMNS: &[(&str, Want)] = &[("wave", Want::Num), ("municipality", Want::Str)];
/// The columns of a table of respondents (H2, H3) that the model stage reads.
const RESPONDENT_COLUMNS: &[(&str, Want)] = &[
    ("unit_id", Want::Str),
    ("respondent_id", Want::Str),
    ("rcap", Want::Num),
];

/// The columns the model stage reads from the linked table of hypothesis `h` (1, 2 or 3): the
/// keys, the table's own, and `exclusion` (optional: all rows are in the sample without it).
fn columns(h: u8) -> Vec<(&'static str, Want)> {
    let own: &[&[(&str, Want)]] = match h {
        1 => &[&[
            ("lead_unit_id", Want::Str),
            ("work_groups", Want::Str),
            ("quality", Want::Num),
            ("case_rcap", Want::Num),
            ("unit_rcap_mean", Want::Num),
            ("case_rcap_error_var", Want::Num),
        ]],
        2 => &[
            RESPONDENT_COLUMNS,
            &[
                ("srm", Want::Num),
                ("srm_others", Want::Num),
                ("srm_between", Want::Num),
                ("srm_within", Want::Num),
            ],
        ],
        _ => &[
            RESPONDENT_COLUMNS,
            &[
                ("intervention", Want::Num),
                ("post", Want::Num),
                ("after_wave", Want::Num),
            ],
        ],
    };
    let mut cols = KEY_COLUMNS.to_vec();
    cols.extend(own.iter().flat_map(|c| c.iter().copied()));
    cols.push(("exclusion", Want::Str));
    cols
}

/// The steps of a hypothesis in the order the stage once took them one after the other (every
/// table read, then every plan made, then the fits): when several fail, the error reported is
/// the one that order met first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Read,
    Plan,
    Fit,
}

/// A failed step of hypothesis `.1` (1, 2 or 3).
type StepError = (Step, u8, anyhow::Error);

/// Every value of `results`, or the error the sequential order (steps, then hypotheses) met
/// first. Each job stops at its own first error, so that error is the smallest (step,
/// hypothesis) among those returned.
fn first_error<T>(results: Vec<Result<T, StepError>>) -> Result<Vec<T>> {
    let mut values = Vec::with_capacity(results.len());
    let mut first: Option<StepError> = None;
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e) => {
                if first.as_ref().is_none_or(|f| (e.0, e.1) < (f.0, f.1)) {
                    first = Some(e);
                }
            }
        }
    }
    match first {
        Some((_, _, e)) => Err(e),
        None => Ok(values),
    }
}

/// Reads the linked table of hypothesis `h` and plans its models.
fn prepare(ctx: &StageContext, cfg: &ModelSection, h: u8) -> Result<Plan, StepError> {
    let mut cols = columns(h);
    if let (1, Some(c)) = (h, &cfg.h1.cluster) {
        if !cols.iter().any(|(n, _)| n == c) {
            cols.push((c.as_str(), Want::Any));
        }
    }
    let path = ctx.table_path("link", TABLES[usize::from(h) - 1]);
    // `after_wave` (H3's event study) and `case_rcap_error_var`/`work_groups` (H1 corrected for
    // measurement error) are optional: without them those models are not fitted.
    let table = frame::read(
        &path,
        &cols,
        &[
            "exclusion",
            "after_wave",
            "case_rcap_error_var",
            "work_groups",
        ],
    )
    .map_err(|e| (Step::Read, h, e))?;
    match h {
        1 => plan_h1(cfg, table),
        2 => plan_h2(
            cfg,
            table,
            h3::read_design(&ctx.table_path("link", TABLES[2])),
        ),
        _ => h3::plan_h3(cfg, table),
    }
    .map_err(|e| (Step::Plan, h, e))
}

/// Reads the three linked tables, fits everything and returns the outcome per hypothesis, with
/// H1's correction for measurement error in each of its scopes.
fn analyse(
    ctx: &StageContext,
    cfg: &ModelSection,
) -> Result<(Vec<Outcome>, Vec<h1_correction::ScopeRow>)> {
    let level = 1.0 - cfg.alpha;
    // 1. Every table read and planned before any fit, so that a table that cannot be read or
    // planned is reported at once.
    let plans = first_error(map_on_two_threads(&[1u8, 2, 3], |&h| prepare(ctx, cfg, h)))?;
    let dyads = h1_correction::DyadTable::read(&ctx.table_path("link", "h1_dyad_errors"))?;
    let scopes: Vec<Scopes> = plans.iter().map(Scopes::new).collect();
    let corrections = (plans.iter().find(|p| p.id == "H1"))
        .map(|p| h1_correction::scopes(&p.table, &p.sample, cfg))
        .unwrap_or_default();
    // 2. Every fit and every scope of the correction is a job, computed exactly as alone, so
    // only the wall time depends on how they are run. Two lanes, one per thread: the
    // least-squares fits (H1's regressions) in one, the mixed models and the correction in the
    // other. The pooled scopes are the large jobs: they run one per lane (the two pooled H1
    // regressions, the largest in memory, never at once while the other lane has pooled work),
    // a thread done with its lane's pooled jobs takes the other lane's from the back (H3's
    // event study first) before any municipality, and the municipalities even out the end.
    let mut jobs = Vec::new();
    if !corrections.is_empty() {
        jobs.push(Job::Correct(0));
    }
    for (p, plan) in plans.iter().enumerate() {
        let models = 0..plan.models.len();
        jobs.extend(models.map(|model| Job::Fit {
            plan: p,
            model,
            scope: None,
        }));
    }
    for (p, plan) in plans.iter().enumerate() {
        for model in 0..plan.models.len() {
            jobs.extend((0..scopes[p].munis.len()).map(|k| Job::Fit {
                plan: p,
                model,
                scope: Some(k),
            }));
        }
    }
    jobs.extend((1..corrections.len()).map(Job::Correct));
    let slot = |j: &Job| match *j {
        Job::Fit { plan, model, scope } => (
            usize::from(matches!(plans[plan].models[model].kind, Kind::Lmm { .. })),
            scope.is_none(),
        ),
        Job::Correct(k) => (1, k == 0),
    };
    let done = map_in_two_lanes(&jobs, slot, |j| match *j {
        Job::Fit { plan, model, scope } => Done::Fit(fit_in_scope(
            &plans[plan],
            &scopes[plan],
            model,
            scope,
            cfg,
            level,
            ctx.memo,
        )),
        Job::Correct(k) => Done::Correct(corrections[k].correct(&dyads, cfg, ctx.memo)),
    });
    // 3. Back in the sequential order: plan, model, pooled then each municipality, which is the
    // order of the keys (`None` before `Some`); per plan the first error in that order is the
    // one reported.
    let mut fits: BTreeMap<(usize, usize, Option<usize>), Result<Attempt>> = BTreeMap::new();
    let mut rows = Vec::with_capacity(corrections.len());
    for (job, d) in jobs.iter().zip(done) {
        match (*job, d) {
            (Job::Fit { plan, model, scope }, Done::Fit(r)) => {
                fits.insert((plan, model, scope), r);
            }
            (Job::Correct(_), Done::Correct(row)) => rows.push(row?),
            _ => unreachable!("each job gives its own kind of result"),
        }
    }
    let munis: Vec<Vec<String>> = scopes.into_iter().map(|s| s.munis).collect();
    let mut fits = fits.into_values();
    let results = (plans.into_iter().zip(munis).zip(1u8..))
        .map(|((plan, munis), h)| {
            let per_model = 1 + munis.len();
            let all: Vec<Result<Attempt>> =
                (&mut fits).take(plan.models.len() * per_model).collect();
            let all: Vec<Attempt> = (all.into_iter())
                .collect::<Result<_>>()
                .map_err(|e| (Step::Fit, h, e))?;
            let mut all = all.into_iter();
            let by_model = (0..plan.models.len())
                .map(|_| {
                    let mut model = all.by_ref().take(per_model);
                    let pooled = model.next().expect("every model has its pooled job");
                    (pooled, model.collect())
                })
                .collect();
            Ok(outcome(plan, by_model, &munis, cfg, level))
        })
        .collect();
    Ok((first_error(results)?, rows))
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    // The config is validated once, when it is loaded (`model.alpha` in (0, 0.5) among others).
    let cfg = &ctx.config.model;
    let mut summary = StageSummary::default();
    let (outcomes, h1_rows) = analyse(ctx, cfg)?;
    let verdicts = verdicts(&outcomes, cfg);
    let mut out = tables::collect(&outcomes, &verdicts);
    account(&outcomes, &mut summary);
    let (h1_corrected, h1_corrected_json) = add_h1_correction(h1_rows, &mut out, &mut summary)?;
    let panel = cfg.h3.design() == Linkage::Panel;
    let h3_attrition = outcomes
        .iter()
        .find(|o| o.plan.id == "H3")
        .filter(|_| panel)
        .map(|o| h3::attrition(&o.plan))
        .unwrap_or_default();

    let mut without_singular = Vec::new();
    for o in &outcomes {
        let (sing, metas) = singular::meta_without_singular(o, cfg, 1.0 - cfg.alpha);
        if !sing.is_empty() {
            summary.warnings.push(format!(
                "{}: the primary model's fit is singular in {} (a random-effect variance at zero); the meta-analysis is also given without {}",
                o.plan.id,
                sing.join(", "),
                if sing.len() == 1 { "it" } else { "them" }
            ));
        }
        without_singular.extend(metas);
    }
    let event_study = outcomes
        .iter()
        .find(|o| o.plan.id == "H3")
        .map_or(serde_json::Value::Null, h3::event_study_summary);

    let dir = ctx.stage_dir(STAGE);
    let meta = ctx.parquet_meta(STAGE);
    let frames = [
        ("results", tables::results_frame(&out.results)?),
        ("fit", tables::fit_frame(&out.fits)?),
        (
            "variance_components",
            tables::var_comp_frame(&out.var_comps)?,
        ),
        ("heterogeneity", tables::het_frame(&out.het)?),
        ("h1_reliability", h1_corrected),
    ];
    let results_json = json!({
        "alpha": cfg.alpha,
        "conf_level": 1.0 - cfg.alpha,
        "correction": cfg.correction,
        "hypotheses": verdicts,
        "attrition": h3_attrition,
        "meta_without_singular": without_singular,
        "h3_event_study": event_study,
        "results": out.results,
        "h1_corrected": h1_corrected_json,
    });
    // Jobs 0..4 the tables, job 4 results.json; the first error in job order is reported.
    let jobs: Vec<usize> = (0..=frames.len()).collect();
    let written = map_on_two_threads(&jobs, |&j| -> Result<std::path::PathBuf> {
        match frames.get(j) {
            Some((name, df)) => {
                let path = ctx.table_path(STAGE, name);
                write_parquet(&mut df.clone(), &path, &meta)?;
                Ok(path)
            }
            None => {
                let path = dir.join("results.json");
                write_json(&results_json, &path)?;
                Ok(path)
            }
        }
    });
    for path in written {
        summary.add_output(&dir, &path?);
    }

    summary
        .facts
        .insert("hypotheses".into(), serde_json::to_value(&verdicts)?);
    if let Some(o) = outcomes.iter().find(|o| o.plan.id == "H3") {
        summary.facts.insert(
            "h3_design".into(),
            json!({
                "design": o.plan.design,
                "linkage": cfg.h3.design().as_str(),
                "primary_term": o.plan.primary_term,
            }),
        );
    }
    summary
        .facts
        .insert("h3_attrition".into(), serde_json::to_value(&h3_attrition)?);
    summary.facts.insert(
        "standardized_effects".into(),
        json!("estimate × sd(x) / sd(y) for numeric predictors, estimate / sd(y) for 0/1 columns, sample SDs over the model's rows; paired test: Cohen's d_z; meta rows: the pooled model's sd(x) / sd(y)"),
    );
    Ok(summary)
}

#[cfg(test)]
mod tests;
