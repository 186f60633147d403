//! The linked tables as the model stage holds them: a few named columns read from a Parquet
//! file into plain vectors (numbers as `f64`, booleans as 0/1, text as `String`; the values as
//! `stages::frame::plain` gives them), with the file name kept for error messages. A missing
//! column or one of an unusable type is an error naming the file and the column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::DataFrame;

use crate::stages::frame::{plain, Plain};

use crate::stats::design::{Column as StatsColumn, Data};

/// What a column must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Integers, floats or booleans (as 0/1).
    Num,
    /// Text (categoricals are read as text).
    Str,
    /// Whatever the file holds: text stays text, numbers and booleans become numbers (for a
    /// configurable cluster column).
    Any,
}

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    Num(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
}

impl Col {
    fn len(&self) -> usize {
        match self {
            Col::Num(v) => v.len(),
            Col::Str(v) => v.len(),
        }
    }

    /// Whether row `i` is missing (null, or NaN for numbers).
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Col::Num(v) => v[i].is_none_or(|x| x.is_nan()),
            Col::Str(v) => v[i].is_none(),
        }
    }
}

/// Named columns of equal length, read from `path`.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    n_rows: usize,
    cols: BTreeMap<String, Col>,
}

impl Table {
    /// An empty table with `n_rows` rows and no columns (for tests and builders).
    pub fn new(path: impl Into<PathBuf>, n_rows: usize) -> Self {
        Table {
            path: path.into(),
            n_rows,
            cols: BTreeMap::new(),
        }
    }

    /// Adds a column; its length must be the table's.
    pub fn insert(&mut self, name: &str, col: Col) -> Result<()> {
        if col.len() != self.n_rows {
            bail!(
                "column `{name}` has {} rows, the table {}",
                col.len(),
                self.n_rows
            );
        }
        self.cols.insert(name.to_string(), col);
        Ok(())
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn has(&self, name: &str) -> bool {
        self.cols.contains_key(name)
    }

    /// The column `name`, or an error naming the file.
    pub fn col(&self, name: &str) -> Result<&Col> {
        self.cols.get(name).ok_or_else(|| {
            anyhow!(
                "{}: column `{name}` is missing (columns: {})",
                self.path.display(),
                self.cols.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Text value of row `i` of column `name` (None when missing or not a text column).
    pub fn str_at(&self, name: &str, i: usize) -> Option<&str> {
        match self.cols.get(name) {
            Some(Col::Str(v)) => v[i].as_deref(),
            _ => None,
        }
    }

    /// Number at row `i` of column `name` (None when missing, NaN or not numeric).
    pub fn num_at(&self, name: &str, i: usize) -> Option<f64> {
        match self.cols.get(name) {
            Some(Col::Num(v)) => v[i].filter(|x| !x.is_nan()),
            _ => None,
        }
    }

    /// Label of row `i` of a column of either kind (numbers as R prints them), for grouping.
    pub fn label_at(&self, name: &str, i: usize) -> Option<String> {
        match self.cols.get(name) {
            Some(Col::Str(v)) => v[i].clone(),
            Some(Col::Num(v)) => v[i]
                .filter(|x| !x.is_nan())
                .map(crate::stats::formula::format_r_number),
            None => None,
        }
    }

    /// Feeds the named columns restricted to `rows` into `h`: names, kinds, and every value with
    /// its missingness (numbers by their bits), each part delimited, so that two different
    /// selections never feed the same bytes. The key of a kept fit (see `fitting`).
    pub fn hash_rows(
        &self,
        names: &[String],
        rows: &[usize],
        h: &mut blake3::Hasher,
    ) -> Result<()> {
        // Values go through a buffer: one hasher update per value would cost more than the hash.
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut put = |buf: &mut Vec<u8>, bytes: &[u8]| {
            buf.extend_from_slice(bytes);
            if buf.len() >= 1 << 16 {
                h.update(buf);
                buf.clear();
            }
        };
        put(&mut buf, &(names.len() as u64).to_le_bytes());
        put(&mut buf, &(rows.len() as u64).to_le_bytes());
        for name in names {
            put(&mut buf, &(name.len() as u64).to_le_bytes());
            put(&mut buf, name.as_bytes());
            match self.col(name)? {
                Col::Num(v) => {
                    put(&mut buf, b"n");
                    for &i in rows {
                        match v[i] {
                            None => put(&mut buf, &[0]),
                            Some(x) => {
                                put(&mut buf, &[1]);
                                put(&mut buf, &x.to_bits().to_le_bytes());
                            }
                        }
                    }
                }
                Col::Str(v) => {
                    put(&mut buf, b"s");
                    for &i in rows {
                        match &v[i] {
                            None => put(&mut buf, &[0]),
                            Some(s) => {
                                put(&mut buf, &[1]);
                                put(&mut buf, &(s.len() as u64).to_le_bytes());
                                put(&mut buf, s.as_bytes());
                            }
                        }
                    }
                }
            }
        }
        h.update(&buf);
        Ok(())
    }

    /// The named columns restricted to `rows`, as the statistics engine's data.
    pub fn data(&self, names: &[String], rows: &[usize]) -> Result<Data> {
        let mut data = Data::new();
        for name in names {
            let col = match self.col(name)? {
                Col::Num(v) => StatsColumn::Num(rows.iter().map(|&i| v[i]).collect()),
                Col::Str(v) => StatsColumn::Str(rows.iter().map(|&i| v[i].clone()).collect()),
            };
            data.push(name.clone(), col).map_err(|e| anyhow!("{e}"))?;
        }
        Ok(data)
    }
}

/// Reads the columns `wanted` of the Parquet file at `path`; those listed in `optional` may be
/// absent (then they are simply not in the table).
pub fn read(path: &Path, wanted: &[(&str, Want)], optional: &[&str]) -> Result<Table> {
    let df = crate::io::read_parquet(path)?;
    from_frame(&df, path, wanted, optional)
}

/// The same as [`read`] on a frame already in memory.
pub fn from_frame(
    df: &DataFrame,
    path: &Path,
    wanted: &[(&str, Want)],
    optional: &[&str],
) -> Result<Table> {
    let mut t = Table::new(path, df.height());
    for &(name, want) in wanted {
        let Ok(col) = df.column(name) else {
            if optional.contains(&name) {
                continue;
            }
            bail!(
                "{}: column `{name}` is missing (has the link stage run with this version?)",
                path.display()
            );
        };
        let values = plain(col).with_context(|| format!("{}: column `{name}`", path.display()))?;
        let converted = match (want, values) {
            (Want::Num, Some(Plain::Null(n))) => Col::Num(vec![None; n]),
            (Want::Str | Want::Any, Some(Plain::Null(n))) => Col::Str(vec![None; n]),
            (Want::Num | Want::Any, Some(Plain::Bool(v))) => Col::Num(
                v.into_iter()
                    .map(|b| b.map(|b| if b { 1.0 } else { 0.0 }))
                    .collect(),
            ),
            (Want::Num | Want::Any, Some(Plain::Num(v))) => Col::Num(v),
            (Want::Str | Want::Any, Some(Plain::Str(v))) => Col::Str(v),
            (want, _) => bail!(
                "{}: column `{name}` has type {}, expected {}",
                path.display(),
                col.dtype(),
                match want {
                    Want::Num => "a number",
                    Want::Str => "text",
                    Want::Any => "text or a number",
                }
            ),
        };
        t.insert(name, converted)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    #[test]
    fn reads_numbers_booleans_and_text() {
        let df = df!(
            "wave" => [1i64, 2, 2],
            "x" => [Some(1.5f64), None, Some(f64::NAN)],
            "b" => [Some(true), Some(false), None],
            "s" => [Some("a"), None, Some("c")]
        )
        .unwrap();
        let t = from_frame(
            &df,
            Path::new("t.parquet"),
            &[
                ("wave", Want::Num),
                ("x", Want::Num),
                ("b", Want::Num),
                ("s", Want::Str),
                ("exclusion", Want::Str),
            ],
            &["exclusion"],
        )
        .unwrap();
        assert_eq!(t.n_rows(), 3);
        assert!(!t.has("exclusion"));
        assert_eq!(t.num_at("wave", 1), Some(2.0));
        assert_eq!(t.num_at("x", 2), None);
        assert!(t.col("x").unwrap().is_missing(1));
        assert_eq!(t.num_at("b", 0), Some(1.0));
        assert_eq!(t.num_at("b", 1), Some(0.0));
        assert_eq!(t.str_at("s", 2), Some("c"));
        assert_eq!(t.label_at("wave", 0).as_deref(), Some("1"));
        let e = from_frame(&df, Path::new("t.parquet"), &[("s", Want::Num)], &[]);
        assert!(e.unwrap_err().to_string().contains("column `s`"));
        let e = from_frame(&df, Path::new("t.parquet"), &[("nope", Want::Num)], &[]);
        assert!(e.unwrap_err().to_string().contains("`nope` is missing"));
    }
}
