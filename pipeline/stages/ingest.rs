//! The `ingest` stage: reads the five canonical tables (CSV, `.xlsx` or Parquet, in the long
//! canonical form or as wide survey exports), types every cell, pseudonymises person ids, and
//! writes them in the canonical long form with their provenance under `OUT/ingest/`.
//!
//! Order of work: first every table's files are located and their headers checked (a missing
//! required table or column, a wide mapping that matches no column, an empty or header-only
//! required file unless `allow_empty`, is an error naming the file and column before anything
//! is written); then each table in turn is read, typed and written before the next is read
//! (Parquet sources a slice of [`source::PARQUET_SLICE_ROWS`] rows at a time, so that only one
//! slice is ever held as text); the quarantine is written last.
//! Reading is in [`source`] (all file kinds as text) and [`csv`] (the CSV reader and the
//! encodings), the wide mapping in [`wide`], typing rules in [`typing`].
//!
//! A table may come from several files (`file` plus `more_files`, e.g. one wave split over
//! several exports), each read the same way and stacked. A canonical column the file does not
//! carry can be given as a constant (`constants`, e.g. the wave of a single-wave export); when
//! the file has a `wave` column too, a row whose wave differs is quarantined (`wave_mismatch`).
//! `na_values` are cell texts read as empty (`NA`). `decimal = ","` reads `3,5` as 3.5 (and
//! `3.5` is then `not_a_number`).
//!
//! **Wide exports** (`sources.<table>.wide`, for `employee_responses` and `citizen_responses`):
//! each record (one respondent) is melted into one long row per mapped column (item and
//! partner group from the column, the value from the cell, id, unit, municipality and wave from
//! their columns or constants) at the record's line. An empty cell gives no row (counted as
//! excluded `empty_cell`) unless `empty_cells = "keep"`, a cell in `not_asked` none either
//! (`not_asked`). Row accounting of a wide table is in long rows: rows in = long rows melted +
//! skipped cells + records rejected whole (one each); `summary.tables["<table>.wide_records"]`
//! accounts for the records: read = melted + rejected (by reason).
//!
//! **SurveyXact exports** (`sources.<table>.format = "surveyxact"`): each file is an export
//! folder or workbook read by [`surveyxact`] and melted through the wide mapping; its `source`
//! is `<folder>/dataset.csv` or the workbook's name, its line the dataset's. Its labels decide
//! missing answers (a missing label's code becomes the instrument's missing code for the reason,
//! or is excluded under the reason when the instrument has none) and codes no label names are
//! quarantined (`unlabelled_code`); a respondent twice in one export is quarantined on each of
//! its lines (`duplicate_respondent`).
//!
//! **SPSS files** (`format = "spss"`): each file is a `.sav` read by [`spss`] into the same
//! export (its value labels as the labels, its variable labels as the question texts), so the
//! same rules apply; its user-missing values are missing too (under the reason of their label
//! when that is a missing label, else `user_missing`). Its `source` is the file's name, its line
//! the case number.
//!
//! A row with any cell that cannot be typed goes to the quarantine, one quarantine row per bad
//! cell (a bad cell shared by all rows of a wide record is one quarantine row); in
//! [`TableCount::quarantined`] each row is counted once, under the reason of its first bad
//! cell in the column order below. A CSV record with more or fewer fields than the header is
//! quarantined whole (`ragged_row`), and so is a record with bytes the file's encoding cannot
//! decode (`encoding`). Blank lines are not records (counted in
//! `counts["<table>.blank_lines"]`). Columns in the file that the canonical form (or the wide
//! mapping) does not use are ignored (a warning names them). An optional table that is absent
//! (or a 0-byte file) is an empty table.
//!
//! # Outputs (`OUT/ingest/`)
//!
//! Every table carries two provenance columns: `source` (str, the file name without folder)
//! and `line` (i64). For CSV, `line` is the 1-based physical line where the record starts (the
//! header is line 1; line breaks inside quoted fields are counted, so it is the line an editor
//! shows); for `.xlsx` the worksheet row. For Parquet it is the 1-based row number + 1, so that
//! row 1 is "line 2" as it would be in a CSV export. Rows melted from one wide record share its
//! line. Rows are sorted by (source, line) (stable, so a wide record's rows keep column order).
//!
//! - `units.parquet`: `municipality` str, `unit_id` str, `work_group` str, `manager_id` str
//!   (pseudonym, nullable), `headcount` i64 (nullable), `source`, `line`.
//! - `intervention.parquet`: `unit_id` str, `arm` str (`intervention`|`control`), `after_wave`
//!   i64, `source`, `line`.
//! - `employee_responses.parquet`: `wave` i64, `respondent_id` str (pseudonym), `municipality`
//!   str, `unit_id` str, `target_group` str (nullable; empty for person items), `item` str,
//!   `value` f64 (nullable: the cell was empty), `source`, `line`, `value_text` str (below).
//! - `citizen_responses.parquet`: `wave` i64, `citizen_id` str (pseudonym), `municipality` str,
//!   `case_id` str (pseudonym), `item` str, `value` f64 (nullable), `source`, `line`,
//!   `value_text` str (below).
//!
//!   `value_text` (nullable) is the value cell as written (trimmed) where the number does not read back
//!   as it (`4.0`, `3,5`, `1e3`, `04`), and null where it does (`4`, `-99`, `2.5`: the text
//!   is Rust's shortest decimal form of `value`) or the cell is empty, so that the clean
//!   stage can quarantine a value as the source file has it ([`typing::value_text`]). The
//!   column is written only when some row has such a text: a table whose every value reads
//!   back as written (the usual export of integer codes) has no `value_text` column, and clean
//!   then shows the number in its shortest form, which is the text.
//! - `case_involvement.parquet`: `wave` i64, `case_id` str (pseudonym), `unit_id` str, `lead`
//!   bool, `source`, `line`.
//! - `codebook.parquet`: every source variable of the two answer tables (its schema is in
//!   [`codebook`]).
//! - `quarantine.parquet`: `table` str, `source` str, `line` i64, `column` str (canonical name,
//!   or for a wide value cell the column in the file; null for a whole-record problem), `value`
//!   str (the cell as written; the pseudonym for person id columns; null for an empty cell),
//!   `reason` str (`missing_required`, `not_an_integer`, `not_a_number`, `not_a_boolean`,
//!   `invalid_value`, `wave_mismatch`, `ragged_row`, `encoding`, `unlabelled_code`,
//!   `duplicate_respondent`). Sorted by (table, source,
//!   line, column, reason).
//!
//! No raw person id is written: respondent, citizen, case and manager ids are replaced by
//! their pseudonyms as they are typed, in the tables and in the quarantine alike.

pub mod codebook;
pub mod csv;
pub mod source;
pub mod spss;
pub mod surveyxact;
pub mod typing;
pub mod wide;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use super::{StageContext, StageSummary, TableCount};
use crate::config::{SourceSpec, WideSpec};
use crate::io::{self, FileKind};
use crate::schema::{self, ColumnSpec, Reason, TABLES};
use typing::{CellError, PseudonymCache};

const STAGE: &str = "ingest";

/// A located source table whose files' headers have been checked.
#[derive(Debug)]
struct Source {
    table: &'static str,
    /// Empty: an optional table that is absent, or an empty file allowed by the config.
    files: Vec<SourceFile>,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    /// File name without folder: the `source` column.
    name: String,
    kind: FileKind,
    /// A SurveyXact export (folder or workbook; `kind` unused).
    export: bool,
}

/// The typed result of one table (all its files).
#[derive(Default)]
struct Typed {
    frames: Vec<DataFrame>,
    quarantine: QuarantineRows,
    count: TableCount,
    /// Wide sources: records read, melted and rejected.
    wide: Option<TableCount>,
    blank_lines: u64,
    /// Per file: (name, format, encoding).
    facts: Vec<(String, &'static str, Option<&'static str>)>,
    /// The answer tables' source variables (`codebook.parquet`).
    codebook: Vec<codebook::Entry>,
}

/// Quarantine rows gathered column-wise; an identical row is kept once (a bad id cell of a
/// wide record touches every long row melted from it, but is one problem).
#[derive(Default)]
struct QuarantineRows {
    table: Vec<&'static str>,
    source: Vec<String>,
    line: Vec<i64>,
    column: Vec<Option<String>>,
    value: Vec<Option<String>>,
    reason: Vec<Reason>,
    seen: std::collections::HashSet<(&'static str, String, i64, Option<String>, Reason)>,
}

impl QuarantineRows {
    fn push(
        &mut self,
        table: &'static str,
        source: &str,
        line: i64,
        column: Option<String>,
        value: Option<String>,
        reason: Reason,
    ) {
        let key = (table, source.to_string(), line, column.clone(), reason);
        if !self.seen.insert(key) {
            return;
        }
        self.table.push(table);
        self.source.push(source.to_string());
        self.line.push(line);
        self.column.push(column);
        self.value.push(value);
        self.reason.push(reason);
    }

    fn append(&mut self, other: QuarantineRows) {
        self.table.extend(other.table);
        self.source.extend(other.source);
        self.line.extend(other.line);
        self.column.extend(other.column);
        self.value.extend(other.value);
        self.reason.extend(other.reason);
        self.seen.extend(other.seen);
    }

    fn into_frame(self) -> Result<DataFrame> {
        let df = DataFrame::new_infer_height(vec![
            Column::new("table".into(), self.table),
            Column::new("source".into(), self.source),
            Column::new("line".into(), self.line),
            Column::new("column".into(), self.column),
            Column::new("value".into(), self.value),
            Column::new(
                "reason".into(),
                self.reason.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ),
        ])?;
        Ok(df.sort(
            ["table", "source", "line", "column", "reason"],
            SortMultipleOptions::default().with_maintain_order(true),
        )?)
    }
}

/// Adds `b` into `a`.
fn add_count(a: &mut TableCount, b: &TableCount) {
    a.rows_in += b.rows_in;
    a.rows_out += b.rows_out;
    a.duplicates_collapsed += b.duplicates_collapsed;
    for (k, v) in &b.quarantined {
        *a.quarantined.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &b.excluded {
        *a.excluded.entry(k.clone()).or_default() += v;
    }
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let mut summary = StageSummary::default();
    // 1. Locate every table and check its headers before reading or writing anything.
    let mut sources = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let spec = ctx
            .config
            .sources
            .get(table)
            .with_context(|| format!("no source spec for table {table}"))?;
        let src = locate(ctx, table, spec, &mut summary.warnings)?;
        sources.push(src);
    }
    // 2. Read and type each table, and write it before the next is read (national tables
    // have tens of millions of rows; holding every typed table until the end multiplied the
    // stage's peak memory).
    let mut ids = PseudonymCache::new(ctx.pseudonymizer);
    let dir = ctx.stage_dir(STAGE);
    let mut quarantine = QuarantineRows::default();
    let order = super::table_order(ctx.is_dry_run());
    sources.sort_by_key(|s| order.iter().position(|t| *t == s.table));
    let mut entries: Vec<codebook::Entry> = vec![];
    for src in &sources {
        let mut t = read_and_type(ctx, src, &mut ids, &mut summary.warnings)?;
        let in_order = sorted_by_source_and_line(&t.frames)?;
        let mut frame = empty_frame(schema::columns(src.table))?;
        for f in std::mem::take(&mut t.frames) {
            frame.vstack_mut_owned(f)?;
        }
        // `value_text` only when some cell needs it (see the outputs below).
        if let Ok(c) = frame.column("value_text") {
            if c.null_count() == c.len() {
                frame.drop_in_place("value_text")?;
            }
        }
        let path = if in_order {
            // Already in output order (one file, or files in name order): the stable sort
            // would copy the table to change nothing. Written as that sort's one-chunk output.
            ctx.write_table(STAGE, src.table, frame, true)?
        } else {
            let frame = frame.sort(
                ["source", "line"],
                SortMultipleOptions::default().with_maintain_order(true),
            )?;
            ctx.write_table(STAGE, src.table, frame, false)?
        };
        summary.add_output(&dir, &path);
        if t.blank_lines > 0 {
            summary
                .counts
                .insert(format!("{}.blank_lines", src.table), t.blank_lines);
        }
        let mut fact = serde_json::Map::new();
        let mut files = Vec::new();
        for (f, (name, format, encoding)) in src.files.iter().zip(&t.facts) {
            let mut one = serde_json::Map::new();
            one.insert("file".into(), name.clone().into());
            one.insert("format".into(), (*format).into());
            if let Some(e) = encoding {
                one.insert("encoding".into(), (*e).into());
            }
            // A dry run (`relcap check`) records no hash: it has read the file already.
            if !ctx.is_dry_run() {
                one.insert("blake3".into(), io::hash_file(&f.path)?.into());
            }
            files.push(serde_json::Value::from(one));
        }
        match files.len() {
            0 => {
                fact.insert("file".into(), serde_json::Value::Null);
            }
            1 => {
                if let Some(serde_json::Value::Object(one)) = files.pop() {
                    fact = one;
                }
            }
            _ => {
                fact.insert("files".into(), files.into());
            }
        }
        summary
            .facts
            .insert(format!("input.{}", src.table), fact.into());
        summary.tables.insert(src.table.to_string(), t.count);
        if let Some(w) = t.wide {
            summary
                .tables
                .insert(format!("{}.wide_records", src.table), w);
        }
        quarantine.append(t.quarantine);
        entries.append(&mut t.codebook);
    }
    let min_cell = u64::from(ctx.config.privacy.min_cell);
    let book = codebook::frame(&entries, min_cell)?;
    let path = ctx.write_table(STAGE, "codebook", book, false)?;
    summary.add_output(&dir, &path);
    let path = ctx.write_table(STAGE, "quarantine", quarantine.into_frame()?, false)?;
    summary.add_output(&dir, &path);
    let source = serde_json::to_value(ctx.pseudonymizer.source())?;
    summary.facts.insert("pseudonym_key_source".into(), source);
    summary.facts.insert(
        "pseudonym_key_id".into(),
        ctx.pseudonymizer.key_id().to_string().into(),
    );
    Ok(summary)
}

/// Separator, encoding and worksheet of a source, its own settings before `[csv]`'s.
fn read_options(ctx: &StageContext, spec: &SourceSpec) -> source::ReadOptions {
    let csv = &ctx.config.csv;
    source::ReadOptions {
        separator: spec
            .separator
            .clone()
            .unwrap_or_else(|| csv.separator.clone()),
        encoding: spec
            .encoding
            .clone()
            .unwrap_or_else(|| csv.encoding.clone()),
        sheet: spec.sheet.clone(),
    }
}

/// Finds a table's files and checks that each has the columns the canonical form needs.
fn locate(
    ctx: &StageContext,
    table: &'static str,
    spec: &SourceSpec,
    warnings: &mut Vec<String>,
) -> Result<Source> {
    let opts = read_options(ctx, spec);
    let mut files = Vec::new();
    for (i, stem) in spec.files().into_iter().enumerate() {
        let key = if i == 0 {
            format!("sources.{table}.file")
        } else {
            format!("sources.{table}.more_files")
        };
        let found = if spec.is_export() {
            find_export(spec, &ctx.data_dir, stem)
        } else {
            io::find_table(&ctx.data_dir, stem)
        };
        let Some(path) = found else {
            if spec.required || i > 0 {
                let which = if spec.required { "required " } else { "" };
                bail!(
                    "{which}table {table}: no file {} in {} (config key {key}; without an \
                     extension .parquet, .csv then .xlsx is tried)",
                    stem.display(),
                    ctx.data_dir.display()
                );
            }
            return Ok(Source {
                table,
                files: vec![],
            });
        };
        if spec.is_export() {
            files.extend(locate_export(table, spec, &opts, path, warnings)?);
            continue;
        }
        let kind = io::file_kind(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let len = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if len == 0 {
            if spec.required && !spec.allow_empty {
                bail!(
                    "{}: the file is empty (0 bytes), but table {table} is required \
                     (set sources.{table}.allow_empty = true to read it as an empty table)",
                    path.display()
                );
            }
            warnings.push(format!(
                "{name}: empty file (0 bytes); table {table} gets no rows from it"
            ));
            continue;
        }
        let (header, has_rows) = source::header(&path, kind, &opts)?;
        let used = check_columns(&path, table, spec, &header)?;
        if !has_rows {
            if spec.required && !spec.allow_empty {
                bail!(
                    "{}: the file has a header but no rows, but table {table} is required \
                     (set sources.{table}.allow_empty = true to read it as an empty table)",
                    path.display()
                );
            }
            warnings.push(format!(
                "{name}: header only; table {table} gets no rows from it"
            ));
            continue;
        }
        let unused: Vec<String> = header
            .iter()
            .filter(|h| !used.contains(*h))
            .cloned()
            .collect();
        if !unused.is_empty() {
            warnings.push(format!(
                "{name}: columns not used by table {table}: {}",
                unused.join(", ")
            ));
        }
        files.push(SourceFile {
            path,
            name,
            kind,
            export: false,
        });
    }
    Ok(Source { table, files })
}

/// The export `stem` of a survey-export source in `dir`: a SurveyXact folder or workbook, or
/// an SPSS file.
pub fn find_export(spec: &SourceSpec, dir: &Path, stem: &Path) -> Option<PathBuf> {
    match spec.is_spss() {
        true => spss::find(dir, stem),
        false => surveyxact::find(dir, stem),
    }
}

/// Reads the export at `path` of a survey-export source; returns it and its `source` name.
fn open_export(
    spec: &SourceSpec,
    path: &Path,
    opts: &source::ReadOptions,
) -> Result<(surveyxact::Export, String)> {
    match spec.is_spss() {
        true => Ok((spss::open(path)?, spss::source_name(path))),
        false => Ok((surveyxact::open(path, opts)?, surveyxact::source_name(path))),
    }
}

/// A survey export (SurveyXact or SPSS) of `table`, read and checked (structure, columns, wide
/// mapping); None when it has no records and the table may be empty.
fn locate_export(
    table: &'static str,
    spec: &SourceSpec,
    opts: &source::ReadOptions,
    path: PathBuf,
    warnings: &mut Vec<String>,
) -> Result<Option<SourceFile>> {
    let (ex, name) = open_export(spec, &path, opts)?;
    warnings.extend(ex.warnings);
    let header = &ex.dataset.header;
    let used = check_columns(&path, table, spec, header)?;
    if ex.dataset.lines.is_empty() && ex.dataset.rejected.is_empty() {
        if spec.required && !spec.allow_empty {
            bail!(
                "{}: the export has no respondents, but table {table} is required (set \
                 sources.{table}.allow_empty = true to read it as an empty table)",
                path.display()
            );
        }
        warnings.push(format!(
            "{name}: no respondents; table {table} gets no rows from it"
        ));
        return Ok(None);
    }
    let unused: Vec<&str> = header
        .iter()
        .filter(|h| !used.contains(*h))
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "{name}: variables that map to nothing in table {table} (not read): {}",
            unused.join(", ")
        ));
    }
    Ok(Some(SourceFile {
        path,
        name,
        kind: FileKind::Csv,
        export: true,
    }))
}

/// Where each canonical column of a file comes from.
#[derive(Debug, Clone)]
enum ColumnSource {
    /// This header column.
    File(String),
    /// The same value on every row.
    Constant(String),
    /// `<file>:<line>` (a wide file without respondent ids).
    Line,
    /// From the wide melt (item, target_group, value).
    Melt,
    /// Absent optional column: null.
    Absent,
}

/// How the canonical columns of `table` are filled from a file with `header`, or an error
/// naming the file and the missing column.
fn column_sources(
    path: &Path,
    table: &str,
    spec: &SourceSpec,
    header: &[String],
) -> Result<Vec<ColumnSource>> {
    let mut out = Vec::new();
    for c in schema::columns(table) {
        let in_file = spec.column(c.name);
        let hits = header.iter().filter(|h| h.as_str() == in_file).count();
        if hits > 1 {
            bail!(
                "{}: column `{in_file}` appears {hits} times in the header",
                path.display()
            );
        }
        let wide = spec.wide.as_ref();
        out.push(if wide.is_some() && schema::MELTED.contains(&c.name) {
            ColumnSource::Melt
        } else if hits == 1 {
            ColumnSource::File(in_file.to_string())
        } else if let Some(v) = spec.constants.get(c.name) {
            ColumnSource::Constant(v.clone())
        } else if c.name == "respondent_id" && wide.is_some_and(|w| w.respondent_from_line) {
            ColumnSource::Line
        } else if c.optional_column {
            ColumnSource::Absent
        } else {
            let renamed = if in_file != c.name {
                format!(" (named `{in_file}` by sources.{table}.columns)")
            } else {
                String::new()
            };
            bail!(
                "{}: required column `{}`{renamed} is missing (or give it in \
                 sources.{table}.constants); the header has: {}",
                path.display(),
                c.name,
                header.join(", ")
            );
        });
    }
    Ok(out)
}

/// Checks a file's header; returns the header columns it uses.
fn check_columns(
    path: &Path,
    table: &str,
    spec: &SourceSpec,
    header: &[String],
) -> Result<Vec<String>> {
    let sources = column_sources(path, table, spec, header)?;
    let mut used: Vec<String> = sources
        .iter()
        .filter_map(|s| match s {
            ColumnSource::File(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    if let Some(w) = &spec.wide {
        for c in w.columns.keys() {
            if !header.contains(c) {
                bail!(
                    "{}: column `{c}` (named in sources.{table}.wide.columns) is missing; the \
                     header has: {}",
                    path.display(),
                    header.join(", ")
                );
            }
        }
        let mapped = wide::map_columns(header, w, &used);
        if mapped.is_empty() {
            bail!(
                "{}: no column matches the wide mapping of sources.{table}.wide; the header \
                 has: {}",
                path.display(),
                header.join(", ")
            );
        }
        used.extend(mapped.into_iter().map(|m| m.column));
    }
    Ok(used)
}

/// Reads one table (all its files) and types it.
fn read_and_type(
    ctx: &StageContext,
    src: &Source,
    ids: &mut PseudonymCache,
    warnings: &mut Vec<String>,
) -> Result<Typed> {
    let mut out = Typed::default();
    let spec = ctx
        .config
        .sources
        .get(src.table)
        .with_context(|| format!("no source spec for table {}", src.table))?;
    for file in &src.files {
        read_file(ctx, src.table, spec, file, ids, warnings, &mut out)?;
    }
    Ok(out)
}

/// Cells equal (after trimming) to one of `na` become empty.
fn blank_na(col: StringChunked, na: &[String]) -> StringChunked {
    if na.is_empty() {
        return col;
    }
    let name = col.name().clone();
    let mut b = StringChunkedBuilder::new(name, col.len());
    for c in col.iter() {
        match c {
            Some(t) if na.iter().any(|n| n == t.trim()) => b.append_value(""),
            Some(t) => b.append_value(t),
            None => b.append_null(),
        }
    }
    b.finish()
}

/// Reads one file of a table, types it and adds it to `out`.
fn read_file(
    ctx: &StageContext,
    table: &'static str,
    spec: &SourceSpec,
    file: &SourceFile,
    ids: &mut PseudonymCache,
    warnings: &mut Vec<String>,
    out: &mut Typed,
) -> Result<()> {
    let opts = read_options(ctx, spec);
    let decimal = spec
        .decimal
        .as_deref()
        .unwrap_or(ctx.config.csv.decimal.as_str());
    let decimal_comma = decimal == ",";
    let columns = schema::columns(table);
    let export = match file.export {
        true => Some(open_export(spec, &file.path, &opts)?.0),
        false => None,
    };
    let (header, _) = match &export {
        Some(ex) => (ex.dataset.header.clone(), true),
        None => source::header(&file.path, file.kind, &opts)?,
    };
    let col_sources = column_sources(&file.path, table, spec, &header)?;
    let mut wanted: Vec<String> = col_sources
        .iter()
        .filter_map(|s| match s {
            ColumnSource::File(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    let n_fixed = wanted.len();
    let mapped = match &spec.wide {
        Some(w) => wide::map_columns(&header, w, &wanted),
        None => vec![],
    };
    wanted.extend(mapped.iter().map(|m| m.column.clone()));
    for (c, s) in columns.iter().zip(&col_sources) {
        if let (Some(v), ColumnSource::File(f)) = (spec.constants.get(c.name), s) {
            if c.name != "wave" {
                warnings.push(format!(
                    "{}: column `{f}` is used; the constant {v:?} for {} is ignored",
                    file.name, c.name
                ));
            }
        }
    }
    let format = match file.kind {
        FileKind::Csv => "csv",
        FileKind::Parquet => "parquet",
        FileKind::Xlsx => "xlsx",
    };
    let plan = FilePlan {
        table,
        spec,
        file,
        columns,
        col_sources: &col_sources,
        mapped: &mapped,
        n_fixed,
        decimal_comma,
    };
    // Quarantine rows of this file: identical rows are one problem within a file.
    let mut quarantine = QuarantineRows::default();
    let first_frame = out.frames.len();
    if let Some(ex) = export {
        let format = if spec.is_spss() { "spss" } else { "surveyxact" };
        out.facts.push((file.name.clone(), format, ex.encoding));
        let background: Vec<(String, &str)> = columns
            .iter()
            .zip(&col_sources)
            .filter_map(|(c, s)| match s {
                ColumnSource::File(f) => Some((f.clone(), c.name)),
                _ => None,
            })
            .collect();
        let missing = spec.missing_labels();
        let book = codebook::export_entries(table, &file.name, &ex, &background, &mapped, &missing);
        out.codebook.extend(book);
        let (tt, notes) = export_texts(ctx, &plan, ex, &wanted)?;
        type_records(&plan, tt, ids, out, &mut quarantine, Some(&notes))?;
    } else if file.kind == FileKind::Parquet {
        // Read and typed a slice at a time, so that only one slice is ever held as text.
        out.facts.push((file.name.clone(), format, None));
        let rows = source::parquet_rows(&file.path)?;
        let native = native_columns(&plan);
        let mut offset = 0;
        while offset < rows {
            let len = source::PARQUET_SLICE_ROWS.min(rows - offset);
            let (tt, natives) =
                source::read_parquet_slice_with(&file.path, &wanted, offset, len, |k, c| {
                    native
                        .get(k)
                        .copied()
                        .flatten()
                        .is_some_and(|spec| typing::native_ok(c, spec))
                })?;
            type_records_with(&plan, tt, natives, ids, out, &mut quarantine, None)?;
            offset += len;
        }
    } else {
        let (tt, encoding) = source::read(&file.path, file.kind, &opts, &wanted)?;
        out.facts.push((file.name.clone(), format, encoding));
        type_records(&plan, tt, ids, out, &mut quarantine, None)?;
    }
    if !file.export && matches!(table, "employee_responses" | "citizen_responses") {
        let frames = &out.frames[first_frame..];
        let codes = &ctx.config.instrument.missing_codes;
        let book = codebook::table_entries(table, &file.name, frames, codes)?;
        out.codebook.extend(book);
    }
    out.quarantine.append(quarantine);
    Ok(())
}

/// The wanted columns of an export's dataset, without the records of respondents that appear
/// twice, and the value cells after its labels ([`surveyxact::label_cells`]).
fn export_texts(
    ctx: &StageContext,
    plan: &FilePlan,
    ex: surveyxact::Export,
    wanted: &[String],
) -> Result<(csv::TextTable, surveyxact::CellNotes)> {
    let d = &ex.dataset;
    let columns = wanted
        .iter()
        .map(|w| {
            let i = d.header.iter().position(|h| h == w).with_context(|| {
                format!("{}: column `{w}` is not in the dataset", plan.file.name)
            })?;
            Ok(d.columns[i].clone())
        })
        .collect::<Result<Vec<_>>>()?;
    let tt = csv::TextTable {
        header: d.header.clone(),
        columns,
        lines: d.lines.clone(),
        rejected: d.rejected.clone(),
        blank_lines: d.blank_lines,
    };
    let person = if plan.table == "citizen_responses" {
        "citizen_id"
    } else {
        "respondent_id"
    };
    let at = |canonical: &str| wanted.iter().position(|w| w == plan.spec.column(canonical));
    let mut tt = match at(person) {
        Some(id) => surveyxact::reject_duplicates(tt, id, at("wave"))?,
        None => tt,
    };
    let value_columns: Vec<(usize, String, String)> = plan
        .mapped
        .iter()
        .enumerate()
        .map(|(k, m)| (plan.n_fixed + k, m.column.clone(), m.item.clone()))
        .collect();
    let missing = plan.spec.missing_labels();
    let rules = surveyxact::LabelRules {
        instrument: &ctx.config.instrument,
        missing: &missing,
    };
    let notes = surveyxact::label_cells(
        &ex,
        &plan.file.path.display().to_string(),
        &mut tt.columns,
        &value_columns,
        &rules,
    )?;
    Ok((tt, notes))
}

/// What typing the records of one file needs to know about it.
struct FilePlan<'a> {
    table: &'static str,
    spec: &'a SourceSpec,
    file: &'a SourceFile,
    columns: &'static [ColumnSpec],
    col_sources: &'a [ColumnSource],
    mapped: &'a [wide::Mapped],
    n_fixed: usize,
    decimal_comma: bool,
}

/// The text of each canonical column of one file's records (None: the column is null, or it is
/// native), the column as read when it is typed from its own Parquet type, the line of each
/// row, and for a wide file the mapped column each row's value came from.
struct Texts {
    columns: Vec<Option<StringChunked>>,
    natives: Vec<Option<Column>>,
    lines: Vec<i64>,
    value_column: Vec<u32>,
}

/// Per column of a Parquet file's `wanted` list (its own columns, in canonical order), the
/// canonical column it fills, when the file may be typed from its Parquet types: a long file
/// without `na_values` (which match text) or a decimal comma (which a Parquet number never
/// has, so its text fails typing). Empty when it may not.
fn native_columns<'a>(plan: &FilePlan<'a>) -> Vec<Option<&'a ColumnSpec>> {
    let spec = plan.spec;
    if spec.wide.is_some() || !spec.na_values.is_empty() || plan.decimal_comma {
        return vec![];
    }
    let columns = plan.columns.iter().zip(plan.col_sources);
    columns
        .filter(|(_, s)| matches!(s, ColumnSource::File(_)))
        .map(|(c, _)| Some(c))
        .collect()
}

/// Types the records of `tt` (a whole file, or a slice of a Parquet file) and adds the typed
/// rows, their accounting and their quarantine rows to `out` and `quarantine`.
fn type_records(
    plan: &FilePlan,
    tt: csv::TextTable,
    ids: &mut PseudonymCache,
    out: &mut Typed,
    quarantine: &mut QuarantineRows,
    notes: Option<&surveyxact::CellNotes>,
) -> Result<()> {
    type_records_with(plan, tt, vec![], ids, out, quarantine, notes)
}

/// [`type_records`], with `natives`: per column of `tt` (or none), the column as read from a
/// Parquet file when it is typed from its own type ([`typing::native_ok`]).
fn type_records_with(
    plan: &FilePlan,
    tt: csv::TextTable,
    natives: Vec<Option<Column>>,
    ids: &mut PseudonymCache,
    out: &mut Typed,
    quarantine: &mut QuarantineRows,
    notes: Option<&surveyxact::CellNotes>,
) -> Result<()> {
    out.blank_lines += tt.blank_lines;
    let notes = notes.filter(|n| !n.is_empty());
    let file_cols: Vec<StringChunked> = tt
        .columns
        .into_iter()
        .map(|c| blank_na(c, &plan.spec.na_values))
        .collect();
    let mut count = TableCount::default();
    let unlabelled = match notes {
        Some(n) => quarantine_unlabelled(plan, n, &tt.lines, quarantine, &mut count),
        None => 0,
    };
    let mut texts = match &plan.spec.wide {
        None => long_texts(plan, &file_cols, natives, tt.lines),
        Some(w) => {
            let texts = melt(plan, w, &file_cols, &tt.lines, notes, &mut count);
            let records = wide_records(tt.lines.len(), &tt.rejected);
            add_count(out.wide.get_or_insert_with(TableCount::default), &records);
            texts
        }
    };
    drop(file_cols);
    let n = texts.lines.len();
    let (mut typed_columns, errors) = type_texts(plan, &texts, n, ids)?;
    // Quarantine: one row per bad cell; each bad row counted once under its first reason.
    let lines = std::mem::take(&mut texts.lines);
    let first_reason = quarantine_cells(plan, &errors, &lines, &texts.value_column, quarantine);
    let excluded: u64 = count.excluded.values().sum();
    count.rows_in = n as u64 + excluded + unlabelled + tt.rejected.len() as u64;
    for r in first_reason.iter().flatten() {
        r.add_to(&mut count.quarantined, 1);
    }
    for r in &tt.rejected {
        let detail = Some(r.detail.clone());
        quarantine.push(plan.table, &plan.file.name, r.line, None, detail, r.reason);
        r.reason.add_to(&mut count.quarantined, 1);
    }
    typed_columns.push(Column::new_scalar(
        "source".into(),
        Scalar::new(
            DataType::String,
            AnyValue::StringOwned(plan.file.name.as_str().into()),
        ),
        n,
    ));
    typed_columns.push(Column::new("line".into(), lines));
    if let Some(i) = plan.columns.iter().position(|c| c.name == "value") {
        let typed = typed_columns[i].f64()?;
        typed_columns.push(typing::value_text(texts.columns[i].as_ref(), typed));
    }
    let frame = DataFrame::new(n, typed_columns)?;
    // Filtering copies every column: only when some row is quarantined.
    let frame = if first_reason.iter().any(Option::is_some) {
        let keep: BooleanChunked = first_reason.iter().map(|r| r.is_none()).collect();
        frame.filter(&keep)?
    } else {
        frame
    };
    count.rows_out = frame.height() as u64;
    add_count(&mut out.count, &count);
    out.frames.push(frame);
    Ok(())
}

/// Quarantines the value cells of an export whose code no label names (they are not melted);
/// returns how many.
fn quarantine_unlabelled(
    plan: &FilePlan,
    notes: &surveyxact::CellNotes,
    lines: &[i64],
    quarantine: &mut QuarantineRows,
    count: &mut TableCount,
) -> u64 {
    let mut cells: Vec<_> = notes.unlabelled.iter().collect();
    cells.sort();
    for ((r, j), raw) in &cells {
        let column = plan.mapped[j - plan.n_fixed].column.clone();
        let (name, line) = (&plan.file.name, lines[*r]);
        let raw = Some(raw.to_string());
        quarantine.push(
            plan.table,
            name,
            line,
            Some(column),
            raw,
            Reason::UnlabelledCode,
        );
        Reason::UnlabelledCode.add_to(&mut count.quarantined, 1);
    }
    cells.len() as u64
}

/// The canonical columns of a long file: its own columns (as text, or as read where `natives`
/// has them) and the constants, one row per record.
fn long_texts(
    plan: &FilePlan,
    file_cols: &[StringChunked],
    mut natives: Vec<Option<Column>>,
    lines: Vec<i64>,
) -> Texts {
    let n_records = lines.len();
    let mut next_file = 0;
    let mut columns = Vec::with_capacity(plan.columns.len());
    let mut native_columns = Vec::with_capacity(plan.columns.len());
    for (c, s) in plan.columns.iter().zip(plan.col_sources) {
        let name = PlSmallStr::from_str(c.name);
        let mut native = None;
        columns.push(match s {
            ColumnSource::File(_) => {
                next_file += 1;
                native = natives.get_mut(next_file - 1).and_then(Option::take);
                match native {
                    Some(_) => None,
                    None => file_cols.get(next_file - 1).cloned(),
                }
            }
            ColumnSource::Constant(v) => Some(StringChunked::full(name, v.as_str(), n_records)),
            _ => None,
        });
        native_columns.push(native);
    }
    Texts {
        columns,
        natives: native_columns,
        lines,
        value_column: vec![],
    }
}

/// The accounting of a wide file's records: read = melted + rejected (by reason).
fn wide_records(n_records: usize, rejected: &[csv::Rejected]) -> TableCount {
    let mut records = TableCount {
        rows_in: (n_records + rejected.len()) as u64,
        rows_out: n_records as u64,
        ..Default::default()
    };
    for r in rejected {
        r.reason.add_to(&mut records.quarantined, 1);
    }
    records
}

/// Melts the records of a wide file into one long row per mapped cell (see the module
/// comment); cells skipped are counted in `count.excluded`.
fn melt(
    plan: &FilePlan,
    w: &WideSpec,
    file_cols: &[StringChunked],
    record_lines: &[i64],
    notes: Option<&surveyxact::CellNotes>,
    count: &mut TableCount,
) -> Texts {
    let FilePlan {
        columns,
        col_sources,
        mapped,
        n_fixed,
        ..
    } = *plan;
    let n_records = record_lines.len();
    let keep_empty = w.empty_cells == crate::config::EmptyCells::Keep;
    let keep_answered = w.empty_cells == crate::config::EmptyCells::KeepAnswered;
    let mut answered: Vec<Option<&str>> = Vec::new();
    let mut builders: Vec<StringChunkedBuilder> = columns
        .iter()
        .map(|c| StringChunkedBuilder::new(PlSmallStr::from_str(c.name), n_records))
        .collect();
    let mut lines = Vec::with_capacity(n_records * mapped.len());
    let mut value_column = Vec::with_capacity(n_records * mapped.len());
    // Per canonical column: index into the file columns, if it comes from the file.
    let mut file_index = vec![None; columns.len()];
    let mut k = 0;
    for (i, s) in col_sources.iter().enumerate() {
        if matches!(s, ColumnSource::File(_)) {
            file_index[i] = Some(k);
            k += 1;
        }
    }
    let mut line_id = String::new();
    for (r, &line) in record_lines.iter().enumerate() {
        if keep_answered {
            answered = answered_blocks(mapped, &file_cols[n_fixed..], r, &w.not_asked);
        }
        for (m_idx, m) in mapped.iter().enumerate() {
            let cell = file_cols[n_fixed + m_idx].get(r).unwrap_or("");
            let t = cell.trim();
            if w.not_asked.iter().any(|x| x == t) {
                Reason::NotAsked.add_to(&mut count.excluded, 1);
                continue;
            }
            let keep = keep_empty || (keep_answered && answered.contains(&m.target.as_deref()));
            if t.is_empty() && !keep {
                Reason::EmptyCell.add_to(&mut count.excluded, 1);
                continue;
            }
            if let Some(n) = notes {
                let at = (r, n_fixed + m_idx);
                if let Some(reason) = n.excluded.get(&at) {
                    *count.excluded.entry(reason.clone()).or_default() += 1;
                    continue;
                }
                if n.unlabelled.contains_key(&at) {
                    continue;
                }
            }
            for (i, (c, s)) in columns.iter().zip(col_sources).enumerate() {
                let b = &mut builders[i];
                match s {
                    ColumnSource::File(_) => {
                        match file_index[i].and_then(|fi| file_cols[fi].get(r)) {
                            Some(v) => b.append_value(v),
                            None => b.append_null(),
                        }
                    }
                    ColumnSource::Constant(v) => b.append_value(v.as_str()),
                    ColumnSource::Line => {
                        line_id.clear();
                        line_id.push_str(&plan.file.name);
                        line_id.push(':');
                        line_id.push_str(&line.to_string());
                        b.append_value(line_id.as_str());
                    }
                    ColumnSource::Melt => match c.name {
                        "item" => b.append_value(m.item.as_str()),
                        "target_group" => match &m.target {
                            Some(t) => b.append_value(t.as_str()),
                            None => b.append_null(),
                        },
                        _ => b.append_value(cell),
                    },
                    ColumnSource::Absent => b.append_null(),
                }
            }
            lines.push(line);
            value_column.push(m_idx as u32);
        }
    }
    Texts {
        columns: builders.into_iter().map(|b| Some(b.finish())).collect(),
        natives: vec![],
        lines,
        value_column,
    }
}

/// The partner groups (None: the person items) about which record `r` has a non-empty,
/// asked cell among the mapped columns `values`.
fn answered_blocks<'a>(
    mapped: &'a [wide::Mapped],
    values: &[StringChunked],
    r: usize,
    not_asked: &[String],
) -> Vec<Option<&'a str>> {
    let mut out: Vec<Option<&str>> = Vec::new();
    for (m, col) in mapped.iter().zip(values) {
        let t = col.get(r).unwrap_or("").trim();
        let target = m.target.as_deref();
        if !t.is_empty() && !not_asked.iter().any(|x| x == t) && !out.contains(&target) {
            out.push(target);
        }
    }
    out
}

/// Types each canonical column of `n` rows from its text (a null column where there is none);
/// returns the typed columns and, per column with bad cells, its index and the bad cells. A
/// file `wave` that contradicts the declared wave (`constants.wave`) is `wave_mismatch`.
#[allow(clippy::type_complexity)]
fn type_texts(
    plan: &FilePlan,
    texts: &Texts,
    n: usize,
    ids: &mut PseudonymCache,
) -> Result<(Vec<Column>, Vec<(usize, Vec<CellError>)>)> {
    let declared_wave = plan
        .spec
        .constants
        .get("wave")
        .and_then(|k| k.trim().parse::<i64>().ok());
    let mut typed_columns = Vec::with_capacity(plan.columns.len() + 2);
    let mut errors = Vec::new();
    for (i, (spec_c, text)) in plan.columns.iter().zip(&texts.columns).enumerate() {
        let native = texts.natives.get(i).and_then(Option::as_ref);
        let text = match (text, native) {
            (_, Some(_)) => None,
            (Some(t), None) => Some(t.clone()),
            (None, None) => Some(StringChunked::full_null(
                PlSmallStr::from_str(spec_c.name),
                n,
            )),
        };
        let (col, mut errs) = match (native, &text) {
            (Some(c), _) => typing::type_native(c, spec_c)?,
            (None, Some(text)) => typing::type_column(text, spec_c, ids, plan.decimal_comma),
            (None, None) => bail!("column {} has neither text nor a native type", spec_c.name),
        };
        let from_file = matches!(plan.col_sources[i], ColumnSource::File(_));
        if let (true, true, Some(k)) = (spec_c.name == "wave", from_file, declared_wave) {
            for (row, v) in col.i64()?.iter().enumerate() {
                if let Some(v) = v.filter(|v| *v != k) {
                    // The cell as written: the text, or the number a Parquet column holds.
                    let value = match &text {
                        None => Some(v.to_string()),
                        Some(t) => t.get(row).map(str::to_string),
                    };
                    errs.push(CellError::new(row, Reason::WaveMismatch, value.as_deref()));
                }
            }
        }
        typed_columns.push(col);
        if !errs.is_empty() {
            errors.push((i, errs));
        }
    }
    Ok((typed_columns, errors))
}

/// One quarantine row per bad cell; returns each row's first reason (None: the row is good).
fn quarantine_cells(
    plan: &FilePlan,
    errors: &[(usize, Vec<CellError>)],
    lines: &[i64],
    value_column: &[u32],
    quarantine: &mut QuarantineRows,
) -> Vec<Option<Reason>> {
    let mut first_reason: Vec<Option<Reason>> = vec![None; lines.len()];
    for (i, errs) in errors {
        let spec_c: &ColumnSpec = &plan.columns[*i];
        for e in errs {
            first_reason[e.row].get_or_insert(e.reason);
            // A wide value cell is named by its column in the file.
            let column = match value_column.get(e.row) {
                Some(&m) if spec_c.name == "value" => plan.mapped[m as usize].column.clone(),
                _ => spec_c.name.to_string(),
            };
            let (source, line) = (&plan.file.name, lines[e.row]);
            let value = e.value.clone();
            quarantine.push(plan.table, source, line, Some(column), value, e.reason);
        }
    }
    first_reason
}

/// A table with the canonical typed columns and the provenance columns, and no rows.
/// Whether the rows of `frames`, one after the other, are in (source, line) order already
/// (text in byte order, as the sort). Each frame's `source` is one file name, held as a scalar.
fn sorted_by_source_and_line(frames: &[DataFrame]) -> Result<bool> {
    let mut previous: Option<(String, i64)> = None;
    for f in frames {
        let line = f.column("line")?.i64()?;
        let source = f.column("source")?;
        let name = match source.as_scalar_column() {
            Some(sc) => sc.scalar().value().extract_str().map(str::to_string),
            None => {
                // Not one scalar: compare row by row.
                let s = source.str()?;
                let mut prev = previous.take();
                for (s, l) in s.iter().zip(line.iter()) {
                    let (Some(s), Some(l)) = (s, l) else {
                        return Ok(false);
                    };
                    if prev
                        .as_ref()
                        .is_some_and(|(ps, pl)| (ps.as_str(), *pl) > (s, l))
                    {
                        return Ok(false);
                    }
                    prev = Some((s.to_string(), l));
                }
                previous = prev;
                continue;
            }
        };
        let Some(name) = name else {
            return Ok(false);
        };
        for l in line.iter() {
            let Some(l) = l else {
                return Ok(false);
            };
            if previous
                .as_ref()
                .is_some_and(|(ps, pl)| (ps.as_str(), *pl) > (name.as_str(), l))
            {
                return Ok(false);
            }
            match &mut previous {
                Some((ps, pl)) if *ps == name => *pl = l,
                _ => previous = Some((name.clone(), l)),
            }
        }
    }
    Ok(true)
}

fn empty_frame(columns: &[ColumnSpec]) -> Result<DataFrame> {
    let mut cols: Vec<Column> = columns
        .iter()
        .map(|c| Column::new_empty(PlSmallStr::from_str(c.name), &c.ty.dtype()))
        .collect();
    cols.push(Column::new_empty("source".into(), &DataType::String));
    cols.push(Column::new_empty("line".into(), &DataType::Int64));
    if columns.iter().any(|c| c.name == "value") {
        cols.push(Column::new_empty("value_text".into(), &DataType::String));
    }
    Ok(DataFrame::new(0, cols)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::config::Config;
    use crate::pseudonym::{KeySource, Pseudonymizer};

    const UNITS: &str = "municipality,unit_id,work_group,manager_id\nRanders,U1,caseworkers,m1\n";
    const EMPLOYEE: &str = "wave,respondent_id,municipality,unit_id,target_group,item,value\n\
                            1,r1,Randers,U1,caseworkers,timely,4\n";
    const CITIZEN: &str =
        "wave,citizen_id,municipality,case_id,item,value\n1,c1,Randers,k1,cq_1,4\n";
    const INVOLVEMENT: &str = "wave,case_id,unit_id,lead\n1,k1,U1,true\n";

    /// (table, line, column, value, reason) of a quarantine row.
    pub(crate) type QRow = (String, i64, Option<String>, Option<String>, String);

    struct Outcome {
        dir: tempfile::TempDir,
        result: Result<StageSummary>,
    }

    impl Outcome {
        fn summary(&self) -> &StageSummary {
            match &self.result {
                Ok(s) => s,
                Err(e) => panic!("ingest failed: {e:#}"),
            }
        }
        fn error(&self) -> String {
            match &self.result {
                Ok(_) => panic!("ingest should have failed"),
                Err(e) => format!("{e:#}"),
            }
        }
        fn table(&self, t: &str) -> DataFrame {
            io::read_parquet(
                &self
                    .dir
                    .path()
                    .join("out/ingest")
                    .join(format!("{t}.parquet")),
            )
            .unwrap()
        }
        fn quarantine(&self) -> Vec<QRow> {
            quarantine_rows(&self.table("quarantine"))
        }
    }

    /// (table, line, column, value, reason) of every row of a quarantine table (ingest's or
    /// clean's).
    pub(crate) fn quarantine_rows(q: &DataFrame) -> Vec<QRow> {
        let s = |c: &str| texts(q, c);
        let (t, c, v, r) = (s("table"), s("column"), s("value"), s("reason"));
        let line: Vec<_> = q.column("line").unwrap().i64().unwrap().iter().collect();
        (0..q.height())
            .map(|i| {
                (
                    t[i].clone().unwrap(),
                    line[i].unwrap(),
                    c[i].clone(),
                    v[i].clone(),
                    r[i].clone().unwrap(),
                )
            })
            .collect()
    }

    /// The text column `c` of `df`, as owned strings.
    pub(crate) fn texts(df: &DataFrame, c: &str) -> Vec<Option<String>> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    /// Runs ingest on the given files (name, content) with the default config plus `edit`.
    fn ingest(files: &[(&str, &[u8])], edit: &str) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for (name, content) in files {
            std::fs::write(data.join(name), content).unwrap();
        }
        let cfg = Config::from_toml(&format!(
            "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n{edit}"
        ))
        .unwrap();
        let p = Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let ctx = StageContext {
            config: &cfg,
            data_dir: data,
            out_dir: dir.path().join("out"),
            reports_dir: dir.path().join("reports"),
            pseudonymizer: &p,
            progress: false,
            memo: &crate::memo::Memo::disabled(),
            fingerprint: None,
            store: None,
        };
        let result = run(&ctx);
        Outcome { dir, result }
    }

    fn files(employee: &str) -> Vec<(&'static str, &[u8])> {
        vec![
            ("units.csv", UNITS.as_bytes()),
            ("employee_responses.csv", employee.as_bytes()),
            ("citizen_responses.csv", CITIZEN.as_bytes()),
            ("case_involvement.csv", INVOLVEMENT.as_bytes()),
        ]
    }

    fn qrow(t: &str, line: i64, c: Option<&str>, v: Option<&str>, r: &str) -> QRow {
        (
            t.to_string(),
            line,
            c.map(str::to_string),
            v.map(str::to_string),
            r.to_string(),
        )
    }

    const ER: &str = "employee_responses";

    #[test]
    fn parquet_read_in_slices_types_as_the_same_rows_from_csv() {
        // Unit tests read Parquet 3 rows at a time (`source::PARQUET_SLICE_ROWS`): 10 rows are 4
        // slices, with bad cells and repeated ids on both sides of slice boundaries.
        let rows: [[&str; 7]; 10] = [
            ["1", "r1", "Randers", "U1", "caseworkers", "timely", "4"],
            ["1", "r1", "Randers", "U1", "caseworkers", "accurate", "x"],
            ["1", "r1", "Randers", "U1", "caseworkers", "kind", "2"],
            ["1.5", "r1", "Randers", "", "caseworkers", "timely", "3"],
            ["1", "r2", "Randers", "U1", "", "accurate", ""],
            ["2", "r2", "Randers", "U1", "caseworkers", "accurate", "inf"],
            ["2", "r2", "Randers", "U1", "caseworkers", "kind", "5"],
            ["2", "", "Randers", "U1", "caseworkers", "kind", "5"],
            ["2", "r3", "Randers", "U1", "caseworkers", "timely", "1"],
            ["2", "r3", "Randers", "U1", "caseworkers", "kind", "2.5"],
        ];
        let names = schema::EMPLOYEE_RESPONSES.names();
        let mut csv_text = names.join(",") + "\n";
        for r in &rows {
            csv_text += &(r.join(",") + "\n");
        }
        let cols: Vec<Column> = names
            .iter()
            .enumerate()
            .map(|(j, n)| {
                let v: Vec<&str> = rows.iter().map(|r| r[j]).collect();
                Column::new((*n).into(), v)
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let pq = tmp.path().join("e.parquet");
        io::write_parquet(
            &mut DataFrame::new(rows.len(), cols).unwrap(),
            &pq,
            &io::ParquetMeta::stage("test"),
        )
        .unwrap();
        let pq_bytes = std::fs::read(&pq).unwrap();
        let from_csv = ingest(&files(&csv_text), "");
        let mut pq_files = files("");
        pq_files[1] = ("employee_responses.parquet", &pq_bytes);
        let from_pq = ingest(&pq_files, "");
        assert_eq!(from_csv.summary().tables[ER], from_pq.summary().tables[ER]);
        assert_eq!(from_pq.summary().tables[ER].rows_out, 6);
        let drop_source = |df: DataFrame| df.drop("source").unwrap();
        assert_eq!(
            drop_source(from_csv.table(ER)),
            drop_source(from_pq.table(ER))
        );
        assert_eq!(from_csv.quarantine(), from_pq.quarantine());
        assert_eq!(from_pq.quarantine().len(), 5);
    }

    #[test]
    fn typed_parquet_columns_type_as_their_text_does() {
        // Integer wave and value, text with and without surrounding spaces or empty cells:
        // columns typed from their Parquet type (`typing::native_ok`) and columns that go
        // through text give the rows and the quarantine of the same table as CSV.
        type Row = (Option<i64>, &'static str, &'static str, Option<i64>);
        let rows: [Row; 8] = [
            (Some(1), "r1", "U1", Some(4)),
            (None, "r1", "U1", Some(3)),
            (Some(1), "r1", "U1", None),
            (Some(2), "r2", "U1", Some(-99)),
            (Some(2), "r2", "U1", Some(9)),
            (Some(2), "r3", "U1", Some(5)),
            (Some(3), "r3", "U1", Some(9_007_199_254_740_993)),
            (Some(3), "r4", "U1", Some(2)),
        ];
        let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let names = schema::EMPLOYEE_RESPONSES.names();
        let mut csv_text = names.join(",") + "\n";
        for (w, r, u, v) in &rows {
            csv_text += &format!(
                "{},{r},Randers,{u},caseworkers,timely,{}\n",
                text(*w),
                text(*v)
            );
        }
        let frame = |unit: Vec<&str>| {
            let n = rows.len();
            DataFrame::new(
                n,
                vec![
                    Column::new("wave".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                    Column::new(
                        "respondent_id".into(),
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    ),
                    Column::new("municipality".into(), vec!["Randers"; n]),
                    Column::new("unit_id".into(), unit),
                    Column::new("target_group".into(), vec!["caseworkers"; n]),
                    Column::new("item".into(), vec!["timely"; n]),
                    Column::new("value".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
                ],
            )
            .unwrap()
        };
        let from_csv = ingest(&files(&csv_text), "");
        let tmp = tempfile::tempdir().unwrap();
        // As written (typed from Parquet), then with a unit id that needs trimming (through
        // text); the value 2^53 + 1 does not read back as its text and goes through text too.
        for unit in [vec!["U1"; rows.len()], vec![" U1 "; rows.len()]] {
            let pq = tmp.path().join("e.parquet");
            let meta = io::ParquetMeta::stage("test");
            io::write_parquet(&mut frame(unit), &pq, &meta).unwrap();
            let pq_bytes = std::fs::read(&pq).unwrap();
            let mut pq_files = files("");
            pq_files[1] = ("employee_responses.parquet", &pq_bytes);
            let from_pq = ingest(&pq_files, "");
            assert_eq!(from_csv.summary().tables[ER], from_pq.summary().tables[ER]);
            let drop_source = |df: DataFrame| df.drop("source").unwrap();
            assert_eq!(
                drop_source(from_csv.table(ER)),
                drop_source(from_pq.table(ER))
            );
            assert_eq!(from_csv.quarantine(), from_pq.quarantine());
        }
        assert_eq!(from_csv.quarantine().len(), 1);
        assert_eq!(from_csv.summary().tables[ER].rows_out, 7);
    }

    #[test]
    fn every_cell_reason_is_quarantined_with_line_and_first_reason_counted() {
        let employee = "wave,respondent_id,municipality,unit_id,target_group,item,value\n\
                        1,r1,Randers,U1,caseworkers,timely,4\n\
                        1.5,r1,Randers,U1,caseworkers,timely,x\n\
                        1,,Randers,U1,caseworkers,timely,3,5\n\
                        1,r2,Randers,U1,,accurate,\"3,5\"\n\
                        2,r2,Randers,,caseworkers,accurate,inf\n\
                        \n\
                        2,r3,Randers,U1,caseworkers,accurate,2.0\n";
        let o = ingest(&files(employee), "");
        let s = o.summary();
        let c = &s.tables[ER];
        assert_eq!(c.rows_in, 6);
        assert_eq!(c.rows_out, 2);
        // Line 3 has two bad cells but counts once, under the first (wave).
        assert_eq!(
            c.quarantined,
            BTreeMap::from([
                ("missing_required".to_string(), 1),
                ("not_a_number".to_string(), 1),
                ("not_an_integer".to_string(), 1),
                ("ragged_row".to_string(), 1),
            ])
        );
        assert!(c.balanced());
        assert_eq!(s.counts["employee_responses.blank_lines"], 1);
        assert_eq!(
            o.quarantine(),
            vec![
                qrow(ER, 3, Some("value"), Some("x"), "not_a_number"),
                qrow(ER, 3, Some("wave"), Some("1.5"), "not_an_integer"),
                qrow(
                    ER,
                    4,
                    None,
                    Some("8 fields; the header has 7"),
                    "ragged_row"
                ),
                qrow(ER, 5, Some("value"), Some("3,5"), "not_a_number"),
                qrow(ER, 6, Some("unit_id"), None, "missing_required"),
                qrow(ER, 6, Some("value"), Some("inf"), "not_a_number"),
            ]
        );
        let e = o.table(ER);
        let lines: Vec<_> = e.column("line").unwrap().i64().unwrap().iter().collect();
        assert_eq!(lines, vec![Some(2), Some(8)]);
        let v: Vec<_> = e.column("value").unwrap().f64().unwrap().iter().collect();
        assert_eq!(v, vec![Some(4.0), Some(2.0)]);
        let p = Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let ids: Vec<_> = e
            .column("respondent_id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        assert_eq!(ids, vec![p.pseudonym("r1"), p.pseudonym("r3")]);
        assert_eq!(
            e.column("source").unwrap().str().unwrap().get(0),
            Some("employee_responses.csv")
        );
    }

    #[test]
    fn missing_required_id_in_the_quarantine_is_never_the_raw_id() {
        // A bad lead: the quarantine row names the lead cell, never the raw case id.
        let inv = "wave,case_id,unit_id,lead\n1,case-secret,U1,maybe\n";
        let mut f = files(EMPLOYEE);
        f[3] = ("case_involvement.csv", inv.as_bytes());
        let o = ingest(&f, "");
        assert_eq!(
            o.quarantine(),
            vec![qrow(
                "case_involvement",
                2,
                Some("lead"),
                Some("maybe"),
                "not_a_boolean"
            )]
        );
    }

    #[test]
    fn intervention_arm_and_optional_absent_table() {
        let o = ingest(&files(EMPLOYEE), "");
        assert_eq!(o.table("intervention").height(), 0);
        assert_eq!(o.summary().tables["intervention"], TableCount::default());
        let mut f = files(EMPLOYEE);
        f.push((
            "intervention.csv",
            b"unit_id,arm,after_wave\nU1,Intervention,1\nU2,placebo,1\n",
        ));
        let o = ingest(&f, "");
        assert_eq!(
            o.quarantine(),
            vec![qrow(
                "intervention",
                3,
                Some("arm"),
                Some("placebo"),
                "invalid_value"
            )]
        );
        let arm = o.table("intervention");
        assert_eq!(
            arm.column("arm").unwrap().str().unwrap().get(0),
            Some("intervention")
        );
    }

    #[test]
    fn errors_name_file_and_column_and_nothing_is_written() {
        let mut f = files(EMPLOYEE);
        f[2] = (
            "citizen_responses.csv",
            b"wave,citizen_id,municipality,item,value\n1,c,R,cq_1,3\n",
        );
        let o = ingest(&f, "");
        let e = o.error();
        assert!(
            e.contains("citizen_responses.csv") && e.contains("`case_id`"),
            "{e}"
        );
        assert!(!o.dir.path().join("out").exists());

        let mut f = files(EMPLOYEE);
        f[1] = ("employee_responses.csv", b"");
        let e = ingest(&f, "").error();
        assert!(
            e.contains("employee_responses.csv") && e.contains("empty"),
            "{e}"
        );

        let mut f = files(EMPLOYEE);
        f[1] = (
            "employee_responses.csv",
            b"wave,respondent_id,municipality,unit_id,target_group,item,value\r\n\r\n",
        );
        let e = ingest(&f, "").error();
        assert!(
            e.contains("employee_responses.csv") && e.contains("no rows"),
            "{e}"
        );

        let f = &files(EMPLOYEE)[1..];
        let e = ingest(f, "").error();
        assert!(e.contains("required table units"), "{e}");

        let mut f = files(EMPLOYEE);
        f[0] = (
            "units.csv",
            b"municipality,unit_id,work_group,manager_id\nR,\"U1,x,y,z\n",
        );
        let e = ingest(&f, "").error();
        assert!(e.contains("units.csv") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn renamed_columns_semicolons_and_bom() {
        let employee =
            "\u{feff}bølge;id;kommune;enhed;gruppe;spørgsmål;svar\n1;r1;Rødovre;U1;;srm_1;3\n";
        let mut f = files(employee);
        f[0] = (
            "units.csv",
            "municipality,unit_id,work_group,manager_id\nRødovre,U1,caseworkers,\n".as_bytes(),
        );
        let edit = "[sources.employee_responses]\nfile = \"employee_responses\"\n\
                    columns = { wave = \"bølge\", respondent_id = \"id\", municipality = \"kommune\", \
                    unit_id = \"enhed\", target_group = \"gruppe\", item = \"spørgsmål\", value = \"svar\" }\n";
        let o = ingest(&f, edit);
        let e = o.table(ER);
        assert_eq!(e.height(), 1);
        assert_eq!(
            e.column("municipality").unwrap().str().unwrap().get(0),
            Some("Rødovre")
        );
        assert_eq!(e.column("target_group").unwrap().null_count(), 1);
        let u = o.table("units");
        assert_eq!(u.column("manager_id").unwrap().null_count(), 1);
        assert_eq!(u.column("headcount").unwrap().null_count(), 1);
    }
}
