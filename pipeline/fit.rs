//! `relcap fit`: fit an OLS or random-intercept mixed model on any Parquet or CSV table, such as
//! an intermediate output of a stage. This module only reads the file (with polars) and turns
//! the columns the formula names into the engine's plain columns; the model, the table layout
//! and the JSON report are `relcap_stats::fit`.
//!
//! Column types: integer and float columns are numeric, strings and categoricals are factors,
//! booleans are logical factors (`xTRUE`). Any other type is an error naming the column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{CsvParseOptions, CsvReadOptions, DataFrame, ParquetReader, SerReader};

use crate::io::{self, FileKind};
use crate::stages::frame::{plain, Plain};
use crate::stats::design::{Column, Data};
use crate::stats::fit::{fit_formula, FitOptions, Method};
use crate::stats::formula;
use crate::stats::ols::VcovType;

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// Table to fit on: a .parquet or .csv file.
    #[arg(long)]
    pub data: PathBuf,
    /// Model formula in R/lme4 style, e.g. "rcap ~ srm_between + C(wave) + (1 | unit_id)".
    #[arg(long)]
    pub formula: String,
    /// Standard errors for OLS models.
    #[arg(long, value_enum, default_value = "classical")]
    pub vcov: VcovArg,
    /// Cluster column for cluster-robust (CR1) standard errors; implies --vcov cr1.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Estimation method for mixed models.
    #[arg(long, value_enum, default_value = "reml")]
    pub method: MethodArg,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Output: a readable summary, or one JSON object.
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VcovArg {
    Classical,
    Hc0,
    Hc1,
    Hc2,
    Hc3,
    Cr1,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Reml,
    Ml,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
}

pub fn main(args: &FitArgs) -> Result<ExitCode> {
    if !(args.level > 0.0 && args.level < 1.0) {
        bail!("--level must be between 0 and 1, got {}", args.level);
    }
    let parsed = formula::parse(&args.formula).map_err(|e| anyhow!("{e}"))?;
    let mut needed: BTreeSet<String> = parsed.response.columns().into_iter().collect();
    for v in &parsed.variables {
        needed.extend(v.columns());
    }
    for r in &parsed.random {
        needed.extend(r.columns.iter().cloned());
    }
    if let Some(c) = &args.cluster {
        needed.insert(c.clone());
    }
    let df = read_table(&args.data)?;
    let data = to_data(&df, &needed, &args.data)?;
    let vcov = match (args.vcov, &args.cluster) {
        (VcovArg::Classical, Some(_)) | (VcovArg::Cr1, _) => VcovType::Cr1,
        (VcovArg::Classical, None) => VcovType::Classical,
        (VcovArg::Hc0, _) => VcovType::Hc0,
        (VcovArg::Hc1, _) => VcovType::Hc1,
        (VcovArg::Hc2, _) => VcovType::Hc2,
        (VcovArg::Hc3, _) => VcovType::Hc3,
    };
    let opts = FitOptions {
        vcov,
        cluster: args.cluster.clone(),
        method: match args.method {
            MethodArg::Reml => Method::Reml,
            MethodArg::Ml => Method::Ml,
        },
        conf_level: args.level,
    };
    let report = fit_formula(&data, &args.formula, &opts)
        .map_err(|e| anyhow!("{}: {e}", args.data.display()))?;
    match args.format {
        FormatArg::Table => print!("{}", report.to_table()),
        FormatArg::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a Parquet or CSV table with its column types (CSV types inferred from the whole file).
pub fn read_table(path: &Path) -> Result<DataFrame> {
    match io::file_kind(path)? {
        FileKind::Parquet => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            ParquetReader::new(f)
                .finish()
                .map_err(|e| anyhow!("cannot read Parquet file {}: {e}", path.display()))
        }
        FileKind::Csv => {
            let sep = io::detect_separator(path)?;
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(None)
                .with_parse_options(CsvParseOptions::default().with_separator(sep))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| anyhow!("cannot read CSV file {}: {e}", path.display()))
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
        data.push(name.clone(), converted)
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(data)
}
