//! Orchestration of a study run: the declared list of stages, their order, what each reads, the
//! fingerprint that decides whether a stage must run again, the run manifest, `summary.json`,
//! `relcap status`, and the log on stderr. The stages themselves know nothing of each other or
//! of this module; everything cross-cutting lives here, one concern per submodule:
//! `stage_list` (`STAGES`), `fingerprint` (what a fingerprint covers and why it changed),
//! `status` (`relcap status`, the reasons a stage is stale), `outputs` (the files a stage
//! wrote), `records` (config, key and seed as the manifest records them), `logging` (stderr and
//! progress bars), `alloc` (allocator settings between stages). This file holds `run()`.
//!
//! # When a stage runs
//!
//! A stage's fingerprint is the blake3 hash of the canonical JSON of: its name and declared
//! version; the relcap version; the part of the config it reads (`Config::section_for_stage`);
//! the pseudonymisation key id (ingest only: pseudonyms depend on the key, never the key
//! itself); the content hashes of what it reads (ingest: the canonical tables found in the data
//! folder as ingest finds them, with their file names; later stages: every file the stages it
//! reads wrote under OUT, as the manifest records them); and the fingerprints of those stages.
//! No absolute path enters a fingerprint, so a study moved to another folder or machine keeps
//! its fingerprints, and the fingerprint written into every Parquet footer is the same there.
//! Files of an earlier stage that no run recorded (written by hand, as test fixtures are) are
//! read as they are: their hashes enter the fingerprint, with no upstream fingerprint.
//!
//! `relcap run` goes through the selected stages (`--from`, `--until`, `--only`) in order and
//! runs a stage unless its fingerprint equals the one recorded in `OUT/manifest.json` and every
//! output recorded for it is present with the recorded hash (`--force` runs it anyway). Because a
//! stage's fingerprint covers the files of the stages it reads, a stage that reruns makes the
//! stages reading it rerun: a model setting reruns model and report, a scoring setting score
//! onwards, a new input file everything.
//!
//! Within a stage that runs, results of the previous run may be reused through the store in
//! `OUT/.cache/<stage>/` (`crate::memo`, handed to stages as `StageContext::memo`): this module
//! creates it (reading off under `--force`, off altogether with `RunOptions::no_cache`), logs
//! how much a stage reused, and prunes what a completed stage did not use.
//!
//! # Crash safety
//!
//! Before a stage runs, its previous outputs are removed (its folder `OUT/<stage>/` and the
//! report files recorded for it) and the manifest records it as `running`; after it, the
//! manifest records its outputs and hashes and `complete`. Every file is written atomically
//! (`io::write_atomic`), the manifest too. A run killed mid-stage therefore leaves complete
//! files only, and a manifest in which that stage is `running`: the next run redoes that stage
//! and the ones after it, and skips the ones before it.
//!
//! # Timing and determinism
//!
//! `summary.json` holds the stage's own counts, its version and fingerprint, and nothing that
//! changes between runs, so two runs give byte-identical files under OUT except
//! `manifest.json`, which holds the run id, the start and end times and each stage's wall time.
//!
//! # `summary.json` (per stage)
//!
//! `stage` (str), `stage_version` (int), `relcap_version` (str), `fingerprint` (str), then the
//! stage's summary: `tables` (per table `rows_in`, `rows_out`, `quarantined` by reason,
//! `duplicates_collapsed`, `excluded` by reason), `counts`, `warnings`, `outputs`, `facts`.

mod alloc;
mod fingerprint;
mod logging;
mod outputs;
mod records;
mod stage_list;
mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::io;
use crate::manifest::{
    self, cargo_lock_hash, json_changes, now_utc, Manifest, OutputRecord, Root, RunStatus,
    StageStatus, MANIFEST_VERSION, RELCAP_VERSION,
};
use crate::memo::Memo;
use crate::pseudonym::Pseudonymizer;
use crate::stages::{StageContext, StageSummary};
use fingerprint::{basis, explain, fingerprint, Basis};
use logging::Log;
use outputs::{remove_previous_outputs, remove_temp_files, scan_outputs, snapshot};
use records::{config_record, key_record, simulation_seed};
use stage_list::stage_names;
use status::{check_outputs, compact};

pub use fingerprint::input_tables;
pub use outputs::display_output;
pub use stage_list::{stage_index, Input, Stage, STAGES};
pub use status::{status, Reason, StageState, StatusReport};

/// The folders of a study run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyPaths {
    /// The canonical input tables.
    pub data_dir: PathBuf,
    /// Stage outputs and the manifest.
    pub out_dir: PathBuf,
    /// Reports: `--reports`; else `<--out>/report/`; else `<study.reports_dir>/<name>/` when
    /// the config sets it; else `<out_dir>/report/`.
    pub reports_dir: PathBuf,
}

impl StudyPaths {
    /// The config's folders, each replaced by the override when there is one. The report goes
    /// next to the stage outputs unless `reports` names its folder, except that a config setting
    /// `study.reports_dir` keeps its reports there for runs into its own `out_dir`: a run given
    /// another output folder never writes into the config's reports folder.
    pub fn resolve(
        config: &Config,
        data: Option<&Path>,
        out: Option<&Path>,
        reports: Option<&Path>,
    ) -> StudyPaths {
        let out_dir = out
            .map(Path::to_path_buf)
            .unwrap_or_else(|| config.study.out_dir.clone());
        let reports_dir = match (reports, out, &config.study.reports_dir) {
            (Some(r), _, _) => r.to_path_buf(),
            (None, None, Some(r)) => r.join(&config.study.name),
            _ => out_dir.join("report"),
        };
        StudyPaths {
            data_dir: data
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config.study.data_dir.clone()),
            out_dir,
            reports_dir,
        }
    }
}

/// What to run and where.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    pub out_dir: Option<PathBuf>,
    pub reports_dir: Option<PathBuf>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub only: Option<String>,
    /// Run the selected stages even when they are up to date.
    pub force: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Keep no `OUT/.cache` (runs whose output folder is thrown away, as `relcap power`'s).
    pub no_cache: bool,
    /// Progress bars (only when stderr is a terminal).
    pub progress: bool,
    /// The config file, recorded (path, hash, text) in the manifest; None for a config built in
    /// code.
    pub config_path: Option<PathBuf>,
    /// When another run holds the output folder's lock, wait for it (else fail at once).
    pub wait: bool,
}

/// `summary.json` of one stage: the stage's own counts plus what the orchestrator knows. No
/// timing: it lives in the manifest, so that this file is the same in every run.
#[derive(Debug, Serialize)]
struct SummaryFile<'a> {
    stage: &'a str,
    stage_version: u32,
    relcap_version: &'a str,
    fingerprint: &'a str,
    #[serde(flatten)]
    summary: &'a StageSummary,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    pub out_dir: PathBuf,
    /// The folder of the report (`report.html` there once the report stage has run).
    pub reports_dir: PathBuf,
    /// The stages that ran: name, summary, wall time in seconds.
    pub stages: Vec<(String, StageSummary, f64)>,
    /// The selected stages found up to date.
    pub skipped: Vec<String>,
    /// The manifest as written at the end of the run.
    pub manifest: Manifest,
}

/// What every stage of a run shares.
struct RunCx<'a> {
    config: &'a Config,
    opts: &'a RunOptions,
    paths: &'a StudyPaths,
    pseudonymizer: &'a Pseudonymizer,
    memo: &'a Memo,
    log: &'a Log,
}

/// Runs the selected stages in order, skipping those that are up to date, and keeps
/// `OUT/manifest.json` current after every stage.
pub fn run(config: &Config, opts: &RunOptions) -> Result<RunReport> {
    alloc::configure_allocator();
    let data_dir = opts.data_dir.as_ref().unwrap_or(&config.study.data_dir);
    let config = &config.named_after_data(data_dir);
    let paths = StudyPaths::resolve(
        config,
        opts.data_dir.as_deref(),
        opts.out_dir.as_deref(),
        opts.reports_dir.as_deref(),
    );
    let (first, last) = selection(opts)?;
    if first == 0 && !paths.data_dir.is_dir() {
        bail!("data folder {} does not exist", paths.data_dir.display());
    }
    // The demo key only for simulated data; then one run at a time per OUT (held to the end).
    let pseudonymizer = Pseudonymizer::for_study(config, &paths.data_dir, first == 0)?;
    let _lock = crate::lock::lock_out_dir(&paths.out_dir, opts.wait, opts.quiet)?;
    let log = Log::new(opts.quiet, opts.verbose, opts.progress);
    let run_started = Instant::now();
    let mut manifest = start_manifest(config, opts, &paths, &pseudonymizer, (first, last), &log)?;
    let memo = if opts.no_cache {
        Memo::disabled()
    } else {
        Memo::new(&paths.out_dir, !opts.force)
    };
    warn_stale_before(config, &manifest, first, &log);
    let mut report = RunReport {
        out_dir: paths.out_dir.clone(),
        reports_dir: paths.reports_dir.clone(),
        stages: vec![],
        skipped: vec![],
        manifest: manifest.clone(),
    };
    let cx = RunCx {
        config,
        opts,
        paths: &paths,
        pseudonymizer: &pseudonymizer,
        memo: &memo,
        log: &log,
    };
    for stage in &STAGES[first..=last] {
        match run_or_skip(stage, &cx, &mut manifest)? {
            Some((summary, seconds)) => {
                report
                    .stages
                    .push((stage.name.to_string(), summary, seconds))
            }
            None => report.skipped.push(stage.name.to_string()),
        }
    }
    manifest.status = RunStatus::Complete;
    manifest.finished = Some(now_utc());
    manifest.seconds = Some(run_started.elapsed().as_secs_f64());
    manifest.save(&paths.out_dir)?;
    report.manifest = manifest;
    Ok(report)
}

/// The manifest of a new run, saved before any stage runs: the previous run's stage records
/// (those of the stages this run skips stay valid) and seeds, the selection, and the records of
/// the config, the key and the simulated study's seed.
fn start_manifest(
    config: &Config,
    opts: &RunOptions,
    paths: &StudyPaths,
    pseudonymizer: &Pseudonymizer,
    (first, last): (usize, usize),
    log: &Log,
) -> Result<Manifest> {
    let previous = match Manifest::load_from_out(&paths.out_dir) {
        Ok(m) => m,
        Err(e) => {
            if !log.is_quiet() {
                crate::say!(
                    "[relcap] the previous manifest cannot be used ({e:#}); every selected stage \
                     runs"
                );
            }
            None
        }
    };
    let started = now_utc();
    let names = stage_names();
    // Seeds: the simulated study's, and those the stages reported (kept for skipped stages).
    let mut seeds: BTreeMap<String, Value> = previous
        .as_ref()
        .map(|m| m.seeds.clone())
        .unwrap_or_default();
    seeds.remove("simulate");
    if let Some(seed) = simulation_seed(&paths.data_dir) {
        seeds.insert("simulate".to_string(), seed);
    }
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        run_id: manifest::new_run_id(&started),
        status: RunStatus::Running,
        started,
        finished: None,
        seconds: None,
        command: std::env::args().collect(),
        relcap_version: RELCAP_VERSION.to_string(),
        cargo_lock_blake3: cargo_lock_hash(),
        config: config_record(config, opts.config_path.as_deref())?,
        data_dir: paths.data_dir.display().to_string(),
        out_dir: paths.out_dir.display().to_string(),
        reports_dir: paths.reports_dir.display().to_string(),
        pseudonym_key: key_record(pseudonymizer),
        seeds,
        selected: names[first..=last].iter().map(|s| s.to_string()).collect(),
        ran: vec![],
        skipped: vec![],
        stages: previous
            .map(|m| m.stages)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| names.contains(&e.name.as_str()))
            .collect(),
    };
    // A manifest write killed half-way leaves its temporary file beside the manifest.
    remove_temp_files(&paths.out_dir, false)?;
    manifest.save(&paths.out_dir)?;
    Ok(manifest)
}

/// The basis and fingerprint of `stage`, and why it must run (empty when it is up to date).
/// A stage it reads that has no complete output fails the run.
fn stale_reasons(
    stage: &Stage,
    cx: &RunCx,
    manifest: &mut Manifest,
) -> Result<(Basis, String, Vec<Reason>)> {
    let key_id = Some(cx.pseudonymizer.key_id());
    let b = match basis(stage, cx.config, cx.paths, key_id, manifest, cx.log)? {
        Ok(b) => b,
        Err(missing) => {
            fail_run(manifest, cx.paths);
            bail!(
                "stage {} reads stage {}, which has no complete output in {}: run it first \
                 (without --from/--only)",
                stage.name,
                missing.join(", "),
                cx.paths.out_dir.display()
            );
        }
    };
    let fp = fingerprint(stage, &b);
    let reasons = if cx.opts.force {
        vec![Reason::Forced]
    } else {
        let entry = manifest.stage(stage.name);
        let mut r = explain(stage, entry, &b, &fp);
        if let (true, Some(e)) = (r.is_empty(), entry) {
            r = check_outputs(e, cx.paths)?;
        }
        r
    };
    Ok((b, fp, reasons))
}

/// One selected stage: skipped when up to date (None), else run with its fingerprint in its
/// context; then the store pruned, freed memory handed back, its seeds recorded.
fn run_or_skip(
    stage: &Stage,
    cx: &RunCx,
    manifest: &mut Manifest,
) -> Result<Option<(StageSummary, f64)>> {
    let (b, fp, reasons) = stale_reasons(stage, cx, manifest)?;
    if reasons.is_empty() {
        cx.log.line(stage.name, "up to date, skipped");
        manifest.skipped.push(stage.name.to_string());
        return Ok(None);
    }
    cx.log.reasons(stage.name, &reasons);
    cx.memo.reset_stats();
    let ctx = StageContext {
        config: cx.config,
        data_dir: cx.paths.data_dir.clone(),
        out_dir: cx.paths.out_dir.clone(),
        reports_dir: cx.paths.reports_dir.clone(),
        pseudonymizer: cx.pseudonymizer,
        progress: cx.log.progress(),
        memo: cx.memo,
        fingerprint: Some(fp.clone()),
        store: None,
    };
    let (summary, seconds) = match run_stage(stage, &ctx, cx.paths, manifest, b, &fp, cx.log) {
        Ok(x) => x,
        Err(e) => {
            fail_run(manifest, cx.paths);
            return Err(e);
        }
    };
    let reuse = cx.memo.stats();
    if reuse.hits + reuse.misses > 0 {
        cx.log.line(
            stage.name,
            format!(
                "reused {} results of the previous run, computed {}",
                reuse.hits, reuse.misses
            ),
        );
    }
    cx.memo.prune(stage.name)?;
    alloc::release_freed_memory();
    let prefix = format!("{}.", stage.name);
    manifest.seeds.retain(|k, _| !k.starts_with(&prefix));
    for (k, v) in &summary.facts {
        if k == "seed" || k.ends_with("_seed") || k.ends_with(".seed") {
            manifest
                .seeds
                .insert(format!("{}.{k}", stage.name), v.clone());
        }
    }
    manifest.ran.push(stage.name.to_string());
    cx.log.stage_done(stage.name, &summary, seconds);
    Ok(Some((summary, seconds)))
}

/// Says so when a stage before the selection (`--from`, `--only`) has settings or a version
/// other than those its outputs were made with: the selected stages then read outdated files.
/// Only what costs nothing to check is checked (no input is hashed); `relcap status` tells all.
fn warn_stale_before(config: &Config, manifest: &Manifest, first: usize, log: &Log) {
    for stage in &STAGES[..first] {
        let Some(e) = manifest.stage(stage.name) else {
            continue;
        };
        let changes = json_changes(&e.config, &config.section_for_stage(stage.name));
        let what = if e.status != StageStatus::Complete {
            Some("did not complete".to_string())
        } else if e.version != stage.version {
            Some(format!("version {} → {}", e.version, stage.version))
        } else {
            changes.first().map(|c| {
                format!(
                    "config {}: {} → {}",
                    c.key,
                    compact(&c.old),
                    compact(&c.new)
                )
            })
        };
        if let Some(what) = what {
            log.line(
                stage.name,
                format!(
                    "is stale ({what}) but not selected: later stages read its old outputs \
                     (relcap status tells all)"
                ),
            );
        }
    }
}

/// Records a failed run in the manifest (best effort: the run's own error is what matters).
fn fail_run(manifest: &mut Manifest, paths: &StudyPaths) {
    manifest.status = RunStatus::Failed;
    manifest.finished = Some(now_utc());
    let _ = manifest.save(&paths.out_dir);
}

/// Runs one stage: clears its old outputs, records it as running, runs it (its fingerprint in
/// `ctx`, for the Parquet footers), writes `summary.json`, records its outputs.
fn run_stage(
    stage: &Stage,
    ctx: &StageContext,
    paths: &StudyPaths,
    manifest: &mut Manifest,
    b: Basis,
    fp: &str,
    log: &Log,
) -> Result<(StageSummary, f64)> {
    let names = stage_names();
    remove_previous_outputs(stage, manifest.stage(stage.name), paths)?;
    let before = if stage.writes_reports {
        snapshot(&paths.reports_dir)?
    } else {
        BTreeMap::new()
    };
    let mut entry = b.into_entry(stage, fp, &manifest.run_id);
    manifest.set_stage(entry.clone(), &names);
    manifest.save(&paths.out_dir)?;

    let t0 = Instant::now();
    let spinner = log.spinner(stage.name);
    let result = (stage.run)(ctx);
    spinner.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    let finish = (|| -> Result<(StageSummary, Vec<OutputRecord>)> {
        let summary = result.with_context(|| format!("stage {} failed", stage.name))?;
        let file = SummaryFile {
            stage: stage.name,
            stage_version: stage.version,
            relcap_version: RELCAP_VERSION,
            fingerprint: fp,
            summary: &summary,
        };
        let summary_file = ctx.stage_dir(stage.name).join("summary.json");
        io::write_json(&file, &summary_file)?;
        let mut outputs = scan_outputs(&paths.out_dir, stage.name, Root::Out, None)?;
        if stage.writes_reports {
            // The report folder may be the stage's own (`OUT/report/`, the default): each file
            // is recorded once, the summary and the stage's tables (its declared outputs)
            // under OUT and the report files as reports.
            let stage_dir = ctx.stage_dir(stage.name);
            let of_stage = |file: &Path| {
                *file == summary_file || summary.outputs.iter().any(|p| stage_dir.join(p) == file)
            };
            outputs.retain(|o| {
                let file = paths.out_dir.join(&o.path);
                of_stage(&file) || !file.starts_with(&paths.reports_dir)
            });
            let reports = scan_outputs(&paths.reports_dir, "", Root::Reports, Some(&before))?;
            outputs.extend(
                reports
                    .into_iter()
                    .filter(|o| !of_stage(&paths.reports_dir.join(&o.path))),
            );
        }
        Ok((summary, outputs))
    })();
    entry.finished = Some(now_utc());
    entry.seconds = Some(seconds);
    match finish {
        Ok((summary, outputs)) => {
            entry.status = StageStatus::Complete;
            entry.outputs = outputs;
            entry.rows_in = summary.tables.values().map(|t| t.rows_in).sum();
            entry.rows_out = summary.tables.values().map(|t| t.rows_out).sum();
            entry.quarantined = summary
                .tables
                .values()
                .flat_map(|t| t.quarantined.values())
                .sum();
            entry.tables = serde_json::to_value(&summary.tables)?;
            entry.warnings = summary.warnings.clone();
            manifest.set_stage(entry, &names);
            manifest.save(&paths.out_dir)?;
            Ok((summary, seconds))
        }
        Err(e) => {
            entry.status = StageStatus::Failed;
            manifest.set_stage(entry, &names);
            let _ = manifest.save(&paths.out_dir);
            Err(e)
        }
    }
}

fn selection(opts: &RunOptions) -> Result<(usize, usize)> {
    if let Some(only) = &opts.only {
        if opts.from.is_some() || opts.until.is_some() {
            bail!("--only cannot be combined with --from or --until");
        }
        let i = stage_index(only)?;
        return Ok((i, i));
    }
    let first = opts
        .from
        .as_deref()
        .map(stage_index)
        .transpose()?
        .unwrap_or(0);
    let last = opts
        .until
        .as_deref()
        .map(stage_index)
        .transpose()?
        .unwrap_or(STAGES.len() - 1);
    if first > last {
        bail!(
            "--from {} comes after --until {}",
            STAGES[first].name,
            STAGES[last].name
        );
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_overrides_first() {
        let cfg = Config::from_toml(
            "[study]\nname = \"s\"\ndata_dir = \"d\"\nout_dir = \"o\"\nreports_dir = \"r\"\n",
        )
        .unwrap();
        let p = StudyPaths::resolve(&cfg, None, Some(Path::new("/x")), None);
        assert_eq!(p.data_dir, PathBuf::from("d"));
        assert_eq!(p.out_dir, PathBuf::from("/x"));
        // A run given another output folder never writes into the config's reports folder.
        assert_eq!(p.reports_dir, PathBuf::from("/x/report"));
        let p = StudyPaths::resolve(&cfg, None, None, None);
        assert_eq!(p.reports_dir, PathBuf::from("r/s"));
        let p = StudyPaths::resolve(&cfg, None, Some(Path::new("/x")), Some(Path::new("/y")));
        assert_eq!(p.reports_dir, PathBuf::from("/y"));
        // Without study.reports_dir, the report sits beside the stage outputs.
        let cfg = Config::default();
        let p = StudyPaths::resolve(&cfg, None, None, None);
        assert_eq!(p.reports_dir, PathBuf::from("out/report"));
    }
}
