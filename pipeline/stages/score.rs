//! The `score` stage: from the clean answers to tie scores, respondent RCap and SRM, dyads (the
//! municipalities' collaboration networks), unit scores, citizen quality, reliability and network
//! measures, exactly as the *Scoring* section of STUDY.md defines them.
//!
//! One pass in Rust over the long answers (submodule `long`) counts them by category and
//! reshapes them into one row per tie, respondent and citizen; every score is then computed by the pure functions of [`compute`] (the same functions the tests check by hand
//! and against the published German RC survey); reliability and agreement come from the
//! statistics engine (`relcap::stats::reliability`). Every rule works within a wave, so the
//! answers are read and scored one wave at a time (the wave filter is pushed down into the
//! Parquet scan): only one wave's answers are in memory. Rows are sorted by their key columns
//! (wave first) before writing, so two runs give the same bytes.
//!
//! Reads `OUT/clean/{employee_responses,citizen_responses,units}.parquet`; writes under
//! `OUT/score/`. Settings: `instrument` (which items form which scale) and `scoring`
//! (`tie_min_items`, `subscale_min_items`, `srm_min_items`, `citizen_min_items`,
//! `blind_spot_high`, `blind_spot_low`, `hub_relevance`, `rwg_null_variance`).
//!
//! # Rules (beyond STUDY.md's)
//!
//! - The respondent's work group is the `work_group` of their answers (their unit's group); a tie
//!   is within-group when `target_group` equals it. Within-group ties are kept in `ties` and
//!   `dyads` (flagged) and left out of respondent RCap, the network and its measures.
//! - Sub-scores (`rc_communication`, `rc_relationship`) need `scoring.subscale_min_items` of
//!   their items answered; the default 0 means *all* of them, as the published German RC scoring
//!   does. They do not depend on the tie having an `rc`.
//! - A dyad D(g→h) is defined when at least one rater of group g has a tie score for h; its
//!   per-dimension means are over the same raters (ties with a tie score). Its relevance mean is
//!   over every tie from g to h that has a relevance answer.
//! - SRM scores, leave-one-out SRM and unit scores group respondents by unit and wave.
//! - Reliability: alpha of the tie scales over *all* ties with every item of the scale answered
//!   (within- and between-group: it is the instrument's reliability); of SRM over respondents;
//!   of citizen quality over citizens; per wave, pooled (`scope = "all"`) and per municipality.
//!   ICC(1)/ICC(2) of respondent `rcap` and `srm` by unit, per wave, pooled over municipalities.
//!   rwg(j) of the SRM items per unit and wave over the respondents with an SRM score; rwg(j) of
//!   the RC dimensions per dyad (the raters of group g rating group h, in one municipality and
//!   wave, over the ties with a tie score), because the dyad is the level the RC ratings are
//!   aggregated to and its raters rate the same target on the same items (a unit's respondents
//!   rate different partner groups, so agreement within a unit is not defined for RC).
//!   rwg(j) uses the uniform null variance `scoring.rwg_null_variance` and is truncated at 0.
//!   A value that cannot be computed (too few rows, zero variance) is a row with an empty
//!   `value` and the reason counted in `summary.json` (`reliability_not_computed.*`).
//! - An item answered twice for the same tie, respondent or citizen cannot come from the clean
//!   stage (it collapses or quarantines duplicates); it stops the stage with an error naming the
//!   file and line instead of silently picking one.
//!
//! # Outputs (`OUT/score/`)
//!
//! Counts are Int64, scores Float64 (empty = not computable), ids and groups String.
//!
//! `ties.parquet`: one row per respondent × partner group × wave that has any tie item row,
//! sorted by (wave, municipality, unit_id, respondent_id, target_group).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave | i64 | measurement wave |
//! | municipality, unit_id, work_group | str | the respondent's municipality, unit, unit's work group |
//! | respondent_id | str | pseudonym |
//! | target_group | str | the partner work group rated |
//! | within_group | bool | target_group = work_group |
//! | n_items | i64 | dimensions answered (of the `instrument` dimensions) |
//! | rc | f64? | mean of the answered dimensions when n_items ≥ `scoring.tie_min_items` |
//! | rc_communication, rc_communication_n | f64?, i64 | communication sub-score and items answered |
//! | rc_relationship, rc_relationship_n | f64?, i64 | relationship sub-score and items answered |
//! | relevance | f64? | the relevance answer (empty if missing or not asked) |
//! | `<dimension>` | f64? | one column per dimension item (as scored by clean), e.g. `frequent` |
//!
//! `respondents.parquet`: one row per respondent × wave with any tie or person item row, sorted by
//! (wave, municipality, unit_id, respondent_id).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality, unit_id, work_group, respondent_id | | as in `ties` |
//! | rcap | f64? | mean `rc` of the respondent's between-group ties; empty if none has an `rc` |
//! | n_ties | i64 | between-group ties with an `rc` |
//! | n_ties_within | i64 | within-group ties with an `rc` |
//! | n_ties_unscored | i64 | ties (either kind) without an `rc` (too few dimensions answered) |
//! | srm | f64? | mean of answered SRM items when ≥ `scoring.srm_min_items` (0: ceil(k/2)) answered |
//! | srm_n_items | i64 | SRM items answered |
//! | srm_others | f64? | leave-one-out: mean `srm` of the other respondents of the unit in the wave who have one (all of them when this respondent has none); empty when there are none |
//! | srm_others_n | i64 | respondents averaged in `srm_others` |
//! | `<srm item>` | f64? | each SRM item, e.g. `srm_1` |
//! | `<person item>` | f64? | each `instrument.person_items` item, e.g. `wellbeing` |
//!
//! `dyads.parquet`: one row per municipality × wave × (work_group → target_group) with any tie,
//! within-group dyads kept and flagged; sorted by (wave, municipality, work_group, target_group).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality | | |
//! | work_group | str | the rating group g |
//! | target_group | str | the rated group h |
//! | within_group | bool | g = h |
//! | n_ties | i64 | ties from g to h (with or without `rc`) |
//! | n_raters | i64 | ties with an `rc`: the n of `mean` |
//! | mean | f64? | D(g→h): mean `rc` over those raters |
//! | sd | f64? | sample SD of their `rc` (n − 1; empty below 2 raters) |
//! | rwg_j | f64? | rwg(j) of the dimensions over the raters (uniform null, truncated at 0) |
//! | relevance_mean, relevance_n | f64?, i64 | mean relevance of h to g's raters, and its n |
//! | mean_`<dimension>`, n_`<dimension>` | f64?, i64 | per-dimension mean over the raters who answered it |
//!
//! `units.parquet`: one row per unit × wave with respondents, sorted by (wave, municipality,
//! unit_id): `wave, municipality, unit_id, work_group, headcount (i64?, from clean units),
//! n_respondents, rcap (mean respondent rcap), n_rcap, rcap_sd, srm (mean respondent srm),
//! n_srm, srm_sd` (SDs are sample SDs, empty below 2).
//!
//! `citizens.parquet`: one row per citizen × case × wave with any citizen item row, sorted by
//! (wave, municipality, citizen_id, case_id): `wave, municipality, citizen_id, case_id,
//! quality (f64?, mean of answered citizen items when ≥ scoring.citizen_min_items, 0: ceil(k/2)),
//! n_items (answered)`, then one f64? column per citizen item (e.g. `cq_1`).
//!
//! `reliability.parquet` (long), sorted by (measure, scale, scope, wave, unit_id, work_group,
//! target_group):
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | measure | str | `alpha_raw`, `alpha_std`, `icc1`, `icc2`, `icc_k0`, `rwg_j` |
//! | scale | str | `rc`, `rc_communication`, `rc_relationship`, `srm`, `citizen_quality`, `rcap` |
//! | scope | str | `all`, or the municipality |
//! | wave | i64 | |
//! | unit_id | str? | the unit (rwg_j of `srm`) |
//! | work_group, target_group | str? | the dyad (rwg_j of `rc`) |
//! | value | f64? | the estimate; empty when not computable |
//! | n | i64 | complete cases (alpha), observations (ICC), rows (rwg_j) |
//! | n_groups | i64? | units (ICC) |
//! | k | i64? | items (alpha, rwg_j) |
//!
//! `network.parquet` (long; `kind` = `group` or `pair`), between-group dyads only, sorted by
//! (wave, municipality, kind, work_group, partner_group):
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality | | |
//! | kind | str | `group`: one row per work group; `pair`: one row per pair g < h with D defined both ways |
//! | work_group | str | g |
//! | partner_group | str? | h (pair rows) |
//! | in_strength, in_n | f64?, i64? | group: mean of D(h→g) over the other groups h with a defined dyad, and how many |
//! | out_strength, out_n | f64?, i64? | group: mean of D(g→h), and how many |
//! | hub_score | i64? | group: other groups whose mean relevance rating of g ≥ `scoring.hub_relevance` |
//! | hub_n | i64? | group: other groups with a mean relevance rating of g |
//! | relevance_in | f64? | group: mean of those groups' mean relevance ratings of g |
//! | d_forward, n_forward | f64?, i64? | pair: D(g→h) and its raters |
//! | d_backward, n_backward | f64?, i64? | pair: D(h→g) and its raters |
//! | asymmetry | f64? | pair: D(g→h) − D(h→g) |
//! | blind_spot | bool? | pair: one group rates the other ≥ `blind_spot_high` while rated ≤ `blind_spot_low` back |
//! | blind_spot_high_group | str? | pair: the group rating high (the one with the blind spot) |
//! | blind_spot_low_group | str? | pair: the group rating low |
//!
//! `summary.json`: per input table, rows in = rows used (placed in a tie or respondent or citizen
//! row, answered or not) + rows excluded by reason (`tie_item_without_target_group`,
//! `person_item_with_target_group`, `item_not_in_instrument`, `citizen_item_in_employee_responses`,
//! `employee_item_in_citizen_responses`); `counts` has what could not be scored, by reason
//! (`tie_too_few_items`, `respondents_without_between_ties`,
//! `respondents_without_scored_between_ties`, `srm_too_few_items`, `srm_not_answered`,
//! `srm_others_none`, `citizen_too_few_items`, `dyads_undefined`, `pairs_one_direction_only`, ...)
//! and what was found (`ties`, `respondents`, `blind_spots`, ...).

pub mod compute;
mod long;

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use anyhow::{bail, Result};
use polars::prelude::*;

use self::compute::{DyadInput, NetworkRule, Scored, TieRule, TieScore};
use self::long::Interned;
use super::frame::{i64s, n, opt, req, strs, FrameBuilder, Kind, Spec};
use super::{StageContext, StageSummary, TableCount};
use crate::config::{Config, InstrumentSection};
use crate::io::write_parquet;
use crate::stats::reliability::{cronbach_alpha, icc_oneway, rwg_j};

const STAGE: &str = "score";

/// The items of the instrument, grouped the way scoring uses them.
#[derive(Debug, Clone)]
pub struct Items {
    /// Tie dimensions, communication first.
    pub dims: Vec<String>,
    pub n_communication: usize,
    /// The relevance item, if the instrument asks it.
    pub relevance: Option<String>,
    pub srm: Vec<String>,
    pub person: Vec<String>,
    pub citizen: Vec<String>,
}

impl Items {
    pub fn from_instrument(ins: &InstrumentSection) -> Items {
        Items {
            dims: ins.dimensions(),
            n_communication: ins.communication_items.len(),
            relevance: (!ins.relevance_item.is_empty()).then(|| ins.relevance_item.clone()),
            srm: ins.srm_items.clone(),
            person: ins.person_items.clone(),
            citizen: ins.citizen_items.clone(),
        }
    }

    /// Tie items in pivot order: the dimensions, then relevance.
    fn tie_items(&self) -> Vec<String> {
        let mut v = self.dims.clone();
        v.extend(self.relevance.iter().cloned());
        v
    }

    /// Person items in pivot order: SRM items, then the other person items.
    fn person_items(&self) -> Vec<String> {
        self.srm.iter().chain(&self.person).cloned().collect()
    }
}

/// The tie rule of a config.
pub fn tie_rule(config: &Config) -> TieRule {
    TieRule {
        n_communication: config.instrument.communication_items.len(),
        min_items: config.scoring.tie_min_items,
        subscale_min_items: config.scoring.subscale_min_items,
    }
}

const TIE_FIXED: [&str; 14] = [
    "wave",
    "municipality",
    "unit_id",
    "work_group",
    "respondent_id",
    "target_group",
    "within_group",
    "n_items",
    "rc",
    "rc_communication",
    "rc_communication_n",
    "rc_relationship",
    "rc_relationship_n",
    "relevance",
];
const RESPONDENT_FIXED: [&str; 13] = [
    "wave",
    "municipality",
    "unit_id",
    "work_group",
    "respondent_id",
    "rcap",
    "n_ties",
    "n_ties_within",
    "n_ties_unscored",
    "srm",
    "srm_n_items",
    "srm_others",
    "srm_others_n",
];
const CITIZEN_FIXED: [&str; 6] = [
    "wave",
    "municipality",
    "citizen_id",
    "case_id",
    "quality",
    "n_items",
];
const DYAD_FIXED: [&str; 12] = [
    "wave",
    "municipality",
    "work_group",
    "target_group",
    "within_group",
    "n_ties",
    "n_raters",
    "mean",
    "sd",
    "rwg_j",
    "relevance_mean",
    "relevance_n",
];

/// Item names become column names; refuse an instrument whose items would clash with the fixed
/// columns (or with each other's `mean_`/`n_` columns) before anything is read.
fn check_column_names(items: &Items) -> Result<()> {
    let clash = |fixed: &[&str], extra: Vec<String>, table: &str| -> Result<()> {
        let mut seen: std::collections::BTreeSet<String> =
            fixed.iter().map(|s| s.to_string()).collect();
        for e in extra {
            if !seen.insert(e.clone()) {
                bail!(
                    "instrument item names give {table} two columns named `{e}`; rename the item"
                );
            }
        }
        Ok(())
    };
    clash(&TIE_FIXED, items.dims.clone(), "score/ties.parquet")?;
    clash(
        &RESPONDENT_FIXED,
        items.person_items(),
        "score/respondents.parquet",
    )?;
    clash(
        &CITIZEN_FIXED,
        items.citizen.clone(),
        "score/citizens.parquet",
    )?;
    let dyad_extra = items
        .dims
        .iter()
        .flat_map(|d| [format!("mean_{d}"), format!("n_{d}")])
        .collect();
    clash(&DYAD_FIXED, dyad_extra, "score/dyads.parquet")
}

/// One scored tie.
#[derive(Debug, Clone)]
struct Tie {
    wave: i64,
    municipality: Rc<str>,
    unit_id: Rc<str>,
    work_group: Rc<str>,
    respondent_id: Rc<str>,
    target_group: Rc<str>,
    dims: Vec<Option<f64>>,
    relevance: Option<f64>,
    score: TieScore,
}

impl Tie {
    fn within(&self) -> bool {
        self.work_group == self.target_group
    }
}

/// Respondent key: (wave, municipality, unit_id, work_group, respondent_id).
type RespKey = (i64, Rc<str>, Rc<str>, Rc<str>, Rc<str>);

#[derive(Debug, Clone, Default)]
struct Respondent {
    between_rc: Vec<f64>,
    n_within: usize,
    n_unscored: usize,
    /// SRM items then person items (`Items::person_items` order); `None` when not answered.
    person: Vec<Option<f64>>,
    srm: Scored,
    srm_others: Scored,
}

#[derive(Debug, Clone)]
struct Citizen {
    wave: i64,
    municipality: Rc<str>,
    citizen_id: Rc<str>,
    case_id: Rc<str>,
    items: Vec<Option<f64>>,
    quality: Scored,
}

/// One row of `reliability.parquet`.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct RelRow {
    measure: &'static str,
    scale: &'static str,
    scope: String,
    wave: i64,
    unit_id: Option<String>,
    work_group: Option<String>,
    target_group: Option<String>,
    value: Option<f64>,
    n: usize,
    n_groups: Option<usize>,
    k: Option<usize>,
}

const EMPLOYEE_COLUMNS: [Spec; 10] = [
    req("wave", Kind::I64),
    req("municipality", Kind::Str),
    req("unit_id", Kind::Str),
    req("work_group", Kind::Str),
    req("respondent_id", Kind::Str),
    opt("target_group", Kind::Str),
    req("item", Kind::Str),
    opt("value", Kind::F64),
    req("source", Kind::Str),
    req("line", Kind::I64),
];

const CITIZEN_COLUMNS: [Spec; 8] = [
    req("wave", Kind::I64),
    req("municipality", Kind::Str),
    req("citizen_id", Kind::Str),
    req("case_id", Kind::Str),
    req("item", Kind::Str),
    opt("value", Kind::F64),
    req("source", Kind::Str),
    req("line", Kind::I64),
];

/// Adds `n` to a summary count.
fn add(counts: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    *counts.entry(key.to_string()).or_default() += n;
}

/// Output frames collected wave by wave (every scoring rule is within a wave, and wave is the
/// leading sort key of every table, so appending waves in ascending order keeps them sorted).
#[derive(Default)]
struct Collected {
    frames: BTreeMap<&'static str, DataFrame>,
}

impl Collected {
    fn push(&mut self, name: &'static str, df: DataFrame) -> Result<()> {
        match self.frames.get_mut(name) {
            Some(acc) => {
                acc.vstack_mut(&df)?;
            }
            None => {
                self.frames.insert(name, df);
            }
        }
        Ok(())
    }

    /// The collected frame, or `empty()` (the right columns, no rows) when no wave had any.
    fn take(&mut self, name: &str, empty: impl FnOnce() -> Result<DataFrame>) -> Result<DataFrame> {
        match self.frames.remove(name) {
            Some(mut df) => {
                df.rechunk_mut();
                Ok(df)
            }
            None => empty(),
        }
    }
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let config = ctx.config;
    let items = Items::from_instrument(&config.instrument);
    check_column_names(&items)?;
    let mut summary = StageSummary::default();

    let units_path = ctx.table_path("clean", "units");
    let units = super::frame::read(
        &units_path,
        &[req("unit_id", Kind::Str), opt("headcount", Kind::I64)],
    )?;
    let mut headcount: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for (u, h) in strs(&units, "unit_id")?.zip(i64s(&units, "headcount")?) {
        if let Some(u) = u {
            headcount.insert(u.to_string(), h);
        }
    }

    let mut out = Collected::default();
    let mut reliability = Vec::new();
    let emp_path = ctx.table_path("clean", "employee_responses");
    let mut emp_count = TableCount::default();
    for wave in super::frame::waves(&emp_path)? {
        let emp = super::frame::read_wave(&emp_path, &EMPLOYEE_COLUMNS, wave)?;
        score_employee_wave(
            emp,
            wave,
            &emp_path.display().to_string(),
            &items,
            config,
            &headcount,
            &mut emp_count,
            &mut summary,
            &mut out,
            &mut reliability,
        )?;
    }
    summary
        .tables
        .insert("employee_responses".into(), emp_count);

    let cit_path = ctx.table_path("clean", "citizen_responses");
    let mut cit_count = TableCount::default();
    for wave in super::frame::waves(&cit_path)? {
        let cit = super::frame::read_wave(&cit_path, &CITIZEN_COLUMNS, wave)?;
        score_citizen_wave(
            cit,
            wave,
            &cit_path.display().to_string(),
            &items,
            config,
            &mut cit_count,
            &mut summary,
            &mut out,
            &mut reliability,
        )?;
    }
    summary.tables.insert("citizen_responses".into(), cit_count);

    reliability.sort_by(|a, b| {
        (
            a.measure,
            a.scale,
            &a.scope,
            a.wave,
            &a.unit_id,
            &a.work_group,
            &a.target_group,
        )
            .cmp(&(
                b.measure,
                b.scale,
                &b.scope,
                b.wave,
                &b.unit_id,
                &b.work_group,
                &b.target_group,
            ))
    });
    for r in &reliability {
        if r.value.is_none() {
            add(
                &mut summary.counts,
                &format!("reliability_not_computed.{}.{}", r.measure, r.scale),
                1,
            );
        }
    }

    out.push("reliability", reliability_frame(&reliability)?)?;
    let out_dir = ctx.stage_dir(STAGE);
    let meta = ctx.parquet_meta(STAGE);
    let mut write = |name: &'static str, empty: &dyn Fn() -> Result<DataFrame>| -> Result<()> {
        let mut df = out.take(name, empty)?;
        let path = ctx.table_path(STAGE, name);
        write_parquet(&mut df, &path, &meta)?;
        summary.add_output(&out_dir, &path);
        summary.facts.insert(
            format!("{name}.rows"),
            serde_json::Value::from(df.height() as u64),
        );
        Ok(())
    };
    let no_resp = BTreeMap::new();
    write("ties", &|| ties_frame(&[], &items))?;
    write("respondents", &|| respondents_frame(&no_resp, &items))?;
    write("dyads", &|| dyads_frame(&BTreeMap::new(), &items))?;
    write("units", &|| units_frame(&no_resp, &headcount))?;
    write("citizens", &|| citizens_frame(&[], &items))?;
    write("network", &|| NetworkRows::default().finish())?;
    write("reliability", &|| reliability_frame(&[]))?;
    Ok(summary)
}

/// Scores the employee answers of one wave: ties, respondents, dyads, units, network, and the
/// reliability rows of the employee scales.
#[allow(clippy::too_many_arguments)]
fn score_employee_wave(
    emp: DataFrame,
    wave: i64,
    emp_file: &str,
    items: &Items,
    config: &Config,
    headcount: &BTreeMap<String, Option<i64>>,
    count: &mut TableCount,
    summary: &mut StageSummary,
    out: &mut Collected,
    reliability: &mut Vec<RelRow>,
) -> Result<()> {
    let tie_items = items.tie_items();
    let person_items = items.person_items();
    let tie_slots = long::slots(&tie_items);
    let person_slots = long::slots(&person_items);
    let citizen_items: std::collections::HashSet<&str> =
        items.citizen.iter().map(String::as_str).collect();
    // Accounting categories, in the order a row is classified.
    const CATEGORIES: [&str; 6] = [
        "tie",
        "tie_item_without_target_group",
        "person",
        "person_item_with_target_group",
        "citizen_item_in_employee_responses",
        "item_not_in_instrument",
    ];
    let muni_c = emp.column("municipality")?.str()?;
    let unit_c = emp.column("unit_id")?.str()?;
    let group_c = emp.column("work_group")?.str()?;
    let resp_c = emp.column("respondent_id")?.str()?;
    let target_c = emp.column("target_group")?.str()?;
    let item_c = emp.column("item")?.str()?;
    let value_c = emp.column("value")?.f64()?;
    let line_c = emp.column("line")?.i64()?;
    let mut muni = Interned::default();
    let mut unit = Interned::default();
    let mut group = Interned::default();
    let mut resp = Interned::default();
    let mut target = Interned::default();
    let mut item = Interned::default();
    let mut item_kind: Vec<(Option<&long::Slots>, Option<&long::Slots>, bool)> = vec![];
    let mut tie_pivot: long::Pivot<5> = long::Pivot::new(tie_items.len(), tie_slots.len());
    let mut person_pivot: long::Pivot<4> = long::Pivot::new(person_items.len(), person_slots.len());
    let mut by_category = [0u64; CATEGORIES.len()];
    let (mut answered, mut unanswered) = (0u64, 0u64);
    let rows = muni_c
        .iter()
        .zip(unit_c.iter())
        .zip(group_c.iter())
        .zip(resp_c.iter())
        .zip(target_c.iter())
        .zip(item_c.iter())
        .zip(value_c.iter())
        .zip(line_c.iter());
    for (row, (((((((m, u), g), r), t), it), v), l)) in rows.enumerate() {
        let (Some(m), Some(u), Some(g), Some(r), Some(it), Some(l)) = (m, u, g, r, it, l) else {
            bail!(
                "{emp_file}: an empty key in an answer row{}",
                super::frame::provenance(&emp, row)
            );
        };
        let id = item.id(it) as usize;
        if id == item_kind.len() {
            item_kind.push((
                tie_slots.get(it),
                person_slots.get(it),
                citizen_items.contains(it),
            ));
        }
        let category = match item_kind[id] {
            (Some(slots), _, _) => match t {
                Some(t) => {
                    let key = [
                        muni.id(m),
                        unit.id(u),
                        group.id(g),
                        resp.id(r),
                        target.id(t),
                    ];
                    tie_pivot.add(key, slots, v, row, l);
                    0
                }
                None => 1,
            },
            (None, Some(slots), _) => match t {
                None => {
                    let key = [muni.id(m), unit.id(u), group.id(g), resp.id(r)];
                    person_pivot.add(key, slots, v, row, l);
                    2
                }
                Some(_) => 3,
            },
            (None, None, true) => 4,
            (None, None, false) => 5,
        };
        by_category[category] += 1;
        if category == 0 || category == 2 {
            if v.is_some() {
                answered += 1;
            } else {
                unanswered += 1;
            }
        }
    }
    count.rows_in += emp.height() as u64;
    for (c, &k) in CATEGORIES.iter().zip(&by_category) {
        if k == 0 {
            continue;
        }
        if *c == "tie" || *c == "person" {
            count.rows_out += k;
        } else {
            *count.excluded.entry(c.to_string()).or_default() += k;
        }
    }
    let c = &mut summary.counts;
    add(c, "employee_responses.in_ties", by_category[0]);
    add(c, "employee_responses.in_person_scores", by_category[2]);
    add(c, "employee_responses.used_answered", answered);
    add(c, "employee_responses.used_unanswered", unanswered);
    if let Some(g) = tie_pivot.first_duplicate() {
        bail!(duplicate_item_error(
            &emp,
            emp_file,
            "tie (respondent, partner group, wave)",
            tie_pivot.first_row[g],
            tie_pivot.min_line[g]
        ));
    }
    if let Some(g) = person_pivot.first_duplicate() {
        bail!(duplicate_item_error(
            &emp,
            emp_file,
            "respondent in a wave",
            person_pivot.first_row[g],
            person_pivot.min_line[g]
        ));
    }

    let rule = tie_rule(config);
    let strings = [
        muni.shared(),
        unit.shared(),
        group.shared(),
        resp.shared(),
        target.shared(),
    ];
    let ranks = [
        muni.ranks(),
        unit.ranks(),
        group.ranks(),
        resp.ranks(),
        target.ranks(),
    ];
    drop((muni, unit, group, resp, target, item));
    let ties = build_ties(wave, &tie_pivot, &strings, &ranks, items, &rule);
    drop(tie_pivot);
    let mut respondents = build_respondents(wave, &ties, &person_pivot, &strings, items);
    drop(person_pivot);
    drop(emp);
    score_respondents(&mut respondents, items, config);
    count_ties_and_respondents(&ties, &respondents, items, summary);

    let dyads = build_dyads(&ties, config);
    let undefined = dyads.values().filter(|d| d.summary.mean.is_none()).count();
    add(&mut summary.counts, "dyads", dyads.len() as u64);
    add(&mut summary.counts, "dyads_undefined", undefined as u64);

    reliability_alpha_employees(&ties, &respondents, items, reliability);
    reliability_icc(&respondents, reliability);
    reliability_rwg(&respondents, &dyads, items, config, reliability);

    let network_rule = NetworkRule {
        blind_spot_high: config.scoring.blind_spot_high,
        blind_spot_low: config.scoring.blind_spot_low,
        hub_relevance: config.scoring.hub_relevance,
    };
    out.push("network", build_network(&dyads, &network_rule, summary)?)?;
    out.push("ties", ties_frame(&ties, items)?)?;
    out.push("respondents", respondents_frame(&respondents, items)?)?;
    out.push("dyads", dyads_frame(&dyads, items)?)?;
    out.push("units", units_frame(&respondents, headcount)?)?;
    Ok(())
}

/// Scores the citizen answers of one wave: citizen quality and its alpha.
#[allow(clippy::too_many_arguments)]
fn score_citizen_wave(
    cit: DataFrame,
    wave: i64,
    cit_file: &str,
    items: &Items,
    config: &Config,
    count: &mut TableCount,
    summary: &mut StageSummary,
    out: &mut Collected,
    reliability: &mut Vec<RelRow>,
) -> Result<()> {
    let citizen_slots = long::slots(&items.citizen);
    let employee_items: std::collections::HashSet<&str> = items
        .dims
        .iter()
        .chain(&items.relevance)
        .chain(&items.srm)
        .chain(&items.person)
        .map(String::as_str)
        .collect();
    const CATEGORIES: [&str; 3] = [
        "citizen",
        "employee_item_in_citizen_responses",
        "item_not_in_instrument",
    ];
    let muni_c = cit.column("municipality")?.str()?;
    let cid_c = cit.column("citizen_id")?.str()?;
    let case_c = cit.column("case_id")?.str()?;
    let item_c = cit.column("item")?.str()?;
    let value_c = cit.column("value")?.f64()?;
    let line_c = cit.column("line")?.i64()?;
    let mut muni = Interned::default();
    let mut cid = Interned::default();
    let mut case = Interned::default();
    let mut item = Interned::default();
    let mut item_kind: Vec<(Option<&long::Slots>, bool)> = vec![];
    let mut pivot: long::Pivot<3> = long::Pivot::new(items.citizen.len(), citizen_slots.len());
    let mut by_category = [0u64; CATEGORIES.len()];
    let (mut answered, mut unanswered) = (0u64, 0u64);
    let rows = muni_c
        .iter()
        .zip(cid_c.iter())
        .zip(case_c.iter())
        .zip(item_c.iter())
        .zip(value_c.iter())
        .zip(line_c.iter());
    for (row, (((((m, ci), ca), it), v), l)) in rows.enumerate() {
        let (Some(m), Some(ci), Some(ca), Some(it), Some(l)) = (m, ci, ca, it, l) else {
            bail!(
                "{cit_file}: an empty key in an answer row{}",
                super::frame::provenance(&cit, row)
            );
        };
        let id = item.id(it) as usize;
        if id == item_kind.len() {
            item_kind.push((citizen_slots.get(it), employee_items.contains(it)));
        }
        let category = match item_kind[id] {
            (Some(slots), _) => {
                pivot.add([muni.id(m), cid.id(ci), case.id(ca)], slots, v, row, l);
                if v.is_some() {
                    answered += 1;
                } else {
                    unanswered += 1;
                }
                0
            }
            (None, true) => 1,
            (None, false) => 2,
        };
        by_category[category] += 1;
    }
    count.rows_in += cit.height() as u64;
    for (c, &k) in CATEGORIES.iter().zip(&by_category) {
        if k == 0 {
            continue;
        }
        if *c == "citizen" {
            count.rows_out += k;
        } else {
            *count.excluded.entry(c.to_string()).or_default() += k;
        }
    }
    add(
        &mut summary.counts,
        "citizen_responses.used_answered",
        answered,
    );
    add(
        &mut summary.counts,
        "citizen_responses.used_unanswered",
        unanswered,
    );
    if let Some(g) = pivot.first_duplicate() {
        bail!(duplicate_item_error(
            &cit,
            cit_file,
            "citizen's case in a wave",
            pivot.first_row[g],
            pivot.min_line[g]
        ));
    }
    let citizens = build_citizens(wave, &pivot, [&muni, &cid, &case], items, config);
    drop((pivot, muni, cid, case, item));
    drop(cit);
    let too_few = citizens
        .iter()
        .filter(|c| c.quality.value.is_none())
        .count();
    add(&mut summary.counts, "citizens", citizens.len() as u64);
    add(&mut summary.counts, "citizen_too_few_items", too_few as u64);
    let rows: Vec<ItemRow> = citizens
        .iter()
        .map(|c| (c.wave, &*c.municipality, c.items.as_slice()))
        .collect();
    alpha_by_scope(
        reliability,
        &rows,
        &[("citizen_quality", 0..items.citizen.len())],
    );
    out.push("citizens", citizens_frame(&citizens, items)?)?;
    Ok(())
}

/// The error for a group with the same item twice: its first row's source and its smallest
/// line.
fn duplicate_item_error(df: &DataFrame, file: &str, what: &str, row: u32, line: i64) -> String {
    let source = df
        .column("source")
        .ok()
        .and_then(|c| c.str().ok())
        .and_then(|c| c.get(row as usize).map(str::to_string));
    let at = match source {
        Some(s) => format!(" (source {s}, line {line})"),
        None => format!(" (line {line})"),
    };
    format!(
        "{file}: a {what} has the same item twice{at}; the clean stage should have \
         collapsed or quarantined the duplicate"
    )
}

/// The ties of one wave from the tie pivot (keys: municipality, unit_id, work_group,
/// respondent_id, target_group), sorted by (municipality, unit_id, respondent_id,
/// target_group) in byte order.
fn build_ties(
    wave: i64,
    pivot: &long::Pivot<5>,
    strings: &[Vec<Rc<str>>; 5],
    ranks: &[Vec<u32>; 5],
    items: &Items,
    rule: &TieRule,
) -> Vec<Tie> {
    let k = items.dims.len();
    let mut order: Vec<u32> = (0..pivot.len() as u32).collect();
    order.sort_unstable_by_key(|&g| {
        let key = &pivot.keys[g as usize];
        let r = |c: usize| ranks[c][key[c] as usize];
        (r(0), r(1), r(3), r(4), r(2))
    });
    order
        .into_iter()
        .map(|g| {
            let key = &pivot.keys[g as usize];
            let values = pivot.row(g as usize);
            let dims: Vec<Option<f64>> = values[..k].to_vec();
            let relevance = if items.relevance.is_some() {
                values[k]
            } else {
                None
            };
            let score = compute::tie_score(&dims, rule);
            let s = |c: usize| strings[c][key[c] as usize].clone();
            Tie {
                wave,
                municipality: s(0),
                unit_id: s(1),
                work_group: s(2),
                respondent_id: s(3),
                target_group: s(4),
                dims,
                relevance,
                score,
            }
        })
        .collect()
}

fn build_respondents(
    wave: i64,
    ties: &[Tie],
    person: &long::Pivot<4>,
    strings: &[Vec<Rc<str>>; 5],
    items: &Items,
) -> BTreeMap<RespKey, Respondent> {
    let k = items.person_items().len();
    let blank = || Respondent {
        person: vec![None; k],
        ..Default::default()
    };
    let mut out: BTreeMap<RespKey, Respondent> = BTreeMap::new();
    for t in ties {
        let key = (
            t.wave,
            t.municipality.clone(),
            t.unit_id.clone(),
            t.work_group.clone(),
            t.respondent_id.clone(),
        );
        let r = out.entry(key).or_insert_with(blank);
        match t.score.rc.value {
            Some(rc) if !t.within() => r.between_rc.push(rc),
            Some(_) => r.n_within += 1,
            None => r.n_unscored += 1,
        }
    }
    for g in 0..person.len() {
        let key = &person.keys[g];
        let s = |c: usize| strings[c][key[c] as usize].clone();
        let r = out
            .entry((wave, s(0), s(1), s(2), s(3)))
            .or_insert_with(blank);
        r.person.copy_from_slice(person.row(g));
    }
    out
}

/// SRM and leave-one-out SRM, by unit and wave.
fn score_respondents(resp: &mut BTreeMap<RespKey, Respondent>, items: &Items, config: &Config) {
    let k = items.srm.len();
    let min = config.scoring.srm_min(k);
    for r in resp.values_mut() {
        r.srm = compute::mean_of_answered(&r.person[..k], min);
    }
    let mut by_unit: BTreeMap<UnitKey, Vec<RespKey>> = BTreeMap::new();
    for key in resp.keys() {
        by_unit
            .entry((key.0, key.1.clone(), key.2.clone()))
            .or_default()
            .push(key.clone());
    }
    for keys in by_unit.values() {
        let srm: Vec<Option<f64>> = keys
            .iter()
            .map(|k| resp.get(k).and_then(|r| r.srm.value))
            .collect();
        for (key, loo) in keys.iter().zip(compute::leave_one_out(&srm)) {
            if let Some(r) = resp.get_mut(key) {
                r.srm_others = loo;
            }
        }
    }
}

fn count_ties_and_respondents(
    ties: &[Tie],
    resp: &BTreeMap<RespKey, Respondent>,
    items: &Items,
    summary: &mut StageSummary,
) {
    let c = &mut summary.counts;
    add(c, "ties", ties.len() as u64);
    add(
        c,
        "ties_within_group",
        ties.iter().filter(|t| t.within()).count() as u64,
    );
    add(
        c,
        "tie_too_few_items",
        ties.iter().filter(|t| t.score.rc.value.is_none()).count() as u64,
    );
    add(c, "respondents", resp.len() as u64);
    let mut between_rated: BTreeMap<(i64, &str, &str, &str, &str), ()> = BTreeMap::new();
    for t in ties.iter().filter(|t| !t.within()) {
        between_rated.insert(
            (
                t.wave,
                &t.municipality,
                &t.unit_id,
                &t.work_group,
                &t.respondent_id,
            ),
            (),
        );
    }
    let mut without_between = 0u64;
    let mut without_scored = 0u64;
    let mut srm_too_few = 0u64;
    let mut srm_none = 0u64;
    let mut loo_none = 0u64;
    for (k, r) in resp {
        if r.between_rc.is_empty() {
            if between_rated.contains_key(&(k.0, &*k.1, &*k.2, &*k.3, &*k.4)) {
                without_scored += 1;
            } else {
                without_between += 1;
            }
        }
        if r.srm.value.is_none() {
            if r.srm.n == 0 && !items.srm.is_empty() {
                srm_none += 1;
            } else {
                srm_too_few += 1;
            }
        }
        if r.srm_others.value.is_none() {
            loo_none += 1;
        }
    }
    add(c, "respondents_without_between_ties", without_between);
    add(c, "respondents_without_scored_between_ties", without_scored);
    add(c, "srm_too_few_items", srm_too_few);
    add(c, "srm_not_answered", srm_none);
    add(c, "srm_others_none", loo_none);
}

/// The citizens of one wave from the citizen pivot (keys: municipality, citizen_id, case_id),
/// sorted by those keys in byte order.
fn build_citizens(
    wave: i64,
    pivot: &long::Pivot<3>,
    keys: [&Interned; 3],
    items: &Items,
    config: &Config,
) -> Vec<Citizen> {
    let k = items.citizen.len();
    let min = config.scoring.citizen_min(k);
    let strings = keys.map(Interned::shared);
    let ranks = keys.map(Interned::ranks);
    let mut order: Vec<u32> = (0..pivot.len() as u32).collect();
    order.sort_unstable_by_key(|&g| {
        let key = &pivot.keys[g as usize];
        [0, 1, 2].map(|c| ranks[c][key[c] as usize])
    });
    order
        .into_iter()
        .map(|g| {
            let key = &pivot.keys[g as usize];
            let v: Vec<Option<f64>> = pivot.row(g as usize).to_vec();
            let quality = compute::mean_of_answered(&v, min);
            let s = |c: usize| strings[c][key[c] as usize].clone();
            Citizen {
                wave,
                municipality: s(0),
                citizen_id: s(1),
                case_id: s(2),
                items: v,
                quality,
            }
        })
        .collect()
}

/// A directed dyad, summarised from its ties.
#[derive(Debug, Clone)]
struct Dyad {
    n_ties: usize,
    /// Tie scores of its raters (ties with an `rc`).
    summary: compute::Summary,
    /// Per dimension: mean over those raters who answered it, and their number.
    dims: Vec<Scored>,
    relevance: Scored,
    rwg: Option<f64>,
}

/// Key: (wave, municipality, work_group, target_group).
type DyadKey = (i64, Rc<str>, Rc<str>, Rc<str>);

/// Unit key: (wave, municipality, unit_id).
type UnitKey = (i64, Rc<str>, Rc<str>);

fn build_dyads(ties: &[Tie], config: &Config) -> BTreeMap<DyadKey, Dyad> {
    // Per dyad: number of ties, indices of the ties with an `rc`, relevance answers.
    let mut acc: BTreeMap<DyadKey, (usize, Vec<usize>, Vec<f64>)> = BTreeMap::new();
    for (i, t) in ties.iter().enumerate() {
        let e = acc
            .entry((
                t.wave,
                t.municipality.clone(),
                t.work_group.clone(),
                t.target_group.clone(),
            ))
            .or_default();
        e.0 += 1;
        if t.score.rc.value.is_some() {
            e.1.push(i);
        }
        if let Some(r) = t.relevance {
            e.2.push(r);
        }
    }
    let k = ties.first().map_or(0, |t| t.dims.len());
    acc.into_iter()
        .map(|(key, (n_ties, scored, relevance))| {
            let rcs: Vec<f64> = scored
                .iter()
                .filter_map(|&i| ties[i].score.rc.value)
                .collect();
            let rows: Vec<Vec<Option<f64>>> =
                scored.iter().map(|&i| ties[i].dims.clone()).collect();
            let rwg = if rows.is_empty() {
                None
            } else {
                rwg_j(&rows, config.scoring.rwg_null_variance)
            };
            let dims = (0..k)
                .map(|j| {
                    let v: Vec<f64> = rows.iter().filter_map(|r| r[j]).collect();
                    Scored {
                        value: compute::mean(&v),
                        n: v.len(),
                    }
                })
                .collect();
            let dyad = Dyad {
                n_ties,
                summary: compute::summarize(&rcs),
                dims,
                relevance: Scored {
                    value: compute::mean(&relevance),
                    n: relevance.len(),
                },
                rwg,
            };
            (key, dyad)
        })
        .collect()
}

fn build_network(
    dyads: &BTreeMap<DyadKey, Dyad>,
    rule: &NetworkRule,
    summary: &mut StageSummary,
) -> Result<DataFrame> {
    let mut per_network: BTreeMap<(i64, Rc<str>), Vec<DyadInput>> = BTreeMap::new();
    for ((wave, muni, g, h), d) in dyads {
        if g == h {
            continue;
        }
        per_network
            .entry((*wave, muni.clone()))
            .or_default()
            .push(DyadInput {
                from: g.to_string(),
                to: h.to_string(),
                mean: d.summary.mean,
                n_raters: d.summary.n,
                relevance: d.relevance.value,
                relevance_n: d.relevance.n,
            });
    }
    let mut b = NetworkRows::default();
    let mut blind = 0u64;
    let mut one_way = 0u64;
    for ((wave, muni), inputs) in &per_network {
        let (groups, pairs) = compute::network(inputs, rule);
        // Pairs with a defined dyad in exactly one direction, for the summary.
        let defined: std::collections::BTreeSet<(&str, &str)> = inputs
            .iter()
            .filter(|d| d.mean.is_some())
            .map(|d| (d.from.as_str(), d.to.as_str()))
            .collect();
        one_way += defined
            .iter()
            .filter(|(f, t)| !defined.contains(&(*t, *f)))
            .count() as u64;
        for g in groups {
            b.group(*wave, muni, g);
        }
        for p in pairs {
            blind += u64::from(p.blind_spot);
            b.pair(*wave, muni, p);
        }
    }
    add(&mut summary.counts, "blind_spots", blind);
    add(&mut summary.counts, "pairs_one_direction_only", one_way);
    b.finish()
}

/// Columns of `network.parquet`, filled row by row (groups of a network first, then its pairs,
/// which is the (kind, work_group, partner_group) order within a network).
#[derive(Default)]
struct NetworkRows {
    wave: Vec<i64>,
    municipality: Vec<String>,
    kind: Vec<&'static str>,
    work_group: Vec<String>,
    partner_group: Vec<Option<String>>,
    in_strength: Vec<Option<f64>>,
    in_n: Vec<Option<i64>>,
    out_strength: Vec<Option<f64>>,
    out_n: Vec<Option<i64>>,
    hub_score: Vec<Option<i64>>,
    hub_n: Vec<Option<i64>>,
    relevance_in: Vec<Option<f64>>,
    d_forward: Vec<Option<f64>>,
    n_forward: Vec<Option<i64>>,
    d_backward: Vec<Option<f64>>,
    n_backward: Vec<Option<i64>>,
    asymmetry: Vec<Option<f64>>,
    blind_spot: Vec<Option<bool>>,
    high: Vec<Option<String>>,
    low: Vec<Option<String>>,
}

impl NetworkRows {
    fn group(&mut self, wave: i64, muni: &str, g: compute::GroupMeasures) {
        self.wave.push(wave);
        self.municipality.push(muni.to_string());
        self.kind.push("group");
        self.work_group.push(g.group);
        self.partner_group.push(None);
        self.in_strength.push(g.in_strength);
        self.in_n.push(Some(n(g.in_n)));
        self.out_strength.push(g.out_strength);
        self.out_n.push(Some(n(g.out_n)));
        self.hub_score.push(Some(n(g.hub_score)));
        self.hub_n.push(Some(n(g.hub_n)));
        self.relevance_in.push(g.relevance_in);
        self.d_forward.push(None);
        self.n_forward.push(None);
        self.d_backward.push(None);
        self.n_backward.push(None);
        self.asymmetry.push(None);
        self.blind_spot.push(None);
        self.high.push(None);
        self.low.push(None);
    }

    fn pair(&mut self, wave: i64, muni: &str, p: compute::PairMeasures) {
        self.wave.push(wave);
        self.municipality.push(muni.to_string());
        self.kind.push("pair");
        self.work_group.push(p.a);
        self.partner_group.push(Some(p.b));
        self.in_strength.push(None);
        self.in_n.push(None);
        self.out_strength.push(None);
        self.out_n.push(None);
        self.hub_score.push(None);
        self.hub_n.push(None);
        self.relevance_in.push(None);
        self.d_forward.push(Some(p.d_ab));
        self.n_forward.push(Some(n(p.n_ab)));
        self.d_backward.push(Some(p.d_ba));
        self.n_backward.push(Some(n(p.n_ba)));
        self.asymmetry.push(Some(p.asymmetry));
        self.blind_spot.push(Some(p.blind_spot));
        self.high.push(p.blind_spot_high_group);
        self.low.push(p.blind_spot_low_group);
    }

    fn finish(self) -> Result<DataFrame> {
        let mut b = FrameBuilder::new();
        b.i64("wave", self.wave)
            .str("municipality", self.municipality)
            .str("kind", self.kind)
            .str("work_group", self.work_group)
            .opt_str("partner_group", self.partner_group)
            .f64("in_strength", self.in_strength)
            .opt_i64("in_n", self.in_n)
            .f64("out_strength", self.out_strength)
            .opt_i64("out_n", self.out_n)
            .opt_i64("hub_score", self.hub_score)
            .opt_i64("hub_n", self.hub_n)
            .f64("relevance_in", self.relevance_in)
            .f64("d_forward", self.d_forward)
            .opt_i64("n_forward", self.n_forward)
            .f64("d_backward", self.d_backward)
            .opt_i64("n_backward", self.n_backward)
            .f64("asymmetry", self.asymmetry)
            .opt_bool("blind_spot", self.blind_spot)
            .opt_str("blind_spot_high_group", self.high)
            .opt_str("blind_spot_low_group", self.low);
        b.finish()
    }
}

fn rel_row(
    measure: &'static str,
    scale: &'static str,
    scope: &str,
    wave: i64,
    value: Option<f64>,
    n: usize,
) -> RelRow {
    RelRow {
        measure,
        scale,
        scope: scope.to_string(),
        wave,
        unit_id: None,
        work_group: None,
        target_group: None,
        value,
        n,
        n_groups: None,
        k: None,
    }
}

/// Alpha rows (raw and standardized) of one scale in one scope and wave, on its complete cases
/// (`complete`: the scope's rows with every item of the scale answered) of `k` items.
fn push_alpha(
    out: &mut Vec<RelRow>,
    scale: &'static str,
    scope: &str,
    wave: i64,
    complete: &[Vec<Option<f64>>],
    k: usize,
) {
    let (raw, std) = match cronbach_alpha(complete) {
        Ok(a) => (Some(a.raw_alpha), Some(a.std_alpha)),
        Err(_) => (None, None),
    };
    for (measure, value) in [("alpha_raw", raw), ("alpha_std", std)] {
        let mut r = rel_row(measure, scale, scope, wave, value, complete.len());
        r.k = Some(k);
        out.push(r);
    }
}

/// (wave, municipality, item values) of one tie, respondent or citizen.
type ItemRow<'a> = (i64, &'a str, &'a [Option<f64>]);

/// Alpha of each scale (of at least 2 items) per wave, pooled (`all`) and per municipality.
/// `rows` must be sorted by (wave, municipality), so every scope is a contiguous run. The
/// complete cases of a wave are copied once per scale; each municipality's are a contiguous
/// part of them.
fn alpha_by_scope(
    out: &mut Vec<RelRow>,
    rows: &[ItemRow],
    scales: &[(&'static str, Range<usize>)],
) {
    let mut i = 0;
    while i < rows.len() {
        let wave = rows[i].0;
        let j = i + rows[i..].iter().take_while(|r| r.0 == wave).count();
        let wave_rows = &rows[i..j];
        for (scale, cols) in scales {
            let k = cols.len();
            if k < 2 {
                continue;
            }
            // The complete cases of the wave, and the run of wave rows each comes from.
            let mut complete: Vec<Vec<Option<f64>>> = Vec::new();
            let mut run_of: Vec<usize> = Vec::new();
            let mut runs: Vec<(usize, &str)> = Vec::new();
            for (a, r) in wave_rows.iter().enumerate() {
                if a == 0 || r.1 != wave_rows[a - 1].1 {
                    runs.push((a, r.1));
                }
                let v = &r.2[cols.clone()];
                if v.iter().all(Option::is_some) {
                    complete.push(v.to_vec());
                    run_of.push(runs.len() - 1);
                }
            }
            push_alpha(out, scale, "all", wave, &complete, k);
            let mut c = 0;
            for (run, &(_, muni)) in runs.iter().enumerate() {
                let start = c;
                while c < run_of.len() && run_of[c] == run {
                    c += 1;
                }
                push_alpha(out, scale, muni, wave, &complete[start..c], k);
            }
        }
        i = j;
    }
}

fn reliability_alpha_employees(
    ties: &[Tie],
    resp: &BTreeMap<RespKey, Respondent>,
    items: &Items,
    out: &mut Vec<RelRow>,
) {
    let k = items.dims.len();
    let nc = items.n_communication.min(k);
    // Ties are sorted by (wave, municipality, ...), and so are respondents (a BTreeMap).
    let rows: Vec<ItemRow> = ties
        .iter()
        .map(|t| (t.wave, &*t.municipality, t.dims.as_slice()))
        .collect();
    alpha_by_scope(
        out,
        &rows,
        &[
            ("rc", 0..k),
            ("rc_communication", 0..nc),
            ("rc_relationship", nc..k),
        ],
    );
    let k = items.srm.len();
    let rows: Vec<ItemRow> = resp
        .iter()
        .map(|(key, r)| (key.0, &*key.1, &r.person[..k]))
        .collect();
    alpha_by_scope(out, &rows, &[("srm", 0..k)]);
}

fn reliability_icc(resp: &BTreeMap<RespKey, Respondent>, out: &mut Vec<RelRow>) {
    type Scores = BTreeMap<i64, (Vec<f64>, Vec<u32>)>;
    let mut rcap: Scores = BTreeMap::new();
    let mut srm: Scores = BTreeMap::new();
    let mut unit_ids: BTreeMap<(Rc<str>, Rc<str>), u32> = BTreeMap::new();
    for key in resp.keys() {
        let next = unit_ids.len() as u32;
        unit_ids
            .entry((key.1.clone(), key.2.clone()))
            .or_insert(next);
    }
    for (key, r) in resp {
        let unit = unit_ids
            .get(&(key.1.clone(), key.2.clone()))
            .copied()
            .unwrap_or(u32::MAX);
        if let Some(v) = compute::mean(&r.between_rc) {
            let e = rcap.entry(key.0).or_default();
            e.0.push(v);
            e.1.push(unit);
        }
        if let Some(v) = r.srm.value {
            let e = srm.entry(key.0).or_default();
            e.0.push(v);
            e.1.push(unit);
        }
    }
    for (scale, scores) in [("rcap", &rcap), ("srm", &srm)] {
        for (wave, (values, groups)) in scores {
            let n_groups = groups
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let icc = icc_oneway(values, groups).ok();
            for (measure, value) in [
                ("icc1", icc.as_ref().map(|i| i.icc1)),
                ("icc2", icc.as_ref().map(|i| i.icc2)),
                ("icc_k0", icc.as_ref().map(|i| i.k0)),
            ] {
                let mut r = rel_row(measure, scale, "all", *wave, value, values.len());
                r.n_groups = Some(n_groups);
                out.push(r);
            }
        }
    }
}

fn reliability_rwg(
    resp: &BTreeMap<RespKey, Respondent>,
    dyads: &BTreeMap<DyadKey, Dyad>,
    items: &Items,
    config: &Config,
    out: &mut Vec<RelRow>,
) {
    let k = items.srm.len();
    if k > 0 {
        let mut by_unit: BTreeMap<UnitKey, Vec<Vec<Option<f64>>>> = BTreeMap::new();
        for (key, r) in resp {
            if r.srm.value.is_some() {
                by_unit
                    .entry((key.0, key.1.clone(), key.2.clone()))
                    .or_default()
                    .push(r.person[..k].to_vec());
            }
        }
        for ((wave, muni, unit), rows) in by_unit {
            let mut r = rel_row(
                "rwg_j",
                "srm",
                &muni,
                wave,
                rwg_j(&rows, config.scoring.rwg_null_variance),
                rows.len(),
            );
            r.unit_id = Some(unit.to_string());
            r.k = Some(k);
            out.push(r);
        }
    }
    for ((wave, muni, g, h), d) in dyads {
        if d.summary.n == 0 {
            continue;
        }
        let mut r = rel_row("rwg_j", "rc", muni, *wave, d.rwg, d.summary.n);
        r.work_group = Some(g.to_string());
        r.target_group = Some(h.to_string());
        r.k = Some(items.dims.len());
        out.push(r);
    }
}

fn ties_frame(ties: &[Tie], items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", ties.iter().map(|t| t.wave))
        .str("municipality", ties.iter().map(|t| &*t.municipality))
        .str("unit_id", ties.iter().map(|t| &*t.unit_id))
        .str("work_group", ties.iter().map(|t| &*t.work_group))
        .str("respondent_id", ties.iter().map(|t| &*t.respondent_id))
        .str("target_group", ties.iter().map(|t| &*t.target_group))
        .bool("within_group", ties.iter().map(Tie::within))
        .i64("n_items", ties.iter().map(|t| n(t.score.rc.n)))
        .f64("rc", ties.iter().map(|t| t.score.rc.value))
        .f64(
            "rc_communication",
            ties.iter().map(|t| t.score.communication.value),
        )
        .i64(
            "rc_communication_n",
            ties.iter().map(|t| n(t.score.communication.n)),
        )
        .f64(
            "rc_relationship",
            ties.iter().map(|t| t.score.relationship.value),
        )
        .i64(
            "rc_relationship_n",
            ties.iter().map(|t| n(t.score.relationship.n)),
        )
        .f64("relevance", ties.iter().map(|t| t.relevance));
    for (j, d) in items.dims.iter().enumerate() {
        b.f64(d, ties.iter().map(|t| t.dims[j]));
    }
    b.finish()
}

fn respondents_frame(resp: &BTreeMap<RespKey, Respondent>, items: &Items) -> Result<DataFrame> {
    // BTreeMap order is (wave, municipality, unit_id, work_group, respondent_id); within a unit
    // the work group is constant, so this is the documented sort order.
    let mut b = FrameBuilder::new();
    b.i64("wave", resp.keys().map(|k| k.0))
        .str("municipality", resp.keys().map(|k| &*k.1))
        .str("unit_id", resp.keys().map(|k| &*k.2))
        .str("work_group", resp.keys().map(|k| &*k.3))
        .str("respondent_id", resp.keys().map(|k| &*k.4))
        .f64("rcap", resp.values().map(|r| compute::mean(&r.between_rc)))
        .i64("n_ties", resp.values().map(|r| n(r.between_rc.len())))
        .i64("n_ties_within", resp.values().map(|r| n(r.n_within)))
        .i64("n_ties_unscored", resp.values().map(|r| n(r.n_unscored)))
        .f64("srm", resp.values().map(|r| r.srm.value))
        .i64("srm_n_items", resp.values().map(|r| n(r.srm.n)))
        .f64("srm_others", resp.values().map(|r| r.srm_others.value))
        .i64("srm_others_n", resp.values().map(|r| n(r.srm_others.n)));
    for (j, it) in items.person_items().iter().enumerate() {
        b.f64(it, resp.values().map(|r| r.person[j]));
    }
    b.finish()
}

fn dyads_frame(dyads: &BTreeMap<DyadKey, Dyad>, items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", dyads.keys().map(|k| k.0))
        .str("municipality", dyads.keys().map(|k| &*k.1))
        .str("work_group", dyads.keys().map(|k| &*k.2))
        .str("target_group", dyads.keys().map(|k| &*k.3))
        .bool("within_group", dyads.keys().map(|k| k.2 == k.3))
        .i64("n_ties", dyads.values().map(|d| n(d.n_ties)))
        .i64("n_raters", dyads.values().map(|d| n(d.summary.n)))
        .f64("mean", dyads.values().map(|d| d.summary.mean))
        .f64("sd", dyads.values().map(|d| d.summary.sd))
        .f64("rwg_j", dyads.values().map(|d| d.rwg))
        .f64("relevance_mean", dyads.values().map(|d| d.relevance.value))
        .i64("relevance_n", dyads.values().map(|d| n(d.relevance.n)));
    for (j, it) in items.dims.iter().enumerate() {
        b.f64(
            &format!("mean_{it}"),
            dyads.values().map(|d| d.dims.get(j).and_then(|s| s.value)),
        );
        b.i64(
            &format!("n_{it}"),
            dyads.values().map(|d| n(d.dims.get(j).map_or(0, |s| s.n))),
        );
    }
    b.finish()
}

fn units_frame(
    resp: &BTreeMap<RespKey, Respondent>,
    headcount: &BTreeMap<String, Option<i64>>,
) -> Result<DataFrame> {
    // Per unit: work group, respondents, respondent RCaps, respondent SRMs.
    type UnitAcc = (Rc<str>, usize, Vec<f64>, Vec<f64>);
    let mut units: BTreeMap<UnitKey, UnitAcc> = BTreeMap::new();
    for (key, r) in resp {
        let e = units
            .entry((key.0, key.1.clone(), key.2.clone()))
            .or_insert_with(|| (key.3.clone(), 0, vec![], vec![]));
        e.1 += 1;
        if let Some(v) = compute::mean(&r.between_rc) {
            e.2.push(v);
        }
        if let Some(v) = r.srm.value {
            e.3.push(v);
        }
    }
    let rcap: Vec<_> = units.values().map(|u| compute::summarize(&u.2)).collect();
    let srm: Vec<_> = units.values().map(|u| compute::summarize(&u.3)).collect();
    let mut b = FrameBuilder::new();
    b.i64("wave", units.keys().map(|k| k.0))
        .str("municipality", units.keys().map(|k| &*k.1))
        .str("unit_id", units.keys().map(|k| &*k.2))
        .str("work_group", units.values().map(|u| &*u.0))
        .opt_i64(
            "headcount",
            units
                .keys()
                .map(|k| headcount.get(&*k.2).copied().flatten()),
        )
        .i64("n_respondents", units.values().map(|u| n(u.1)))
        .f64("rcap", rcap.iter().map(|s| s.mean))
        .i64("n_rcap", rcap.iter().map(|s| n(s.n)))
        .f64("rcap_sd", rcap.iter().map(|s| s.sd))
        .f64("srm", srm.iter().map(|s| s.mean))
        .i64("n_srm", srm.iter().map(|s| n(s.n)))
        .f64("srm_sd", srm.iter().map(|s| s.sd));
    b.finish()
}

fn citizens_frame(citizens: &[Citizen], items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", citizens.iter().map(|c| c.wave))
        .str("municipality", citizens.iter().map(|c| &c.municipality))
        .str("citizen_id", citizens.iter().map(|c| &c.citizen_id))
        .str("case_id", citizens.iter().map(|c| &c.case_id))
        .f64("quality", citizens.iter().map(|c| c.quality.value))
        .i64("n_items", citizens.iter().map(|c| n(c.quality.n)));
    for (j, it) in items.citizen.iter().enumerate() {
        b.f64(it, citizens.iter().map(|c| c.items[j]));
    }
    b.finish()
}

fn reliability_frame(rows: &[RelRow]) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.str("measure", rows.iter().map(|r| r.measure))
        .str("scale", rows.iter().map(|r| r.scale))
        .str("scope", rows.iter().map(|r| &r.scope))
        .i64("wave", rows.iter().map(|r| r.wave))
        .opt_str("unit_id", rows.iter().map(|r| r.unit_id.as_ref()))
        .opt_str("work_group", rows.iter().map(|r| r.work_group.as_ref()))
        .opt_str("target_group", rows.iter().map(|r| r.target_group.as_ref()))
        .f64("value", rows.iter().map(|r| r.value))
        .i64("n", rows.iter().map(|r| n(r.n)))
        .opt_i64("n_groups", rows.iter().map(|r| r.n_groups.map(n)))
        .opt_i64("k", rows.iter().map(|r| r.k.map(n)));
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_names_that_clash_with_columns_are_refused() {
        let ins = InstrumentSection {
            person_items: vec!["srm".into()],
            ..Default::default()
        };
        let e = check_column_names(&Items::from_instrument(&ins))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`srm`"), "{e}");
        let ok = check_column_names(&Items::from_instrument(&InstrumentSection::default()));
        assert!(ok.is_ok());
    }
}
