//! H3's plan: which models, on which rows, with which primary term (see the stage's module doc,
//! "H3"), the event study's arm × event-time columns, the attrition by arm, and the event
//! study's summary (persistence and pre-trend test) for results.json and the report.
//!
//! The intervention is assigned to units, so the primary model is the cluster-randomised
//! difference in differences with a unit × period random intercept (`cluster_did`); the analysis
//! plan's formula (`diff_in_diff`: no arm main effect, no unit × period term) stays as a
//! sensitivity model, with `cluster_did` on the respondents present in both waves
//! (`cluster_did_both_waves`) and the event study over every wave (`event_study`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use super::fitting::{Kind, ModelSpec};
use super::frame::{Col, Table};
use super::{choose_primary, municipalities, sample, Outcome, Plan, POOLED, TABLES};
use crate::config::{Direction, Linkage, Method, ModelSection};

/// The `exclusion` link gives to rows of a unit in the design outside its two-wave window.
const OUTSIDE_WINDOW: &str = "wave_outside_window";

/// The verdict of H3 when the sample has no control units.
pub const NOT_TESTABLE: &str = "not_testable_without_control_units";

/// Whether the H3 sample has control and intervention rows (in the window).
fn h3_arms(table: &Table, rows: &[usize]) -> (bool, bool) {
    let mut control = false;
    let mut treated = false;
    for &i in rows {
        if table.num_at("post", i).is_none() {
            continue;
        }
        match table.num_at("intervention", i) {
            Some(0.0) => control = true,
            Some(1.0) => treated = true,
            _ => {}
        }
    }
    (control, treated)
}

/// The sample rows of respondents (same unit) in the sample in both waves of the window.
fn both_waves_rows(table: &Table, rows: &[usize]) -> Vec<usize> {
    let mut seen: BTreeMap<(&str, String), (bool, bool)> = BTreeMap::new();
    for &i in rows {
        let (Some(u), Some(r), Some(p)) = (
            table.str_at("unit_id", i),
            table.label_at("respondent_id", i),
            table.num_at("post", i),
        ) else {
            continue;
        };
        let e = seen.entry((u, r)).or_default();
        if p == 0.0 {
            e.0 = true;
        } else if p == 1.0 {
            e.1 = true;
        }
    }
    rows.iter()
        .copied()
        .filter(|&i| {
            match (
                table.str_at("unit_id", i),
                table.label_at("respondent_id", i),
            ) {
                (Some(u), Some(r)) => seen.get(&(u, r)) == Some(&(true, true)),
                _ => false,
            }
        })
        .collect()
}

/// The name of the arm × event-time column of event time `e` (≠ 0).
pub fn event_term(e: i64) -> String {
    if e < 0 {
        format!("arm_pre{}", -e)
    } else {
        format!("arm_post{e}")
    }
}

/// The event time of an event-study term (`arm_pre2` → −2, `arm_post1` → 1).
pub fn term_event_time(term: &str) -> Option<i64> {
    if let Some(k) = term.strip_prefix("arm_pre") {
        k.parse::<i64>().ok().map(|k| -k)
    } else {
        term.strip_prefix("arm_post")?.parse().ok()
    }
}

/// The event study's rows and terms, or why it cannot be fitted.
#[derive(Debug)]
struct EventStudy {
    rows: Vec<usize>,
    /// `intervention`, then the arm × event-time terms, earliest first.
    terms: Vec<String>,
}

/// Every wave of the units in the design (the window's sample rows and the rows link left out
/// only for being outside the window), with the arm × event-time columns added to `table`:
/// `arm_preK` / `arm_postK` = intervention × (wave − after_wave = ∓K), reference event time 0
/// (the last wave before the intervention). Refused when the units differ in timing.
fn event_study(table: &mut Table) -> Result<std::result::Result<EventStudy, String>> {
    if !table.has("after_wave") {
        return Ok(Err(
            "the H3 table has no after_wave column: the event study needs each unit's timing"
                .into(),
        ));
    }
    let n = table.n_rows();
    let rows: Vec<usize> = (0..n)
        .filter(|&i| match table.str_at("exclusion", i) {
            None => true,
            Some(r) => r == OUTSIDE_WINDOW,
        })
        .filter(|&i| {
            table.num_at("after_wave", i).is_some() && table.num_at("intervention", i).is_some()
        })
        .collect();
    let timings: BTreeSet<i64> = rows
        .iter()
        .filter_map(|&i| table.num_at("after_wave", i))
        .map(|w| w as i64)
        .collect();
    if timings.len() > 1 {
        let list: Vec<String> = timings.iter().map(|t| t.to_string()).collect();
        return Ok(Err(format!(
            "units differ in intervention timing (after_wave {}): the event study with calendar-wave fixed effects is only fitted when every unit has the same timing",
            list.join(", ")
        )));
    }
    let event = |i: usize| -> Option<i64> {
        Some((table.num_at("wave", i)? - table.num_at("after_wave", i)?) as i64)
    };
    let times: BTreeSet<i64> = rows.iter().filter_map(|&i| event(i)).collect();
    if !times.contains(&0) || !times.iter().any(|&e| e > 0) {
        return Ok(Err(
            "the event study needs the wave before the intervention (event time 0) and at least one wave after it"
                .into(),
        ));
    }
    let mut cols: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for &e in times.iter().filter(|&&e| e != 0) {
        let values = (0..n)
            .map(|i| {
                let arm = table.num_at("intervention", i)?;
                Some(if event(i)? == e { arm } else { 0.0 })
            })
            .collect();
        cols.push((event_term(e), values));
    }
    let mut terms = vec!["intervention".to_string()];
    for (name, values) in cols {
        table.insert(&name, Col::Num(values))?;
        terms.push(name);
    }
    Ok(Ok(EventStudy { rows, terms }))
}

/// The H3 plan (see the stage's module doc).
pub(super) fn plan_h3(cfg: &ModelSection, mut table: Table) -> Result<Plan> {
    let h = &cfg.h3;
    let reml = h.method() == Method::Reml;
    let panel = h.design() == Linkage::Panel;
    let random = |period: &str, respondents: bool| -> Vec<String> {
        let mut r = Vec::new();
        if panel && respondents {
            r.push("respondent_id".to_string());
        }
        r.push("unit_id".into());
        if !period.is_empty() {
            r.push(format!("unit_id:{period}"));
        }
        r
    };
    let lmm = |name: &str, x: &[&str], random: Vec<String>, vary: &[&str]| ModelSpec {
        name: name.into(),
        kind: Kind::Lmm { reml, cr2_by: None },
        response: "rcap".into(),
        terms: x.iter().map(|s| s.to_string()).collect(),
        factors: vec!["municipality".into()],
        random,
        group: Some("unit_id".into()),
        must_vary: vary.iter().map(|s| s.to_string()).collect(),
    };
    let (s, excluded) = sample(&table);
    let (control, treated) = h3_arms(&table, &s);
    let mut notes = vec![];
    if h.vcov.is_some() || h.cluster.is_some() {
        notes.push(
            "model.h3.vcov / cluster are for OLS models; the mixed models report model-based standard errors"
                .to_string(),
        );
    }
    let mut model_rows = BTreeMap::new();
    let mut refused = BTreeMap::new();
    let mut testable = true;
    let did = ["post", "intervention", "post:intervention"];
    let (design, models, primary_model, primary_term) = if control && treated {
        // The primary model's fit also gives CR2 inference by unit (the unit of randomisation),
        // reported as `cluster_did_cr2`.
        let mut primary = lmm(
            "cluster_did",
            &did,
            random("post", true),
            &["post", "intervention"],
        );
        primary.kind = Kind::Lmm {
            reml,
            cr2_by: Some("unit_id".into()),
        };
        let mut models = vec![
            primary,
            lmm(
                "diff_in_diff",
                &["post", "post:intervention"],
                random("", true),
                &["post", "intervention"],
            ),
        ];
        if panel {
            let spec = lmm(
                "cluster_did_both_waves",
                &did,
                random("post", true),
                &["post", "intervention"],
            );
            model_rows.insert(spec.name.clone(), both_waves_rows(&table, &s));
            models.push(spec);
        }
        let es = event_study(&mut table)?;
        let terms: Vec<String> = match &es {
            Ok(e) => e.terms.clone(),
            Err(_) => vec!["intervention".into()],
        };
        let mut spec = lmm(
            "event_study",
            &terms.iter().map(String::as_str).collect::<Vec<_>>(),
            random("wave", true),
            &["intervention", "wave"],
        );
        spec.factors.push("wave".into());
        match es {
            Ok(e) => {
                model_rows.insert(spec.name.clone(), e.rows);
            }
            Err(why) => {
                notes.push(format!("event study not fitted: {why}"));
                refused.insert(spec.name.clone(), why);
            }
        }
        models.push(spec);
        let p = choose_primary(&models, &h.primary_term, "h3")?;
        ("cluster_did", models, Some(p), h.primary_term.clone())
    } else if treated {
        testable = false;
        let mut models = vec![lmm("pre_post", &["post"], random("post", true), &["post"])];
        if panel {
            models.push(ModelSpec {
                name: "paired_t".into(),
                kind: Kind::PairedT,
                response: "rcap".into(),
                terms: vec!["post".into()],
                factors: vec![],
                random: vec![],
                group: Some("unit_id".into()),
                must_vary: vec![],
            });
        }
        notes.push(format!(
            "no control units in the H3 sample: H3 is not testable; the pre/post change (`post`, intervention plus any secular trend) is reported descriptively instead of `{}`",
            h.primary_term
        ));
        ("pre_post", models, Some(0), "post".to_string())
    } else {
        notes.push(if control {
            "the H3 sample has control units only: H3 cannot be tested".to_string()
        } else {
            "the H3 sample is empty (no units in the intervention design, or no rows in their window): H3 cannot be tested".to_string()
        });
        ("not_estimable", vec![], None, h.primary_term.clone())
    };
    if !panel {
        notes.push(
            "model.h3.design = cross_section: waves are treated as repeated cross-sections (no respondent term, no paired test, no both-waves sensitivity)"
                .to_string(),
        );
    }
    Ok(Plan {
        id: "H3",
        table_name: TABLES[2],
        design: design.to_string(),
        table,
        sample: s,
        link_excluded: excluded,
        models,
        primary_model,
        primary_term,
        positive: h.direction == Direction::Positive,
        notes,
        model_rows,
        refused,
        testable,
    })
}

/// H3 attrition between the two waves of the window, per scope and arm.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attrition {
    pub scope: String,
    pub arm: String,
    /// Respondents (unit, respondent) in the sample before (`post` = 0) and after.
    pub before: u64,
    pub after: u64,
    pub in_both: u64,
    /// before − in_both: respondents who did not answer after.
    pub left: u64,
    /// after − in_both: respondents new after.
    pub joined: u64,
    /// left / before.
    pub attrition: Option<f64>,
}

pub(super) fn attrition(plan: &Plan) -> Vec<Attrition> {
    let t = &plan.table;
    let mut out = Vec::new();
    let munis = municipalities(plan);
    let scopes: Vec<(String, Option<&str>)> = std::iter::once((POOLED.to_string(), None))
        .chain(munis.iter().map(|m| (m.clone(), Some(m.as_str()))))
        .collect();
    for (scope, muni) in &scopes {
        for (arm, code) in [
            ("all", None),
            ("intervention", Some(1.0)),
            ("control", Some(0.0)),
        ] {
            let mut before = BTreeSet::new();
            let mut after = BTreeSet::new();
            for &i in &plan.sample {
                if muni.is_some() && t.str_at("municipality", i) != *muni {
                    continue;
                }
                if let Some(c) = code {
                    if t.num_at("intervention", i) != Some(c) {
                        continue;
                    }
                }
                let (Some(u), Some(r), Some(p)) = (
                    t.str_at("unit_id", i),
                    t.label_at("respondent_id", i),
                    t.num_at("post", i),
                ) else {
                    continue;
                };
                if p == 0.0 {
                    before.insert((u, r));
                } else if p == 1.0 {
                    after.insert((u, r));
                }
            }
            if code.is_some() && before.is_empty() && after.is_empty() {
                continue;
            }
            let both = before.intersection(&after).count() as u64;
            let (b, a) = (before.len() as u64, after.len() as u64);
            out.push(Attrition {
                scope: scope.clone(),
                arm: arm.to_string(),
                before: b,
                after: a,
                in_both: both,
                left: b - both,
                joined: a - both,
                attrition: (b > 0).then(|| (b - both) as f64 / b as f64),
            });
        }
    }
    out
}

/// The pooled event study for results.json: each arm × event-time estimate and the pre-trend
/// test (`null` with fewer than two waves before the intervention). With one pre-period term
/// the test is its t-test; with several, Bonferroni's bound on the smallest of their p-values
/// (min(1, k · min p)), a valid level-α test of "no pre-trend" that needs no joint covariance.
pub(super) fn event_study_summary(o: &Outcome) -> Value {
    let Some(run) = o.runs.iter().find(|r| r.spec.name == "event_study") else {
        return Value::Null;
    };
    let fit = match &run.pooled.result {
        Ok(f) => f,
        Err(skip) => return json!({"fitted": false, "message": skip.message()}),
    };
    let mut terms = Vec::new();
    let mut pre_p = Vec::new();
    for c in &fit.coefficients {
        let Some(e) = term_event_time(&c.term) else {
            continue;
        };
        if e < 0 {
            pre_p.push(c.p_value);
        }
        terms.push(json!({
            "term": c.term, "event_time": e, "estimate": super::fin(c.estimate),
            "std_error": super::fin(c.std_error), "df": c.df.and_then(super::fin),
            "p_value": super::fin(c.p_value), "conf_low": super::fin(c.conf_low),
            "conf_high": super::fin(c.conf_high),
        }));
    }
    let pre_trend = if pre_p.is_empty() {
        json!({"tested": false, "message": "One wave before the intervention: no pre-trend test (it needs two or more)"})
    } else {
        let k = pre_p.len() as f64;
        let min = pre_p.iter().copied().fold(f64::INFINITY, f64::min);
        json!({
            "tested": true,
            "terms": pre_p.len(),
            "method": if pre_p.len() == 1 { "t-test of the pre-period term" } else { "Bonferroni bound on the smallest pre-period p" },
            "p_value": super::fin((k * min).min(1.0)),
        })
    };
    json!({
        "fitted": true, "formula": fit.formula, "singular": fit.singular,
        "reference_event_time": 0, "terms": terms, "pre_trend": pre_trend,
    })
}

/// The intervention design as the H3 table carries it: unit → (intervention 0/1, after_wave).
pub(super) type Design = BTreeMap<String, (f64, f64)>;

/// The design of the H3 table at `path` (None when it cannot be read or has no `after_wave`:
/// H2's adjusted sensitivity model is then left out with a note).
pub(super) fn read_design(path: &std::path::Path) -> Option<Design> {
    use super::frame::Want;
    let cols = [
        ("unit_id", Want::Str),
        ("intervention", Want::Num),
        ("after_wave", Want::Num),
    ];
    let t = super::frame::read(path, &cols, &[]).ok()?;
    let mut design = Design::new();
    for i in 0..t.n_rows() {
        if let (Some(u), Some(a), Some(w)) = (
            t.str_at("unit_id", i),
            t.num_at("intervention", i),
            t.num_at("after_wave", i),
        ) {
            design.entry(u.to_string()).or_insert((a, w));
        }
    }
    Some(design)
}

/// H2's sensitivity model adjusted for the intervention (the managers' SRM may mediate it):
/// the primary H2 model plus `intervention` (arm) and `intervention_post` = intervention ×
/// (wave > after_wave), the difference-in-differences term over every wave. Adds the two
/// columns to the H2 table (null for units outside the design) and returns the model.
pub(super) fn h2_adjusted(
    table: &mut Table,
    design: &Design,
    primary: &ModelSpec,
) -> Result<ModelSpec> {
    let n = table.n_rows();
    let mut arm = vec![None; n];
    let mut treated_post = vec![None; n];
    for i in 0..n {
        let (Some(u), Some(w)) = (table.str_at("unit_id", i), table.num_at("wave", i)) else {
            continue;
        };
        if let Some(&(a, after)) = design.get(u) {
            arm[i] = Some(a);
            treated_post[i] = Some(if w > after { a } else { 0.0 });
        }
    }
    table.insert("intervention", Col::Num(arm))?;
    table.insert("intervention_post", Col::Num(treated_post))?;
    let mut spec = primary.clone();
    spec.name = format!("{}_adjusted", primary.name);
    spec.terms
        .extend(["intervention".into(), "intervention_post".into()]);
    spec.must_vary = vec!["intervention".into()];
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(v: &[f64]) -> Col {
        Col::Num(v.iter().map(|&x| (!x.is_nan()).then_some(x)).collect())
    }

    fn strs(v: &[&str]) -> Col {
        Col::Str(
            v.iter()
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect(),
        )
    }

    /// Two units (intervention, control), waves 1–3, after_wave as given; wave 3 outside the
    /// window; one row not in the design.
    fn table(after: [f64; 2]) -> Table {
        let mut t = Table::new("h3.parquet", 7);
        t.insert("wave", nums(&[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]))
            .unwrap();
        t.insert("unit_id", strs(&["a", "a", "a", "b", "b", "b", "x"]))
            .unwrap();
        t.insert("respondent_id", strs(&["r", "r", "s", "q", "q", "q", "z"]))
            .unwrap();
        t.insert(
            "intervention",
            nums(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, f64::NAN]),
        )
        .unwrap();
        let aw = [
            after[0],
            after[0],
            after[0],
            after[1],
            after[1],
            after[1],
            f64::NAN,
        ];
        t.insert("after_wave", nums(&aw)).unwrap();
        t.insert(
            "post",
            nums(&[0.0, 1.0, f64::NAN, 0.0, 1.0, f64::NAN, f64::NAN]),
        )
        .unwrap();
        let ex = [
            "",
            "",
            OUTSIDE_WINDOW,
            "",
            "",
            OUTSIDE_WINDOW,
            "unit_not_in_design",
        ];
        t.insert("exclusion", strs(&ex)).unwrap();
        t
    }

    #[test]
    fn event_study_columns_rows_and_terms() {
        let mut t = table([1.0, 1.0]);
        let es = event_study(&mut t).unwrap().unwrap();
        assert_eq!(es.rows, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(es.terms, ["intervention", "arm_post1", "arm_post2"]);
        let col = |n: &str| (0..7).map(|i| t.num_at(n, i)).collect::<Vec<_>>();
        let (o, z) = (Some(1.0), Some(0.0));
        assert_eq!(col("arm_post1"), [z, o, z, z, z, z, None]);
        assert_eq!(col("arm_post2"), [z, z, o, z, z, z, None]);
        // After wave 2: wave 1 is a pre wave (event time −1).
        let mut t = table([2.0, 2.0]);
        let es = event_study(&mut t).unwrap().unwrap();
        assert_eq!(es.terms, ["intervention", "arm_pre1", "arm_post1"]);
        for (term, e) in [("arm_pre1", -1), ("arm_post1", 1), ("arm_post12", 12)] {
            assert_eq!(term_event_time(term), Some(e));
            assert_eq!(event_term(e), term);
        }
        assert_eq!(term_event_time("intervention"), None);
    }

    #[test]
    fn units_with_different_timing_are_refused_with_the_reason() {
        let mut t = table([1.0, 2.0]);
        let why = event_study(&mut t).unwrap().unwrap_err();
        assert!(why.contains("after_wave 1, 2"), "{why}");
        assert!(!t.has("arm_post1"));
    }

    #[test]
    fn both_waves_keeps_respondents_with_a_row_before_and_after() {
        let t = table([1.0, 1.0]);
        // Sample rows 0, 1, 3, 4: r (unit a) and q (unit b) are in both waves.
        assert_eq!(both_waves_rows(&t, &[0, 1, 3, 4]), vec![0, 1, 3, 4]);
        assert_eq!(both_waves_rows(&t, &[0, 3, 4]), vec![3, 4]);
    }
}
