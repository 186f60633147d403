//! `relcap verify --manifest FILE`: reruns the study a manifest describes into a temporary
//! folder and compares every output with the recorded one.
//!
//! The rerun uses the config recorded in the manifest (resolved, so it does not depend on the
//! config file still being there), the data folder recorded there (or `--data`), and the
//! pseudonymisation key of the environment, which must have the recorded key id. Before it
//! runs, the input tables are hashed and compared with the recorded hashes; a changed input is
//! listed as a note (it explains the differences that follow).
//!
//! Each recorded output (the files beside the manifest, and the report files) is judged:
//!
//! - `identical`: the rerun's file has the recorded hash, and so does the file on disk (or the
//!   recorded file is not here, and the rerun has the recorded hash).
//! - `equivalent`: the bytes differ but the content is the same: Parquet with the same schema
//!   and the same rows after sorting (e.g. only the footer metadata differs), JSON with the same
//!   values.
//! - `within tolerance`: as equivalent, except numbers that differ by at most
//!   `abs_tol + rel_tol * max(|a|, |b|)` (defaults 1e-12 and 1e-9).
//! - `DIFFERS`: anything else, including a recorded file that was modified after the run (its
//!   hash no longer matches the manifest), a file the rerun did not produce, or one it produced
//!   that the manifest does not record.
//!
//! Parquet rows are compared after sorting both files by every column, non-float columns first
//! and float columns last, so rows in another order and floats that differ in the last digits
//! still pair up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::{ChunkCompareEq, Column, DataFrame, DataType, SortMultipleOptions};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::io;
use crate::manifest::{output_path, Manifest, OutputRecord, Root, RunStatus, StageStatus};
use crate::orchestrate::{self, display_output, RunOptions, STAGES};
use crate::pseudonym::Pseudonymizer;

/// How close two numbers must be: `|a − b| <= abs + rel * max(|a|, |b|)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rel: 1e-9,
            abs: 1e-12,
        }
    }
}

impl Tolerance {
    /// Equal (NaN with NaN, infinities of one sign) or within tolerance.
    pub fn close(&self, a: f64, b: f64) -> bool {
        if a == b || (a.is_nan() && b.is_nan()) {
            return true;
        }
        if !a.is_finite() || !b.is_finite() {
            return false;
        }
        (a - b).abs() <= self.abs + self.rel * a.abs().max(b.abs())
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub manifest: PathBuf,
    pub tolerance: Tolerance,
    /// The data folder, when it is no longer where the manifest says.
    pub data_dir: Option<PathBuf>,
    /// Keep the rerun in this folder instead of a temporary one.
    pub keep: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: bool,
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Identical,
    Equivalent,
    WithinTolerance,
    Differs,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Identical => "identical",
            Verdict::Equivalent => "equivalent",
            Verdict::WithinTolerance => "within tolerance",
            Verdict::Differs => "DIFFERS",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    pub path: String,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub manifest: String,
    pub run_id: String,
    pub rerun_dir: String,
    pub tolerance: Tolerance,
    /// Things that explain differences (changed inputs, another relcap or lock file).
    pub notes: Vec<String>,
    pub files: Vec<FileCheck>,
    /// No file differs beyond tolerance.
    pub ok: bool,
}

/// Reruns the manifest's study and compares.
pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport> {
    let recorded = Manifest::load(&opts.manifest)?;
    let out_dir = opts
        .manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let reports_dir = PathBuf::from(&recorded.reports_dir);
    let (first, last) = recorded_stages(&recorded, &opts.manifest)?;
    let config = recorded_config(&recorded)?;
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&recorded.data_dir));
    let notes = notes(&recorded, &config, &data_dir)?;

    let tmp;
    let rerun_root = match &opts.keep {
        Some(dir) => dir.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("relcap-verify-")
                .tempdir()
                .context("cannot create a temporary folder for the rerun")?;
            tmp.path().to_path_buf()
        }
    };
    let rerun_out = rerun_root.join("out");
    let rerun_reports = rerun_root.join("reports");
    let run_opts = RunOptions {
        data_dir: Some(data_dir),
        out_dir: Some(rerun_out.clone()),
        reports_dir: Some(rerun_reports.clone()),
        from: Some(STAGES[first].name.to_string()),
        until: Some(STAGES[last].name.to_string()),
        only: None,
        force: true,
        quiet: opts.quiet,
        verbose: opts.verbose,
        // The rerun computes everything (`force`) into a folder that is thrown away.
        no_cache: true,
        progress: opts.progress,
        config_path: None,
        wait: false,
    };
    let rerun = orchestrate::run(&config, &run_opts).context("the rerun failed")?;
    let files = compare(
        &recorded,
        &rerun.manifest,
        (&out_dir, &reports_dir),
        (&rerun_out, &rerun_reports),
        opts.tolerance,
    )?;
    let ok = files.iter().all(|f| f.verdict != Verdict::Differs);
    Ok(VerifyReport {
        manifest: opts.manifest.display().to_string(),
        run_id: recorded.run_id,
        rerun_dir: if opts.keep.is_some() {
            rerun_root.display().to_string()
        } else {
            "(temporary, removed)".to_string()
        },
        tolerance: opts.tolerance,
        notes,
        files,
        ok,
    })
}

/// The first and last stage the manifest records (indices into `STAGES`); an error unless the
/// run and each of its stages completed.
fn recorded_stages(recorded: &Manifest, path: &Path) -> Result<(usize, usize)> {
    if recorded.status != RunStatus::Complete {
        bail!(
            "{} records a run that did not complete (status {:?}); finish it with `relcap run` \
             before verifying",
            path.display(),
            recorded.status
        );
    }
    let done: Vec<usize> = recorded
        .stages
        .iter()
        .filter_map(|e| STAGES.iter().position(|s| s.name == e.name))
        .collect();
    if let Some(e) = recorded
        .stages
        .iter()
        .find(|e| e.status != StageStatus::Complete)
    {
        bail!(
            "stage {} is not complete in {}; run `relcap run` first",
            e.name,
            path.display()
        );
    }
    let (Some(&first), Some(&last)) = (done.iter().min(), done.iter().max()) else {
        bail!("{} records no stage", path.display());
    };
    Ok((first, last))
}

/// The config the manifest records, validated; an error unless the key of the environment is
/// the one the run used.
fn recorded_config(recorded: &Manifest) -> Result<Config> {
    let config: Config = serde_json::from_value(recorded.config.resolved.clone())
        .context("the config recorded in the manifest cannot be read by this relcap")?;
    config.validate()?;
    let pseudonymizer = Pseudonymizer::from_config(&config.privacy)?;
    if pseudonymizer.key_id() != recorded.pseudonym_key.id {
        bail!(
            "the pseudonymisation key has id {}, the run used id {}: set {} to the key the run \
             used (pseudonyms, and every output after ingest, depend on it)",
            pseudonymizer.key_id(),
            recorded.pseudonym_key.id,
            config.privacy.key_env
        );
    }
    Ok(config)
}

/// What explains differences before the rerun shows them: another relcap or lock file, stages
/// a later partial run left behind, inputs changed since the run.
fn notes(recorded: &Manifest, config: &Config, data_dir: &Path) -> Result<Vec<String>> {
    let mut notes = vec![];
    if recorded.relcap_version != crate::manifest::RELCAP_VERSION {
        notes.push(format!(
            "the run used relcap {}, this is relcap {}",
            recorded.relcap_version,
            crate::manifest::RELCAP_VERSION
        ));
    }
    if recorded.cargo_lock_blake3 != crate::manifest::cargo_lock_hash() {
        notes.push("this relcap was built with another Cargo.lock than the run's".to_string());
    }
    // Stages left behind by a later partial run (`--until`, `--only`) were made from other
    // settings or upstream files than the manifest now records; say so before they differ.
    let mut behind: Vec<&str> = vec![];
    for e in &recorded.stages {
        let upstream_moved = e.upstream.iter().any(|(s, fp)| {
            behind.contains(&s.as_str()) || recorded.stage(s).map(|u| &u.fingerprint) != Some(fp)
        });
        if upstream_moved || e.config != config.section_for_stage(&e.name) {
            behind.push(&e.name);
            notes.push(format!(
                "stage {} was made from other settings or inputs than the rest of this run \
                 (a later run did not reach it): `relcap status` says why; `relcap run` \
                 brings it up to date",
                e.name
            ));
        }
    }
    if let Some(ingest) = recorded.stage("ingest") {
        let now = orchestrate::input_tables(config, data_dir)?;
        for (old, new) in ingest.inputs.iter().zip(&now) {
            if old.file != new.file || old.blake3 != new.blake3 {
                notes.push(format!(
                    "input {} changed since the run: {} {} → {} {}",
                    old.name,
                    old.file.as_deref().unwrap_or("(absent)"),
                    old.blake3.as_deref().map_or("", |h| &h[..12.min(h.len())]),
                    new.file.as_deref().unwrap_or("(absent)"),
                    new.blake3.as_deref().map_or("", |h| &h[..12.min(h.len())]),
                ));
            }
        }
    }
    Ok(notes)
}

/// Every output the run recorded or the rerun wrote, judged, in pipeline order (root, then the
/// stage the file belongs to, then its path). `here` and `there` are the (OUT, reports) folders
/// of the run and of the rerun.
fn compare(
    recorded: &Manifest,
    rerun: &Manifest,
    here: (&Path, &Path),
    there: (&Path, &Path),
    tolerance: Tolerance,
) -> Result<Vec<FileCheck>> {
    let key = |o: &OutputRecord| (o.root, o.path.clone());
    let outputs = |m: &Manifest| -> BTreeMap<(Root, String), OutputRecord> {
        m.stages
            .iter()
            .flat_map(|e| &e.outputs)
            .map(|o| (key(o), o.clone()))
            .collect()
    };
    let (old, new) = (outputs(recorded), outputs(rerun));
    let mut keys: Vec<&(Root, String)> = old.keys().chain(new.keys()).collect();
    let stage_pos = |path: &str| {
        let first = path.split('/').next().unwrap_or("");
        STAGES
            .iter()
            .position(|s| s.name == first)
            .unwrap_or(STAGES.len())
    };
    keys.sort_by(|a, b| (a.0, stage_pos(&a.1), &a.1).cmp(&(b.0, stage_pos(&b.1), &b.1)));
    keys.dedup();
    let mut files = vec![];
    for k in keys {
        let check = match (old.get(k), new.get(k)) {
            (Some(o), None) => FileCheck {
                path: display_output(o),
                verdict: Verdict::Differs,
                detail: "recorded, but the rerun did not write it".into(),
            },
            (None, Some(n)) => FileCheck {
                path: display_output(n),
                verdict: Verdict::Differs,
                detail: "written by the rerun, but not recorded".into(),
            },
            (Some(o), Some(n)) => {
                let mine = output_path(here.0, here.1, o);
                let theirs = output_path(there.0, there.1, n);
                judge(o, n, &mine, &theirs, tolerance)?
            }
            (None, None) => continue,
        };
        files.push(check);
    }
    Ok(files)
}

/// One recorded output against the rerun's.
fn judge(
    old: &OutputRecord,
    new: &OutputRecord,
    here: &Path,
    there: &Path,
    tol: Tolerance,
) -> Result<FileCheck> {
    let path = display_output(old);
    if !here.is_file() {
        return Ok(if new.blake3 == old.blake3 {
            FileCheck {
                path,
                verdict: Verdict::Identical,
                detail: "the recorded file is not here; the rerun has the recorded hash".into(),
            }
        } else {
            FileCheck {
                path,
                verdict: Verdict::Differs,
                detail: "the recorded file is not here, and the rerun's hash differs from the \
                         recorded one"
                    .into(),
            }
        });
    }
    let disk = io::hash_file(here)?;
    let modified = disk != old.blake3;
    if !modified && new.blake3 == old.blake3 {
        return Ok(FileCheck {
            path,
            verdict: Verdict::Identical,
            detail: String::new(),
        });
    }
    let (verdict, detail) = compare_files(here, there, tol)?;
    if modified {
        return Ok(FileCheck {
            path,
            verdict: Verdict::Differs,
            detail: format!(
                "modified after the run (its hash is not the one recorded){}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("; against the rerun: {verdict}, {detail}")
                }
            ),
        });
    }
    Ok(FileCheck {
        path,
        verdict,
        detail,
    })
}

/// Compares two files by content: Parquet and JSON by value, anything else by bytes.
pub fn compare_files(a: &Path, b: &Path, tol: Tolerance) -> Result<(Verdict, String)> {
    let (ha, hb) = (io::hash_file(a)?, io::hash_file(b)?);
    if ha == hb {
        return Ok((Verdict::Identical, String::new()));
    }
    let ext = a
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("parquet") => compare_parquet(a, b, tol),
        Some("json") => compare_json_files(a, b, tol),
        _ => Ok((Verdict::Differs, text_difference(a, b))),
    }
}

fn text_difference(a: &Path, b: &Path) -> String {
    match (std::fs::read_to_string(a), std::fs::read_to_string(b)) {
        (Ok(x), Ok(y)) => {
            let line = x
                .lines()
                .zip(y.lines())
                .position(|(p, q)| p != q)
                .unwrap_or_else(|| x.lines().count().min(y.lines().count()));
            format!("bytes differ, first at line {}", line + 1)
        }
        _ => "bytes differ".to_string(),
    }
}

fn is_float(dt: &DataType) -> bool {
    matches!(dt, DataType::Float32 | DataType::Float64)
}

fn sortable(dt: &DataType) -> bool {
    !matches!(
        dt,
        DataType::List(_) | DataType::Struct(_) | DataType::Null | DataType::Unknown(_)
    )
}

/// Sorts by every sortable column, non-float ones first; unsorted if polars cannot sort it.
fn sort_all(df: &DataFrame) -> DataFrame {
    let fields = df.fields();
    let mut by: Vec<String> = fields
        .iter()
        .filter(|f| sortable(f.dtype()) && !is_float(f.dtype()))
        .map(|f| f.name().to_string())
        .collect();
    by.extend(
        fields
            .iter()
            .filter(|f| is_float(f.dtype()))
            .map(|f| f.name().to_string()),
    );
    if by.is_empty() {
        return df.clone();
    }
    df.sort(
        by,
        SortMultipleOptions::default()
            .with_maintain_order(true)
            .with_nulls_last(true),
    )
    .unwrap_or_else(|_| df.clone())
}

/// Same schema, same rows after sorting, numbers within tolerance.
pub fn compare_parquet(a: &Path, b: &Path, tol: Tolerance) -> Result<(Verdict, String)> {
    let (da, db) = (io::read_parquet(a)?, io::read_parquet(b)?);
    let (fa, fb) = (da.fields(), db.fields());
    if fa != fb {
        let show = |f: &[polars::prelude::Field]| {
            f.iter()
                .map(|f| format!("{}: {}", f.name(), f.dtype()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Ok((
            Verdict::Differs,
            format!(
                "schema differs: recorded [{}], rerun [{}]",
                show(&fa),
                show(&fb)
            ),
        ));
    }
    if da.height() != db.height() {
        return Ok((
            Verdict::Differs,
            format!("{} rows recorded, {} rerun", da.height(), db.height()),
        ));
    }
    let (sa, sb) = (sort_all(&da), sort_all(&db));
    let mut differs = vec![];
    let mut within = vec![];
    for (ca, cb) in sa.columns().iter().zip(sb.columns()) {
        match compare_column(ca, cb, tol)? {
            ColumnDiff::Same => {}
            ColumnDiff::Within { max_abs, max_rel } => within.push(format!(
                "{}: max abs diff {max_abs:.3e}, max rel diff {max_rel:.3e}",
                ca.name()
            )),
            ColumnDiff::Beyond(d) => differs.push(format!("{}: {d}", ca.name())),
        }
    }
    if !differs.is_empty() {
        return Ok((Verdict::Differs, differs.join("; ")));
    }
    if !within.is_empty() {
        return Ok((Verdict::WithinTolerance, within.join("; ")));
    }
    Ok((Verdict::Equivalent, equivalent_detail(a, b)))
}

/// Why two Parquet files with the same rows have different bytes, as far as the footer tells.
fn equivalent_detail(a: &Path, b: &Path) -> String {
    let (Ok(fa), Ok(fb)) = (
        crate::inspect::parquet_footer(a),
        crate::inspect::parquet_footer(b),
    ) else {
        return "same schema and rows; bytes differ".into();
    };
    let mut keys: Vec<&String> = fa
        .key_value
        .iter()
        .chain(&fb.key_value)
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<&str> = keys
        .into_iter()
        .filter(|k| fa.get(k) != fb.get(k))
        .map(|k| k.as_str())
        .collect();
    if differing.is_empty() {
        "same schema and rows; bytes differ (row order or encoding)".into()
    } else {
        format!(
            "same schema and rows; footer metadata differs: {}",
            differing.join(", ")
        )
    }
}

enum ColumnDiff {
    Same,
    Within { max_abs: f64, max_rel: f64 },
    Beyond(String),
}

fn compare_column(a: &Column, b: &Column, tol: Tolerance) -> Result<ColumnDiff> {
    if is_float(a.dtype()) {
        let (a64, b64) = (a.cast(&DataType::Float64)?, b.cast(&DataType::Float64)?);
        let (xa, xb) = (a64.f64()?, b64.f64()?);
        let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
        let mut beyond = 0usize;
        let mut first: Option<(usize, Option<f64>, Option<f64>)> = None;
        for (i, (x, y)) in xa.iter().zip(xb.iter()).enumerate() {
            let ok = match (x, y) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    if x != y && !(x.is_nan() && y.is_nan()) {
                        let d = (x - y).abs();
                        max_abs = max_abs.max(d);
                        let scale = x.abs().max(y.abs());
                        if scale > 0.0 {
                            max_rel = max_rel.max(d / scale);
                        }
                    }
                    tol.close(x, y)
                }
                _ => false,
            };
            if !ok {
                beyond += 1;
                first.get_or_insert((i, x, y));
            }
        }
        if let Some((i, x, y)) = first {
            let show = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v}"));
            return Ok(ColumnDiff::Beyond(format!(
                "{beyond} of {} values beyond tolerance (e.g. sorted row {}: {} recorded, {} \
                 rerun; max abs diff {max_abs:.3e})",
                xa.len(),
                i + 1,
                show(x),
                show(y)
            )));
        }
        if max_abs > 0.0 {
            return Ok(ColumnDiff::Within { max_abs, max_rel });
        }
        return Ok(ColumnDiff::Same);
    }
    let (sa, sb) = (a.as_materialized_series(), b.as_materialized_series());
    match sa.equal_missing(sb) {
        Ok(eq) => {
            let n_diff = eq.len() - eq.num_trues();
            if n_diff == 0 {
                return Ok(ColumnDiff::Same);
            }
            let i = eq.iter().position(|v| v != Some(true)).unwrap_or_default();
            let show =
                |s: &polars::prelude::Series| s.get(i).map(|v| v.to_string()).unwrap_or_default();
            Ok(ColumnDiff::Beyond(format!(
                "{n_diff} of {} values differ (e.g. sorted row {}: {} recorded, {} rerun)",
                eq.len(),
                i + 1,
                show(sa),
                show(sb)
            )))
        }
        // Types without element-wise comparison (nested): the column as a whole.
        Err(_) => Ok(if a.equals_missing(b) {
            ColumnDiff::Same
        } else {
            ColumnDiff::Beyond("values differ".into())
        }),
    }
}

fn compare_json_files(a: &Path, b: &Path, tol: Tolerance) -> Result<(Verdict, String)> {
    let read = |p: &Path| -> Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", p.display()))
    };
    let (va, vb) = (read(a)?, read(b)?);
    let mut diffs = vec![];
    let mut max_rel = 0.0f64;
    let mut within = 0usize;
    json_walk("", &va, &vb, tol, &mut diffs, &mut within, &mut max_rel);
    if !diffs.is_empty() {
        let n = diffs.len();
        diffs.truncate(5);
        return Ok((
            Verdict::Differs,
            format!(
                "{n} {}: {}{}",
                if n == 1 {
                    "value differs"
                } else {
                    "values differ"
                },
                diffs.join("; "),
                if n > 5 { "; ..." } else { "" }
            ),
        ));
    }
    if within > 0 {
        return Ok((
            Verdict::WithinTolerance,
            format!("{within} numbers within tolerance, max rel diff {max_rel:.3e}"),
        ));
    }
    Ok((
        Verdict::Equivalent,
        "same values; bytes differ (formatting)".into(),
    ))
}

fn json_walk(
    path: &str,
    a: &Value,
    b: &Value,
    tol: Tolerance,
    diffs: &mut Vec<String>,
    within: &mut usize,
    max_rel: &mut f64,
) {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => json_walk(&at(k), p, q, tol, diffs, within, max_rel),
                    _ => diffs.push(format!("{} present in one file only", at(k))),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_walk(&format!("{path}[{i}]"), p, q, tol, diffs, within, max_rel);
            }
        }
        (Value::Number(x), Value::Number(y)) if x != y => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => {
                if tol.close(p, q) {
                    *within += 1;
                    let scale = p.abs().max(q.abs());
                    if scale > 0.0 {
                        *max_rel = max_rel.max((p - q).abs() / scale);
                    }
                } else {
                    diffs.push(format!("{path}: {x} recorded, {y} rerun"));
                }
            }
            _ => diffs.push(format!("{path}: {x} recorded, {y} rerun")),
        },
        (x, y) if x == y => {}
        (x, y) => {
            let show = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 60 {
                    format!("{}...", s.chars().take(60).collect::<String>())
                } else {
                    s
                }
            };
            diffs.push(format!("{path}: {} recorded, {} rerun", show(x), show(y)));
        }
    }
}

impl VerifyReport {
    /// The report as a table for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "verify {} (run {}), tolerance rel {:e} abs {:e}\n",
            self.manifest, self.run_id, self.tolerance.rel, self.tolerance.abs
        );
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        let width = self
            .files
            .iter()
            .map(|f| f.path.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        s.push_str(&format!("{:<width$}  {:<16}  detail\n", "file", "verdict"));
        for f in &self.files {
            s.push_str(&format!(
                "{:<width$}  {:<16}  {}\n",
                f.path,
                f.verdict.to_string(),
                f.detail
            ));
        }
        let count = |v: Verdict| self.files.iter().filter(|f| f.verdict == v).count();
        s.push_str(&format!(
            "{} files: {} identical, {} equivalent, {} within tolerance, {} differ\n",
            self.files.len(),
            count(Verdict::Identical),
            count(Verdict::Equivalent),
            count(Verdict::WithinTolerance),
            count(Verdict::Differs)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{write_parquet, ParquetMeta};
    use polars::df;

    fn write(dir: &Path, name: &str, mut d: DataFrame, fp: &str) -> PathBuf {
        let p = dir.join(name);
        let meta = ParquetMeta {
            fingerprint: Some(fp.into()),
            ..ParquetMeta::stage("t")
        };
        write_parquet(&mut d, &p, &meta).unwrap();
        p
    }

    #[test]
    fn tolerance_is_abs_plus_rel() {
        let t = Tolerance::default();
        assert!(t.close(1.0, 1.0 + 5e-10));
        assert!(!t.close(1.0, 1.0 + 2e-9));
        assert!(t.close(0.0, 5e-13));
        assert!(!t.close(0.0, 2e-12));
        assert!(t.close(f64::NAN, f64::NAN));
        assert!(t.close(f64::INFINITY, f64::INFINITY));
        assert!(!t.close(f64::INFINITY, f64::NEG_INFINITY));
    }

    #[test]
    fn parquet_rows_in_another_order_are_equivalent() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.parquet",
            df!("k" => ["x", "y", "z"], "v" => [1.0, 2.0, 3.0]).unwrap(),
            "f1",
        );
        let b = write(
            dir.path(),
            "b.parquet",
            df!("k" => ["z", "x", "y"], "v" => [3.0, 1.0, 2.0]).unwrap(),
            "f1",
        );
        let (v, _) = compare_files(&a, &b, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Equivalent);
        let c = write(
            dir.path(),
            "c.parquet",
            df!("k" => ["x", "y", "z"], "v" => [1.0, 2.0, 3.0]).unwrap(),
            "f2",
        );
        let (v, d) = compare_files(&a, &c, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Equivalent);
        assert!(d.contains("relcap.fingerprint"), "{d}");
    }

    #[test]
    fn parquet_numbers_within_and_beyond_tolerance() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.parquet",
            df!("k" => [1i64, 2], "v" => [0.5, 100.0]).unwrap(),
            "f",
        );
        let b = write(
            dir.path(),
            "b.parquet",
            df!("k" => [1i64, 2], "v" => [0.5, 100.0 * (1.0 + 1e-12)]).unwrap(),
            "f",
        );
        let (v, d) = compare_files(&a, &b, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::WithinTolerance, "{d}");
        assert!(d.starts_with("v: max abs diff"), "{d}");
        let c = write(
            dir.path(),
            "c.parquet",
            df!("k" => [1i64, 2], "v" => [0.5, 101.0]).unwrap(),
            "f",
        );
        let (v, d) = compare_files(&a, &c, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Differs);
        assert!(d.contains("1 of 2 values beyond tolerance"), "{d}");
        assert!(d.contains("100 recorded, 101 rerun"), "{d}");
        // A wider tolerance accepts it.
        let wide = Tolerance {
            rel: 0.02,
            abs: 0.0,
        };
        assert_eq!(
            compare_files(&a, &c, wide).unwrap().0,
            Verdict::WithinTolerance
        );
    }

    #[test]
    fn parquet_schema_rows_and_keys_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.parquet",
            df!("k" => ["x", "y"], "v" => [1i64, 2]).unwrap(),
            "f",
        );
        let b = write(
            dir.path(),
            "b.parquet",
            df!("k" => ["x", "y"], "v" => [1.0, 2.0]).unwrap(),
            "f",
        );
        let (v, d) = compare_files(&a, &b, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Differs);
        assert!(d.contains("schema differs"), "{d}");
        let c = write(
            dir.path(),
            "c.parquet",
            df!("k" => ["x", "z"], "v" => [1i64, 2]).unwrap(),
            "f",
        );
        let (v, d) = compare_files(&a, &c, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Differs);
        assert!(d.starts_with("k: 1 of 2 values differ"), "{d}");
        let e = write(
            dir.path(),
            "e.parquet",
            df!("k" => ["x"], "v" => [1i64]).unwrap(),
            "f",
        );
        let (v, d) = compare_files(&a, &e, Tolerance::default()).unwrap();
        assert_eq!(
            (v, d.as_str()),
            (Verdict::Differs, "2 rows recorded, 1 rerun")
        );
    }

    #[test]
    fn json_numbers_compare_within_tolerance() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        std::fs::write(&a, r#"{"x": 1.0, "n": 3, "s": ["a"]}"#).unwrap();
        std::fs::write(&b, r#"{"x": 1.0000000000001, "n": 3, "s": ["a"]}"#).unwrap();
        let (v, _) = compare_files(&a, &b, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::WithinTolerance);
        std::fs::write(&b, r#"{"x": 1.0, "n": 4, "s": ["b"]}"#).unwrap();
        let (v, d) = compare_files(&a, &b, Tolerance::default()).unwrap();
        assert_eq!(v, Verdict::Differs);
        assert!(
            d.contains("n: 3 recorded, 4 rerun") && d.contains("s[0]"),
            "{d}"
        );
        std::fs::write(&b, "{\n  \"n\": 3, \"s\": [\"a\"], \"x\": 1.0\n}\n").unwrap();
        assert_eq!(
            compare_files(&a, &b, Tolerance::default()).unwrap().0,
            Verdict::Equivalent
        );
    }
}
