//! `relcap inspect FILE`: a quick look at any output without Python: for a Parquet file its
//! row count, row groups, writer, key-value footer metadata (stage, fingerprint, schema
//! version), schema, and first rows; a JSON file (a `summary.json`, the manifest) is printed as
//! it is. Reads only the footer and the first rows, so it is fast on large files.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::{AnyValue, DataFrame, ParquetReader, SerReader};

/// The footer of a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub struct Footer {
    pub num_rows: usize,
    pub row_groups: usize,
    pub created_by: Option<String>,
    /// Key-value metadata in file order.
    pub key_value: Vec<(String, Option<String>)>,
}

impl Footer {
    /// The value of `key` in the key-value metadata.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.key_value
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Reads the footer of a Parquet file.
pub fn parquet_footer(path: &Path) -> Result<Footer> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = ParquetReader::new(file);
    let md = reader
        .get_metadata()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    Ok(Footer {
        num_rows: md.num_rows,
        row_groups: md.row_groups.len(),
        created_by: md.created_by.clone(),
        key_value: md
            .key_value_metadata
            .iter()
            .flatten()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
    })
}

/// The first `n` rows of a Parquet file.
pub fn parquet_head(path: &Path, n: usize) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .with_slice(Some((0, n)))
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot read Parquet file {}", path.display()))
}

/// Values longer than this are cut in the footer listing (the Arrow schema is base64).
const VALUE_WIDTH: usize = 80;

/// The text `relcap inspect` prints.
pub fn describe(path: &Path, rows: usize) -> Result<String> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let footer = parquet_footer(path)?;
    let head = parquet_head(path, rows)?;
    let mut s = String::new();
    s.push_str(&format!("file        {}\n", path.display()));
    s.push_str(&format!("rows        {}\n", footer.num_rows));
    s.push_str(&format!("row groups  {}\n", footer.row_groups));
    s.push_str(&format!(
        "created by  {}\n",
        footer.created_by.as_deref().unwrap_or("(not recorded)")
    ));
    s.push_str("metadata\n");
    let width = footer
        .key_value
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in &footer.key_value {
        let v = match v {
            None => "(null)".to_string(),
            Some(v) if v.chars().count() > VALUE_WIDTH => {
                format!("({} characters)", v.chars().count())
            }
            Some(v) => v.clone(),
        };
        s.push_str(&format!("  {k:<width$}  {v}\n"));
    }
    let fields = head.fields();
    s.push_str(&format!("schema ({} columns)\n", fields.len()));
    let width = fields
        .iter()
        .map(|f| f.name().chars().count())
        .max()
        .unwrap_or(0);
    for f in &fields {
        s.push_str(&format!("  {:<width$}  {}\n", f.name().as_str(), f.dtype()));
    }
    s.push_str(&format!(
        "first {} of {} rows\n{}",
        head.height(),
        footer.num_rows,
        rows_text(&head)
    ));
    Ok(s)
}

/// Longest value shown in the rows (longer ones are cut with `…`).
const CELL_WIDTH: usize = 40;

/// Widest table printed across; wider ones are printed one row at a time, a line per column.
const TABLE_WIDTH: usize = 160;

fn cell(v: AnyValue) -> String {
    let s = match v {
        AnyValue::Null => "null".to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > CELL_WIDTH {
        let cut: String = s.chars().take(CELL_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// The rows of `df` as plain aligned text: a table, or a record per row when too wide.
pub fn rows_text(df: &DataFrame) -> String {
    let cols = df.columns();
    let names: Vec<String> = cols.iter().map(|c| c.name().to_string()).collect();
    let numeric: Vec<bool> = cols
        .iter()
        .map(|c| c.dtype().is_primitive_numeric())
        .collect();
    let cells: Vec<Vec<String>> = cols
        .iter()
        .map(|c| {
            (0..df.height())
                .map(|i| c.get(i).map(cell).unwrap_or_else(|_| "?".to_string()))
                .collect()
        })
        .collect();
    let width = |j: usize| {
        cells[j]
            .iter()
            .map(|v| v.chars().count())
            .chain([names[j].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols.len()).map(width).collect();
    let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    let mut s = String::new();
    if total <= TABLE_WIDTH {
        let pad = |j: usize, v: &str| {
            let w = widths[j];
            if numeric[j] {
                format!("{v:>w$}")
            } else {
                format!("{v:<w$}")
            }
        };
        let line = |vals: Vec<String>| vals.join("  ").trim_end().to_string() + "\n";
        s.push_str(&line((0..cols.len()).map(|j| pad(j, &names[j])).collect()));
        s.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
        for i in 0..df.height() {
            let row = cells.iter().enumerate().map(|(j, c)| pad(j, &c[i]));
            s.push_str(&line(row.collect()));
        }
    } else {
        let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        for i in 0..df.height() {
            s.push_str(&format!("-- row {}\n", i + 1));
            for (name, c) in names.iter().zip(&cells) {
                s.push_str(&format!("  {name:<w$}  {}\n", c[i]));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{write_parquet, ParquetMeta};
    use polars::df;

    #[test]
    fn footer_and_head_of_a_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let mut d = df!("id" => ["a", "b", "c"], "x" => [1.5, 2.5, 3.5]).unwrap();
        let meta = ParquetMeta {
            fingerprint: Some("f00d".into()),
            ..ParquetMeta::stage("score")
        };
        write_parquet(&mut d, &p, &meta).unwrap();
        let f = parquet_footer(&p).unwrap();
        assert_eq!(f.num_rows, 3);
        assert_eq!(f.get("relcap.stage"), Some("score"));
        assert_eq!(f.get("relcap.fingerprint"), Some("f00d"));
        assert_eq!(
            f.get("relcap.schema_version"),
            Some(crate::io::SCHEMA_VERSION)
        );
        assert_eq!(f.created_by.as_deref(), Some("Polars"));
        assert_eq!(parquet_head(&p, 2).unwrap().height(), 2);
        let text = describe(&p, 2).unwrap();
        assert!(text.contains("rows        3"), "{text}");
        assert!(text.contains("relcap.fingerprint"), "{text}");
        assert!(text.contains("first 2 of 3 rows"), "{text}");
        assert!(
            text.ends_with("id    x\n--  ---\na   1.5\nb   2.5\n"),
            "{text}"
        );
    }

    #[test]
    fn wide_rows_are_printed_as_records() {
        let long = "x".repeat(60);
        let d = df!(
            "a" => [long.as_str()], "b" => [long.as_str()], "c" => [long.as_str()],
            "d" => [long.as_str()], "e" => [None::<f64>]
        )
        .unwrap();
        let text = rows_text(&d);
        let cut = format!("{}…", "x".repeat(39));
        assert!(
            text.starts_with(&format!("-- row 1\n  a  {cut}\n")),
            "{text}"
        );
        assert!(text.ends_with("  e  null\n"), "{text}");
    }

    #[test]
    fn not_parquet_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        std::fs::write(&p, "not parquet").unwrap();
        let e = format!("{:#}", parquet_footer(&p).unwrap_err());
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }
}
