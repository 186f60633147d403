//! `relcap fit`: fit an OLS or random-intercept mixed model on any Parquet or CSV table, such as
//! an intermediate output of a stage. This module only reads the file (with polars) and turns
//! the columns the formula names into the engine's plain columns; the model, the table layout
//! and the JSON report are `relcap_stats::fit`.
//!
//! Column types: integer and float columns are numeric, strings and categoricals are factors,
//! booleans are logical factors (`xTRUE`). Any other type is an error naming the column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{CsvParseOptions, CsvReadOptions, DataFrame, ParquetReader, SerReader};

use crate::config::{choice, Method, Vcov};
use crate::io::{self, FileKind};
use crate::stages::frame::{plain, Plain};
use crate::stats::design::{Column, Data};
use crate::stats::fit::{fit_formula, FitOptions};
use crate::stats::formula;
use crate::stats::ols::VcovType;

/// What `relcap fit` is asked to fit and how to show it.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// A .parquet or .csv file.
    pub data: PathBuf,
    /// R/lme4-style formula.
    pub formula: String,
    /// Standard errors of OLS models (CR1 when `cluster` is set and `vcov` is classical).
    pub vcov: Vcov,
    pub cluster: Option<String>,
    pub method: Method,
    /// Confidence level of the intervals, in (0, 1).
    pub level: f64,
    pub format: Output,
}

choice! {
    /// How `relcap fit` prints the fit.
    pub enum Output {
        Table = "table",
        Json = "json",
    }
}

pub fn main(req: &FitRequest) -> Result<()> {
    if !(req.level > 0.0 && req.level < 1.0) {
        bail!("--level must be between 0 and 1, got {}", req.level);
    }
    let parsed = formula::parse(&req.formula)?;
    let mut needed: BTreeSet<String> = parsed.response.columns().into_iter().collect();
    for v in &parsed.variables {
        needed.extend(v.columns());
    }
    for r in &parsed.random {
        needed.extend(r.columns.iter().cloned());
    }
    if let Some(c) = &req.cluster {
        needed.insert(c.clone());
    }
    let df = read_table(&req.data)?;
    let data = to_data(&df, &needed, &req.data)?;
    let vcov = match (req.vcov, &req.cluster) {
        (Vcov::Classical, Some(_)) => VcovType::Cr1,
        (v, _) => v.into(),
    };
    let opts = FitOptions {
        vcov,
        cluster: req.cluster.clone(),
        method: req.method.into(),
        conf_level: req.level,
    };
    let report =
        fit_formula(&data, &req.formula, &opts).with_context(|| req.data.display().to_string())?;
    match req.format {
        Output::Table => crate::show!("{}", report.to_table()),
        Output::Json => crate::showln!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

/// Reads a Parquet or CSV table with its column types (CSV types inferred from the whole file).
pub fn read_table(path: &Path) -> Result<DataFrame> {
    match io::file_kind(path)? {
        FileKind::Parquet => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            ParquetReader::new(f)
                .finish()
                .with_context(|| format!("cannot read Parquet file {}", path.display()))
        }
        FileKind::Csv => {
            let sep = io::detect_separator(path)?;
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(None)
                .with_parse_options(CsvParseOptions::default().with_separator(sep))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .with_context(|| format!("cannot read CSV file {}", path.display()))
        }
        FileKind::Xlsx => bail!(
            "{}: `relcap fit` reads Parquet or CSV; save the worksheet as CSV",
            path.display()
        ),
    }
}

/// The named columns of `df` as engine columns.
fn to_data(df: &DataFrame, needed: &BTreeSet<String>, path: &Path) -> Result<Data> {
    let mut data = Data::new();
    for name in needed {
        let col = df.column(name).map_err(|_| {
            let have: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            anyhow!(
                "{}: the formula names column `{name}`, which is not in the file (columns: {})",
                path.display(),
                have.join(", ")
            )
        })?;
        let converted = match plain(col)? {
            Some(Plain::Num(v)) => Column::Num(v),
            Some(Plain::Str(v)) => Column::Str(v),
            Some(Plain::Bool(v)) => Column::Bool(v),
            _ => bail!(
                "{}: column `{name}` has type {}, which a model cannot use (numbers, text and booleans can)",
                path.display(),
                col.dtype()
            ),
        };
        data.push(name.clone(), converted)?;
    }
    Ok(data)
}
