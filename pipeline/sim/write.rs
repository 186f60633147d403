//! Writing the simulated tables batch by batch (one municipality at a time), as CSV through a
//! `BufWriter` or as Parquet through polars' batched writer, into a temporary file that is renamed
//! to its final name only when every table of the run is complete.
//!
//! CSV: UTF-8 without byte-order mark, `,` separated, `\n` line ends, a header line, fields quoted
//! only when they contain `,`, `"` or a line break, an empty field for a missing value, booleans
//! as `true`/`false`. Parquet: zstd at its default level (as `io::write_parquet`), statistics on, one row group per batch of at most
//! `io::ROW_GROUP_SIZE` rows, footer metadata `relcap.stage = simulate`, the schema version and
//! the seed; integers are Int64, text is String, `lead` is Boolean, floats (truth files only) are Float64 and
//! written in CSV as the shortest decimal that reads back to the same number; missing values are
//! null.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use polars::prelude::{
    BooleanChunked, Column, DataFrame, DataType, Field, Float64Chunked, Int64Chunked, IntoColumn,
    KeyValueMetadata, NewChunkedArray, ParquetCompression, ParquetWriter, PlSmallStr,
    Schema as PlSchema, StatisticsOptions, StringChunked,
};
use tempfile::TempPath;

use super::params::Format;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

/// One batch of one column. Missing values are `None`.
pub enum ColData<'a> {
    /// Text, quoted in CSV where needed.
    Str(Vec<Option<&'a str>>),
    /// Text the caller has checked with `is_plain` (no quoting needed): the CSV writer skips the
    /// per-value scan, which would dominate an unoptimised build on tens of millions of rows.
    Plain(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
}

impl ColData<'_> {
    fn len(&self) -> usize {
        match self {
            ColData::Str(v) | ColData::Plain(v) => v.len(),
            ColData::Int(v) => v.len(),
            ColData::Float(v) => v.len(),
            ColData::Bool(v) => v.len(),
        }
    }
}

/// Name and kind of every column of a table, in order.
pub type Schema = &'static [(&'static str, Kind)];

/// The columns of input table `table` ([`crate::schema`]) as the simulator writes them: ids as
/// raw text, answers (`value`) as whole numbers (the codes the simulated respondents choose).
/// `N` must be the table's number of columns.
pub const fn input_table<const N: usize>(
    table: &crate::schema::TableSchema,
) -> [(&'static str, Kind); N] {
    use crate::schema::CellType;
    assert!(
        table.columns.len() == N,
        "N is not the table's number of columns"
    );
    let mut out = [("", Kind::Str); N];
    let mut i = 0;
    while i < N {
        let c = &table.columns[i];
        let kind = match c.ty {
            CellType::Text | CellType::PersonId | CellType::Arm => Kind::Str,
            CellType::Int | CellType::Count | CellType::Float => Kind::Int,
            CellType::Bool => Kind::Bool,
        };
        out[i] = (c.name, kind);
        i += 1;
    }
    out
}

enum Sink {
    Csv(BufWriter<File>),
    Parquet {
        writer: Box<polars::io::parquet::write::BatchedWriter<File>>,
        file: File,
    },
}

/// A table being written to a temporary file next to its final path.
pub struct TableWriter {
    path: PathBuf,
    tmp: TempPath,
    schema: Schema,
    sink: Sink,
    rows: u64,
}

/// A finished table waiting to be moved to its final name.
pub struct Finished {
    path: PathBuf,
    tmp: TempPath,
    pub rows: u64,
}

impl Finished {
    /// Renames the temporary file to the final path.
    pub fn commit(self) -> Result<PathBuf> {
        let path = self.path;
        make_readable(&self.tmp)?;
        self.tmp.persist(&path).map_err(|e| {
            anyhow!(
                "cannot move finished file to {}: {}",
                path.display(),
                e.error
            )
        })?;
        Ok(path)
    }
}

/// Temporary files are created private (0600); a finished table is an ordinary data file, readable
/// by others like anything else the user writes (0644).
pub fn make_readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl TableWriter {
    pub fn create(
        dir: &Path,
        table: &str,
        format: Format,
        schema: Schema,
        metadata: &[(String, String)],
    ) -> Result<TableWriter> {
        let path = dir.join(format!("{table}.{}", format.extension()));
        let named = tempfile::Builder::new()
            .prefix(".relcap-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let (file, tmp) = named.into_parts();
        let sink = match format {
            Format::Csv => {
                let mut w = BufWriter::with_capacity(1 << 20, file);
                let header: Vec<&str> = schema.iter().map(|(n, _)| *n).collect();
                w.write_all(header.join(",").as_bytes())?;
                w.write_all(b"\n")?;
                Sink::Csv(w)
            }
            Format::Parquet => {
                let sync = file
                    .try_clone()
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let pl_schema: PlSchema = schema
                    .iter()
                    .map(|(n, k)| {
                        let dt = match k {
                            Kind::Str => DataType::String,
                            Kind::Int => DataType::Int64,
                            Kind::Float => DataType::Float64,
                            Kind::Bool => DataType::Boolean,
                        };
                        Field::new((*n).into(), dt)
                    })
                    .collect();
                let mut kv = vec![
                    ("relcap.stage".to_string(), "simulate".to_string()),
                    (
                        "relcap.schema_version".to_string(),
                        crate::io::SCHEMA_VERSION.to_string(),
                    ),
                ];
                kv.extend(metadata.iter().cloned());
                kv.sort();
                let writer = ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .with_statistics(StatisticsOptions::full())
                    .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
                    .batched(&pl_schema)
                    .with_context(|| format!("cannot start {}", path.display()))?;
                Sink::Parquet {
                    writer: Box::new(writer),
                    file: sync,
                }
            }
        };
        Ok(TableWriter {
            path,
            tmp,
            schema,
            sink,
            rows: 0,
        })
    }

    /// Appends a batch: one `ColData` per schema column, all of the same length.
    pub fn write(&mut self, cols: Vec<ColData<'_>>) -> Result<()> {
        if cols.len() != self.schema.len() {
            return Err(anyhow!(
                "{}: {} columns given, {} expected",
                self.path.display(),
                cols.len(),
                self.schema.len()
            ));
        }
        let height = cols.first().map_or(0, |c| c.len());
        if cols.iter().any(|c| c.len() != height) {
            return Err(anyhow!(
                "{}: columns of unequal length",
                self.path.display()
            ));
        }
        if height == 0 {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Csv(w) => write_csv_rows(w, &cols, height)
                .with_context(|| format!("cannot write {}", self.path.display()))?,
            Sink::Parquet { writer, .. } => {
                let columns: Vec<Column> = cols
                    .into_iter()
                    .zip(self.schema.iter())
                    .map(|(c, (name, _))| {
                        let name: PlSmallStr = (*name).into();
                        match c {
                            ColData::Str(v) | ColData::Plain(v) => {
                                StringChunked::from_iter_options(name, v.into_iter()).into_column()
                            }
                            ColData::Int(v) => {
                                Int64Chunked::from_iter_options(name, v.into_iter()).into_column()
                            }
                            ColData::Float(v) => Float64Chunked::from_vec(name, v).into_column(),
                            ColData::Bool(v) => {
                                BooleanChunked::from_iter_values(name, v.into_iter()).into_column()
                            }
                        }
                    })
                    .collect();
                let df = DataFrame::new(height, columns)?;
                let step = crate::io::ROW_GROUP_SIZE;
                let mut offset = 0usize;
                while offset < height {
                    let len = step.min(height - offset);
                    let mut part = df.slice(offset as i64, len);
                    part.rechunk_mut();
                    writer
                        .write_batch(&part)
                        .with_context(|| format!("cannot write {}", self.path.display()))?;
                    offset += len;
                }
            }
        }
        self.rows += height as u64;
        Ok(())
    }

    /// Finishes the file (flush, Parquet footer, fsync); the result is renamed by `commit`.
    pub fn finish(self) -> Result<Finished> {
        match self.sink {
            Sink::Csv(w) => {
                let file = w
                    .into_inner()
                    .map_err(|e| anyhow!("cannot write {}: {}", self.path.display(), e.error()))?;
                file.sync_all()?;
            }
            Sink::Parquet { writer, file } => {
                writer
                    .finish()
                    .with_context(|| format!("cannot finish {}", self.path.display()))?;
                drop(writer);
                file.sync_all()?;
            }
        }
        Ok(Finished {
            path: self.path,
            tmp: self.tmp,
            rows: self.rows,
        })
    }
}

fn write_csv_rows(w: &mut impl Write, cols: &[ColData<'_>], height: usize) -> std::io::Result<()> {
    let mut line: Vec<u8> = Vec::with_capacity(256);
    for r in 0..height {
        line.clear();
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            match c {
                ColData::Str(v) => {
                    if let Some(s) = v[r] {
                        push_field(&mut line, s);
                    }
                }
                ColData::Plain(v) => {
                    if let Some(s) = v[r] {
                        line.extend_from_slice(s.as_bytes());
                    }
                }
                ColData::Int(v) => {
                    if let Some(n) = v[r] {
                        push_int(&mut line, n);
                    }
                }
                ColData::Float(v) => {
                    // Shortest representation that reads back to the same f64.
                    line.extend_from_slice(v[r].to_string().as_bytes());
                }
                ColData::Bool(v) => {
                    line.extend_from_slice(if v[r] { b"true" } else { b"false" });
                }
            }
        }
        line.push(b'\n');
        w.write_all(&line)?;
    }
    Ok(())
}

/// Whether `s` can be written to CSV as is (no separator, quote or line break).
pub fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// Appends `s` as a CSV field, quoted (with doubled quotes) only when it needs to be.
pub fn push_field(line: &mut Vec<u8>, s: &str) {
    if is_plain(s) {
        line.extend_from_slice(s.as_bytes());
    } else {
        line.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    }
}

/// Appends the decimal digits of `n`.
pub fn push_int(line: &mut Vec<u8>, n: i64) {
    if (0..10).contains(&n) {
        line.push(b'0' + n as u8);
    } else {
        line.extend_from_slice(n.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema = &[("name", Kind::Str), ("n", Kind::Int), ("ok", Kind::Bool)];

    fn batch() -> Vec<ColData<'static>> {
        vec![
            ColData::Str(vec![Some("Rødovre"), None, Some("a,\"b\"")]),
            ColData::Int(vec![Some(3), Some(-12), None]),
            ColData::Bool(vec![true, false, true]),
        ]
    }

    #[test]
    fn csv_quotes_only_when_needed_and_leaves_missing_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::create(dir.path(), "t", Format::Csv, SCHEMA, &[]).unwrap();
        w.write(batch()).unwrap();
        let f = w.finish().unwrap();
        assert_eq!(f.rows, 3);
        let p = f.commit().unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        assert_eq!(
            text,
            "name,n,ok\nRødovre,3,true\n,-12,false\n\"a,\"\"b\"\"\",,true\n"
        );
    }

    #[test]
    fn plain_text_is_written_as_is() {
        assert!(is_plain("Rødovre") && is_plain("E0010001") && is_plain(""));
        assert!(!is_plain("a,b") && !is_plain("a\"b") && !is_plain("a\nb"));
        let dir = tempfile::tempdir().unwrap();
        let schema: Schema = &[("a", Kind::Str)];
        let mut w = TableWriter::create(dir.path(), "t", Format::Csv, schema, &[]).unwrap();
        w.write(vec![ColData::Plain(vec![Some("x"), None])])
            .unwrap();
        let p = w.finish().unwrap().commit().unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "a\nx\n\n");
    }

    #[test]
    fn parquet_round_trips_with_nulls_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| {
            let mut w =
                TableWriter::create(dir.path(), name, Format::Parquet, SCHEMA, &[]).unwrap();
            w.write(batch()).unwrap();
            w.write(batch()).unwrap();
            w.finish().unwrap().commit().unwrap()
        };
        let a = write("a");
        let b = write("b");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let df = crate::io::read_parquet(&a).unwrap();
        assert_eq!(df.height(), 6);
        assert_eq!(df.column("name").unwrap().null_count(), 2);
        assert_eq!(df.column("n").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("ok").unwrap().dtype(), &DataType::Boolean);
    }

    #[test]
    fn an_unfinished_table_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut w = TableWriter::create(dir.path(), "t", Format::Csv, SCHEMA, &[]).unwrap();
            w.write(batch()).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
