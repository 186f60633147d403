//! The `ingest` stage: reads the five canonical tables (CSV or Parquet), types every cell,
//! pseudonymises person ids, and writes them with their provenance under `OUT/ingest/`.
//!
//! Order of work: first every table is located and its header checked (a missing required
//! table or column, an empty or header-only required file, is an error naming the file and
//! column before anything is written); then each table is read and typed in memory; then the
//! outputs are written. Typing rules are in [`typing`], the CSV reader in [`csv`].
//!
//! A row with any cell that cannot be typed goes to the quarantine, one quarantine row per bad
//! cell; in [`TableCount::quarantined`] the row is counted once, under the reason of its first
//! bad cell in the column order below. A CSV record with more or fewer fields than the header is
//! quarantined whole (`wrong_field_count`). Blank lines are not records (counted in
//! `counts["<table>.blank_lines"]`). Columns in the file that the canonical form does not use
//! are ignored (a warning names them). An optional table that is absent (or a 0-byte file) is
//! an empty table.
//!
//! # Outputs (`OUT/ingest/`)
//!
//! Every table carries two provenance columns: `source` (str, the file name without folder)
//! and `line` (i64). For CSV, `line` is the 1-based physical line where the record starts (the
//! header is line 1; line breaks inside quoted fields are counted, so it is the line an editor
//! shows). For Parquet it is the 1-based row number + 1, so that row 1 is "line 2" as it would
//! be in a CSV export. Rows are sorted by (source, line).
//!
//! - `units.parquet`: `municipality` str, `unit_id` str, `work_group` str, `manager_id` str
//!   (pseudonym, nullable), `headcount` i64 (nullable), `source`, `line`.
//! - `intervention.parquet`: `unit_id` str, `arm` str (`intervention`|`control`), `after_wave`
//!   i64, `source`, `line`.
//! - `employee_responses.parquet`: `wave` i64, `respondent_id` str (pseudonym), `municipality`
//!   str, `unit_id` str, `target_group` str (nullable; empty for person items), `item` str,
//!   `value` f64 (nullable: the cell was empty), `source`, `line`.
//! - `citizen_responses.parquet`: `wave` i64, `citizen_id` str (pseudonym), `municipality` str,
//!   `case_id` str (pseudonym), `item` str, `value` f64 (nullable), `source`, `line`.
//! - `case_involvement.parquet`: `wave` i64, `case_id` str (pseudonym), `unit_id` str, `lead`
//!   bool, `source`, `line`.
//! - `quarantine.parquet`: `table` str, `source` str, `line` i64, `column` str (canonical name;
//!   null for a whole-record problem), `value` str (the cell as written; the pseudonym for person
//!   id columns; null for an empty cell), `reason` str (`missing_required`, `not_an_integer`,
//!   `not_a_number`, `not_a_boolean`, `invalid_value`, `wrong_field_count`). Sorted by (table,
//!   source, line, column).
//!
//! No raw person id is written: respondent, citizen, case and manager ids are replaced by
//! their pseudonyms as they are typed, in the tables and in the quarantine alike.

pub mod csv;
pub mod typing;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use super::{StageContext, StageSummary, TableCount};
use crate::config::{SourceSpec, TABLES};
use crate::io::{self, FileKind, ParquetMeta};
use typing::{CellError, ColumnSpec, PseudonymCache};

const STAGE: &str = "ingest";

/// A located source table whose header has been checked.
#[derive(Debug)]
struct Source {
    table: &'static str,
    /// None: an optional table that is absent or empty (an empty table).
    file: Option<SourceFile>,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    /// File name without folder: the `source` column.
    name: String,
    kind: FileKind,
    /// Per canonical column: the column name in the file, or None for an absent optional one.
    file_columns: Vec<Option<String>>,
}

/// The typed result of one table.
struct Typed {
    frame: DataFrame,
    quarantine: QuarantineRows,
    count: TableCount,
    blank_lines: u64,
}

/// Quarantine rows gathered column-wise.
#[derive(Default)]
struct QuarantineRows {
    table: Vec<&'static str>,
    source: Vec<String>,
    line: Vec<i64>,
    column: Vec<Option<&'static str>>,
    value: Vec<Option<String>>,
    reason: Vec<&'static str>,
}

impl QuarantineRows {
    fn push(
        &mut self,
        table: &'static str,
        source: &str,
        line: i64,
        column: Option<&'static str>,
        value: Option<String>,
        reason: &'static str,
    ) {
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
    }

    fn into_frame(self) -> Result<DataFrame> {
        let df = DataFrame::new_infer_height(vec![
            Column::new("table".into(), self.table),
            Column::new("source".into(), self.source),
            Column::new("line".into(), self.line),
            Column::new("column".into(), self.column),
            Column::new("value".into(), self.value),
            Column::new("reason".into(), self.reason),
        ])?;
        Ok(df.sort(
            ["table", "source", "line", "column"],
            SortMultipleOptions::default().with_maintain_order(true),
        )?)
    }
}

pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let mut summary = StageSummary::default();
    // 1. Locate every table and check its header before reading or writing anything.
    let mut sources = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let spec = ctx
            .config
            .sources
            .get(table)
            .with_context(|| format!("no source spec for table {table}"))?;
        let sep = &ctx.config.csv.separator;
        let src = locate(&ctx.data_dir, table, spec, sep, &mut summary.warnings)?;
        sources.push(src);
    }
    // 2. Read and type each table in memory.
    let mut ids = PseudonymCache::new(ctx.pseudonymizer);
    let mut typed = Vec::with_capacity(sources.len());
    for src in &sources {
        typed.push(read_and_type(ctx, src, &mut ids)?);
    }
    // 3. Write.
    let dir = ctx.stage_dir(STAGE);
    let mut quarantine = QuarantineRows::default();
    for (src, t) in sources.iter().zip(typed) {
        let path = ctx.table_path(STAGE, src.table);
        let mut frame = t.frame.sort(
            ["source", "line"],
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
        io::write_parquet(&mut frame, &path, &ParquetMeta::stage(STAGE))?;
        summary.add_output(&dir, &path);
        if t.blank_lines > 0 {
            summary
                .counts
                .insert(format!("{}.blank_lines", src.table), t.blank_lines);
        }
        let mut fact = serde_json::Map::new();
        match &src.file {
            Some(f) => {
                fact.insert("file".into(), f.name.clone().into());
                let kind = match f.kind {
                    FileKind::Csv => "csv",
                    FileKind::Parquet => "parquet",
                };
                fact.insert("format".into(), kind.into());
                fact.insert("blake3".into(), io::hash_file(&f.path)?.into());
            }
            None => {
                fact.insert("file".into(), serde_json::Value::Null);
            }
        }
        summary
            .facts
            .insert(format!("input.{}", src.table), fact.into());
        summary.tables.insert(src.table.to_string(), t.count);
        quarantine.append(t.quarantine);
    }
    let path = dir.join("quarantine.parquet");
    io::write_parquet(
        &mut quarantine.into_frame()?,
        &path,
        &ParquetMeta::stage(STAGE),
    )?;
    summary.add_output(&dir, &path);
    let source = serde_json::to_value(ctx.pseudonymizer.source())?;
    summary.facts.insert("pseudonym_key_source".into(), source);
    summary.facts.insert(
        "pseudonym_key_id".into(),
        ctx.pseudonymizer.key_id().to_string().into(),
    );
    Ok(summary)
}

/// Finds a table's file and checks that it has the columns the canonical form needs.
fn locate(
    data_dir: &Path,
    table: &'static str,
    spec: &SourceSpec,
    separator: &str,
    warnings: &mut Vec<String>,
) -> Result<Source> {
    let Some(path) = io::find_table(data_dir, &spec.file) else {
        if spec.required {
            bail!(
                "required table {table}: no file {} in {} (config key sources.{table}.file; \
                 without an extension .parquet then .csv is tried)",
                spec.file.display(),
                data_dir.display()
            );
        }
        return Ok(Source { table, file: None });
    };
    let kind = io::file_kind(&path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let len = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len == 0 {
        if spec.required {
            bail!(
                "{}: the file is empty (0 bytes), but table {table} is required",
                path.display()
            );
        }
        warnings.push(format!(
            "{name}: empty file (0 bytes); optional table {table} is taken as empty"
        ));
        return Ok(Source { table, file: None });
    }
    let (header, has_rows) = match kind {
        FileKind::Csv => csv_header(&path, separator)?,
        FileKind::Parquet => parquet_header(&path)?,
    };
    let columns = typing::table_columns(table);
    let mut file_columns = Vec::with_capacity(columns.len());
    for c in columns {
        let in_file = spec.column(c.name);
        let hits = header.iter().filter(|h| h.as_str() == in_file).count();
        if hits > 1 {
            bail!(
                "{}: column `{in_file}` appears {hits} times in the header",
                path.display()
            );
        }
        if hits == 1 {
            file_columns.push(Some(in_file.to_string()));
        } else if c.optional_column {
            file_columns.push(None);
        } else {
            let renamed = if in_file != c.name {
                format!(" (named `{in_file}` by sources.{table}.columns)")
            } else {
                String::new()
            };
            bail!(
                "{}: required column `{}`{renamed} is missing; the header has: {}",
                path.display(),
                c.name,
                header.join(", ")
            );
        }
    }
    if !has_rows && spec.required {
        bail!(
            "{}: the file has a header but no rows, but table {table} is required",
            path.display()
        );
    }
    let used: Vec<&str> = file_columns.iter().flatten().map(String::as_str).collect();
    let unused: Vec<String> = header
        .iter()
        .filter(|h| !used.contains(&h.as_str()))
        .cloned()
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "{name}: columns not used by table {table}: {}",
            unused.join(", ")
        ));
    }
    Ok(Source {
        table,
        file: Some(SourceFile {
            path,
            name,
            kind,
            file_columns,
        }),
    })
}

/// The header of a CSV file (first line, BOM removed) and whether any non-blank line follows.
fn csv_header(path: &Path, separator: &str) -> Result<(Vec<String>, bool)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut first = Vec::new();
    r.read_until(b'\n', &mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&first);
    let Ok(text) = std::str::from_utf8(first) else {
        bail!("{}, line 1: the header is not valid UTF-8", path.display());
    };
    if text.trim().is_empty() {
        bail!("{}: the first line (the header) is blank", path.display());
    }
    let sep = csv::separator(separator, text);
    let header = csv::read_header(text, sep)
        .with_context(|| format!("{}: cannot read the header", path.display()))?;
    let mut has_rows = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            has_rows = true;
            break;
        }
    }
    Ok((header, has_rows))
}

/// The column names of a Parquet file and whether it has rows.
fn parquet_header(path: &Path) -> Result<(Vec<String>, bool)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = ParquetReader::new(f);
    let schema = r
        .schema()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let names = schema.iter_names().map(|n| n.to_string()).collect();
    let rows = r
        .num_rows()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    Ok((names, rows > 0))
}

/// Reads one table and types it.
fn read_and_type(ctx: &StageContext, src: &Source, ids: &mut PseudonymCache) -> Result<Typed> {
    let columns = typing::table_columns(src.table);
    let Some(file) = &src.file else {
        return Ok(Typed {
            frame: empty_frame(columns)?,
            quarantine: QuarantineRows::default(),
            count: TableCount::default(),
            blank_lines: 0,
        });
    };
    // The text of each canonical column (None for an absent optional column), and the lines.
    let (texts, lines, ragged, blank_lines, header_len) = match file.kind {
        FileKind::Csv => {
            let text = csv::load_text(&file.path)?;
            let sep = csv::separator(&ctx.config.csv.separator, &text);
            let header = csv::read_header(&text, sep)
                .with_context(|| format!("{}: cannot read the header", file.path.display()))?;
            let mut wanted = Vec::new();
            for fc in file.file_columns.iter().flatten() {
                let pos = header.iter().position(|h| h == fc).with_context(|| {
                    format!(
                        "{}: column `{fc}` is not in the header when split on {:?} \
                         (config key csv.separator)",
                        file.path.display(),
                        sep as char
                    )
                })?;
                wanted.push(pos);
            }
            let parsed = csv::parse(&text, sep, &wanted, &file.path.display().to_string())?;
            drop(text);
            let mut it = parsed.columns.into_iter();
            let texts: Vec<Option<StringChunked>> = file
                .file_columns
                .iter()
                .map(|fc| fc.as_ref().and_then(|_| it.next()))
                .collect();
            let header_len = parsed.header.len();
            (
                texts,
                parsed.lines,
                parsed.ragged,
                parsed.blank_lines,
                header_len,
            )
        }
        FileKind::Parquet => {
            let f = std::fs::File::open(&file.path)
                .with_context(|| format!("cannot open {}", file.path.display()))?;
            let wanted: Vec<String> = file.file_columns.iter().flatten().cloned().collect();
            let df = ParquetReader::new(f)
                .with_columns(Some(wanted))
                .finish()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot read Parquet file {}", file.path.display()))?;
            let mut texts = Vec::with_capacity(columns.len());
            for fc in &file.file_columns {
                match fc {
                    None => texts.push(None),
                    Some(name) => {
                        let c = df
                            .column(name)?
                            .cast(&DataType::String)
                            .map_err(anyhow::Error::from)
                            .with_context(|| {
                                format!(
                                    "{}: column `{name}` ({}) cannot be read as text",
                                    file.path.display(),
                                    df.column(name)
                                        .map(|c| c.dtype().to_string())
                                        .unwrap_or_default()
                                )
                            })?;
                        texts.push(Some(c.str()?.clone()));
                    }
                }
            }
            // Parquet has no lines: row r (1-based) is reported as line r + 1, like a CSV export.
            let lines: Vec<i64> = (0..df.height() as i64).map(|r| r + 2).collect();
            (texts, lines, vec![], 0, df.width())
        }
    };
    let n = lines.len();
    let mut typed_columns = Vec::with_capacity(columns.len() + 2);
    let mut errors: Vec<(usize, Vec<CellError>)> = Vec::new();
    for (i, (spec, text)) in columns.iter().zip(&texts).enumerate() {
        let text = match text {
            Some(t) => t.clone(),
            None => StringChunked::full_null(PlSmallStr::from_str(spec.name), n),
        };
        let (col, errs) = typing::type_column(&text, spec, ids);
        typed_columns.push(col);
        if !errs.is_empty() {
            errors.push((i, errs));
        }
    }
    drop(texts);
    // Quarantine: one row per bad cell; each bad row counted once under its first reason.
    let mut first_reason: Vec<Option<&'static str>> = vec![None; n];
    let mut quarantine = QuarantineRows::default();
    for (i, errs) in &errors {
        let spec: &ColumnSpec = &columns[*i];
        for e in errs {
            let reason = e.reason.as_str();
            if first_reason[e.row].is_none() {
                first_reason[e.row] = Some(reason);
            }
            quarantine.push(
                src.table,
                &file.name,
                lines[e.row],
                Some(spec.name),
                e.value.clone(),
                reason,
            );
        }
    }
    let mut count = TableCount {
        rows_in: (n + ragged.len()) as u64,
        ..Default::default()
    };
    for r in first_reason.iter().flatten() {
        *count.quarantined.entry(r.to_string()).or_default() += 1;
    }
    for r in &ragged {
        quarantine.push(
            src.table,
            &file.name,
            r.line,
            None,
            Some(format!("{} fields; the header has {header_len}", r.fields)),
            "wrong_field_count",
        );
        *count
            .quarantined
            .entry("wrong_field_count".to_string())
            .or_default() += 1;
    }
    typed_columns.push(Column::new_scalar(
        "source".into(),
        Scalar::new(
            DataType::String,
            AnyValue::StringOwned(file.name.as_str().into()),
        ),
        n,
    ));
    typed_columns.push(Column::new("line".into(), lines));
    let frame = DataFrame::new(n, typed_columns)?;
    let keep: BooleanChunked = first_reason.iter().map(|r| r.is_none()).collect();
    let frame = frame.filter(&keep)?;
    count.rows_out = frame.height() as u64;
    Ok(Typed {
        frame,
        quarantine,
        count,
        blank_lines,
    })
}

/// A table with the canonical typed columns and the provenance columns, and no rows.
fn empty_frame(columns: &[ColumnSpec]) -> Result<DataFrame> {
    let mut cols: Vec<Column> = columns
        .iter()
        .map(|c| Column::new_empty(PlSmallStr::from_str(c.name), &typing::dtype(c.ty)))
        .collect();
    cols.push(Column::new_empty("source".into(), &DataType::String));
    cols.push(Column::new_empty("line".into(), &DataType::Int64));
    Ok(DataFrame::new(0, cols)?)
}

#[cfg(test)]
mod tests {
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
    type QRow = (String, i64, Option<String>, Option<String>, String);

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
        /// (table, line, column, value, reason) of every quarantine row.
        fn quarantine(&self) -> Vec<QRow> {
            let q = self.table("quarantine");
            let s = |c: &str| -> Vec<Option<String>> {
                q.column(c)
                    .unwrap()
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect()
            };
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
                ("wrong_field_count".to_string(), 1),
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
                    "wrong_field_count"
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
