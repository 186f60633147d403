//! One source file of any supported kind (CSV, `.xlsx`, Parquet) read as a [`TextTable`]: the
//! header, the wanted columns as text, the line of each record, and the records rejected whole.
//!
//! Every kind ends up as text so that typing, the wide melt and the quarantine treat them the
//! same. Lines: CSV as in [`super::csv`] (the line an editor shows); `.xlsx` the worksheet row
//! number (the header is the first non-empty row); Parquet row r (1-based) is line r + 1, as it
//! would be in a CSV export. Workbook cells become text as a person would type them: integers
//! and integral floats without a decimal part (`3`, not `3.0`), other floats in the shortest
//! form that reads back to the same number, booleans `true`/`false`, dates as Excel serial
//! numbers, error cells as their code (`#N/A`, which then fails typing as `not_a_number`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use calamine::{open_workbook_auto, Data, Reader};
use polars::prelude::{
    ChunkFullNull, Column, DataType, ParquetReader, PlSmallStr, SerReader, StringChunked,
    StringChunkedBuilder,
};

use super::csv::{self, TextTable};
use crate::io::FileKind;

/// How to read a source: separator, encoding and worksheet, already resolved against `[csv]`.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub separator: String,
    pub encoding: String,
    pub sheet: Option<String>,
}

/// The header of a file and whether any non-blank record follows it.
pub fn header(path: &Path, kind: FileKind, opts: &ReadOptions) -> Result<(Vec<String>, bool)> {
    match kind {
        FileKind::Csv => csv_header(path, opts),
        FileKind::Parquet => parquet_header(path),
        FileKind::Xlsx => {
            let rows = xlsx_rows(path, opts.sheet.as_deref())?;
            let mut it = rows.into_iter().filter(|(_, r)| !blank(r));
            let header = it.next().map(|(_, r)| r).unwrap_or_default();
            Ok((trimmed(header), it.next().is_some()))
        }
    }
}

/// Reads `path` keeping the columns named `wanted` (which must be in the header).
pub fn read(
    path: &Path,
    kind: FileKind,
    opts: &ReadOptions,
    wanted: &[String],
) -> Result<(TextTable, Option<&'static str>)> {
    match kind {
        FileKind::Csv => {
            let d = csv::load_text(path, &opts.encoding)?;
            let sep = csv::separator(&opts.separator, &d.text);
            let header = csv::read_header(&d.text, sep)
                .with_context(|| format!("{}: cannot read the header", path.display()))?;
            let idx = positions(path, &header, wanted, Some(sep))?;
            let t = csv::parse(
                &d.text,
                sep,
                &idx,
                &path.display().to_string(),
                &d.bad_lines,
            )?;
            Ok((t, Some(d.encoding)))
        }
        FileKind::Xlsx => {
            let rows = xlsx_rows(path, opts.sheet.as_deref())?;
            let mut it = rows.into_iter().skip_while(|(_, r)| blank(r));
            let header = it.next().map(|(_, r)| trimmed(r)).unwrap_or_default();
            let idx = positions(path, &header, wanted, None)?;
            let mut builders: Vec<StringChunkedBuilder> = wanted
                .iter()
                .map(|w| StringChunkedBuilder::new(PlSmallStr::from_str(w), 0))
                .collect();
            let mut lines = Vec::new();
            let mut blank_lines = 0;
            for (line, row) in it {
                if blank(&row) {
                    blank_lines += 1;
                    continue;
                }
                for (b, &i) in builders.iter_mut().zip(&idx) {
                    b.append_value(row.get(i).map(String::as_str).unwrap_or(""));
                }
                lines.push(line);
            }
            Ok((
                TextTable {
                    header,
                    columns: builders.into_iter().map(|b| b.finish()).collect(),
                    lines,
                    rejected: vec![],
                    blank_lines,
                },
                None,
            ))
        }
        FileKind::Parquet => {
            let rows = parquet_rows(path)?;
            Ok((read_parquet_slice(path, wanted, 0, rows)?, None))
        }
    }
}

/// Rows of a Parquet source read and typed at a time: the text of a whole national table (14 M
/// rows) would be held beside its typed columns, this bounds it to one slice.
#[cfg(not(test))]
pub const PARQUET_SLICE_ROWS: usize = 1 << 20;
/// Small in unit tests, so that a table of a few rows is read in several slices.
#[cfg(test)]
pub const PARQUET_SLICE_ROWS: usize = 3;

/// The number of rows of a Parquet file.
pub fn parquet_rows(path: &Path) -> Result<usize> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(f)
        .num_rows()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

/// Rows `offset..offset + len` of a Parquet file, the columns named `wanted` as text; row r
/// (0-based in the file) is line r + 2.
pub fn read_parquet_slice(
    path: &Path,
    wanted: &[String],
    offset: usize,
    len: usize,
) -> Result<TextTable> {
    Ok(read_parquet_slice_with(path, wanted, offset, len, |_, _| false)?.0)
}

/// As [`read_parquet_slice`], but each column `k` of `wanted` for which `native(k, column)`
/// holds is returned as read (second list, in `wanted` order; its text column is empty):
/// typing it from its own Parquet type saves making text of it and parsing it back.
pub fn read_parquet_slice_with(
    path: &Path,
    wanted: &[String],
    offset: usize,
    len: usize,
    native: impl Fn(usize, &Column) -> bool,
) -> Result<(TextTable, Vec<Option<Column>>)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let df = ParquetReader::new(f)
        .with_columns(Some(wanted.to_vec()))
        .with_slice(Some((offset, len)))
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot read Parquet file {}", path.display()))?;
    let mut columns: Vec<StringChunked> = Vec::with_capacity(wanted.len());
    let mut natives: Vec<Option<Column>> = Vec::with_capacity(wanted.len());
    for (k, name) in wanted.iter().enumerate() {
        let column = df.column(name)?;
        if native(k, column) {
            columns.push(StringChunked::full_null(PlSmallStr::from_str(name), 0));
            natives.push(Some(column.clone()));
            continue;
        }
        let c = column
            .cast(&DataType::String)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{}: column `{name}` ({}) cannot be read as text",
                    path.display(),
                    column.dtype()
                )
            })?;
        columns.push(c.str()?.clone());
        natives.push(None);
    }
    let first = offset as i64 + 2;
    let lines: Vec<i64> = (0..df.height() as i64).map(|r| r + first).collect();
    let header = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let tt = TextTable {
        header,
        columns,
        lines,
        rejected: vec![],
        blank_lines: 0,
    };
    Ok((tt, natives))
}

/// Header positions of `wanted`, or an error naming the file and the missing column.
fn positions(
    path: &Path,
    header: &[String],
    wanted: &[String],
    sep: Option<u8>,
) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|w| {
            header.iter().position(|h| h == w).with_context(|| {
                let how = match sep {
                    Some(s) => format!(" when split on {:?} (config key csv.separator)", s as char),
                    None => String::new(),
                };
                format!("{}: column `{w}` is not in the header{how}", path.display())
            })
        })
        .collect()
}

fn trimmed(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(|s| s.trim().to_string()).collect()
}

fn blank(row: &[String]) -> bool {
    row.iter().all(|c| c.trim().is_empty())
}

/// The header of a CSV file (first line, decoded) and whether any non-blank line follows.
fn csv_header(path: &Path, opts: &ReadOptions) -> Result<(Vec<String>, bool)> {
    use std::io::{BufRead, BufReader};
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut first = Vec::new();
    r.read_until(b'\n', &mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let d = csv::decode(&first, &opts.encoding);
    if !d.bad_lines.is_empty() {
        bail!(
            "{}, line 1: the header has bytes that are not valid {} (config key csv.encoding)",
            path.display(),
            d.encoding
        );
    }
    if d.text.trim().is_empty() {
        bail!("{}: the first line (the header) is blank", path.display());
    }
    let sep = csv::separator(&opts.separator, &d.text);
    let header = csv::read_header(&d.text, sep)
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

/// The worksheet names of a workbook, in workbook order.
pub fn sheet_names(path: &Path) -> Result<Vec<String>> {
    let wb = open_workbook_auto(path)
        .with_context(|| format!("{}: not a readable workbook", path.display()))?;
    Ok(wb.sheet_names())
}

/// Every row of the chosen worksheet as text, with its 1-based worksheet row number.
pub fn xlsx_rows(path: &Path, sheet: Option<&str>) -> Result<Vec<(i64, Vec<String>)>> {
    let mut wb = open_workbook_auto(path)
        .with_context(|| format!("{}: not a readable workbook", path.display()))?;
    let names = wb.sheet_names();
    let name = match sheet {
        Some(s) => {
            if !names.iter().any(|n| n == s) {
                bail!(
                    "{}: no worksheet named {s:?} (config key sheet); the workbook has: {}",
                    path.display(),
                    names.join(", ")
                );
            }
            s.to_string()
        }
        None => match names.first() {
            Some(n) => n.clone(),
            None => bail!("{}: the workbook has no worksheet", path.display()),
        },
    };
    let range = wb
        .worksheet_range(&name)
        .with_context(|| format!("{}: cannot read worksheet {name:?}", path.display()))?;
    let first_row = range.start().map(|(r, _)| r as i64).unwrap_or(0);
    let first_col = range.start().map(|(_, c)| c as usize).unwrap_or(0);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, row)| {
            // Columns left of the used range are empty; keep positions absolute so the header
            // and the records line up whatever the first used column is.
            let mut cells = vec![String::new(); first_col];
            cells.extend(row.iter().map(cell_text));
            (first_row + i as i64 + 1, cells)
        })
        .collect())
}

/// A workbook cell as text (see the module doc).
pub fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => f.to_string(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => dt.as_f64().to_string(),
        Data::Error(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workbook_cells_read_as_typed() {
        assert_eq!(cell_text(&Data::Float(3.0)), "3");
        assert_eq!(cell_text(&Data::Float(3.5)), "3.5");
        assert_eq!(cell_text(&Data::Int(9)), "9");
        assert_eq!(cell_text(&Data::String("Rødovre".into())), "Rødovre");
        assert_eq!(cell_text(&Data::Empty), "");
        assert_eq!(cell_text(&Data::Bool(true)), "true");
        assert_eq!(cell_text(&Data::Error(calamine::CellErrorType::NA)), "#N/A");
    }
}
