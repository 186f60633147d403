//! The `link` stage: the analysis tables of the three hypotheses, one row per unit of analysis,
//! built from the scores and the clean case and intervention tables.
//!
//! Reads `OUT/score/{dyads,dyad_errors,units,citizens,respondents}.parquet` and
//! `OUT/clean/{case_involvement,intervention}.parquet` (a missing intervention file is a study
//! without an H3 design: every H3 row is excluded, with a warning). Writes under `OUT/link/`.
//!
//! **Every candidate row is kept**, with an `exclusion` column: empty for the rows of the model
//! sample, else the reason the row is left out (the first that applies, in the order listed per
//! table). The models use `exclusion IS NULL`; `summary.json` counts the reasons
//! (`tables.<table>`: `rows_in` candidates, `rows_out` in the sample, `excluded` by reason).
//!
//! # `h1_cases.parquet`: one row per case × wave
//!
//! H1's unit of analysis is a citizen's case in a wave. A case normally has one responding
//! citizen; where several citizens answered about the same case in a wave, `quality` is the mean
//! of their quality scores (`n_citizens` beside it), so every case weighs the same. Candidates are
//! the case-waves in `case_involvement` and those with citizen answers. Sorted by (wave, case_id).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave | i64 | |
//! | case_id | str | pseudonym |
//! | municipality | str? | the lead unit's municipality (empty without exactly one lead) |
//! | lead_unit_id | str? | the lead unit (empty without exactly one lead) |
//! | n_units | i64 | distinct units involved |
//! | n_leads | i64 | involved units flagged as lead |
//! | n_groups | i64 | distinct work groups of the involved units |
//! | work_groups | str | those groups, sorted, joined by `;` |
//! | quality | f64? | mean citizen quality over the case's citizens with a quality score |
//! | n_citizens | i64 | citizens with a quality score |
//! | case_rcap | f64? | mean of D(g→h) over the ordered pairs of distinct involved groups whose dyad is defined in the lead's municipality and the wave |
//! | n_pairs | i64 | ordered pairs of distinct involved groups, G(G − 1) |
//! | n_pairs_defined | i64 | of those, pairs with a defined dyad (the n of `case_rcap`) |
//! | case_rcap_error_var | f64? | the sampling variance of `case_rcap` from its raters: (Σ var + 2 Σ cov) / k² over its k defined dyads, with the dyad variances and shared-rater covariances of `score/dyad_errors.parquet`; empty when one of them cannot be estimated |
//! | unit_rcap_mean | f64? | sensitivity measure: mean unit RCap of the involved units that have one |
//! | n_units_rcap | i64 | involved units with a unit RCap in the wave |
//! | exclusion | str? | `not_in_case_involvement`, `no_lead_unit`, `several_lead_units`, `fewer_than_two_groups`, `no_defined_dyad`, `no_citizen_quality` |
//!
//! # `h1_dyad_errors.parquet`
//!
//! `score/dyad_errors.parquet` as it is (its schema is in `score/dyad_error.rs`): the dyad
//! variances and shared-rater covariances behind `case_rcap_error_var`, and the cross-wave
//! covariances of dyads that share raters, which the model stage needs for H1 corrected for
//! measurement error.
//!
//! # `h2_respondents.parquet`: one row per respondent × wave (from `score/respondents`)
//!
//! Sorted by (wave, municipality, unit_id, respondent_id).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality, unit_id, work_group, respondent_id | | |
//! | rcap | f64? | respondent RCap (the outcome) |
//! | srm | f64? | the respondent's own SRM rating |
//! | srm_others, srm_others_n | f64?, i64 | leave-one-out SRM of the unit and its n |
//! | srm_between | f64? | mean `srm_others` over the unit-wave's respondents in the model sample |
//! | srm_between_n | i64? | respondents in that mean |
//! | srm_within | f64? | `srm_others − srm_between` |
//! | exclusion | str? | `no_rcap`, `no_srm_others` |
//!
//! # `h3_panel.parquet`: one row per respondent × wave (from `score/respondents`)
//!
//! The window of a unit in the intervention table is its `after_wave` (pre) and `after_wave + 1`
//! (post). Sorted by (wave, municipality, unit_id, respondent_id).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality, unit_id, work_group, respondent_id | | |
//! | rcap | f64? | respondent RCap |
//! | arm | str? | `intervention` or `control` (empty for units outside the design) |
//! | intervention | i64? | 1 for the intervention arm, 0 for control |
//! | after_wave | i64? | the unit's `after_wave` |
//! | post | i64? | 0 in `after_wave`, 1 in `after_wave + 1`, empty outside the window |
//! | in_both_waves | bool? | sample rows: the respondent (same unit) is in the sample in both waves of the window |
//! | exclusion | str? | `unit_not_in_design`, `wave_outside_window`, `no_rcap` |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use polars::prelude::DataFrame;

use super::frame::{self, bools, f64s, i64s, n, opt, req, strs, FrameBuilder, Kind};
use super::{StageContext, StageSummary, TableCount};
use crate::io::write_parquet;
use crate::schema::Reason;

const STAGE: &str = "link";

/// The case RCap of one case: the mean of the defined dyads D(g→h) over the ordered pairs of
/// distinct groups in `groups` (which must be distinct), taken in the order given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseRcap {
    pub value: Option<f64>,
    /// Ordered pairs of distinct groups: G(G − 1).
    pub n_pairs: usize,
    /// Pairs whose dyad is defined (the n of `value`).
    pub n_pairs_defined: usize,
}

/// Case RCap from the distinct involved groups (names or ids) and a lookup of D(g→h)
/// (None = undefined).
pub fn case_rcap<G: Copy + PartialEq>(
    groups: &[G],
    dyad: impl Fn(G, G) -> Option<f64>,
) -> CaseRcap {
    let mut defined = Vec::new();
    let mut n_pairs = 0;
    for &g in groups {
        for &h in groups {
            if g == h {
                continue;
            }
            n_pairs += 1;
            if let Some(d) = dyad(g, h) {
                defined.push(d);
            }
        }
    }
    let value = if defined.is_empty() {
        None
    } else {
        Some(defined.iter().sum::<f64>() / defined.len() as f64)
    };
    CaseRcap {
        value,
        n_pairs,
        n_pairs_defined: defined.len(),
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        None
    } else {
        let mut s = 0.0;
        for x in v {
            s += x;
        }
        Some(s / v.len() as f64)
    }
}

fn required<T>(v: Option<T>, path: &Path, column: &str, i: usize, df: &DataFrame) -> Result<T> {
    match v {
        Some(v) => Ok(v),
        None => bail!(
            "{}: column `{column}` has an empty value{}",
            path.display(),
            frame::provenance(df, i)
        ),
    }
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let mut summary = StageSummary::default();
    let out_dir = ctx.stage_dir(STAGE);
    let meta = ctx.parquet_meta(STAGE);
    let write = |name: &str, mut df: DataFrame, summary: &mut StageSummary| -> Result<()> {
        let path = ctx.table_path(STAGE, name);
        write_parquet(&mut df, &path, &meta)?;
        summary.add_output(&out_dir, &path);
        Ok(())
    };
    let h1 = h1_cases(ctx, &mut summary)?;
    write("h1_cases", h1, &mut summary)?;
    // The dyad variances behind `case_rcap_error_var`, for the model stage (which reads link's
    // tables only): score's `dyad_errors`, row for row.
    let errors = crate::io::read_parquet(&ctx.table_path("score", "dyad_errors"))?;
    write("h1_dyad_errors", errors, &mut summary)?;
    let respondents = read_respondents(ctx)?;
    let h2 = h2_respondents(&respondents, &mut summary)?;
    write("h2_respondents", h2, &mut summary)?;
    let h3 = h3_panel(ctx, &respondents, &mut summary)?;
    write("h3_panel", h3, &mut summary)?;
    Ok(summary)
}

/// Names as small ids, so the case loop compares and hashes integers.
#[derive(Debug, Default)]
struct Ids {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Ids {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.index.insert(name.to_string(), i);
        self.names.push(name.to_string());
        i
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// One involved unit of a case: (unit, lead, municipality, work group) as ids.
type Involved = (u32, bool, u32, u32);

#[derive(Debug, Default)]
struct Case {
    units: Vec<Involved>,
    qualities: Vec<f64>,
    citizen_municipalities: Vec<u32>,
}

/// What H1 reads from the scores: D(g→h) by (wave, municipality, g, h), between groups only,
/// and unit RCap by (wave, unit).
struct H1Scores {
    dyads: HashMap<(i64, u32, u32, u32), f64>,
    unit_rcap: HashMap<(i64, u32), f64>,
    errors: DyadErrors,
}

/// The sampling variances of the dyad means, by (wave, municipality, g, h), and the covariances
/// of two dyad means of one rating group, by (wave, municipality, g, h, h') with h < h' as ids;
/// a variance or covariance that could not be estimated is None (`score/dyad_errors.parquet`).
#[derive(Default)]
struct DyadErrors {
    var: HashMap<(i64, u32, u32, u32), Option<f64>>,
    cov: HashMap<(i64, u32, u32, u32, u32), Option<f64>>,
}

impl DyadErrors {
    fn read(ctx: &StageContext, ids: &mut Ids) -> Result<DyadErrors> {
        let path = ctx.table_path("score", "dyad_errors");
        let df = frame::read(
            &path,
            &[
                req("wave", Kind::I64),
                req("municipality", Kind::Str),
                req("work_group", Kind::Str),
                req("target_group", Kind::Str),
                opt("other_wave", Kind::I64),
                opt("other_group", Kind::Str),
                opt("variance", Kind::F64),
            ],
        )?;
        let mut e = DyadErrors::default();
        for ((((((w, m), g), h), ow), o), v) in i64s(&df, "wave")?
            .zip(strs(&df, "municipality")?)
            .zip(strs(&df, "work_group")?)
            .zip(strs(&df, "target_group")?)
            .zip(i64s(&df, "other_wave")?)
            .zip(strs(&df, "other_group")?)
            .zip(f64s(&df, "variance")?)
        {
            // Cross-wave rows matter to the model stage only (a case is in one wave).
            let (Some(w), Some(m), Some(g), Some(h), None) = (w, m, g, h, ow) else {
                continue;
            };
            let (m, g, h) = (ids.id(m), ids.id(g), ids.id(h));
            match o {
                None => {
                    e.var.insert((w, m, g, h), v);
                }
                Some(o) => {
                    let o = ids.id(o);
                    e.cov.insert((w, m, g, h.min(o), h.max(o)), v);
                }
            }
        }
        Ok(e)
    }

    /// The sampling variance of the mean of the defined dyads among the ordered pairs of
    /// `groups` (as `case_rcap` takes them), in municipality `m` and `wave`.
    fn case_variance(&self, wave: i64, m: u32, groups: &[u32], scores: &H1Scores) -> Option<f64> {
        let mut pairs = Vec::new();
        for &g in groups {
            for &h in groups {
                if g != h && scores.dyads.contains_key(&(wave, m, g, h)) {
                    pairs.push((g, h));
                }
            }
        }
        crate::stats::measurement::case_error_variance(
            &pairs,
            |g, h| self.var.get(&(wave, m, g, h)).copied().flatten(),
            |a, b| {
                if a.0 != b.0 {
                    return Some(0.0);
                }
                match self.cov.get(&(wave, m, a.0, a.1.min(b.1), a.1.max(b.1))) {
                    Some(v) => *v,
                    None => Some(0.0),
                }
            },
        )
    }
}

impl H1Scores {
    fn read(ctx: &StageContext, ids: &mut Ids) -> Result<H1Scores> {
        let path = ctx.table_path("score", "dyads");
        let df = frame::read(
            &path,
            &[
                req("wave", Kind::I64),
                req("municipality", Kind::Str),
                req("work_group", Kind::Str),
                req("target_group", Kind::Str),
                opt("mean", Kind::F64),
            ],
        )?;
        let mut dyads = HashMap::new();
        for ((((w, m), g), h), d) in i64s(&df, "wave")?
            .zip(strs(&df, "municipality")?)
            .zip(strs(&df, "work_group")?)
            .zip(strs(&df, "target_group")?)
            .zip(f64s(&df, "mean")?)
        {
            if let (Some(w), Some(m), Some(g), Some(h), Some(d)) = (w, m, g, h, d) {
                if g != h {
                    dyads.insert((w, ids.id(m), ids.id(g), ids.id(h)), d);
                }
            }
        }
        let path = ctx.table_path("score", "units");
        let spec = [
            req("wave", Kind::I64),
            req("unit_id", Kind::Str),
            opt("rcap", Kind::F64),
        ];
        let df = frame::read(&path, &spec)?;
        let mut unit_rcap = HashMap::new();
        for ((w, u), r) in i64s(&df, "wave")?
            .zip(strs(&df, "unit_id")?)
            .zip(f64s(&df, "rcap")?)
        {
            if let (Some(w), Some(u), Some(r)) = (w, u, r) {
                unit_rcap.insert((w, ids.id(u)), r);
            }
        }
        let errors = DyadErrors::read(ctx, ids)?;
        Ok(H1Scores {
            dyads,
            unit_rcap,
            errors,
        })
    }
}

/// Cases keyed by (wave, case_id), the case ids borrowed from the frames they were read from.
type Cases<'a> = HashMap<(i64, &'a str), Case>;

/// Adds the involved units of clean's `case_involvement` (`inv`, read from `path`) to `cases`.
fn add_involvement<'a>(
    inv: &'a DataFrame,
    path: &Path,
    ids: &mut Ids,
    cases: &mut Cases<'a>,
) -> Result<()> {
    for (i, (((((w, c), u), l), m), g)) in i64s(inv, "wave")?
        .zip(strs(inv, "case_id")?)
        .zip(strs(inv, "unit_id")?)
        .zip(bools(inv, "lead")?)
        .zip(strs(inv, "municipality")?)
        .zip(strs(inv, "work_group")?)
        .enumerate()
    {
        let w = required(w, path, "wave", i, inv)?;
        let c = required(c, path, "case_id", i, inv)?;
        let u = required(u, path, "unit_id", i, inv)?;
        let l = required(l, path, "lead", i, inv)?;
        let m = required(m, path, "municipality", i, inv)?;
        let g = required(g, path, "work_group", i, inv)?;
        cases
            .entry((w, c))
            .or_default()
            .units
            .push((ids.id(u), l, ids.id(m), ids.id(g)));
    }
    Ok(())
}

/// Adds the citizens' quality scores and municipalities of `score/citizens` (`cit`) to `cases`.
fn add_citizens<'a>(cit: &'a DataFrame, ids: &mut Ids, cases: &mut Cases<'a>) -> Result<()> {
    for (((w, m), c), q) in i64s(cit, "wave")?
        .zip(strs(cit, "municipality")?)
        .zip(strs(cit, "case_id")?)
        .zip(f64s(cit, "quality")?)
    {
        if let (Some(w), Some(m), Some(c)) = (w, m, c) {
            let case = cases.entry((w, c)).or_default();
            case.citizen_municipalities.push(ids.id(m));
            if let Some(q) = q {
                case.qualities.push(q);
            }
        }
    }
    Ok(())
}

fn h1_cases(ctx: &StageContext, summary: &mut StageSummary) -> Result<DataFrame> {
    let mut ids = Ids::default();
    let scores = H1Scores::read(ctx, &mut ids)?;
    let inv_path = ctx.table_path("clean", "case_involvement");
    let inv = frame::read(
        &inv_path,
        &[
            req("wave", Kind::I64),
            req("case_id", Kind::Str),
            req("unit_id", Kind::Str),
            req("lead", Kind::Bool),
            req("municipality", Kind::Str),
            req("work_group", Kind::Str),
        ],
    )?;
    summary
        .counts
        .insert("case_involvement_rows".into(), inv.height() as u64);
    let mut cases = Cases::new();
    add_involvement(&inv, &inv_path, &mut ids, &mut cases)?;
    let cit = frame::read(
        &ctx.table_path("score", "citizens"),
        &[
            req("wave", Kind::I64),
            req("municipality", Kind::Str),
            req("case_id", Kind::Str),
            opt("quality", Kind::F64),
        ],
    )?;
    add_citizens(&cit, &mut ids, &mut cases)?;

    let mut cases: Vec<((i64, &str), Case)> = cases.into_iter().collect();
    cases.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut rows = H1Rows::default();
    let mut count = TableCount::default();
    let mut municipality_differs = 0u64;
    for ((wave, case_id), case) in cases {
        let (exclusion, differs) = rows.push(wave, case_id, case, &ids, &scores);
        municipality_differs += u64::from(differs);
        count.rows_in += 1;
        match exclusion {
            Some(r) => r.add_to(&mut count.excluded, 1),
            None => count.rows_out += 1,
        }
    }
    if municipality_differs > 0 {
        summary.warnings.push(format!(
            "{municipality_differs} case(s) have citizen answers recorded in another \
             municipality than the lead unit's; H1 uses the lead unit's"
        ));
    }
    summary.counts.insert(
        "h1_citizen_municipality_differs_from_lead".into(),
        municipality_differs,
    );
    summary.tables.insert("h1_cases".into(), count);
    rows.finish()
}

#[derive(Default)]
struct H1Rows {
    wave: Vec<i64>,
    case_id: Vec<String>,
    municipality: Vec<Option<String>>,
    lead_unit_id: Vec<Option<String>>,
    n_units: Vec<i64>,
    n_leads: Vec<i64>,
    n_groups: Vec<i64>,
    work_groups: Vec<String>,
    quality: Vec<Option<f64>>,
    n_citizens: Vec<i64>,
    case_rcap: Vec<Option<f64>>,
    case_rcap_error_var: Vec<Option<f64>>,
    n_pairs: Vec<i64>,
    n_pairs_defined: Vec<i64>,
    unit_rcap_mean: Vec<Option<f64>>,
    n_units_rcap: Vec<i64>,
    exclusion: Vec<Option<&'static str>>,
}

impl H1Rows {
    /// Adds the row of one case-wave; returns its exclusion and whether a citizen's answers
    /// are recorded in another municipality than the lead unit's.
    fn push(
        &mut self,
        wave: i64,
        case_id: &str,
        mut case: Case,
        ids: &Ids,
        scores: &H1Scores,
    ) -> (Option<Reason>, bool) {
        // A unit listed twice (the clean stage keys involvement by case, wave and unit, so this
        // does not happen) counts once, as lead if either row says so.
        case.units.sort_unstable();
        case.units.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 |= later.1;
            }
            same
        });
        let leads: Vec<&Involved> = case.units.iter().filter(|u| u.1).collect();
        let (municipality, lead_unit) = match leads.as_slice() {
            [lead] => (Some(lead.2), Some(lead.0)),
            _ => (None, None),
        };
        // Distinct groups in name order, so pairs are summed in a reproducible order.
        let mut groups: Vec<u32> = case.units.iter().map(|u| u.3).collect();
        groups.sort_unstable_by(|a, b| ids.name(*a).cmp(ids.name(*b)));
        groups.dedup();
        let rcap = match municipality {
            Some(m) => case_rcap(&groups, |g, h| scores.dyads.get(&(wave, m, g, h)).copied()),
            None => CaseRcap {
                value: None,
                n_pairs: groups.len() * groups.len().saturating_sub(1),
                n_pairs_defined: 0,
            },
        };
        let unit_rcaps: Vec<f64> = case
            .units
            .iter()
            .filter_map(|u| scores.unit_rcap.get(&(wave, u.0)).copied())
            .collect();
        let differs =
            municipality.is_some_and(|m| case.citizen_municipalities.iter().any(|&c| c != m));
        let quality = mean(&case.qualities);
        let exclusion = if case.units.is_empty() {
            Some(Reason::NotInCaseInvolvement)
        } else if leads.is_empty() {
            Some(Reason::NoLeadUnit)
        } else if leads.len() > 1 {
            Some(Reason::SeveralLeadUnits)
        } else if groups.len() < 2 {
            Some(Reason::FewerThanTwoGroups)
        } else if rcap.value.is_none() {
            Some(Reason::NoDefinedDyad)
        } else if quality.is_none() {
            Some(Reason::NoCitizenQuality)
        } else {
            None
        };
        let names: Vec<&str> = groups.iter().map(|&g| ids.name(g)).collect();
        self.wave.push(wave);
        self.case_id.push(case_id.to_string());
        self.municipality
            .push(municipality.map(|m| ids.name(m).to_string()));
        self.lead_unit_id
            .push(lead_unit.map(|u| ids.name(u).to_string()));
        self.n_units.push(n(case.units.len()));
        self.n_leads.push(n(leads.len()));
        self.n_groups.push(n(groups.len()));
        self.work_groups.push(names.join(";"));
        self.quality.push(quality);
        self.n_citizens.push(n(case.qualities.len()));
        self.case_rcap.push(rcap.value);
        self.case_rcap_error_var
            .push(municipality.and_then(|m| scores.errors.case_variance(wave, m, &groups, scores)));
        self.n_pairs.push(n(rcap.n_pairs));
        self.n_pairs_defined.push(n(rcap.n_pairs_defined));
        self.unit_rcap_mean.push(mean(&unit_rcaps));
        self.n_units_rcap.push(n(unit_rcaps.len()));
        self.exclusion.push(exclusion.map(Reason::as_str));
        (exclusion, differs)
    }

    fn finish(self) -> Result<DataFrame> {
        let mut b = FrameBuilder::new();
        b.i64("wave", self.wave)
            .str("case_id", self.case_id)
            .opt_str("municipality", self.municipality)
            .opt_str("lead_unit_id", self.lead_unit_id)
            .i64("n_units", self.n_units)
            .i64("n_leads", self.n_leads)
            .i64("n_groups", self.n_groups)
            .str("work_groups", self.work_groups)
            .f64("quality", self.quality)
            .i64("n_citizens", self.n_citizens)
            .f64("case_rcap", self.case_rcap)
            .i64("n_pairs", self.n_pairs)
            .i64("n_pairs_defined", self.n_pairs_defined)
            .f64("case_rcap_error_var", self.case_rcap_error_var)
            .f64("unit_rcap_mean", self.unit_rcap_mean)
            .i64("n_units_rcap", self.n_units_rcap)
            .opt_str("exclusion", self.exclusion);
        b.finish()
    }
}

/// One row of `score/respondents.parquet`, as link uses it.
#[derive(Debug, Clone)]
struct Resp {
    wave: i64,
    municipality: String,
    unit_id: String,
    work_group: String,
    respondent_id: String,
    rcap: Option<f64>,
    srm: Option<f64>,
    srm_others: Option<f64>,
    srm_others_n: i64,
}

fn read_respondents(ctx: &StageContext) -> Result<Vec<Resp>> {
    let path = ctx.table_path("score", "respondents");
    let df = frame::read(
        &path,
        &[
            req("wave", Kind::I64),
            req("municipality", Kind::Str),
            req("unit_id", Kind::Str),
            req("work_group", Kind::Str),
            req("respondent_id", Kind::Str),
            opt("rcap", Kind::F64),
            opt("srm", Kind::F64),
            opt("srm_others", Kind::F64),
            req("srm_others_n", Kind::I64),
        ],
    )?;
    let mut out = Vec::with_capacity(df.height());
    let cols = (
        i64s(&df, "wave")?,
        strs(&df, "municipality")?,
        strs(&df, "unit_id")?,
        strs(&df, "work_group")?,
        strs(&df, "respondent_id")?,
    );
    let (wave, muni, unit, group, resp) = cols;
    let rest = f64s(&df, "rcap")?
        .zip(f64s(&df, "srm")?)
        .zip(f64s(&df, "srm_others")?)
        .zip(i64s(&df, "srm_others_n")?);
    for (i, (((((w, m), u), g), r), (((rcap, srm), loo), loo_n))) in wave
        .zip(muni)
        .zip(unit)
        .zip(group)
        .zip(resp)
        .zip(rest)
        .enumerate()
    {
        out.push(Resp {
            wave: required(w, &path, "wave", i, &df)?,
            municipality: required(m, &path, "municipality", i, &df)?.to_string(),
            unit_id: required(u, &path, "unit_id", i, &df)?.to_string(),
            work_group: required(g, &path, "work_group", i, &df)?.to_string(),
            respondent_id: required(r, &path, "respondent_id", i, &df)?.to_string(),
            rcap,
            srm,
            srm_others: loo,
            srm_others_n: loo_n.unwrap_or(0),
        });
    }
    out.sort_by(|a, b| {
        (a.wave, &a.municipality, &a.unit_id, &a.respondent_id).cmp(&(
            b.wave,
            &b.municipality,
            &b.unit_id,
            &b.respondent_id,
        ))
    });
    Ok(out)
}

fn key_columns(b: &mut FrameBuilder, resp: &[Resp]) {
    b.i64("wave", resp.iter().map(|r| r.wave))
        .str("municipality", resp.iter().map(|r| &r.municipality))
        .str("unit_id", resp.iter().map(|r| &r.unit_id))
        .str("work_group", resp.iter().map(|r| &r.work_group))
        .str("respondent_id", resp.iter().map(|r| &r.respondent_id));
}

/// The H2 exclusion of a respondent row, if any.
fn h2_exclusion(r: &Resp) -> Option<Reason> {
    if r.rcap.is_none() {
        Some(Reason::NoRcap)
    } else if r.srm_others.is_none() {
        Some(Reason::NoSrmOthers)
    } else {
        None
    }
}

fn h2_respondents(resp: &[Resp], summary: &mut StageSummary) -> Result<DataFrame> {
    let mut between: BTreeMap<(i64, &str, &str), Vec<f64>> = BTreeMap::new();
    for r in resp {
        if let (None, Some(loo)) = (h2_exclusion(r), r.srm_others) {
            between
                .entry((r.wave, &r.municipality, &r.unit_id))
                .or_default()
                .push(loo);
        }
    }
    let mut count = TableCount::default();
    let mut srm_between = Vec::with_capacity(resp.len());
    let mut srm_between_n = Vec::with_capacity(resp.len());
    let mut srm_within = Vec::with_capacity(resp.len());
    let mut exclusion = Vec::with_capacity(resp.len());
    for r in resp {
        let ex = h2_exclusion(r);
        count.rows_in += 1;
        match ex {
            Some(reason) => {
                reason.add_to(&mut count.excluded, 1);
                srm_between.push(None);
                srm_between_n.push(None);
                srm_within.push(None);
            }
            None => {
                count.rows_out += 1;
                let v = between
                    .get(&(r.wave, r.municipality.as_str(), r.unit_id.as_str()))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let b = mean(v);
                srm_between.push(b);
                srm_between_n.push(Some(n(v.len())));
                srm_within.push(match (r.srm_others, b) {
                    (Some(loo), Some(b)) => Some(loo - b),
                    _ => None,
                });
            }
        }
        exclusion.push(ex.map(Reason::as_str));
    }
    summary.tables.insert("h2_respondents".into(), count);
    let mut b = FrameBuilder::new();
    key_columns(&mut b, resp);
    b.f64("rcap", resp.iter().map(|r| r.rcap))
        .f64("srm", resp.iter().map(|r| r.srm))
        .f64("srm_others", resp.iter().map(|r| r.srm_others))
        .i64("srm_others_n", resp.iter().map(|r| r.srm_others_n))
        .f64("srm_between", srm_between)
        .opt_i64("srm_between_n", srm_between_n)
        .f64("srm_within", srm_within)
        .opt_str("exclusion", exclusion);
    b.finish()
}

/// The intervention design: unit_id → (arm, after_wave). A missing file is an empty design.
fn read_design(
    ctx: &StageContext,
    summary: &mut StageSummary,
) -> Result<BTreeMap<String, (String, i64)>> {
    let path = ctx.table_path("clean", "intervention");
    let mut design = BTreeMap::new();
    if !path.is_file() {
        summary.warnings.push(format!(
            "{} does not exist: the study has no intervention design, every H3 row is excluded",
            path.display()
        ));
        return Ok(design);
    }
    let df = frame::read(
        &path,
        &[
            req("unit_id", Kind::Str),
            req("arm", Kind::Str),
            req("after_wave", Kind::I64),
        ],
    )?;
    for (i, ((u, a), w)) in strs(&df, "unit_id")?
        .zip(strs(&df, "arm")?)
        .zip(i64s(&df, "after_wave")?)
        .enumerate()
    {
        let u = required(u, &path, "unit_id", i, &df)?;
        let a = required(a, &path, "arm", i, &df)?;
        let w = required(w, &path, "after_wave", i, &df)?;
        if a != "intervention" && a != "control" {
            bail!(
                "{}: column `arm` is {a:?}{}; expected \"intervention\" or \"control\"",
                path.display(),
                frame::provenance(&df, i)
            );
        }
        if design.insert(u.to_string(), (a.to_string(), w)).is_some() {
            bail!(
                "{}: unit {u:?} is listed twice{}",
                path.display(),
                frame::provenance(&df, i)
            );
        }
    }
    Ok(design)
}

fn h3_panel(ctx: &StageContext, resp: &[Resp], summary: &mut StageSummary) -> Result<DataFrame> {
    let design = read_design(ctx, summary)?;
    let arms: BTreeSet<&str> = design.values().map(|(a, _)| a.as_str()).collect();
    if !design.is_empty() && !arms.contains("control") {
        summary.warnings.push(
            "the intervention design has no control units: H3 is a pre/post comparison".into(),
        );
    }
    // Per row: the unit's (arm, after_wave) if in the design, post (0/1) if in the window, and
    // the exclusion reason.
    type RowInfo<'a> = (Option<&'a (String, i64)>, Option<i64>, Option<Reason>);
    let mut info: Vec<RowInfo> = Vec::with_capacity(resp.len());
    for r in resp {
        let d = design.get(&r.unit_id);
        let (post, ex) = match d {
            None => (None, Some(Reason::UnitNotInDesign)),
            Some((_, aw)) => {
                let post = if r.wave == *aw {
                    Some(0)
                } else if Some(r.wave) == aw.checked_add(1) {
                    Some(1)
                } else {
                    None
                };
                match (post, r.rcap) {
                    (None, _) => (None, Some(Reason::WaveOutsideWindow)),
                    (Some(p), None) => (Some(p), Some(Reason::NoRcap)),
                    (Some(p), Some(_)) => (Some(p), None),
                }
            }
        };
        info.push((d, post, ex));
    }
    // Waves in which each (unit, respondent) is in the sample.
    let mut waves: BTreeMap<(&str, &str), BTreeSet<i64>> = BTreeMap::new();
    for (r, (_, post, ex)) in resp.iter().zip(&info) {
        if let (None, Some(p)) = (ex, post) {
            waves
                .entry((&r.unit_id, &r.respondent_id))
                .or_default()
                .insert(*p);
        }
    }
    let mut count = TableCount::default();
    for (_, _, ex) in &info {
        count.rows_in += 1;
        match ex {
            Some(reason) => reason.add_to(&mut count.excluded, 1),
            None => count.rows_out += 1,
        }
    }
    let (mut both, mut pre_only, mut post_only) = (0u64, 0u64, 0u64);
    for w in waves.values() {
        match (w.contains(&0), w.contains(&1)) {
            (true, true) => both += 1,
            (true, false) => pre_only += 1,
            _ => post_only += 1,
        }
    }
    for (key, value) in [
        ("h3_respondents_in_both_waves", both),
        ("h3_respondents_pre_only", pre_only),
        ("h3_respondents_post_only", post_only),
        ("h3_design_units", design.len() as u64),
    ] {
        summary.counts.insert(key.into(), value);
    }
    summary.tables.insert("h3_panel".into(), count);

    let mut b = FrameBuilder::new();
    key_columns(&mut b, resp);
    b.f64("rcap", resp.iter().map(|r| r.rcap))
        .opt_str("arm", info.iter().map(|(d, _, _)| d.map(|d| d.0.as_str())))
        .opt_i64(
            "intervention",
            info.iter()
                .map(|(d, _, _)| d.map(|d| i64::from(d.0 == "intervention"))),
        )
        .opt_i64("after_wave", info.iter().map(|(d, _, _)| d.map(|d| d.1)))
        .opt_i64("post", info.iter().map(|(_, p, _)| *p))
        .opt_bool(
            "in_both_waves",
            resp.iter().zip(&info).map(|(r, (_, _, ex))| {
                ex.is_none().then(|| {
                    waves
                        .get(&(r.unit_id.as_str(), r.respondent_id.as_str()))
                        .is_some_and(|w| w.len() == 2)
                })
            }),
        )
        .opt_str(
            "exclusion",
            info.iter().map(|(_, _, ex)| ex.map(Reason::as_str)),
        );
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dyads() -> BTreeMap<(&'static str, &'static str), f64> {
        // Hand-made network: a→b 4, b→a 2, a→c 3; c→a, b→c, c→b undefined.
        [(("a", "b"), 4.0), (("b", "a"), 2.0), (("a", "c"), 3.0)]
            .into_iter()
            .collect()
    }

    #[test]
    fn case_rcap_by_hand() {
        let d = dyads();
        let look = |g: &str, h: &str| d.get(&(g, h)).copied();
        // Groups a, b, c: 6 ordered pairs; defined a→b 4, b→a 2, a→c 3 → (4 + 2 + 3) / 3 = 3.
        let r = case_rcap(&["a", "b", "c"], look);
        assert_eq!(r.n_pairs, 6);
        assert_eq!(r.n_pairs_defined, 3);
        assert!((r.value.unwrap() - 3.0).abs() < 1e-12);
        // One group: no pairs, no case RCap.
        let r = case_rcap(&["a"], look);
        assert_eq!((r.value, r.n_pairs, r.n_pairs_defined), (None, 0, 0));
        // Groups b, c: pairs b→c and c→b, both undefined → no case RCap, 2 pairs, 0 defined.
        let r = case_rcap(&["b", "c"], look);
        assert_eq!((r.value, r.n_pairs, r.n_pairs_defined), (None, 2, 0));
    }

    #[test]
    fn h2_exclusion_order() {
        let r = Resp {
            wave: 1,
            municipality: "m".into(),
            unit_id: "u".into(),
            work_group: "g".into(),
            respondent_id: "r".into(),
            rcap: None,
            srm: None,
            srm_others: None,
            srm_others_n: 0,
        };
        assert_eq!(h2_exclusion(&r), Some(Reason::NoRcap));
        let r = Resp {
            rcap: Some(3.0),
            ..r
        };
        assert_eq!(h2_exclusion(&r), Some(Reason::NoSrmOthers));
        let r = Resp {
            srm_others: Some(3.0),
            ..r
        };
        assert_eq!(h2_exclusion(&r), None);
    }
}
