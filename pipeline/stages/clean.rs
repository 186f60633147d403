//! The `clean` stage: reads ingest's typed tables, collapses exact duplicates, quarantines
//! conflicting duplicates and rows that break a reference or the instrument, applies the
//! instrument (missing codes, value maps, reverse coding) and writes `OUT/clean/`.
//!
//! # Rules, in the order a row is checked
//!
//! 1. **Exact duplicates** (all canonical columns equal, `source`/`line` ignored) keep their
//!    first copy by (source, line); the others are counted in `duplicates_collapsed`.
//! 2. **Conflicts**: after that, rows that share a key but differ elsewhere are all quarantined
//!    (`duplicate_conflict`). Keys: units (unit_id), intervention (unit_id), employee_responses
//!    (wave, respondent_id, target_group, item), citizen_responses (wave, citizen_id, item),
//!    case_involvement (wave, case_id, unit_id). An exact copy of a conflicting row is still
//!    counted as a collapsed duplicate, so each input row is counted once.
//! 3. **Items**: an item the instrument does not declare, or of the wrong kind for the table (a
//!    citizen item among employee answers, an employee item among citizen answers), is
//!    `unknown_item`. A tie item without `target_group` is `missing_required`; a person item
//!    with one is `unexpected_target_group`.
//! 4. **References**, each against the clean units (a unit quarantined as a conflict is not
//!    in them); the quarantine row's `column` names the key:
//!
//!    | table | key | refers to | reason |
//!    | --- | --- | --- | --- |
//!    | intervention | unit_id | a unit | `unknown_reference` |
//!    | employee_responses | unit_id | a unit | `unknown_reference` |
//!    | employee_responses | municipality | its unit's municipality | `municipality_mismatch` |
//!    | employee_responses | target_group | some unit's work group | `unknown_reference` |
//!    | citizen_responses | municipality | some unit's municipality | `unknown_reference` |
//!    | case_involvement | unit_id | a unit | `unknown_reference` |
//!
//!    Not checked here: the units' own municipality and work group (the units table is where
//!    both are declared), `manager_id` (a manager need not answer the survey), case ids (the
//!    cases are declared by `case_involvement`; a citizen answer about a case that has no
//!    involvement row in its wave is kept and excluded by the link stage from H1,
//!    `not_in_case_involvement`, as is a case with no lead unit or several). A respondent may
//!    name another unit in another wave: each wave's answers count for that wave's unit.
//! 5. **Values**: a value equal to a missing code becomes null with `missing_reason` = the
//!    code's reason; an empty value becomes null with `missing_reason = "empty"`. An item with a
//!    value map maps its answer code (codes compared as numbers) to a score, and a code outside
//!    the map is `out_of_range`. Any other value must lie in [scale_min, scale_max] and, when
//!    both ends of the scale are whole numbers (an integer scale), be a whole number, else
//!    `out_of_range`. Then reverse-coded items become scale_min + scale_max − value.
//!
//! Every rule is evaluated on every row that is not a collapsed duplicate; the quarantine holds
//! one row per broken rule, and [`TableCount::quarantined`] counts each input row once, under
//! the first broken rule in the order above.
//!
//! Cases whose lead is missing or ambiguous in a wave (no involvement row with `lead = true`,
//! or more than one) are kept: which unit's municipality a case belongs to is the link stage's
//! decision. They are counted in `counts["case_involvement.cases_without_lead"]` and
//! `counts["case_involvement.cases_with_several_leads"]`, with a warning.
//!
//! # Outputs (`OUT/clean/`), each sorted by its key
//!
//! Sorted by the key columns above, text in byte order and nulls first (so person items, whose
//! `target_group` is null, come before a respondent's tie answers in a wave). The ordering is
//! done once, on dense codes of each column (submodule `order`); the instrument is applied in
//! one pass (submodule `instrument`).
//!
//! - `units.parquet`: `municipality` str, `unit_id` str, `work_group` str, `manager_id` str
//!   (pseudonym, nullable), `headcount` i64 (nullable).
//! - `intervention.parquet`: `unit_id` str, `arm` str (`intervention`|`control`),
//!   `after_wave` i64 (the intervention happens after this wave).
//! - `employee_responses.parquet`: `wave` i64, `municipality` str, `unit_id` str, `work_group`
//!   str (the respondent's unit's work group), `respondent_id` str (pseudonym), `target_group`
//!   str (null for person items), `item` str, `item_kind` str (`tie`|`person`), `value` f64
//!   (the score after value map and reverse coding; null when missing), `missing_reason` str
//!   (null when answered, else `empty` or a missing code's reason), `source` str, `line` i64.
//! - `citizen_responses.parquet`: `wave` i64, `municipality` str, `citizen_id` str
//!   (pseudonym), `case_id` str (pseudonym), `item` str, `value` f64, `missing_reason` str,
//!   `source` str, `line` i64.
//! - `case_involvement.parquet`: `wave` i64, `case_id` str (pseudonym), `unit_id` str, `lead`
//!   bool, `municipality` str and `work_group` str (both of the unit), `source` str, `line`
//!   i64.
//! - `quarantine.parquet`: `table` str, `source` str, `line` i64 (provenance from ingest),
//!   `column` str (the column at fault; null for `duplicate_conflict`), `value` str (that
//!   column's cell as the source file has it, trimmed: `0` stays `0`, `3,5` stays `3,5`, ids
//!   as pseudonyms; for `duplicate_conflict` how many
//!   different rows share the key; for `municipality_mismatch` also the unit's municipality),
//!   `reason` str: the columns of ingest's quarantine. Sorted by (table, source, line, column,
//!   reason).
//!
//! `summary.json` counts per table: rows_in (rows of ingest's table) = rows_out + quarantined
//! (by first reason) + duplicates_collapsed; missing values of the rows kept by reason in
//! `counts["<table>.missing.<reason>"]`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use super::{StageContext, StageSummary, TableCount};
use crate::codebook::items::{ItemStat, ScaleRecords};
use crate::config::{InstrumentSection, ItemKind};
use crate::schema::{
    Reason, TableSchema, CASE_INVOLVEMENT, CITIZEN_RESPONSES, EMPLOYEE_RESPONSES, INTERVENTION,
    UNITS,
};

mod instrument;
mod order;

const STAGE: &str = "clean";
const READS: &str = "ingest";

/// A rule a row can break: the reason, the column the quarantine row names, the condition
/// (null counts as not broken), and the text shown as the quarantine row's value: the pieces
/// are joined (a null piece as nothing); a single null piece stays null.
struct Rule {
    reason: Reason,
    column: Option<&'static str>,
    broken: Expr,
    value: Vec<Piece>,
}

/// Part of a quarantine value: a column's text, fixed text, or the answer `value` as the
/// source file has it (ingest's `value_text`, else the number in its shortest form).
enum Piece {
    Col(&'static str),
    Text(String),
    Written,
}

impl Rule {
    fn new(reason: Reason, column: &'static str, broken: Expr, value: Vec<Piece>) -> Self {
        Rule {
            reason,
            column: Some(column),
            broken,
            value,
        }
    }
}

/// A rule whose quarantine value is the cell of the column it names.
fn cell_rule(reason: Reason, column: &'static str, broken: Expr) -> Rule {
    Rule::new(reason, column, broken, vec![Piece::Col(column)])
}

/// One table after cleaning: the rows kept (all columns, helper columns included), the
/// quarantine rows, and the accounting.
struct Cleaned {
    /// None in a dry run, unless asked for ([`Mode::kept`]).
    kept: Option<DataFrame>,
    quarantine: DataFrame,
    count: TableCount,
    /// With [`Mode::records`]: the wave of each record of the item statistics, by number.
    record_waves: Vec<Option<i64>>,
}

/// The columns of clean's `employee_responses.parquet`, in order.
const EMPLOYEE_OUTPUT: [&str; 12] = [
    "wave",
    "municipality",
    "unit_id",
    "work_group",
    "respondent_id",
    "target_group",
    "item",
    "item_kind",
    "value",
    "missing_reason",
    "source",
    "line",
];
/// The columns of clean's `citizen_responses.parquet`, in order.
const CITIZEN_OUTPUT: [&str; 9] = [
    "wave",
    "municipality",
    "citizen_id",
    "case_id",
    "item",
    "value",
    "missing_reason",
    "source",
    "line",
];
/// The columns of clean's `case_involvement.parquet`, in order.
const INVOLVEMENT_OUTPUT: [&str; 8] = [
    "wave",
    "case_id",
    "unit_id",
    "lead",
    "municipality",
    "work_group",
    "source",
    "line",
];
/// Output columns taken from the instrument's helper columns (output name, helper column).
const SCORED: [(&str, &str); 2] = [("value", "__value"), ("missing_reason", "__missing_reason")];

/// The tables cleaned so far: the summary, the tables waiting to be written (in the order
/// they were cleaned) and the quarantine rows.
#[derive(Default)]
struct Filed {
    /// A dry run (`relcap check`, [`StageContext::is_dry_run`]): see [`Mode`].
    dry: bool,
    summary: StageSummary,
    outputs: Vec<(&'static str, DataFrame)>,
    quarantine: Vec<DataFrame>,
    /// A dry run: the scales of the next answer table, filled while it is checked.
    scales: Vec<ScaleRecords>,
    /// A dry run: the item statistics of the answer tables cleaned so far.
    items: Vec<ItemStat>,
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let ins = &ctx.config.instrument;
    let read = |t: &str| ctx.read_table(READS, t);
    let mut filed = Filed {
        dry: ctx.is_dry_run(),
        ..Filed::default()
    };

    // Units first: every other table refers to them.
    let no_rules = |lf| Ok((lf, vec![]));
    let units = filed.clean(read("units")?, &UNITS, no_rules, &[], &UNITS.names())?;
    let units = units.context("the clean units are kept in every run")?;
    let refs = References::of(&units)?;
    let rules = |lf| Ok((refs.with_unit(lf)?, vec![unknown_unit()]));
    let names = INTERVENTION.names();
    filed.clean(read("intervention")?, &INTERVENTION, rules, &[], &names)?;

    let items = item_table(ins)?;
    // The answer tables, each written before the next is read (not held while the others are
    // cleaned); a dry run takes them in the order ingest makes them (`super::table_order`).
    for table in super::table_order(filed.dry) {
        match table {
            t if t == EMPLOYEE_RESPONSES.name => filed.employee(ctx, &refs, &items)?,
            t if t == CITIZEN_RESPONSES.name => filed.citizen(ctx, &refs, &items)?,
            t if t == CASE_INVOLVEMENT.name => filed.involvement(ctx, &refs)?,
            _ => continue,
        }
        filed.write_outputs(ctx)?;
    }
    filed.write_quarantine(ctx)?;
    if filed.dry {
        // For `relcap check`, which shows them; not an output of the stage.
        crate::codebook::items::in_scale_order(&mut filed.items);
        let items = crate::codebook::items::to_frame(&filed.items)?;
        ctx.write_table(STAGE, ITEM_STATISTICS, items, false)?;
    }
    Ok(filed.summary)
}

/// The table of item statistics a dry run puts in its store (`crate::codebook::items`).
pub const ITEM_STATISTICS: &str = "item_statistics";

impl Filed {
    /// Cleans the employee answers.
    fn employee(&mut self, ctx: &StageContext, refs: &References, items: &DataFrame) -> Result<()> {
        let ins = &ctx.config.instrument;
        if self.dry {
            self.scales = crate::codebook::items::scales_of(ins, false);
        }
        let rules = |lf| employee_rules(refs.with_group(refs.with_unit(lf)?)?, items, ins);
        let derived = [("work_group", "__unit_work_group"), SCORED[0], SCORED[1]];
        let table = with_value_text(ctx.read_table(READS, EMPLOYEE_RESPONSES.name)?)?;
        let output = &EMPLOYEE_OUTPUT;
        let employee = self.clean(table, &EMPLOYEE_RESPONSES, rules, &derived, output)?;
        if let Some(employee) = employee {
            count_missing(&mut self.summary, EMPLOYEE_RESPONSES.name, &employee)?;
        }
        Ok(())
    }

    /// Cleans the citizen answers.
    fn citizen(&mut self, ctx: &StageContext, refs: &References, items: &DataFrame) -> Result<()> {
        let ins = &ctx.config.instrument;
        if self.dry {
            self.scales = crate::codebook::items::scales_of(ins, true);
        }
        let rules = |lf| citizen_rules(refs.with_municipality(lf)?, items, ins);
        let table = with_value_text(ctx.read_table(READS, CITIZEN_RESPONSES.name)?)?;
        let citizen = self.clean(table, &CITIZEN_RESPONSES, rules, &SCORED, &CITIZEN_OUTPUT)?;
        if let Some(citizen) = citizen {
            count_missing(&mut self.summary, CITIZEN_RESPONSES.name, &citizen)?;
        }
        Ok(())
    }

    /// Cleans the case involvement.
    fn involvement(&mut self, ctx: &StageContext, refs: &References) -> Result<()> {
        let rules = |lf| Ok((refs.with_unit(lf)?, vec![unknown_unit()]));
        let derived = [
            ("municipality", "__unit_municipality"),
            ("work_group", "__unit_work_group"),
        ];
        let table = ctx.read_table(READS, CASE_INVOLVEMENT.name)?;
        let output = &INVOLVEMENT_OUTPUT;
        let involvement = self.clean(table, &CASE_INVOLVEMENT, rules, &derived, output)?;
        if let Some(involvement) = involvement {
            count_leads(&mut self.summary, &involvement)?;
        }
        Ok(())
    }

    /// Cleans one table ([`clean_table`]: `prepare` adds the joins and the rules beyond
    /// duplicates), adds the `derived` columns (output name, helper column), selects the
    /// `output` columns and files the table and its accounting. Returns the output table; in a
    /// dry run only the units' (the references of every other table), else None.
    fn clean<F>(
        &mut self,
        df: DataFrame,
        table: &TableSchema,
        prepare: F,
        derived: &[(&str, &str)],
        output: &[&str],
    ) -> Result<Option<DataFrame>>
    where
        F: FnOnce(LazyFrame) -> Result<(LazyFrame, Vec<Rule>)>,
    {
        // The answer tables of a dry run gather the item statistics that `relcap check` shows
        // (`crate::codebook::items`) while their rows are checked.
        let mut scales = std::mem::take(&mut self.scales);
        let mode = if self.dry {
            Mode {
                reorder: false,
                kept: table.name == UNITS.name,
                drop: rule_free_columns(table.name),
                records: record_key(table.name).filter(|_| !scales.is_empty()),
            }
        } else {
            Mode::RUN
        };
        let cleaned = clean_table(df, table, prepare, &mode, &mut scales)?;
        let waves = &cleaned.record_waves;
        self.items
            .extend(scales.into_iter().flat_map(|s| s.finish(waves)));
        self.quarantine.push(cleaned.quarantine);
        self.summary
            .tables
            .insert(table.name.to_string(), cleaned.count);
        let Some(mut kept) = cleaned.kept else {
            return Ok(None);
        };
        if !derived.is_empty() {
            let derive = derived.iter().map(|(name, from)| col(*from).alias(*name));
            kept = kept
                .lazy()
                .with_columns(derive.collect::<Vec<_>>())
                .collect()?;
        }
        // Rows are already in key order (see `clean_table`); joins and filters keep it.
        let df = kept.select(output.iter().copied())?;
        drop(kept);
        self.outputs.push((table.name, df.clone()));
        Ok(Some(df))
    }

    /// Writes the tables waiting in `outputs` (in the order they were cleaned) and empties it,
    /// each with the layout of its one-chunk form, however its columns are chunked.
    fn write_outputs(&mut self, ctx: &StageContext) -> Result<()> {
        let dir = ctx.stage_dir(STAGE);
        for (table, df) in self.outputs.drain(..) {
            let path = ctx.write_table(STAGE, table, df, true)?;
            self.summary.add_output(&dir, &path);
        }
        Ok(())
    }

    /// Writes the quarantine rows of every table, sorted.
    fn write_quarantine(&mut self, ctx: &StageContext) -> Result<()> {
        let frames = std::mem::take(&mut self.quarantine);
        let q = concat_frames(frames, quarantine_schema())?.sort(
            ["table", "source", "line", "column", "reason"],
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
        let dir = ctx.stage_dir(STAGE);
        let path = ctx.write_table(STAGE, "quarantine", q, false)?;
        self.summary.add_output(&dir, &path);
        Ok(())
    }
}

/// What the other tables check against the clean units: each unit's municipality and work
/// group, the work groups (the valid target groups) and the municipalities.
struct References {
    units: DataFrame,
    groups: DataFrame,
    municipalities: DataFrame,
}

impl References {
    fn of(units: &DataFrame) -> Result<References> {
        let lookup = units
            .clone()
            .lazy()
            .select([
                col("unit_id"),
                col("municipality").alias("__unit_municipality"),
                col("work_group").alias("__unit_work_group"),
                lit(true).alias("__unit_known"),
            ])
            .collect()?;
        let groups = units
            .clone()
            .lazy()
            .select([col("work_group").alias("target_group")])
            .unique_stable(None, UniqueKeepStrategy::First)
            .with_column(lit(true).alias("__group_known"))
            .collect()?;
        let municipalities = units
            .clone()
            .lazy()
            .select([col("municipality")])
            .unique_stable(None, UniqueKeepStrategy::First)
            .with_column(lit(true).alias("__municipality_known"))
            .collect()?;
        Ok(References {
            units: lookup,
            groups,
            municipalities,
        })
    }

    /// Adds `__municipality_known` (the municipality is some clean unit's).
    fn with_municipality(&self, lf: LazyFrame) -> Result<LazyFrame> {
        Ok(look_up(lf.collect()?, "municipality", &self.municipalities)?.lazy())
    }

    /// Adds the unit's `__unit_municipality`, `__unit_work_group`, `__unit_known`.
    fn with_unit(&self, lf: LazyFrame) -> Result<LazyFrame> {
        Ok(look_up(lf.collect()?, "unit_id", &self.units)?.lazy())
    }

    /// Adds `__group_known` (the target group is some unit's work group).
    fn with_group(&self, lf: LazyFrame) -> Result<LazyFrame> {
        Ok(look_up(lf.collect()?, "target_group", &self.groups)?.lazy())
    }
}

/// `df` with the columns of `right` but `key` added: per row, those of the row of `right`
/// whose text `key` equals the row's, null where none does (or the row's key is null). A left
/// join on a key unique in `right` (a repeated key is an error), in `df`'s row order, without
/// copying the columns of `df`.
fn look_up(mut df: DataFrame, key: &str, right: &DataFrame) -> Result<DataFrame> {
    let values = right.drop(key)?;
    if right.height() == 0 {
        let n = df.height();
        for c in values.columns() {
            df.with_column(Column::full_null(c.name().clone(), n, c.dtype()))?;
        }
        return Ok(df);
    }
    let keys = right.column(key)?.str()?;
    let mut at: PlHashMap<&str, IdxSize> = PlHashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        if let Some(k) = k {
            if at.insert(k, i as IdxSize).is_some() {
                bail!("{key} {k:?} appears more than once in a reference table");
            }
        }
    }
    let rows = df.column(key)?.str()?.clone();
    // Long tables repeat a key over consecutive rows: reuse the last lookup.
    let mut last: Option<(&str, Option<IdxSize>)> = None;
    let idx: IdxCa = rows
        .iter()
        .map(|k| {
            let k = k?;
            match last {
                Some((p, i)) if p == k => i,
                _ => {
                    let i = at.get(k).copied();
                    last = Some((k, i));
                    i
                }
            }
        })
        .collect();
    let found = values.take(&idx)?;
    df.hstack_mut(found.columns())?;
    Ok(df)
}

/// A row naming a unit that is not among the clean units.
fn unknown_unit() -> Rule {
    cell_rule(
        Reason::UnknownReference,
        "unit_id",
        col("__unit_known").is_null(),
    )
}

/// The rules of employee answers (`lf` has the unit and group references joined).
fn employee_rules(
    lf: LazyFrame,
    items: &DataFrame,
    ins: &InstrumentSection,
) -> Result<(LazyFrame, Vec<Rule>)> {
    let lf = with_instrument(lf, items, ins)?;
    let kind = col("item_kind");
    let tie = kind.clone().eq(lit("tie"));
    let rules = vec![
        cell_rule(
            Reason::UnknownItem,
            "item",
            kind.clone().is_null().or(kind.clone().eq(lit("citizen"))),
        ),
        cell_rule(
            Reason::MissingRequired,
            "target_group",
            tie.and(col("target_group").is_null()),
        ),
        cell_rule(
            Reason::UnexpectedTargetGroup,
            "target_group",
            kind.eq(lit("person"))
                .and(col("target_group").is_not_null()),
        ),
        unknown_unit(),
        Rule::new(
            Reason::MunicipalityMismatch,
            "municipality",
            col("municipality").neq(col("__unit_municipality")),
            vec![
                Piece::Col("municipality"),
                Piece::Text(" (the unit is in ".into()),
                Piece::Col("__unit_municipality"),
                Piece::Text(")".into()),
            ],
        ),
        cell_rule(
            Reason::UnknownReference,
            "target_group",
            col("target_group")
                .is_not_null()
                .and(col("__group_known").is_null()),
        ),
        out_of_range_rule(),
    ];
    Ok((lf, rules))
}

/// The rules of citizen answers (`lf` has the municipality reference joined).
fn citizen_rules(
    lf: LazyFrame,
    items: &DataFrame,
    ins: &InstrumentSection,
) -> Result<(LazyFrame, Vec<Rule>)> {
    let lf = with_instrument(lf, items, ins)?;
    let rules = vec![
        cell_rule(
            Reason::UnknownItem,
            "item",
            col("item_kind")
                .neq(lit("citizen"))
                .or(col("item_kind").is_null()),
        ),
        cell_rule(
            Reason::UnknownReference,
            "municipality",
            col("__municipality_known").is_null(),
        ),
        out_of_range_rule(),
    ];
    Ok((lf, rules))
}

/// How [`clean_table`] works: in a run, or in a dry run (`relcap check`), which needs the same
/// accounting and quarantine rows but no output table.
struct Mode {
    /// Reorder the rows into key order (the output's order). A dry run leaves them in input
    /// order: duplicates and conflicts are found by the same sort of row numbers, but the
    /// columns are not gathered into that order; each quarantine part is put into it (it is
    /// small), so the quarantine is the run's row for row.
    reorder: bool,
    /// Return the rows kept.
    kept: bool,
    /// Columns dropped once duplicates are found (no rule reads them).
    drop: &'static [&'static str],
    /// For the item statistics: how many leading key columns make one record. Each row gets
    /// `__record`, its record's number in key order, before [`Mode::drop`] drops the columns.
    records: Option<usize>,
}

impl Mode {
    const RUN: Mode = Mode {
        reorder: true,
        kept: true,
        drop: &[],
        records: None,
    };
}

/// The key columns that make one record of the item statistics (`crate::codebook::items`):
/// wave, respondent and partner group of the employee answers; wave and citizen of the
/// citizen answers.
fn record_key(table: &str) -> Option<usize> {
    match table {
        t if t == EMPLOYEE_RESPONSES.name => Some(3),
        t if t == CITIZEN_RESPONSES.name => Some(2),
        _ => None,
    }
}

/// The columns of a table that only the duplicate check compares: no rule after it reads
/// them, so a dry run drops them before the joins.
fn rule_free_columns(table: &str) -> &'static [&'static str] {
    match table {
        t if t == EMPLOYEE_RESPONSES.name => &["wave", "respondent_id"],
        t if t == CITIZEN_RESPONSES.name => &["wave", "citizen_id", "case_id"],
        t if t == CASE_INVOLVEMENT.name => &["wave", "case_id", "lead"],
        _ => &[],
    }
}

/// Collapses duplicates, quarantines conflicts and the rows that break `rules`. `prepare`
/// adds the joins and helper columns the rules need, and returns the rules. With
/// [`Mode::records`], the rows kept are fed into `scales`.
fn clean_table<F>(
    df: DataFrame,
    def: &TableSchema,
    prepare: F,
    mode: &Mode,
    scales: &mut [ScaleRecords],
) -> Result<Cleaned>
where
    F: FnOnce(LazyFrame) -> Result<(LazyFrame, Vec<Rule>)>,
{
    let rows_in = df.height() as u64;
    let key = def.key();
    let (distinct, record_waves) = distinct_rows(df, def, mode)?;
    let duplicates = rows_in - distinct.height() as u64;
    let key_names = key.join(", ");
    let conflict = Rule {
        reason: Reason::DuplicateConflict,
        column: None,
        broken: col("__n_key").gt(lit(1)),
        value: vec![
            Piece::Col("__n_key"),
            Piece::Text(format!(" different rows share the key ({key_names})")),
        ],
    };
    let (lf, mut rules) = prepare(distinct.lazy())?;
    rules.insert(0, conflict);
    let flags: Vec<Expr> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.broken
                .clone()
                .fill_null(lit(false))
                .alias(format!("__r{i}"))
        })
        .collect();
    let mut first = lit(NULL).cast(DataType::String);
    for (i, r) in rules.iter().enumerate().rev() {
        first = when(col(format!("__r{i}")))
            .then(lit(r.reason.as_str()))
            .otherwise(first);
    }
    let checked = lf
        .with_columns(flags)
        .with_column(first.alias("__reason"))
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot check the rows of {}", def.name))?;
    let mut parts = Vec::with_capacity(rules.len());
    let place = (!mode.reorder).then(|| col("__pos"));
    for (i, r) in rules.iter().enumerate() {
        let column = match r.column {
            Some(c) => lit(c),
            None => lit(NULL).cast(DataType::String),
        };
        let pieces: Vec<Expr> = r
            .value
            .iter()
            .enumerate()
            .map(|(j, p)| {
                match p {
                    Piece::Col(c) => col(*c).cast(DataType::String),
                    Piece::Text(t) => lit(t.clone()),
                    Piece::Written => as_struct(vec![col("value_text"), col("value")]),
                }
                .alias(format!("__v{j}"))
            })
            .collect();
        let mut part = checked
            .clone()
            .lazy()
            .filter(col(format!("__r{i}")))
            .select(
                [
                    lit(def.name).alias("table"),
                    col("source"),
                    col("line"),
                    column.alias("column"),
                    lit(r.reason.as_str()).alias("reason"),
                ]
                .into_iter()
                .chain(pieces)
                .chain(place.clone())
                .collect::<Vec<_>>(),
            )
            .collect()?;
        if !mode.reorder {
            // In key order, as a run has it (see `Mode::reorder`).
            part = part.sort(["__pos"], SortMultipleOptions::default())?;
        }
        let value = join_pieces(&part, r.value.len())?;
        part = part.select(["table", "source", "line", "column"])?;
        part.with_column(value)?;
        let reason = Column::new_scalar(
            "reason".into(),
            Scalar::new(
                DataType::String,
                AnyValue::StringOwned(r.reason.as_str().into()),
            ),
            part.height(),
        );
        part.with_column(reason)?;
        parts.push(part);
    }
    let quarantine = concat_frames(parts, quarantine_schema())?;
    let mut count = TableCount {
        rows_in,
        duplicates_collapsed: duplicates,
        ..Default::default()
    };
    for reason in checked.column("__reason")?.str()?.iter().flatten() {
        *count.quarantined.entry(reason.to_string()).or_default() += 1;
    }
    count.rows_out = checked.column("__reason")?.null_count() as u64;
    if mode.records.is_some() {
        feed_scales(&checked, scales)?;
    }
    let kept = if mode.kept {
        Some(rows_kept(checked)?)
    } else {
        None
    };
    Ok(Cleaned {
        kept,
        quarantine,
        count,
        record_waves,
    })
}

/// The rows of `checked` without a `__reason`: `checked` itself when every row is kept, else
/// gathered a column at a time ([`gather_by_column`]), not as a second whole frame.
fn rows_kept(checked: DataFrame) -> Result<DataFrame> {
    let reason = checked.column("__reason")?.str()?;
    if reason.null_count() == checked.height() {
        return Ok(checked);
    }
    let idx: Vec<IdxSize> = reason
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i as IdxSize)
        .collect();
    gather_by_column(checked, &IdxCa::from_vec("rows".into(), idx))
}

/// Feeds the rows kept of `checked` (no `__reason`) into `scales`: each answer's score
/// (`__value`) at its record (`__record`) and item.
fn feed_scales(checked: &DataFrame, scales: &mut [ScaleRecords]) -> Result<()> {
    let record = checked.column("__record")?.u32()?;
    let item = checked.column("item")?.str()?;
    let value = checked.column("__value")?.f64()?;
    let reason = checked.column("__reason")?.str()?;
    // Per scale, the item's column; long tables repeat an item rarely but have few items.
    let mut last: Option<(&str, Vec<Option<usize>>)> = None;
    for i in 0..checked.height() {
        let (Some(r), Some(it), None) = (record.get(i), item.get(i), reason.get(i)) else {
            continue;
        };
        let js = match &last {
            Some((p, js)) if *p == it => js.clone(),
            _ => {
                let js: Vec<Option<usize>> = scales.iter().map(|s| s.item_index(it)).collect();
                last = Some((it, js.clone()));
                js
            }
        };
        for (s, j) in scales.iter_mut().zip(js) {
            if let Some(j) = j {
                s.set(r, j, value.get(i));
            }
        }
    }
    Ok(())
}

/// The rows of `df` without exact copies (the first copy by input order kept), with
/// `__n_key`: how many distinct rows share the row's key. In a run ([`Mode::reorder`]) the rows
/// are in key order; in a dry run in input order, with `__pos`, the row's place in key order,
/// and without the columns of [`Mode::drop`]; with [`Mode::records`] also with `__record`, and
/// the wave of each record (else an empty list).
fn distinct_rows(
    df: DataFrame,
    def: &TableSchema,
    mode: &Mode,
) -> Result<(DataFrame, Vec<Option<i64>>)> {
    let mut df = df;
    // One chunk per column: a Parquet file reads as one chunk per row group, and gathering
    // rows across many chunks is far slower than within one. (A dry run gathers no rows.)
    if mode.reorder {
        df.rechunk_mut_par();
    }
    // Sort by the key, then the other canonical columns, then input order (ingest wrote rows
    // sorted by source and line, so the row number is that order). Exact copies are then
    // adjacent with the first copy first, and the rows of one key are adjacent; everything
    // after keeps this order, which is the order the output is written in.
    let key = def.key();
    let mut columns: Vec<&str> = key.clone();
    columns.extend(def.names().into_iter().filter(|c| !key.contains(c)));
    let codes = order::dense_codes_of(&df, &columns)
        .with_context(|| format!("cannot order the rows of {}", def.name))?;
    let rows = order::sorted_rows(&codes, df.height());
    let copy = order::same_as_previous(&codes, &rows, columns.len());
    let same_key = order::same_as_previous(&codes, &rows, key.len());
    let mut waves = vec![];
    if let Some(k) = mode.records {
        let (record, w) = record_numbers(&df, &codes, &rows, k)?;
        df.with_column(Column::new("__record".into(), record))?;
        waves = w;
    }
    drop(codes);
    let n_key = distinct_per_key(&copy, &same_key);
    drop(same_key);
    if !mode.reorder {
        let mut distinct = in_input_order(df, &rows, &copy, &n_key)?;
        distinct = distinct.drop_many(mode.drop.iter().copied());
        distinct.rechunk_mut_par();
        return Ok((distinct, waves));
    }
    // The first copy of each distinct row, in key order, gathered once and a column at a time:
    // each input column is freed as soon as its gathered copy exists (national tables have
    // tens of millions of rows; a whole second frame beside the first was the stage's peak).
    let (rows, n_key): (Vec<u32>, Vec<u32>) = rows
        .iter()
        .zip(n_key)
        .zip(&copy)
        .filter(|(_, copy)| !**copy)
        .map(|(row_n, _)| row_n)
        .unzip();
    drop(copy);
    let mut distinct = gather_by_column(df, &IdxCa::from_vec("rows".into(), rows))?;
    distinct.with_column(Column::new("__n_key".into(), n_key))?;
    Ok((distinct, waves))
}

/// The rows `idx` of `df`, gathered a column at a time, each column of `df` dropped as soon as
/// its gathered copy exists (the peak is one column more than `df`, not two frames).
fn gather_by_column(df: DataFrame, idx: &IdxCa) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.into_columns() {
        columns.push(c.take(idx)?);
    }
    Ok(DataFrame::new(idx.len(), columns)?)
}

/// Numbers the records of the item statistics: rows that share the first `k` columns of
/// `codes` (the key's, wave first) are one record, numbered in key order (`rows`). Returns per
/// row (in input order) its record's number, and per record its wave.
fn record_numbers(
    df: &DataFrame,
    codes: &[Vec<u32>],
    rows: &[u32],
    k: usize,
) -> Result<(Vec<u32>, Vec<Option<i64>>)> {
    let wave = df.column("wave")?.i64()?;
    let new_record = order::same_as_previous(codes, rows, k);
    let mut record = vec![0u32; rows.len()];
    let mut waves: Vec<Option<i64>> = vec![];
    for (&r, same) in rows.iter().zip(new_record) {
        if !same {
            waves.push(wave.get(r as usize));
        }
        record[r as usize] = waves.len() as u32 - 1;
    }
    Ok((record, waves))
}

/// `df` (in input order) with `__n_key` and `__pos` from the key order `rows` (row numbers in
/// key order, with `copy` and `n_key` per place in it), the exact copies filtered out.
fn in_input_order(
    mut df: DataFrame,
    rows: &[u32],
    copy: &[bool],
    n_key: &[u32],
) -> Result<DataFrame> {
    let n = rows.len();
    let (mut keep, mut n_key_in, mut pos) = (vec![true; n], vec![0u32; n], vec![0u32; n]);
    for (p, &r) in rows.iter().enumerate() {
        let r = r as usize;
        keep[r] = !copy[p];
        n_key_in[r] = n_key[p];
        pos[r] = p as u32;
    }
    df.with_column(Column::new("__n_key".into(), n_key_in))?;
    df.with_column(Column::new("__pos".into(), pos))?;
    if keep.iter().all(|&k| k) {
        return Ok(df);
    }
    let keep: BooleanChunked = keep.into_iter().collect();
    Ok(df.filter(&keep)?)
}

/// The `value` column of quarantine rows from the `__v0..` piece columns of `part`.
fn join_pieces(part: &DataFrame, n: usize) -> Result<Column> {
    let written: Vec<StringChunked> = (0..n)
        .map(|j| {
            let c = part.column(&format!("__v{j}"))?;
            match c.dtype() {
                DataType::Struct(_) => as_written(c),
                _ => Ok(c.str()?.clone()),
            }
        })
        .collect::<Result<_>>()?;
    let pieces: Vec<&StringChunked> = written.iter().collect();
    let values: Vec<Option<String>> = (0..part.height())
        .map(|row| {
            if let [one] = pieces.as_slice() {
                return one.get(row).map(str::to_string);
            }
            Some(pieces.iter().filter_map(|p| p.get(row)).collect())
        })
        .collect();
    Ok(Column::new("value".into(), values))
}

/// The answers of a `Piece::Written` column (a struct of `value_text` and `value`) as the
/// source file has them: the text where ingest kept it, else the number in its shortest form
/// (`0`, not `0.0`: the text the cell had, since ingest keeps every other).
fn as_written(c: &Column) -> Result<StringChunked> {
    let fields = c.struct_()?.fields_as_series();
    let (text, value) = (fields[0].str()?, fields[1].f64()?);
    Ok(text
        .iter()
        .zip(value.iter())
        .map(|(t, v)| t.map(str::to_string).or_else(|| v.map(|v| format!("{v}"))))
        .collect())
}

/// For rows sorted so that exact copies follow their first copy and rows of one key are
/// adjacent: per row, how many distinct rows (first copies) its key has. Row 0 is never a
/// copy and always starts a key, whatever the flags say (its "previous row" is nothing).
fn distinct_per_key(copy: &[bool], same_key: &[bool]) -> Vec<u32> {
    let n = copy.len();
    let mut out = vec![0u32; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && same_key[end] {
            end += 1;
        }
        let distinct = (start..end).filter(|&i| i == start || !copy[i]).count() as u32;
        out[start..end].fill(distinct);
        start = end;
    }
    out
}

/// An answers table with ingest's `value_text` (a null column when it has none).
fn with_value_text(mut df: DataFrame) -> Result<DataFrame> {
    if df.column("value_text").is_err() {
        let n = df.height();
        df.with_column(Column::full_null("value_text".into(), n, &DataType::String))?;
    }
    Ok(df)
}

/// The quarantine's columns, for an empty frame.
fn quarantine_schema() -> Vec<(&'static str, DataType)> {
    vec![
        ("table", DataType::String),
        ("source", DataType::String),
        ("line", DataType::Int64),
        ("column", DataType::String),
        ("value", DataType::String),
        ("reason", DataType::String),
    ]
}

/// Stacks frames of the same schema (an empty frame of `schema` when there are none).
fn concat_frames(frames: Vec<DataFrame>, schema: Vec<(&str, DataType)>) -> Result<DataFrame> {
    let mut it = frames.into_iter();
    let Some(mut acc) = it.next() else {
        let cols = schema
            .into_iter()
            .map(|(n, t)| Column::new_empty(n.into(), &t))
            .collect();
        return Ok(DataFrame::new(0, cols)?);
    };
    for f in it {
        acc.vstack_mut(&f)?;
    }
    acc.rechunk_mut();
    Ok(acc)
}

/// item -> item_kind ("tie", "person", "citizen") for every item of the instrument.
fn item_table(ins: &InstrumentSection) -> Result<DataFrame> {
    let (names, kinds): (Vec<String>, Vec<&str>) = ins
        .items()
        .into_iter()
        .map(|(n, k)| {
            let k = match k {
                ItemKind::Tie => "tie",
                ItemKind::Person => "person",
                ItemKind::Citizen => "citizen",
            };
            (n, k)
        })
        .unzip();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("item".into(), names),
        Column::new("item_kind".into(), kinds),
    ])?)
}

/// Adds each row's `item_kind` (from `items`, the [`item_table`]) and `__value`,
/// `__missing_reason` and `__out_of_range` (see [`instrument`]).
fn with_instrument(lf: LazyFrame, items: &DataFrame, ins: &InstrumentSection) -> Result<LazyFrame> {
    let mut df = look_up(lf.collect()?, "item", items)?;
    let scored = instrument::apply(ins, df.column("item")?.str()?, df.column("value")?.f64()?);
    df.with_column(scored.value.into_column())?;
    df.with_column(scored.missing_reason.into_column())?;
    df.with_column(scored.out_of_range.into_column())?;
    Ok(df.lazy())
}

/// A value outside the scale or value map, shown as the source file has it.
fn out_of_range_rule() -> Rule {
    let broken = col("__out_of_range");
    Rule::new(Reason::OutOfRange, "value", broken, vec![Piece::Written])
}

/// `counts["<table>.missing.<reason>"]` for the rows kept.
fn count_missing(summary: &mut StageSummary, table: &str, kept: &DataFrame) -> Result<()> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for r in kept.column("missing_reason")?.str()?.iter().flatten() {
        *by.entry(r.to_string()).or_default() += 1;
    }
    for (r, n) in by {
        summary.counts.insert(format!("{table}.missing.{r}"), n);
    }
    Ok(())
}

/// Counts (wave, case) pairs with no lead unit or several, among the rows kept.
fn count_leads(summary: &mut StageSummary, kept: &DataFrame) -> Result<()> {
    let leads = kept
        .clone()
        .lazy()
        .group_by([col("wave"), col("case_id")])
        .agg([col("lead").cast(DataType::Int64).sum().alias("n_leads")])
        .collect()?;
    let mut none = 0u64;
    let mut several = 0u64;
    for n in leads.column("n_leads")?.i64()?.iter().flatten() {
        if n == 0 {
            none += 1;
        } else if n > 1 {
            several += 1;
        }
    }
    for (key, value) in [
        ("cases_without_lead", none),
        ("cases_with_several_leads", several),
    ] {
        summary
            .counts
            .insert(format!("case_involvement.{key}"), value);
    }
    if none > 0 {
        summary.warnings.push(format!(
            "case_involvement: {none} case-waves have no lead unit (kept; the link stage decides)"
        ));
    }
    if several > 0 {
        summary.warnings.push(format!(
            "case_involvement: {several} case-waves have more than one lead unit (kept; the \
             link stage decides)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::io;
    use crate::pseudonym::{KeySource, Pseudonymizer};
    use crate::stages::StageContext;

    type Answer = (
        i64,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        Option<f64>,
    );

    type CitizenAnswer = (
        i64,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<f64>,
    );

    /// Ingest-shaped inputs; `line` is the row's position + 2 as in a CSV with a header.
    struct Inputs {
        units: Vec<(&'static str, &'static str, &'static str)>,
        intervention: Vec<(&'static str, &'static str, i64)>,
        employee: Vec<Answer>,
        citizen: Vec<CitizenAnswer>,
        involvement: Vec<(i64, &'static str, &'static str, bool)>,
        /// Every employee answer from one record at line 2, as the rows melted from one
        /// record of a wide export share its line.
        one_record: bool,
    }

    fn base() -> Inputs {
        Inputs {
            units: vec![
                ("Randers", "U1", "caseworkers"),
                ("Randers", "U2", "job_consultants"),
                ("Stevns", "U3", "caseworkers"),
            ],
            intervention: vec![("U1", "intervention", 1)],
            employee: vec![],
            citizen: vec![],
            involvement: vec![],
            one_record: false,
        }
    }

    fn provenance(n: usize, source: &str) -> [Column; 2] {
        [
            Column::new("source".into(), vec![source; n]),
            Column::new(
                "line".into(),
                (0..n as i64).map(|i| i + 2).collect::<Vec<_>>(),
            ),
        ]
    }

    fn frame(mut cols: Vec<Column>, source: &str) -> DataFrame {
        let n = cols[0].len();
        cols.extend(provenance(n, source));
        DataFrame::new_infer_height(cols).unwrap()
    }

    /// Columns named as `$schema`'s, in order, the k-th from field `$f` of each of `$rows`.
    macro_rules! columns {
        ($schema:expr, $rows:expr, $($f:tt),*) => {{
            let mut names = $schema.names().into_iter();
            vec![$(Column::new(
                names.next().unwrap().into(),
                $rows.iter().map(|r| r.$f).collect::<Vec<_>>(),
            )),*]
        }};
    }

    fn write_inputs(out: &std::path::Path, x: &Inputs) {
        let dir = out.join("ingest");
        let n = x.units.len();
        let mut units = columns!(UNITS, x.units, 0, 1, 2);
        units.push(Column::new("manager_id".into(), vec![None::<&str>; n]));
        units.push(Column::new("headcount".into(), vec![None::<i64>; n]));
        let tables = [
            (UNITS, units),
            (
                INTERVENTION,
                columns!(INTERVENTION, x.intervention, 0, 1, 2),
            ),
            (
                EMPLOYEE_RESPONSES,
                columns!(EMPLOYEE_RESPONSES, x.employee, 0, 1, 2, 3, 4, 5, 6),
            ),
            (
                CITIZEN_RESPONSES,
                columns!(CITIZEN_RESPONSES, x.citizen, 0, 1, 2, 3, 4, 5),
            ),
            (
                CASE_INVOLVEMENT,
                columns!(CASE_INVOLVEMENT, x.involvement, 0, 1, 2, 3),
            ),
        ];
        for (table, cols) in tables {
            let mut df = frame(cols, &format!("{}.csv", table.name));
            if x.one_record && table.name == EMPLOYEE_RESPONSES.name {
                let lines = vec![2i64; df.height()];
                df.with_column(Column::new("line".into(), lines)).unwrap();
            }
            let path = dir.join(format!("{}.parquet", table.name));
            io::write_parquet(&mut df, &path, &io::ParquetMeta::stage("ingest")).unwrap();
        }
    }

    fn config(edit: &str) -> Config {
        Config::from_toml(&format!(
            "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n{edit}"
        ))
        .unwrap()
    }

    struct Outcome {
        _dir: tempfile::TempDir,
        out: std::path::PathBuf,
        summary: StageSummary,
    }

    impl Outcome {
        fn table(&self, t: &str) -> DataFrame {
            io::read_parquet(&self.out.join("clean").join(format!("{t}.parquet"))).unwrap()
        }
        /// (table, line, column, reason) of every quarantine row.
        fn quarantine(&self) -> Vec<(String, i64, Option<String>, String)> {
            crate::stages::ingest::tests::quarantine_rows(&self.table("quarantine"))
                .into_iter()
                .map(|(t, line, column, _, reason)| (t, line, column, reason))
                .collect()
        }
        fn count(&self, t: &str) -> &TableCount {
            &self.summary.tables[t]
        }
        fn values(&self, t: &str) -> Vec<Option<f64>> {
            self.table(t)
                .column("value")
                .unwrap()
                .f64()
                .unwrap()
                .iter()
                .collect()
        }
        fn missing(&self, t: &str) -> Vec<Option<String>> {
            crate::stages::ingest::tests::texts(&self.table(t), "missing_reason")
        }
    }

    fn clean(x: &Inputs, cfg: &Config) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_inputs(&out, x);
        let p = Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let ctx = StageContext {
            config: cfg,
            data_dir: dir.path().to_path_buf(),
            out_dir: out.clone(),
            reports_dir: dir.path().join("reports"),
            pseudonymizer: &p,
            progress: false,
            memo: &crate::memo::Memo::disabled(),
            fingerprint: None,
            store: None,
        };
        let summary = run(&ctx).unwrap();
        for (t, c) in &summary.tables {
            assert!(c.balanced(), "{t}: {c:?}");
        }
        dry_run_agrees(&ctx, &summary);
        Outcome {
            _dir: dir,
            out,
            summary,
        }
    }

    /// The dry run of `relcap check` (the inputs from the store, not from files) on the same
    /// inputs as the run `ctx` just made: the same accounting and the same quarantine, row for
    /// row, no output table but the units (the other tables' references), and the item
    /// statistics of the answers written.
    fn dry_run_agrees(ctx: &StageContext, summary: &StageSummary) {
        let store = crate::stages::TableStore::keeping(|_, _| true);
        for t in crate::schema::TABLES {
            let df = io::read_parquet(&ctx.table_path(READS, t)).unwrap();
            store.put(READS, t, df);
        }
        let dry = StageContext {
            config: ctx.config,
            data_dir: ctx.data_dir.clone(),
            out_dir: ctx.out_dir.clone(),
            reports_dir: ctx.reports_dir.clone(),
            pseudonymizer: ctx.pseudonymizer,
            progress: false,
            memo: ctx.memo,
            fingerprint: None,
            store: Some(&store),
        };
        let dry_summary = run(&dry).unwrap();
        assert_eq!(dry_summary.tables, summary.tables);
        let q = store.take(STAGE, "quarantine").unwrap();
        let written = io::read_parquet(&ctx.table_path(STAGE, "quarantine")).unwrap();
        assert!(q.equals_missing(&written), "{q}\n{written}");
        for t in crate::schema::TABLES {
            let kept = store.take(STAGE, t);
            assert_eq!(kept.is_some(), t == UNITS.name, "{t}");
        }
        // The item statistics gathered while the answers were checked are those of the
        // written answers, to the last bit.
        let read = |t: &str| io::read_parquet(&ctx.table_path(STAGE, t)).unwrap();
        let (e, c) = (read(EMPLOYEE_RESPONSES.name), read(CITIZEN_RESPONSES.name));
        let want = crate::codebook::items::item_statistics(&ctx.config.instrument, &e, &c);
        let got = store.take(STAGE, ITEM_STATISTICS).unwrap();
        let got = crate::codebook::items::from_frame(&got).unwrap();
        assert_eq!(got, want.unwrap());
    }

    fn q(
        t: &str,
        line: i64,
        col: Option<&str>,
        reason: &str,
    ) -> (String, i64, Option<String>, String) {
        (
            t.to_string(),
            line,
            col.map(str::to_string),
            reason.to_string(),
        )
    }

    const ER: &str = "employee_responses";
    const CW: Option<&str> = Some("caseworkers");

    fn answer(resp: &'static str, item: &'static str, value: Option<f64>) -> Answer {
        (1, resp, "Randers", "U2", CW, item, value)
    }

    #[test]
    fn missing_codes_value_maps_and_reverse_coding() {
        let mut x = base();
        x.employee = vec![
            answer("r1", "frequent", Some(3.0)),
            answer("r1", "timely", Some(9.0)),
            answer("r1", "accurate", None),
            answer("r1", "problem_solving", Some(2.0)),
            answer("r1", "shared_goals", Some(5.0)),
            answer("r2", "frequent", Some(5.0)),
            answer("r3", "frequent", Some(9.0)),
        ];
        let cfg = config("[instrument]\nreverse_coded = [\"problem_solving\"]\nmissing_codes = [{ code = 9, reason = \"dont_know\" }, { code = -1, reason = \"refused\" }]\n[instrument.value_maps.frequent]\n1 = 1\n2 = 3\n3 = 5\n4 = 4\n5 = 2\n");
        let o = clean(&x, &cfg);
        // Sorted by (wave, respondent, target group, item): r1's accurate, frequent,
        // problem_solving, shared_goals, timely; then r2, r3. frequent 3 -> 5 and 5 -> 2 by the
        // map; problem_solving 2 -> 1 + 5 - 2 = 4; 9 is dont_know even on a mapped item.
        assert_eq!(
            o.values(ER),
            vec![None, Some(5.0), Some(4.0), Some(5.0), None, Some(2.0), None]
        );
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            o.missing(ER),
            vec![
                s("empty"),
                None,
                None,
                None,
                s("dont_know"),
                None,
                s("dont_know")
            ]
        );
        assert_eq!(o.summary.counts["employee_responses.missing.dont_know"], 2);
        assert_eq!(o.summary.counts["employee_responses.missing.empty"], 1);
    }

    #[test]
    fn distinct_rows_per_key_in_sorted_runs() {
        // Keys: a a a | b | c c; row 1 copies row 0, row 5 copies row 4.
        let copy = [true, true, false, false, false, true];
        let same_key = [true, true, true, false, false, true];
        assert_eq!(distinct_per_key(&copy, &same_key), vec![2, 2, 2, 1, 1, 1]);
        assert_eq!(distinct_per_key(&[], &[]), Vec::<u32>::new());
    }

    #[test]
    fn off_scale_fractional_and_unmapped_codes_are_out_of_range() {
        let mut x = base();
        x.employee = vec![
            answer("r1", "timely", Some(0.0)),
            answer("r1", "accurate", Some(6.0)),
            answer("r1", "shared_goals", Some(2.5)),
            answer("r1", "frequent", Some(7.0)),
            answer("r1", "mutual_respect", Some(1.0)),
        ];
        let o = clean(&x, &config(""));
        assert_eq!(
            o.quarantine(),
            vec![
                q(ER, 2, Some("value"), "out_of_range"),
                q(ER, 3, Some("value"), "out_of_range"),
                q(ER, 4, Some("value"), "out_of_range"),
                q(ER, 5, Some("value"), "out_of_range"),
            ]
        );
        assert_eq!(o.values(ER), vec![Some(1.0)]);
        assert_eq!(o.count(ER).quarantined["out_of_range"], 4);
    }

    #[test]
    fn out_of_range_values_are_quarantined_as_written() {
        let mut x = base();
        x.employee = vec![
            answer("r1", "timely", Some(0.0)),
            answer("r1", "shared_goals", Some(2.5)),
        ];
        x.citizen = vec![(1, "c1", "Randers", "k1", "cq_1", Some(6.0))];
        let o = clean(&x, &config(""));
        let values: Vec<_> = crate::stages::ingest::tests::quarantine_rows(&o.table("quarantine"))
            .into_iter()
            .map(|(_, _, _, v, _)| v)
            .collect();
        let expect = ["6", "0", "2.5"].map(|v| Some(v.to_string()));
        assert_eq!(values, expect);
    }

    #[test]
    fn quarantine_rows_of_one_line_are_in_key_order_in_a_run_and_in_a_dry_run() {
        // One record's answers, in the file's column order, not in key (item) order.
        let mut x = base();
        x.employee = vec![
            answer("r1", "timely", Some(0.0)),
            answer("r1", "frequent", Some(3.0)),
            answer("r1", "accurate", Some(6.0)),
        ];
        x.one_record = true;
        // `clean` also checks that the dry run's quarantine is the run's, row for row.
        let o = clean(&x, &config(""));
        let values: Vec<_> = crate::stages::ingest::tests::quarantine_rows(&o.table("quarantine"))
            .into_iter()
            .map(|(_, line, _, v, _)| (line, v))
            .collect();
        let expect = [(2, "6"), (2, "0")].map(|(l, v)| (l, Some(v.to_string())));
        assert_eq!(values, expect);
    }

    #[test]
    fn a_citizen_in_an_unknown_municipality_is_an_unknown_reference() {
        let mut x = base();
        x.citizen = vec![
            (1, "c1", "Randers", "k1", "cq_1", Some(4.0)),
            (1, "c2", "RÃ¸dovre", "k2", "cq_1", Some(4.0)),
            (1, "c3", "Rodovre", "k3", "cq_1", Some(4.0)),
            (1, "c4", "Stevns", "k4", "cq_1", Some(4.0)),
        ];
        let o = clean(&x, &config(""));
        let cr = "citizen_responses";
        let m = Some("municipality");
        assert_eq!(
            o.quarantine(),
            vec![
                q(cr, 3, m, "unknown_reference"),
                q(cr, 4, m, "unknown_reference")
            ]
        );
        let kept = crate::stages::ingest::tests::texts(&o.table(cr), "municipality");
        assert_eq!(kept, [Some("Randers".into()), Some("Stevns".into())]);
        assert_eq!(o.count(cr).quarantined["unknown_reference"], 2);
    }

    #[test]
    fn a_non_integer_scale_accepts_fractions() {
        let mut x = base();
        x.employee = vec![answer("r1", "timely", Some(2.5))];
        let o = clean(
            &x,
            &config(
                "[instrument]
scale_min = 0.5
scale_max = 5
",
            ),
        );
        assert_eq!(o.values(ER), vec![Some(2.5)]);
    }

    #[test]
    fn exact_duplicates_collapse_and_conflicts_are_all_quarantined() {
        let mut x = base();
        x.employee = vec![
            answer("r1", "timely", Some(4.0)),
            answer("r1", "timely", Some(4.0)),
            answer("r1", "accurate", Some(2.0)),
            answer("r1", "accurate", Some(3.0)),
            answer("r1", "accurate", Some(3.0)),
            answer("r2", "accurate", None),
            answer("r2", "accurate", None),
        ];
        let o = clean(&x, &config(""));
        let c = o.count(ER);
        assert_eq!(c.rows_in, 7);
        assert_eq!(c.duplicates_collapsed, 3);
        assert_eq!(c.quarantined["duplicate_conflict"], 2);
        assert_eq!(c.rows_out, 2);
        assert_eq!(
            o.quarantine(),
            vec![
                q(ER, 4, None, "duplicate_conflict"),
                q(ER, 5, None, "duplicate_conflict"),
            ]
        );
        // The first copy (line 2) is the one kept.
        let lines: Vec<_> = o
            .table(ER)
            .column("line")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(lines, vec![Some(2), Some(7)]);
    }

    #[test]
    fn conflicting_units_are_quarantined_and_then_unknown() {
        let mut x = base();
        x.units.push(("Randers", "U2", "lawyers"));
        x.employee = vec![answer("r1", "timely", Some(4.0))];
        let o = clean(&x, &config(""));
        assert_eq!(o.count("units").quarantined["duplicate_conflict"], 2);
        assert_eq!(o.table("units").height(), 2);
        assert_eq!(
            o.quarantine(),
            vec![
                q(ER, 2, Some("unit_id"), "unknown_reference"),
                q("units", 3, None, "duplicate_conflict"),
                q("units", 5, None, "duplicate_conflict"),
            ]
        );
    }

    #[test]
    fn references_items_and_target_groups() {
        let mut x = base();
        x.employee = vec![
            (1, "r1", "Randers", "U9", CW, "timely", Some(3.0)),
            (1, "r1", "Stevns", "U2", CW, "accurate", Some(3.0)),
            (
                1,
                "r1",
                "Randers",
                "U2",
                Some("lawyers"),
                "shared_goals",
                Some(3.0),
            ),
            (1, "r1", "Randers", "U2", CW, "happiness", Some(3.0)),
            (1, "r1", "Randers", "U2", CW, "cq_1", Some(3.0)),
            (1, "r1", "Randers", "U2", None, "mutual_respect", Some(3.0)),
            (1, "r1", "Randers", "U2", CW, "srm_1", Some(3.0)),
            (1, "r1", "Randers", "U2", None, "srm_2", Some(3.0)),
            (1, "r1", "Randers", "U2", CW, "relevance", Some(3.0)),
        ];
        x.citizen = vec![
            (1, "c1", "Randers", "k1", "cq_1", Some(3.0)),
            (1, "c1", "Randers", "k1", "srm_1", Some(3.0)),
        ];
        x.intervention.push(("U7", "control", 1));
        x.involvement = vec![(1, "k1", "U1", true), (1, "k1", "U8", false)];
        let o = clean(&x, &config(""));
        assert_eq!(
            o.quarantine(),
            vec![
                q("case_involvement", 3, Some("unit_id"), "unknown_reference"),
                q("citizen_responses", 3, Some("item"), "unknown_item"),
                q(ER, 2, Some("unit_id"), "unknown_reference"),
                q(ER, 3, Some("municipality"), "municipality_mismatch"),
                q(ER, 4, Some("target_group"), "unknown_reference"),
                q(ER, 5, Some("item"), "unknown_item"),
                q(ER, 6, Some("item"), "unknown_item"),
                q(ER, 7, Some("target_group"), "missing_required"),
                q(ER, 8, Some("target_group"), "unexpected_target_group"),
                q("intervention", 3, Some("unit_id"), "unknown_reference"),
            ]
        );
        let c = o.count(ER);
        assert_eq!(c.rows_out, 2);
        assert_eq!(c.quarantined["unknown_item"], 2);
        let kinds: Vec<_> = o
            .table(ER)
            .column("item_kind")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        assert_eq!(kinds, vec!["person", "tie"]);
        // The mismatch row's quarantine value says where the unit is.
        let qv = o.table("quarantine");
        let vals: Vec<_> = qv.column("value").unwrap().str().unwrap().iter().collect();
        assert!(
            vals.contains(&Some("Stevns (the unit is in Randers)")),
            "{vals:?}"
        );
    }

    #[test]
    fn a_row_breaking_two_rules_is_counted_once_under_the_first() {
        let mut x = base();
        // Unknown unit and off the scale: two quarantine rows, one count.
        x.employee = vec![(1, "r1", "Randers", "U9", CW, "timely", Some(8.0))];
        let o = clean(&x, &config(""));
        assert_eq!(
            o.quarantine(),
            vec![
                q(ER, 2, Some("unit_id"), "unknown_reference"),
                q(ER, 2, Some("value"), "out_of_range"),
            ]
        );
        let c = o.count(ER);
        assert_eq!(c.quarantined.len(), 1);
        assert_eq!(c.quarantined["unknown_reference"], 1);
    }

    #[test]
    fn cases_without_or_with_several_leads_are_kept_and_counted() {
        let mut x = base();
        x.involvement = vec![
            (1, "k1", "U1", true),
            (1, "k1", "U2", false),
            (1, "k2", "U1", false),
            (1, "k3", "U1", true),
            (1, "k3", "U2", true),
            (2, "k3", "U2", true),
        ];
        let o = clean(&x, &config(""));
        assert_eq!(o.table("case_involvement").height(), 6);
        assert_eq!(o.summary.counts["case_involvement.cases_without_lead"], 1);
        assert_eq!(
            o.summary.counts["case_involvement.cases_with_several_leads"],
            1
        );
        assert_eq!(o.summary.warnings.len(), 2);
        let m: Vec<_> = o
            .table("case_involvement")
            .column("municipality")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        assert_eq!(m, vec!["Randers"; 6]);
    }

    #[test]
    fn the_dry_run_gathers_the_item_statistics_of_the_answers_it_keeps() {
        // 12 respondents (two waves) and 12 citizens answer every item, with a pattern that
        // correlates the items; a duplicate and an off-scale answer are set aside. `clean`
        // compares the dry run's statistics with those of the written answers, bit for bit.
        const IDS: [&str; 12] = [
            "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12",
        ];
        let ins = InstrumentSection::default();
        let mut x = base();
        for (i, id) in IDS.iter().enumerate() {
            let level = (i % 5) as f64 + 1.0;
            for (j, item) in ins.dimensions().iter().chain(&ins.srm_items).enumerate() {
                let v = (level + ((i * 3 + j) % 3) as f64 - 1.0).clamp(1.0, 5.0);
                let item: &'static str = Box::leak(item.clone().into_boxed_str());
                let target = (j < ins.dimensions().len()).then_some("caseworkers");
                for wave in [1, 2] {
                    x.employee
                        .push((wave, id, "Randers", "U2", target, item, Some(v)));
                }
            }
            for (j, item) in ins.citizen_items.iter().enumerate() {
                let v = (level + ((i + j) % 2) as f64).clamp(1.0, 5.0);
                let item: &'static str = Box::leak(item.clone().into_boxed_str());
                x.citizen.push((1, id, "Randers", "k1", item, Some(v)));
            }
        }
        x.employee.push(x.employee[0]);
        x.employee
            .push((1, "r01", "Randers", "U2", None, "srm_1", Some(7.0)));
        let o = clean(&x, &config(""));
        let e = o.table(ER);
        let c = o.table("citizen_responses");
        let stats = crate::codebook::items::item_statistics(&ins, &e, &c).unwrap();
        let scales: Vec<_> = stats.iter().map(|s| (s.scale, s.wave)).collect();
        assert!(scales.contains(&("rc", 2)) && scales.contains(&("srm", 1)));
        assert!(scales.contains(&("citizen", 1)));
        // r01's off-scale srm_1 in wave 1 leaves 11 complete records there.
        let n = |s: &crate::codebook::items::ItemStat| match (s.scale, s.wave) {
            ("srm", 1) => 11,
            _ => 12,
        };
        assert!(
            stats.iter().all(|s| s.n == n(s) && s.r_drop.is_some()),
            "{stats:?}"
        );
    }

    #[test]
    fn citizen_values_follow_the_instrument() {
        let mut x = base();
        x.citizen = vec![
            (1, "c1", "Randers", "k1", "cq_1", Some(4.0)),
            (1, "c1", "Randers", "k1", "cq_2", Some(9.0)),
            (1, "c1", "Randers", "k1", "cq_3", None),
            (1, "c1", "Randers", "k1", "cq_4", Some(0.0)),
        ];
        let o = clean(&x, &config("[instrument]\nreverse_coded = [\"cq_1\"]\n"));
        assert_eq!(o.values("citizen_responses"), vec![Some(2.0), None, None]);
        assert_eq!(
            o.quarantine(),
            vec![q("citizen_responses", 5, Some("value"), "out_of_range")]
        );
        assert_eq!(o.summary.counts["citizen_responses.missing.dont_know"], 1);
        assert_eq!(o.summary.counts["citizen_responses.missing.empty"], 1);
    }
}
