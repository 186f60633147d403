//! `relcap inspect FILE`: a quick look at any output without Python: for a Parquet file its
//! row count, row groups, writer, key-value footer metadata (stage, fingerprint, schema
//! version), schema, and first rows; a JSON file (a `summary.json`, the manifest) is printed as
//! it is. Reads only the footer and the first rows, so it is fast on large files.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::{DataFrame, ParquetReader, SerReader};

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
        "first {} of {} rows\n{}\n",
        head.height(),
        footer.num_rows,
        head
    ));
    Ok(s)
}

/// Makes polars' table show every column, `rows` rows and 40 characters per value (polars
/// reads its table format from the environment); a setting the user made wins. Call it before
/// any other thread runs, as `relcap inspect` does first thing.
pub fn configure_table_format(rows: usize) {
    for (k, v) in [
        ("POLARS_FMT_MAX_COLS", "-1".to_string()),
        ("POLARS_FMT_MAX_ROWS", rows.to_string()),
        ("POLARS_FMT_STR_LEN", "40".to_string()),
    ] {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
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
