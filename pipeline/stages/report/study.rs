//! The study report's content as the template sees it: the hypotheses at a glance, a forest
//! plot per hypothesis, the H3 means before and after by arm, the municipalities' views,
//! reliability and aggregation, the sample flow and the methods.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::data::{self, Inputs};
use super::i18n::Catalogue;
use super::municipality::MuniView;
use super::{fmt, plots, short, Fig, STAGE_NAMES};
use crate::stages::StageContext;

/// Per period of one arm: (post, mean, interval low, interval high, n).
pub type ArmPoints = Vec<(i64, f64, f64, f64, i64)>;

/// One row of the H3 before/after table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArmMean {
    pub arm: String,
    pub period: String,
    pub mean: Fig,
    pub low: String,
    pub high: String,
}

/// Mean RCap before (post = 0) and after (post = 1) by arm over the H3 sample, with t-based
/// intervals at `conf_level`: mean ± t(1 − (1 − level)/2, n − 1) · sd / √n.
pub fn arm_means(inp: &Inputs, conf_level: f64, min_cell: i64) -> Vec<(String, ArmPoints)> {
    let mut by: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for r in &inp.h3 {
        by.entry((r.arm.clone(), r.post)).or_default().push(r.rcap);
    }
    let mut out: BTreeMap<String, ArmPoints> = BTreeMap::new();
    for ((arm, post), ys) in by {
        let n = ys.len();
        if (n as i64) < min_cell || n < 2 {
            continue;
        }
        let mean = ys.iter().sum::<f64>() / n as f64;
        let var = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = crate::stats::dist::t_quantile(1.0 - (1.0 - conf_level) / 2.0, (n - 1) as f64);
        let half = t * (var / n as f64).sqrt();
        out.entry(arm)
            .or_default()
            .push((post, mean, mean - half, mean + half, n as i64));
    }
    out.into_iter().collect()
}

fn opt_num(x: Option<f64>) -> String {
    x.map(fmt::num).unwrap_or_default()
}

fn opt_p(x: Option<f64>) -> String {
    x.map(fmt::p).unwrap_or_default()
}

/// What the parts of the study view share.
struct Study<'a> {
    inp: &'a Inputs,
    conf_level: f64,
    min_cell: i64,
    /// The study report's catalogue (for the words drawn in the figures and the row labels).
    t: &'a Catalogue,
    labels: &'a crate::config::LabelsSection,
}

/// The H3 before/after table and plot.
struct Arms {
    rows: Vec<ArmMean>,
    /// The smallest n behind a mean shown (0 when none is).
    n: i64,
    svg: String,
}

/// The study report's content, as the template sees it.
pub(super) fn study_view(
    ctx: &StageContext,
    inp: &Inputs,
    views: Vec<MuniView>,
    min_cell: i64,
    t: &Catalogue,
) -> Result<(Value, usize, usize)> {
    let rj = &inp.results_json;
    let conf_level = rj
        .get("conf_level")
        .and_then(Value::as_f64)
        .context("model/results.json has no number `conf_level`")?;
    let study = Study {
        inp,
        conf_level,
        min_cell,
        t,
        labels: &ctx.config.labels,
    };
    let (hypotheses, forests) = study.hypotheses()?;
    let arms = study.arms()?;
    // Networks, blind spots, hubs per municipality.
    let n_municipalities = views.len();
    let mut municipalities = vec![];
    let (mut primary_n, mut secondary_n) = (0, 0);
    for v in views {
        primary_n += v.primary;
        secondary_n += v.secondary;
        municipalities.push(v.value);
    }
    // Reliability and aggregation.
    let waves: Vec<i64> = inp
        .reliability
        .iter()
        .map(|r| r.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut reliability = study.reliability(&waves)?;
    reliability.extend(study.rwg(&waves)?);
    let flow = sample_flow(inp);
    // Methods: the primary pooled fits.
    let fits: Vec<Value> = inp
        .fits
        .iter()
        .filter(|f| f.scope == "pooled" && f.primary)
        .map(|f| {
            serde_json::json!({
                "hypothesis": f.hypothesis,
                "model": f.model,
                "formula": f.formula,
                "method": f.method,
                "vcov": f.vcov,
                "n_obs": f.n_obs,
                "n_groups": f.n_groups,
                "status": f.status,
            })
        })
        .collect();
    let score_counts = inp
        .summaries
        .iter()
        .find(|(s, _)| s == "score")
        .and_then(|(_, v)| v.get("counts"))
        .cloned()
        .unwrap_or(Value::Null);
    let meta_methods: Vec<String> = inp
        .heterogeneity
        .iter()
        .map(|h| h.method.to_uppercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Fits, not readings of one: a CR2 twin (`same_fit_as`) is not counted again.
    let own_fits: Vec<_> = inp
        .fits
        .iter()
        .filter(|f| f.same_fit_as.is_none())
        .collect();
    let fits_total = own_fits.len();
    let fits_fitted = own_fits.iter().filter(|f| f.status == "fitted").count();
    let singular = own_fits.iter().filter(|f| f.singular == Some(true)).count();
    let not_converged = own_fits
        .iter()
        .filter(|f| f.converged == Some(false))
        .count();
    let fingerprint = ctx.fingerprint.as_deref().unwrap_or("none");
    let value = serde_json::json!({
        "study": ctx.config.study.name,
        "version": env!("CARGO_PKG_VERSION"),
        "config_hash": short(&config_hash(ctx)),
        "fingerprint": short(fingerprint),
        "min_cell": min_cell,
        "alpha": fmt::plain(ctx.config.model.alpha),
        "conf_pct": fmt::fixed(conf_level * 100.0, 0),
        "correction": rj.get("correction"),
        "hypotheses": hypotheses,
        "forests": forests,
        "arms": arms.rows,
        "arms_n": arms.n,
        "pre_post_svg": arms.svg,
        "h3": super::h3::h3_view(inp, min_cell)?,
        "municipalities": municipalities,
        "waves": waves,
        "reliability": reliability,
        "flow": flow,
        "fits": fits,
        "meta_methods": meta_methods,
        "meta_test": inp
            .heterogeneity
            .first()
            .map(|x| meta_test_words(x.test.as_deref(), x.k)),
        "h1_corrected": h1_corrected_text(rj),
        "n_municipalities": n_municipalities,
        "counts": score_counts,
        "fits_total": fits_total,
        "fits_fitted": fits_fitted,
        "singular": singular,
        "not_converged": not_converged,
    });
    Ok((value, primary_n, secondary_n))
}

/// The meta-analysis's inference in a forest row's label: `HKSJ`, `HKSJ ad hoc` or `z`.
fn meta_test_short(test: Option<&str>) -> &'static str {
    match test {
        Some("knha") => "HKSJ",
        Some("adhoc") => "HKSJ ad hoc",
        _ => "z",
    }
}

/// The meta-analysis's inference in words, for the notes and the methods paragraph.
fn meta_test_words(test: Option<&str>, k: i64) -> String {
    match test {
        Some(t @ ("knha" | "adhoc")) => format!(
            "Hartung-Knapp-Sidik-Jonkman{} standard error, t test and interval on {} df, prediction interval on t with {} df",
            if t == "adhoc" { " (never below the z standard error)" } else { "" },
            k - 1,
            (k - 2).max(1)
        ),
        _ => "normal (z) test and intervals".to_string(),
    }
}

/// The config hash: of every stage's config section (see the module documentation).
fn config_hash(ctx: &StageContext) -> String {
    let sections: serde_json::Map<String, Value> = STAGE_NAMES
        .iter()
        .map(|s| {
            (
                s.to_string(),
                crate::config::Config::section_for_stage(ctx.config, s),
            )
        })
        .collect();
    crate::manifest::hash_json(&Value::Object(sections))
}

/// The report's sentence on H1 corrected for measurement error (results.json `h1_corrected`):
/// what it corrects, what it assumes, the pooled figures and the scopes not corrected.
fn h1_corrected_text(rj: &Value) -> Option<String> {
    let rows = rj.get("h1_corrected")?.as_array()?;
    let num = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64);
    let pooled = rows.iter().find(|r| r["scope"] == "pooled")?;
    let mut s = "H1 was also estimated corrected for the sampling error of case RCap (model h1_corrected, not a primary test): regression calibration with the error variance of each case RCap from its dyads' raters, a cluster bootstrap over lead units for its standard error. It removes the attenuation of the slope by that error, assuming the errors are independent of citizen quality and the raters of a dyad exchangeable.".to_string();
    match (num(pooled, "lambda"), num(pooled, "corrected")) {
        (Some(l), Some(c)) if pooled["status"] == "corrected" => s.push_str(&format!(
            " Pooled, the reliability of case RCap is λ = {} and the corrected estimate {} (naive {}).",
            fmt::fixed(l, 3),
            fmt::fixed(c, 3),
            num(pooled, "naive").map_or("–".into(), |v| fmt::fixed(v, 3))
        )),
        _ => s.push_str(&format!(
            " Pooled it was not corrected ({}); the naive estimate stands alone.",
            pooled["reason"].as_str().unwrap_or("no reason given")
        )),
    }
    let not: Vec<String> = rows
        .iter()
        .filter(|r| r["scope"] != "pooled" && r["status"] != "corrected")
        .map(|r| {
            format!(
                "{} ({})",
                r["scope"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    if !not.is_empty() {
        s.push_str(&format!(" Not corrected: {}.", not.join("; ")));
    }
    Some(s)
}

impl Study<'_> {
    /// Each hypothesis at a glance, and the forest plot of each fitted one.
    fn hypotheses(&self) -> Result<(Vec<Value>, Vec<Value>)> {
        let hyp_json: Vec<Value> = self
            .inp
            .results_json
            .get("hypotheses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut hypotheses = vec![];
        let mut forests = vec![];
        for h in ["H1", "H2", "H3"] {
            let meta = hyp_json
                .iter()
                .find(|x| x.get("hypothesis").and_then(Value::as_str) == Some(h))
                .cloned()
                .unwrap_or(Value::Null);
            let primary: Vec<&data::ResultRow> = self
                .inp
                .results
                .iter()
                .filter(|r| r.hypothesis == h && r.primary)
                .collect();
            let Some(pooled) = primary.iter().find(|r| r.scope == "pooled") else {
                hypotheses.push(serde_json::json!({"id": h, "fitted": false}));
                continue;
            };
            let min_cell = self.min_cell;
            hypotheses.push(serde_json::json!({
                "id": h,
                "fitted": true,
                "term": pooled.term,
                "model": pooled.model,
                "design": meta.get("design"),
                "direction": meta.get("direction"),
                "estimate": Fig::shown(fmt::num(pooled.estimate), pooled.n_obs, min_cell),
                "ci_low": opt_num(pooled.conf_low),
                "ci_high": opt_num(pooled.conf_high),
                "p": opt_p(pooled.p_value),
                "p_holm": opt_p(pooled.p_holm),
                "p_adjusted": opt_p(pooled.p_adjusted),
                "std_estimate": opt_num(pooled.std_estimate),
                "supported": pooled.supported.unwrap_or(false),
                "verdict": meta.get("verdict"),
                "n_obs": pooled.n_obs,
                "n_groups": pooled.n_groups,
            }));
            forests.push(self.forest(h, &primary, pooled)?);
        }
        for (h, note) in super::h3::singular_notes(self.inp) {
            if let Some(f) = forests.iter_mut().find(|f| f["id"] == h.as_str()) {
                f["singular_note"] = Value::String(note);
            }
        }
        Ok((hypotheses, forests))
    }

    /// The forest plot of hypothesis `h` and its table: the municipalities, the pooled model,
    /// the meta-analytic estimate, each with at least `min_cell` observations.
    fn forest(
        &self,
        h: &str,
        primary: &[&data::ResultRow],
        pooled: &data::ResultRow,
    ) -> Result<Value> {
        let min_cell = self.min_cell;
        let mut rows = vec![];
        let mut table = vec![];
        let mut min_n = i64::MAX;
        let het = self.inp.heterogeneity.iter().find(|x| x.hypothesis == h);
        let meta_scope = het.map(|x| format!("meta_{}", x.method));
        let ordered = primary
            .iter()
            .filter(|r| r.scope != "pooled" && !r.scope.starts_with("meta_"))
            .chain(primary.iter().filter(|r| r.scope == "pooled"))
            .chain(
                primary
                    .iter()
                    .filter(|r| Some(&r.scope) == meta_scope.as_ref()),
            );
        for r in ordered {
            let (Some(lo), Some(hi)) = (r.conf_low, r.conf_high) else {
                continue;
            };
            if r.n_obs < min_cell {
                continue;
            }
            min_n = min_n.min(r.n_obs);
            let (kind, label) = if r.scope == "pooled" {
                (
                    plots::RowKind::Pooled,
                    self.t.text("study.forest_pooled")?.to_string(),
                )
            } else if r.scope.starts_with("meta_") {
                let method = r.scope.trim_start_matches("meta_").to_uppercase();
                (
                    plots::RowKind::Meta,
                    self.t.fill(
                        "study.forest_meta_row",
                        &[(
                            "method",
                            &format!(
                                "{method}, {}",
                                meta_test_short(het.and_then(|x| x.test.as_deref()))
                            ),
                        )],
                    )?,
                )
            } else {
                (
                    plots::RowKind::Municipality,
                    self.labels.municipality(&r.scope).to_string(),
                )
            };
            rows.push(plots::ForestRow {
                label: label.clone(),
                estimate: r.estimate,
                low: lo,
                high: hi,
                kind,
            });
            table.push(serde_json::json!({
                "label": label,
                "estimate": Fig::shown(fmt::num(r.estimate), r.n_obs, min_cell),
                "ci_low": fmt::num(lo),
                "ci_high": fmt::num(hi),
                "p": opt_p(r.p_value),
            }));
        }
        let title = format!(
            "{h}: {} ({}%)",
            pooled.term,
            fmt::fixed(self.conf_level * 100.0, 0)
        );
        let svg = plots::forest(&title, self.t.text("study.forest_axis")?, &rows)?;
        Ok(serde_json::json!({
            "id": h,
            "svg": svg,
            "n": if min_n == i64::MAX { 0 } else { min_n },
            "rows": table,
            "method": het.map(|x| x.method.to_uppercase()),
            "test": het.map(|x| meta_test_words(x.test.as_deref(), x.k)),
            "k": het.map(|x| x.k),
            "i2": het.and_then(|x| x.i2).map(|v| fmt::fixed(v, 1)),
            "tau2": het.and_then(|x| x.tau2).map(fmt::num),
            "q_p": het.and_then(|x| x.q_p).map(fmt::p),
        }))
    }

    /// H3 before/after by arm.
    fn arms(&self) -> Result<Arms> {
        let min_cell = self.min_cell;
        let arms = arm_means(self.inp, self.conf_level, min_cell);
        let mut arm_rows = vec![];
        let mut plot_arms = vec![];
        let mut arm_min_n = i64::MAX;
        for (arm, points) in &arms {
            let mut pts = vec![];
            for &(post, mean, lo, hi, n) in points {
                arm_min_n = arm_min_n.min(n);
                pts.push(plots::ArmPoint {
                    period: post,
                    mean,
                    low: lo,
                    high: hi,
                });
                arm_rows.push(ArmMean {
                    arm: self.arm_name(arm),
                    period: self
                        .t
                        .text(if post == 0 {
                            "study.before"
                        } else {
                            "study.after"
                        })?
                        .to_string(),
                    mean: Fig::shown(fmt::fixed(mean, 3), n, min_cell),
                    low: fmt::fixed(lo, 3),
                    high: fmt::fixed(hi, 3),
                });
            }
            plot_arms.push((self.arm_name(arm), pts));
        }
        let pre_post_svg = if plot_arms.is_empty() {
            String::new()
        } else {
            plots::pre_post(
                self.t.text("study.arms_plot_title")?,
                self.t.text("study.arms_plot_axis")?,
                &plot_arms,
            )?
        };
        Ok(Arms {
            rows: arm_rows,
            n: if arm_min_n == i64::MAX { 0 } else { arm_min_n },
            svg: pre_post_svg,
        })
    }

    /// An arm as the report names it (`control`, `intervention`; another as it is).
    fn arm_name(&self, arm: &str) -> String {
        self.t
            .text(&format!("study.arm_{arm}"))
            .map_or_else(|_| arm.to_string(), str::to_string)
    }

    /// Cronbach's alpha and the ICCs of every scale over all respondents, one cell per wave.
    fn reliability(&self, waves: &[i64]) -> Result<Vec<Value>> {
        let (inp, min_cell) = (self.inp, self.min_cell);
        let mut reliability = vec![];
        for (measure, key) in [
            ("alpha_raw", "study.rel_alpha"),
            ("icc1", "study.rel_icc1"),
            ("icc2", "study.rel_icc2"),
        ] {
            let label = self.t.text(key)?;
            let scales: Vec<String> = inp
                .reliability
                .iter()
                .filter(|r| r.measure == measure && r.scope == "all" && !r.per_group)
                .map(|r| r.scale.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for s in scales {
                let cells: Vec<Fig> = waves
                    .iter()
                    .map(|w| {
                        inp.reliability
                            .iter()
                            .find(|r| {
                                r.measure == measure
                                    && r.scope == "all"
                                    && !r.per_group
                                    && r.scale == s
                                    && r.wave == *w
                            })
                            .map(|r| match r.value {
                                Some(v) => Fig::shown(fmt::num(v), r.n, min_cell),
                                None => Fig::hidden(r.n),
                            })
                            .unwrap_or(Fig::hidden(0))
                    })
                    .collect();
                reliability.push(serde_json::json!({"measure": label, "scale": s, "cells": cells}));
            }
        }
        Ok(reliability)
    }

    /// rwg(j): the median over the units or dyads rated by at least min_cell people.
    fn rwg(&self, waves: &[i64]) -> Result<Vec<Value>> {
        let (inp, min_cell) = (self.inp, self.min_cell);
        let mut reliability = vec![];
        for (scale, over) in [("srm", "study.rel_units"), ("rc", "study.rel_dyads")] {
            let over = self.t.text(over)?;
            let cells: Vec<Value> = waves
                .iter()
                .map(|w| {
                    let mut v: Vec<(f64, i64)> = inp
                        .reliability
                        .iter()
                        .filter(|r| {
                            r.measure == "rwg_j" && r.scale == scale && r.wave == *w && r.per_group
                        })
                        .filter(|r| r.n >= min_cell)
                        .filter_map(|r| r.value.map(|x| (x, r.n)))
                        .collect();
                    if v.is_empty() {
                        return serde_json::json!(Fig::hidden(0));
                    }
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let k = v.len();
                    let med = if k % 2 == 1 {
                        v[k / 2].0
                    } else {
                        (v[k / 2 - 1].0 + v[k / 2].0) / 2.0
                    };
                    let n = v.iter().map(|x| x.1).min().unwrap_or(0);
                    // The figure and, beside it in the same mark, how many it is the median of.
                    let mut fig = serde_json::json!(Fig::shown(fmt::num(med), n, min_cell));
                    fig["count"] = serde_json::json!({"text": over, "k": k});
                    fig
                })
                .collect();
            reliability.push(serde_json::json!({
                "measure": self.t.text("study.rel_rwg")?,
                "scale": scale,
                "cells": cells,
            }));
        }
        Ok(reliability)
    }
}

/// Sample flow: per stage and table the rows in and out, quarantined (by reason), collapsed
/// duplicates and exclusions (by reason), and whether they add up.
fn sample_flow(inp: &Inputs) -> Vec<Value> {
    let mut flow = vec![];
    for (stage, summary) in &inp.summaries {
        let Some(tables) = summary.get("tables").and_then(Value::as_object) else {
            continue;
        };
        for (table, t) in tables {
            let get = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
            let by_reason = |k: &str| -> (u64, String) {
                let Some(o) = t.get(k).and_then(Value::as_object) else {
                    return (0, String::new());
                };
                let total = o.values().filter_map(Value::as_u64).sum();
                let text = o
                    .iter()
                    .map(|(r, n)| format!("{r}: {}", n.as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ");
                (total, text)
            };
            let (q, q_text) = by_reason("quarantined");
            let (x, x_text) = by_reason("excluded");
            let (rows_in, rows_out, dup) =
                (get("rows_in"), get("rows_out"), get("duplicates_collapsed"));
            flow.push(serde_json::json!({
                "stage": stage,
                "table": table,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "quarantined": q,
                "quarantined_by_reason": q_text,
                "duplicates": dup,
                "excluded": x,
                "excluded_by_reason": x_text,
                "balanced": rows_in == rows_out + q + dup + x,
            }));
        }
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::super::data::H3Row;
    use super::*;

    #[test]
    fn arm_means_match_a_hand_computation() {
        // control, before: 3, 4, 5, 4, 4 → mean 4, sd √0.5, se √0.1 = 0.316228;
        // t(0.975, 4) = 2.776445 (R: qt(0.975, 4)) → half width 2.776445 × 0.316228 = 0.877989.
        let ys = [3.0, 4.0, 5.0, 4.0, 4.0];
        let inp = Inputs {
            h3: ys
                .iter()
                .map(|&y| H3Row {
                    municipality: "M".into(),
                    arm: "control".into(),
                    post: 0,
                    rcap: y,
                })
                .chain(std::iter::once(H3Row {
                    municipality: "M".into(),
                    arm: "control".into(),
                    post: 1,
                    rcap: 3.0,
                }))
                .collect(),
            ..Default::default()
        };
        let arms = arm_means(&inp, 0.95, 5);
        assert_eq!(arms.len(), 1);
        let (arm, points) = &arms[0];
        assert_eq!(arm, "control");
        assert_eq!(
            points.len(),
            1,
            "the single 'after' respondent is below min_cell"
        );
        let (post, mean, lo, hi, n) = points[0];
        assert_eq!((post, n), (0, 5));
        assert!((mean - 4.0).abs() < 1e-12);
        assert!((lo - (4.0 - 0.877989)).abs() < 1e-6, "{lo}");
        assert!((hi - (4.0 + 0.877989)).abs() < 1e-6, "{hi}");
    }
}
