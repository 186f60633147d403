//! The `score` stage: from the clean answers to tie scores, respondent RCap and SRM, dyads (the
//! municipalities' collaboration networks), unit scores, citizen quality, reliability and network
//! measures, as the scoring part of `docs/methods.md` defines them.
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
//! `blind_spot_high`, `blind_spot_low`, `hub_relevance`, `rwg_null_variance`, `dyad_min_raters`).
//!
//! # Rules (the details the method leaves open)
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
//! `dyad_errors.parquet`: the sampling variance of each between-group dyad mean and the
//! covariance of the dyad means that share raters; its schema is in `score/dyad_error.rs`.
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
mod dyad_error;
mod frames;
mod long;
mod network;
mod reliability;

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use anyhow::{bail, Result};
use polars::prelude::*;

use self::compute::{DyadInput, NetworkRule, Scored, TieRule, TieScore};
use self::dyad_error::{build_cross_wave_errors, build_dyad_errors, dyad_errors_frame, MuniErrors};
use self::frames::{citizens_frame, dyads_frame, respondents_frame, ties_frame, units_frame};
use self::long::Interned;
use self::network::{build_dyads, build_network, Dyad, DyadKey, NetworkRows};
use self::reliability::{
    alpha_by_scope, reliability_alpha_employees, reliability_frame, reliability_icc,
    reliability_rwg, ItemRow, RelRow,
};
use super::frame::{i64s, n, opt, req, strs, FrameBuilder, Kind, Spec};
use super::{StageContext, StageSummary, TableCount};
use crate::config::{Config, InstrumentSection};
use crate::io::write_parquet;
use crate::schema::Reason;
use crate::stats::reliability::{cronbach_alpha, icc_oneway, rwg_j};

const STAGE: &str = "score";

/// The items of the instrument, grouped the way scoring uses them.
#[derive(Debug, Clone, Default)]
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

/// Item names become column names; refuse an instrument whose items would clash with the fixed
/// columns (those of the output tables without items) or with each other's `mean_`/`n_`
/// columns, before anything is read.
fn check_column_names(items: &Items) -> Result<()> {
    let clash = |fixed: DataFrame, extra: Vec<String>, table: &str| -> Result<()> {
        let mut seen: std::collections::BTreeSet<String> = fixed
            .get_column_names()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        for e in extra {
            if !seen.insert(e.clone()) {
                bail!(
                    "instrument item names give {table} two columns named `{e}`; rename the item"
                );
            }
        }
        Ok(())
    };
    let none = Items::default();
    let no_resp = BTreeMap::new();
    clash(
        ties_frame(&[], &none)?,
        items.dims.clone(),
        "score/ties.parquet",
    )?;
    clash(
        respondents_frame(&no_resp, &none)?,
        items.person_items(),
        "score/respondents.parquet",
    )?;
    clash(
        citizens_frame(&[], &none)?,
        items.citizen.clone(),
        "score/citizens.parquet",
    )?;
    let dyad_extra = items
        .dims
        .iter()
        .flat_map(|d| [format!("mean_{d}"), format!("n_{d}")])
        .collect();
    clash(
        dyads_frame(&BTreeMap::new(), &none)?,
        dyad_extra,
        "score/dyads.parquet",
    )
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

/// Unit key: (wave, municipality, unit_id).
type UnitKey = (i64, Rc<str>, Rc<str>);

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
    /// The dyad errors of every wave (their cross-wave covariances need all waves).
    dyad_errors: Vec<MuniErrors>,
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
    let errors = std::mem::take(&mut out.dyad_errors);
    let cross = build_cross_wave_errors(&errors)?;
    out.push("dyad_errors", dyad_errors_frame(&errors, &cross)?)?;
    drop((errors, cross));
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
    write("dyad_errors", &|| dyad_errors_frame(&[], &[]))?;
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
    let pivots = pivot_employee_answers(&emp, emp_file, items, count, summary)?;
    drop(emp);
    let rule = tie_rule(config);
    let EmployeePivots {
        tie,
        person,
        strings,
        ranks,
    } = pivots;
    let ties = build_ties(wave, &tie, &strings, &ranks, items, &rule);
    drop(tie);
    let mut respondents = build_respondents(wave, &ties, &person, &strings, items);
    drop(person);
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
    let errors = build_dyad_errors(&ties, config.scoring.dyad_min_raters)?;
    out.dyad_errors.extend(errors);
    out.push("units", units_frame(&respondents, headcount)?)?;
    Ok(())
}

/// One wave's employee answers pivoted into one row per tie (keys: municipality, unit_id,
/// work_group, respondent_id, target_group) and per respondent (the first four), with the
/// strings of the key ids and their byte-order ranks.
struct EmployeePivots {
    tie: long::Pivot<5>,
    person: long::Pivot<4>,
    strings: [Vec<Rc<str>>; 5],
    ranks: [Vec<u32>; 5],
}

/// How an employee answer row is used, in the order a row is classified: in a tie or a
/// respondent's person items (None), or excluded for a reason.
const EMPLOYEE_CATEGORIES: [Option<Reason>; 6] = [
    None,
    Some(Reason::TieItemWithoutTargetGroup),
    None,
    Some(Reason::PersonItemWithTargetGroup),
    Some(Reason::CitizenItemInEmployeeResponses),
    Some(Reason::ItemNotInInstrument),
];

/// Classifies and pivots the answer rows of one wave, adds their accounting to `count` and
/// `summary`, and refuses an item answered twice for the same tie or respondent.
fn pivot_employee_answers(
    emp: &DataFrame,
    emp_file: &str,
    items: &Items,
    count: &mut TableCount,
    summary: &mut StageSummary,
) -> Result<EmployeePivots> {
    let tie_items = items.tie_items();
    let person_items = items.person_items();
    let tie_slots = long::slots(&tie_items);
    let person_slots = long::slots(&person_items);
    let citizen_items: std::collections::HashSet<&str> =
        items.citizen.iter().map(String::as_str).collect();
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
    let mut by_category = [0u64; EMPLOYEE_CATEGORIES.len()];
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
                super::frame::provenance(emp, row)
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
    count_categories(count, &EMPLOYEE_CATEGORIES, &by_category);
    let c = &mut summary.counts;
    add(c, "employee_responses.in_ties", by_category[0]);
    add(c, "employee_responses.in_person_scores", by_category[2]);
    add(c, "employee_responses.used_answered", answered);
    add(c, "employee_responses.used_unanswered", unanswered);
    if let Some(g) = tie_pivot.first_duplicate() {
        bail!(duplicate_item_error(
            emp,
            emp_file,
            "tie (respondent, partner group, wave)",
            tie_pivot.first_row[g],
            tie_pivot.min_line[g]
        ));
    }
    if let Some(g) = person_pivot.first_duplicate() {
        bail!(duplicate_item_error(
            emp,
            emp_file,
            "respondent in a wave",
            person_pivot.first_row[g],
            person_pivot.min_line[g]
        ));
    }
    let all = [&muni, &unit, &group, &resp, &target];
    Ok(EmployeePivots {
        tie: tie_pivot,
        person: person_pivot,
        strings: all.map(Interned::shared),
        ranks: all.map(Interned::ranks),
    })
}

/// Adds rows counted by category to `count`: a used category (None) to `rows_out`, the others
/// to `excluded` under their reason; a category with no rows adds nothing.
fn count_categories(count: &mut TableCount, categories: &[Option<Reason>], by_category: &[u64]) {
    for (c, &k) in categories.iter().zip(by_category) {
        if k == 0 {
            continue;
        }
        match c {
            None => count.rows_out += k,
            Some(reason) => reason.add_to(&mut count.excluded, k),
        }
    }
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
    const CATEGORIES: [Option<Reason>; 3] = [
        None,
        Some(Reason::EmployeeItemInCitizenResponses),
        Some(Reason::ItemNotInInstrument),
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
    count_categories(count, &CATEGORIES, &by_category);
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
