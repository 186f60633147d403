//! The one adapter between polars frames and plain Rust values, for the stages that compute on
//! rows (`score`, `link`, `model`, `report`): reading the columns a stage needs with their types
//! checked ([`read`] and the typed iterators), a column of any usable type as plain values
//! ([`plain`]), and building output columns ([`FrameBuilder`]).
//!
//! Anything wrong with an input file (a missing column, a column of the wrong type, an empty key)
//! is an error naming the file and the column, never a panic.

use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use polars::prelude::{
    col, len, lit, BooleanChunked, Column, DataFrame, DataType, Expr, Float64Chunked, Int64Chunked,
    IntoColumn, LazyFrame, NewChunkedArray, ParquetReader, PlRefPath, ScanArgsParquet, SerReader,
    StringChunked,
};

/// The expected type of an input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    I64,
    F64,
    Bool,
}

impl Kind {
    fn dtype(self) -> DataType {
        match self {
            Kind::Str => DataType::String,
            Kind::I64 => DataType::Int64,
            Kind::F64 => DataType::Float64,
            Kind::Bool => DataType::Boolean,
        }
    }
}

/// An input column: name, type, and whether an empty value is an error.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

pub const fn req(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        kind,
        required: true,
    }
}

pub const fn opt(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        kind,
        required: false,
    }
}

/// The columns to read for `specs`: their names, plus `source` and `line` when the file has
/// them (for error messages). Errors when a spec'd column is missing.
fn projection(path: &Path, specs: &[Spec]) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot open {} (has the stage that writes it run?)",
            path.display()
        )
    })?;
    let schema = ParquetReader::new(file)
        .schema()
        .with_context(|| format!("cannot read Parquet file {}", path.display()))?;
    for s in specs {
        if schema.get(s.name).is_none() {
            bail!("{}: column `{}` is missing", path.display(), s.name);
        }
    }
    let mut names: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
    if schema.get("source").is_some() && schema.get("line").is_some() {
        for extra in ["source", "line"] {
            if !names.iter().any(|n| n == extra) {
                names.push(extra.to_string());
            }
        }
    }
    Ok(names)
}

/// Reads the named columns of a Parquet file written by an earlier stage, casts each to its
/// expected type (integers may be read as floats, nothing else is converted), and checks that
/// required columns have no empty values. Errors name the file, the column and, for an empty
/// value, its `source`/`line` when the file carries them.
pub fn read(path: &Path, specs: &[Spec]) -> Result<DataFrame> {
    let names = projection(path, specs)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let df = ParquetReader::new(file)
        .with_columns(Some(names))
        .finish()
        .with_context(|| format!("cannot read Parquet file {}", path.display()))?;
    check(df, path, specs)
}

fn scan(path: &Path) -> Result<LazyFrame> {
    let args = ScanArgsParquet {
        glob: false,
        ..Default::default()
    };
    let p = PlRefPath::try_from_path(path)
        .with_context(|| format!("cannot read Parquet file {}", path.display()))?;
    LazyFrame::scan_parquet(p, args)
        .with_context(|| format!("cannot read Parquet file {}", path.display()))
}

/// The distinct values of the `wave` column of a Parquet file, ascending. An empty `wave` is an
/// error naming the file (and the row's source and line when the file carries them).
pub fn waves(path: &Path) -> Result<Vec<i64>> {
    let names = projection(path, &[req("wave", Kind::I64)])?;
    let df = scan(path)?
        .select([col("wave").cast(DataType::Int64)])
        .group_by([col("wave")])
        .agg([len().alias("n")])
        .collect()
        .with_context(|| format!("cannot read column `wave` of {}", path.display()))?;
    let mut waves = Vec::with_capacity(df.height());
    for w in df.column("wave")?.i64()?.iter() {
        match w {
            Some(w) => waves.push(w),
            None => {
                let cols: Vec<Expr> = names.iter().map(|n| col(n.as_str())).collect();
                let first = scan(path)?
                    .filter(col("wave").is_null())
                    .select(cols)
                    .limit(1)
                    .collect()?;
                bail!(
                    "{}: column `wave` has an empty value{}; the clean stage should have \
                     quarantined it",
                    path.display(),
                    provenance(&first, 0)
                );
            }
        }
    }
    waves.sort_unstable();
    Ok(waves)
}

/// [`read`], restricted to the rows of one wave (the file is scanned with the filter pushed
/// down, so only that wave's rows are held in memory).
pub fn read_wave(path: &Path, specs: &[Spec], wave: i64) -> Result<DataFrame> {
    let names = projection(path, specs)?;
    let cols: Vec<Expr> = names.iter().map(|n| col(n.as_str())).collect();
    let df = scan(path)?
        .filter(col("wave").cast(DataType::Int64).eq(lit(wave)))
        .select(cols)
        .collect()
        .with_context(|| format!("cannot read Parquet file {}", path.display()))?;
    check(df, path, specs)
}

/// Casts and null checks of [`read`].
fn check(mut df: DataFrame, path: &Path, specs: &[Spec]) -> Result<DataFrame> {
    for s in specs {
        let col = df.column(s.name)?;
        let want = s.kind.dtype();
        if col.dtype() != &want {
            let ok = matches!(
                (col.dtype(), s.kind),
                (DataType::Null, _)
                    | (
                        DataType::Int8
                            | DataType::Int16
                            | DataType::Int32
                            | DataType::UInt8
                            | DataType::UInt16
                            | DataType::UInt32,
                        Kind::I64 | Kind::F64
                    )
                    | (DataType::Int64 | DataType::Float32, Kind::F64)
                    | (DataType::Categorical(..) | DataType::Enum(..), Kind::Str)
            );
            if !ok {
                bail!(
                    "{}: column `{}` has type {}, expected {}",
                    path.display(),
                    s.name,
                    col.dtype(),
                    want
                );
            }
            let cast = col
                .cast(&want)
                .with_context(|| format!("{}: column `{}`", path.display(), s.name))?;
            df.with_column(cast)?;
        }
        let col = df.column(s.name)?;
        if s.required && col.null_count() > 0 {
            let at = first_null_position(col)
                .map(|i| provenance(&df, i))
                .unwrap_or_default();
            bail!(
                "{}: column `{}` has an empty value{at}; the clean stage should have \
                 quarantined it",
                path.display(),
                s.name
            );
        }
    }
    Ok(df)
}

fn first_null_position(col: &Column) -> Option<usize> {
    let mask = col.is_null();
    let position = mask.iter().position(|b| b == Some(true));
    position
}

/// " (source FILE, line N)" for row `i` when the frame carries provenance, else "".
pub fn provenance(df: &DataFrame, i: usize) -> String {
    let source = df
        .column("source")
        .ok()
        .and_then(|c| c.str().ok())
        .and_then(|c| c.get(i).map(str::to_string));
    let line = df
        .column("line")
        .ok()
        .and_then(|c| c.i64().ok())
        .and_then(|c| c.get(i));
    match (source, line) {
        (Some(s), Some(l)) => format!(" (source {s}, line {l})"),
        (None, Some(l)) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// Shares equal strings, so millions of rows hold a few thousand distinct ids.
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Rc<str>>,
}

impl Interner {
    pub fn get(&mut self, s: &str) -> Rc<str> {
        if let Some(r) = self.set.get(s) {
            return r.clone();
        }
        let r: Rc<str> = Rc::from(s);
        self.set.insert(r.clone());
        r
    }
}

/// A string column of `df` as an iterator of optional `&str`.
pub fn strs<'a>(df: &'a DataFrame, name: &str) -> Result<impl Iterator<Item = Option<&'a str>>> {
    let ca: &StringChunked = df.column(name)?.str()?;
    Ok(ca.iter())
}

pub fn i64s<'a>(df: &'a DataFrame, name: &str) -> Result<impl Iterator<Item = Option<i64>> + 'a> {
    let ca: &Int64Chunked = df.column(name)?.i64()?;
    Ok(ca.iter())
}

pub fn f64s<'a>(df: &'a DataFrame, name: &str) -> Result<impl Iterator<Item = Option<f64>> + 'a> {
    let ca: &Float64Chunked = df.column(name)?.f64()?;
    Ok(ca.iter())
}

pub fn bools<'a>(df: &'a DataFrame, name: &str) -> Result<impl Iterator<Item = Option<bool>> + 'a> {
    let ca: &BooleanChunked = df.column(name)?.bool()?;
    Ok(ca.iter())
}

/// A column's values as plain Rust values (see [`plain`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// Integers and floats, as `f64`.
    Num(Vec<Option<f64>>),
    /// Text, categoricals and enums, as `String`.
    Str(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    /// A column of nulls only (polars' `Null` type), of this many rows.
    Null(usize),
}

/// The values of `col` as plain Rust values, or None when its type is none of numbers, text,
/// booleans and nulls (the caller names the column and its type).
pub fn plain(col: &Column) -> Result<Option<Plain>> {
    let s = col.as_materialized_series();
    let strings = |c: &StringChunked| c.iter().map(|v| v.map(String::from)).collect();
    Ok(Some(match s.dtype() {
        DataType::Null => Plain::Null(s.len()),
        DataType::Boolean => Plain::Bool(s.bool()?.iter().collect()),
        dt if dt.is_primitive_numeric() => {
            Plain::Num(s.cast(&DataType::Float64)?.f64()?.iter().collect())
        }
        DataType::String => Plain::Str(strings(s.str()?)),
        DataType::Categorical(..) | DataType::Enum(..) => {
            Plain::Str(strings(s.cast(&DataType::String)?.str()?))
        }
        _ => return Ok(None),
    }))
}

/// Builds an output frame column by column.
#[derive(Default)]
pub struct FrameBuilder {
    columns: Vec<Column>,
}

impl FrameBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn str<S: AsRef<str>>(&mut self, name: &str, v: impl IntoIterator<Item = S>) -> &mut Self {
        // Built from the borrowed strings: no String per row.
        let ca = StringChunked::from_iter_values(name.into(), v.into_iter());
        self.columns.push(ca.into_column());
        self
    }

    pub fn opt_str<S: AsRef<str>>(
        &mut self,
        name: &str,
        v: impl IntoIterator<Item = Option<S>>,
    ) -> &mut Self {
        let ca = StringChunked::from_iter_options(name.into(), v.into_iter());
        self.columns.push(ca.into_column());
        self
    }

    pub fn i64(&mut self, name: &str, v: impl IntoIterator<Item = i64>) -> &mut Self {
        let v: Vec<i64> = v.into_iter().collect();
        self.columns.push(Column::new(name.into(), v));
        self
    }

    pub fn opt_i64(&mut self, name: &str, v: impl IntoIterator<Item = Option<i64>>) -> &mut Self {
        let v: Vec<Option<i64>> = v.into_iter().collect();
        self.columns.push(Column::new(name.into(), v));
        self
    }

    pub fn f64(&mut self, name: &str, v: impl IntoIterator<Item = Option<f64>>) -> &mut Self {
        let v: Vec<Option<f64>> = v.into_iter().collect();
        self.columns.push(Column::new(name.into(), v));
        self
    }

    pub fn bool(&mut self, name: &str, v: impl IntoIterator<Item = bool>) -> &mut Self {
        let v: Vec<bool> = v.into_iter().collect();
        self.columns.push(Column::new(name.into(), v));
        self
    }

    pub fn opt_bool(&mut self, name: &str, v: impl IntoIterator<Item = Option<bool>>) -> &mut Self {
        let v: Vec<Option<bool>> = v.into_iter().collect();
        self.columns.push(Column::new(name.into(), v));
        self
    }

    pub fn finish(self) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(self.columns)?)
    }
}

/// Counts as i64 (the type analysts' tools read without surprises).
pub fn n(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    #[test]
    fn plain_values_of_each_usable_type() {
        let df = df!(
            "i" => [Some(1i32), None],
            "f" => [0.5f64, f64::NAN],
            "b" => [Some(true), None],
            "s" => [Some("a"), None],
        )
        .unwrap();
        let get = |name: &str| plain(df.column(name).unwrap()).unwrap().unwrap();
        assert_eq!(get("i"), Plain::Num(vec![Some(1.0), None]));
        assert!(matches!(get("f"), Plain::Num(v) if v[0] == Some(0.5) && v[1].unwrap().is_nan()));
        assert_eq!(get("b"), Plain::Bool(vec![Some(true), None]));
        assert_eq!(get("s"), Plain::Str(vec![Some("a".into()), None]));
        let cat = df
            .column("s")
            .unwrap()
            .cast(&DataType::from_categories(
                polars::prelude::Categories::global(),
            ))
            .unwrap();
        assert_eq!(plain(&cat).unwrap().unwrap(), get("s"));
        let nulls = Column::full_null("n".into(), 3, &DataType::Null);
        assert_eq!(plain(&nulls).unwrap().unwrap(), Plain::Null(3));
        let dates = df!("d" => [1i32])
            .unwrap()
            .column("d")
            .unwrap()
            .cast(&DataType::Date)
            .unwrap();
        assert_eq!(plain(&dates).unwrap(), None);
    }
}
