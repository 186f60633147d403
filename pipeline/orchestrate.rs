//! Orchestration of a study run: the declared list of stages, their order, what each reads, the
//! fingerprint that decides whether a stage must run again, the run manifest, `summary.json`,
//! `relcap status`, and the log on stderr. The stages themselves know nothing of each other or
//! of this module; everything cross-cutting lives here.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, TABLES};
use crate::io;
use crate::manifest::{
    self, cargo_lock_hash, hash_json, json_changes, now_utc, ConfigRecord, InputRecord, KeyRecord,
    Manifest, OutputRecord, Root, RunStatus, StageEntry, StageStatus, MANIFEST_FILE,
    MANIFEST_VERSION, RELCAP_VERSION,
};
use crate::memo::Memo;
use crate::pseudonym::{KeySource, Pseudonymizer};
use crate::stages::{self, StageContext, StageSummary};

/// What a stage reads, besides its config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The canonical tables in the data folder, located as ingest locates them.
    Sources,
    /// Every file an earlier stage wrote under `OUT/<stage>/`.
    Stage(&'static str),
}

/// A stage: its name (= module = output folder = manifest key), a version bumped whenever its
/// outputs change meaning, what it reads, whether it writes into the reports folder, and its
/// entry point.
pub struct Stage {
    pub name: &'static str,
    pub version: u32,
    pub reads: &'static [Input],
    /// Writes files under the reports folder (`reports/<study>/`) as well as `OUT/<stage>/`.
    pub writes_reports: bool,
    pub run: fn(&StageContext) -> Result<StageSummary>,
}

/// The pipeline, in order. `reads` must name only earlier stages (a unit test checks it).
pub const STAGES: &[Stage] = &[
    Stage {
        name: "ingest",
        version: 1,
        reads: &[Input::Sources],
        writes_reports: false,
        run: stages::ingest::run,
    },
    Stage {
        name: "clean",
        version: 1,
        reads: &[Input::Stage("ingest")],
        writes_reports: false,
        run: stages::clean::run,
    },
    Stage {
        name: "score",
        version: 1,
        reads: &[Input::Stage("clean")],
        writes_reports: false,
        run: stages::score::run,
    },
    Stage {
        name: "link",
        version: 1,
        reads: &[Input::Stage("clean"), Input::Stage("score")],
        writes_reports: false,
        run: stages::link::run,
    },
    Stage {
        name: "model",
        version: 1,
        reads: &[Input::Stage("link")],
        writes_reports: false,
        run: stages::model::run,
    },
    Stage {
        name: "report",
        version: 2,
        // Every earlier stage: the sample flow reads each stage's summary.json.
        reads: &[
            Input::Stage("ingest"),
            Input::Stage("clean"),
            Input::Stage("score"),
            Input::Stage("link"),
            Input::Stage("model"),
        ],
        writes_reports: true,
        run: stages::report::run,
    },
];

fn stage_names() -> Vec<&'static str> {
    STAGES.iter().map(|s| s.name).collect()
}

pub fn stage_index(name: &str) -> Result<usize> {
    STAGES.iter().position(|s| s.name == name).with_context(|| {
        format!(
            "unknown stage {name:?}; stages are {}",
            stage_names().join(", ")
        )
    })
}

/// The folders of a study run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyPaths {
    /// The canonical input tables.
    pub data_dir: PathBuf,
    /// Stage outputs and the manifest.
    pub out_dir: PathBuf,
    /// Reports (`reports/<study>/`).
    pub reports_dir: PathBuf,
}

impl StudyPaths {
    /// The config's folders, each replaced by the override when there is one.
    pub fn resolve(
        config: &Config,
        data: Option<&Path>,
        out: Option<&Path>,
        reports: Option<&Path>,
    ) -> StudyPaths {
        StudyPaths {
            data_dir: data
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config.study.data_dir.clone()),
            out_dir: out
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config.study.out_dir.clone()),
            reports_dir: reports
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config.study.reports_dir.join(&config.study.name)),
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
    /// The stages that ran: name, summary, wall time in seconds.
    pub stages: Vec<(String, StageSummary, f64)>,
    /// The selected stages found up to date.
    pub skipped: Vec<String>,
    /// The manifest as written at the end of the run.
    pub manifest: Manifest,
}

/// Why a stage is stale (must run), as `relcap status` and the run log tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No record of the stage in the manifest.
    NeverRun,
    /// The run that started it was killed or crashed before it finished.
    Interrupted {
        run_id: String,
    },
    /// It failed in its last run.
    Failed {
        run_id: String,
    },
    /// `--force`.
    Forced,
    StageVersion {
        old: u32,
        new: u32,
    },
    RelcapVersion {
        old: String,
        new: String,
    },
    /// A key of the config section the stage reads changed (null = absent).
    Config {
        key: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    /// An input file changed, appeared or disappeared.
    Input {
        name: String,
        old_file: Option<String>,
        new_file: Option<String>,
        old_blake3: Option<String>,
        new_blake3: Option<String>,
    },
    /// The pseudonymisation key is another one (ids only; None = no key available now).
    PseudonymKey {
        old: Option<String>,
        new: Option<String>,
    },
    /// A stage it reads ran again since (its fingerprint changed).
    UpstreamChanged {
        stage: String,
    },
    /// A stage it reads is stale itself, so this one will run after it.
    UpstreamStale {
        stage: String,
    },
    /// A stage it reads has no complete record.
    UpstreamMissing {
        stage: String,
    },
    OutputMissing {
        path: String,
    },
    OutputModified {
        path: String,
    },
    /// The fingerprint differs for a reason none of the above names (e.g. a new fingerprint
    /// format).
    Fingerprint {
        old: String,
        new: String,
    },
}

fn short(h: &Option<String>) -> String {
    match h {
        Some(h) => h.chars().take(12).collect(),
        None => "absent".to_string(),
    }
}

fn compact(v: &Option<Value>) -> String {
    match v {
        Some(v) => manifest::canonical_json(v),
        None => "(absent)".to_string(),
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverRun => write!(f, "never run"),
            Reason::Interrupted { run_id } => write!(f, "interrupted in run {run_id}"),
            Reason::Failed { run_id } => write!(f, "failed in run {run_id}"),
            Reason::Forced => write!(f, "--force"),
            Reason::StageVersion { old, new } => write!(f, "stage version {old} → {new}"),
            Reason::RelcapVersion { old, new } => write!(f, "relcap version {old} → {new}"),
            Reason::Config { key, old, new } => {
                write!(f, "config {key}: {} → {}", compact(old), compact(new))
            }
            Reason::Input {
                name,
                old_file,
                new_file,
                old_blake3,
                new_blake3,
            } => {
                if old_file != new_file {
                    write!(
                        f,
                        "input {name}: file {} → {}",
                        old_file.as_deref().unwrap_or("(absent)"),
                        new_file.as_deref().unwrap_or("(absent)")
                    )
                } else {
                    write!(
                        f,
                        "input {name} changed (blake3 {} → {})",
                        short(old_blake3),
                        short(new_blake3)
                    )
                }
            }
            Reason::PseudonymKey { old, new } => write!(
                f,
                "pseudonymisation key id {} → {}",
                old.as_deref().unwrap_or("(none)"),
                new.as_deref().unwrap_or("(no key available)")
            ),
            Reason::UpstreamChanged { stage } => write!(f, "stage {stage} ran again since"),
            Reason::UpstreamStale { stage } => write!(f, "stage {stage} is stale"),
            Reason::UpstreamMissing { stage } => write!(f, "stage {stage} has not run"),
            Reason::OutputMissing { path } => write!(f, "output {path} is missing"),
            Reason::OutputModified { path } => {
                write!(f, "output {path} was modified after the run")
            }
            Reason::Fingerprint { old, new } => write!(
                f,
                "fingerprint {} → {}",
                short(&Some(old.clone())),
                short(&Some(new.clone()))
            ),
        }
    }
}

/// What a stage's fingerprint is made of, besides its name and version.
#[derive(Debug, Clone)]
struct Basis {
    config: Value,
    key_id: Option<String>,
    inputs: Vec<InputRecord>,
    upstream: BTreeMap<String, String>,
}

/// Format of the fingerprint's input; bumped if what goes into it changes.
const FINGERPRINT_FORMAT: u32 = 1;

fn fingerprint(stage: &Stage, b: &Basis) -> String {
    let inputs: Vec<Value> = b
        .inputs
        .iter()
        .map(|i| json!([i.name, i.file, i.blake3]))
        .collect();
    hash_json(&json!({
        "fingerprint_format": FINGERPRINT_FORMAT,
        "stage": stage.name,
        "stage_version": stage.version,
        "relcap_version": RELCAP_VERSION,
        "config": b.config,
        "pseudonym_key_id": b.key_id,
        "inputs": inputs,
        "upstream": b.upstream,
    }))
}

/// The stage's basis, with the files of the stages it reads taken from `manifest`. Err lists
/// the stages it reads that have no complete record.
fn basis(
    stage: &Stage,
    config: &Config,
    paths: &StudyPaths,
    key_id: Option<&str>,
    manifest: &Manifest,
    log: &Log,
) -> Result<std::result::Result<Basis, Vec<String>>> {
    let mut b = Basis {
        config: config.section_for_stage(stage.name),
        key_id: None,
        inputs: vec![],
        upstream: BTreeMap::new(),
    };
    let mut missing = vec![];
    for input in stage.reads {
        match input {
            Input::Sources => {
                b.key_id = key_id.map(str::to_string);
                b.inputs
                    .extend(source_inputs(config, &paths.data_dir, log)?);
            }
            Input::Stage(s) => match manifest.stage(s) {
                Some(e) if e.status == StageStatus::Complete => {
                    b.upstream.insert(s.to_string(), e.fingerprint.clone());
                    b.inputs
                        .extend(e.outputs.iter().filter(|o| o.root == Root::Out).map(|o| {
                            InputRecord {
                                name: o.path.clone(),
                                file: Some(o.path.clone()),
                                blake3: Some(o.blake3.clone()),
                                bytes: Some(o.bytes),
                            }
                        }));
                }
                Some(_) => missing.push(s.to_string()),
                // Files no run recorded (written by hand, or by a relcap without manifests):
                // used as they are, their content hashes in the fingerprint.
                None => {
                    let found = scan_outputs(&paths.out_dir, s, Root::Out, None)?;
                    if found.is_empty() {
                        missing.push(s.to_string());
                        continue;
                    }
                    log.line(
                        stage.name,
                        format!(
                            "reads the files in {}, which no run recorded: used as they are",
                            paths.out_dir.join(s).display()
                        ),
                    );
                    b.inputs.extend(found.into_iter().map(|o| InputRecord {
                        name: o.path.clone(),
                        file: Some(o.path),
                        blake3: Some(o.blake3),
                        bytes: Some(o.bytes),
                    }));
                }
            },
        }
    }
    Ok(if missing.is_empty() {
        Ok(b)
    } else {
        Err(missing)
    })
}

/// The canonical tables as ingest finds them: per table its file (relative to the data folder)
/// and content hash, or nothing for an absent (optional) table.
fn source_inputs(config: &Config, data_dir: &Path, log: &Log) -> Result<Vec<InputRecord>> {
    let mut found = vec![];
    for table in TABLES {
        let spec = config
            .sources
            .get(table)
            .with_context(|| format!("no source spec for table {table}"))?;
        for (i, stem) in spec.files().into_iter().enumerate() {
            // Further files of one table (`more_files`) are named `<table>#2`, `<table>#3`, ...
            let name = if i == 0 {
                table.to_string()
            } else {
                format!("{table}#{}", i + 1)
            };
            found.push((name, io::find_table(data_dir, stem)));
        }
    }
    let total: u64 = found
        .iter()
        .filter_map(|(_, p)| p.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = log.bytes_bar(total, "hashing inputs");
    let mut out = vec![];
    for (table, path) in found {
        out.push(match path {
            Some(p) => {
                let (h, n) = io::hash_file_with(&p, |k| bar.inc(k))?;
                InputRecord {
                    name: table.clone(),
                    file: Some(relative_name(data_dir, &p)),
                    blake3: Some(h),
                    bytes: Some(n),
                }
            }
            None => InputRecord {
                name: table.clone(),
                file: None,
                blake3: None,
                bytes: None,
            },
        });
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The canonical tables' files and hashes as ingest would read them now.
pub fn input_tables(config: &Config, data_dir: &Path) -> Result<Vec<InputRecord>> {
    let quiet = Log {
        quiet: true,
        verbose: false,
        progress: false,
    };
    source_inputs(config, data_dir, &quiet)
}

/// `path` relative to `root` with `/` separators, or the whole path when it is elsewhere.
fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Why `entry` does not match the present basis (empty when the fingerprints agree).
fn explain(stage: &Stage, entry: Option<&StageEntry>, b: &Basis, fp: &str) -> Vec<Reason> {
    let Some(e) = entry else {
        return vec![Reason::NeverRun];
    };
    match e.status {
        StageStatus::Running => {
            return vec![Reason::Interrupted {
                run_id: e.run_id.clone(),
            }]
        }
        StageStatus::Failed => {
            return vec![Reason::Failed {
                run_id: e.run_id.clone(),
            }]
        }
        StageStatus::Complete => {}
    }
    if e.fingerprint == fp {
        return vec![];
    }
    let mut r = vec![];
    if e.version != stage.version {
        r.push(Reason::StageVersion {
            old: e.version,
            new: stage.version,
        });
    }
    if e.relcap_version != RELCAP_VERSION {
        r.push(Reason::RelcapVersion {
            old: e.relcap_version.clone(),
            new: RELCAP_VERSION.to_string(),
        });
    }
    for c in json_changes(&e.config, &b.config) {
        r.push(Reason::Config {
            key: c.key,
            old: c.old,
            new: c.new,
        });
    }
    if e.pseudonym_key_id != b.key_id {
        r.push(Reason::PseudonymKey {
            old: e.pseudonym_key_id.clone(),
            new: b.key_id.clone(),
        });
    }
    // An upstream stage that ran again changes its files too; name the stage, not each file.
    let rerun: Vec<&String> = b
        .upstream
        .iter()
        .filter(|(s, fp)| e.upstream.get(*s) != Some(*fp))
        .map(|(s, _)| s)
        .collect();
    let of_rerun = |name: &str| rerun.iter().any(|s| name.starts_with(&format!("{s}/")));
    let old: BTreeMap<&str, &InputRecord> = e.inputs.iter().map(|i| (i.name.as_str(), i)).collect();
    let new: BTreeMap<&str, &InputRecord> = b.inputs.iter().map(|i| (i.name.as_str(), i)).collect();
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    for name in names {
        if of_rerun(name) {
            continue;
        }
        let (o, n) = (old.get(name), new.get(name));
        let file = |x: Option<&&InputRecord>| x.and_then(|i| i.file.clone());
        let hash = |x: Option<&&InputRecord>| x.and_then(|i| i.blake3.clone());
        if file(o) != file(n) || hash(o) != hash(n) {
            r.push(Reason::Input {
                name: name.to_string(),
                old_file: file(o),
                new_file: file(n),
                old_blake3: hash(o),
                new_blake3: hash(n),
            });
        }
    }
    for s in rerun {
        r.push(Reason::UpstreamChanged { stage: s.clone() });
    }
    if r.is_empty() {
        r.push(Reason::Fingerprint {
            old: e.fingerprint.clone(),
            new: fp.to_string(),
        });
    }
    r
}

/// Recorded outputs that are missing or no longer have their recorded hash.
fn check_outputs(e: &StageEntry, paths: &StudyPaths) -> Result<Vec<Reason>> {
    let mut r = vec![];
    for o in &e.outputs {
        let p = manifest::output_path(&paths.out_dir, &paths.reports_dir, o);
        let shown = display_output(o);
        if !p.is_file() {
            r.push(Reason::OutputMissing { path: shown });
        } else if io::hash_file(&p)? != o.blake3 {
            r.push(Reason::OutputModified { path: shown });
        }
    }
    Ok(r)
}

/// An output as shown to people: its path under OUT, or `reports:` and its path there.
pub fn display_output(o: &OutputRecord) -> String {
    match o.root {
        Root::Out => o.path.clone(),
        Root::Reports => format!("reports:{}", o.path),
    }
}

/// The log on stderr and the progress bars.
struct Log {
    quiet: bool,
    verbose: bool,
    progress: bool,
}

impl Log {
    fn line(&self, stage: &str, msg: impl fmt::Display) {
        if !self.quiet {
            eprintln!("[relcap] {stage:<7} {msg}");
        }
    }

    /// A byte-count bar, shown only with progress on and for inputs worth waiting for.
    fn bytes_bar(&self, total: u64, what: &str) -> ProgressBar {
        if !self.progress || self.quiet || total < 64 << 20 {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "[relcap] {msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar
    }

    /// A spinner with the elapsed time while a stage runs (stages draw their own bars instead
    /// when they have them: `StageContext::progress_bar`).
    fn spinner(&self, stage: &str) -> ProgressBar {
        if !self.progress || self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("[relcap] {prefix:<7} {spinner} {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn stage_done(&self, name: &str, s: &StageSummary, seconds: f64) {
        if self.quiet {
            return;
        }
        let rows_in: u64 = s.tables.values().map(|t| t.rows_in).sum();
        let rows_out: u64 = s.tables.values().map(|t| t.rows_out).sum();
        let quarantined: u64 = s.tables.values().flat_map(|t| t.quarantined.values()).sum();
        self.line(
            name,
            format!(
                "done in {seconds:.2}s: {rows_in} rows in, {rows_out} out, {quarantined} quarantined"
            ),
        );
        for w in &s.warnings {
            self.line(name, format!("warning: {w}"));
        }
        if self.verbose {
            for (t, c) in &s.tables {
                self.line(
                    name,
                    format!(
                        "{t}: in {} out {} quarantined {:?} duplicates {} excluded {:?}",
                        c.rows_in, c.rows_out, c.quarantined, c.duplicates_collapsed, c.excluded
                    ),
                );
            }
        }
    }

    fn reasons(&self, name: &str, reasons: &[Reason]) {
        if self.quiet || reasons.is_empty() {
            return;
        }
        if self.verbose || reasons.len() == 1 {
            self.line(name, format!("running: {}", reasons[0]));
            for r in &reasons[1..] {
                self.line(name, format!("         {r}"));
            }
        } else {
            self.line(
                name,
                format!(
                    "running: {} (and {} more; -v lists them)",
                    reasons[0],
                    reasons.len() - 1
                ),
            );
        }
    }
}

/// The key id, and whether the key came from the environment or the demo key.
fn key_record(p: &Pseudonymizer) -> KeyRecord {
    KeyRecord {
        id: p.key_id().to_string(),
        source: match p.source() {
            KeySource::Environment => "environment",
            KeySource::DemoKey => "demo_key",
        }
        .to_string(),
    }
}

fn config_record(config: &Config, path: Option<&Path>) -> Result<ConfigRecord> {
    let resolved = serde_json::to_value(config)?;
    let (path_s, blake3, text) = match path {
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read config {}", p.display()))?;
            let shown = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            (
                Some(shown.display().to_string()),
                Some(blake3::hash(&bytes).to_hex().to_string()),
                Some(String::from_utf8_lossy(&bytes).into_owned()),
            )
        }
        None => (None, None, None),
    };
    Ok(ConfigRecord {
        path: path_s,
        blake3,
        text,
        resolved_blake3: hash_json(&resolved),
        resolved,
    })
}

/// The seed of a simulated study (its `truth.json`), if the data folder holds one.
fn simulation_seed(data_dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(data_dir.join("truth.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("seed")
        .or_else(|| v.get("params").and_then(|p| p.get("seed")))
        .cloned()
}

/// Runs the selected stages in order, skipping those that are up to date, and keeps
/// `OUT/manifest.json` current after every stage.
pub fn run(config: &Config, opts: &RunOptions) -> Result<RunReport> {
    configure_allocator();
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
    let log = Log {
        quiet: opts.quiet,
        verbose: opts.verbose,
        progress: opts.progress && !opts.quiet,
    };
    let previous = match Manifest::load_from_out(&paths.out_dir) {
        Ok(m) => m,
        Err(e) => {
            if !log.quiet {
                eprintln!(
                    "[relcap] the previous manifest cannot be used ({e:#}); every selected stage \
                     runs"
                );
            }
            None
        }
    };
    let run_started = Instant::now();
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
    let mut manifest = Manifest {
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
        pseudonym_key: key_record(&pseudonymizer),
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
    remove_temp_files_in(&paths.out_dir)?;
    manifest.save(&paths.out_dir)?;
    let memo = if opts.no_cache {
        Memo::disabled()
    } else {
        Memo::new(&paths.out_dir, !opts.force)
    };
    let ctx = StageContext {
        config,
        data_dir: paths.data_dir.clone(),
        out_dir: paths.out_dir.clone(),
        reports_dir: paths.reports_dir.clone(),
        pseudonymizer: &pseudonymizer,
        progress: log.progress,
        memo: &memo,
    };
    warn_stale_before(config, &manifest, first, &log);
    let mut report = RunReport {
        out_dir: paths.out_dir.clone(),
        stages: vec![],
        skipped: vec![],
        manifest: manifest.clone(),
    };
    for stage in &STAGES[first..=last] {
        let b = match basis(
            stage,
            config,
            &paths,
            Some(pseudonymizer.key_id()),
            &manifest,
            &log,
        )? {
            Ok(b) => b,
            Err(missing) => {
                fail_run(&mut manifest, &paths);
                bail!(
                    "stage {} reads stage {}, which has no complete output in {}: run it first \
                     (without --from/--only)",
                    stage.name,
                    missing.join(", "),
                    paths.out_dir.display()
                );
            }
        };
        let fp = fingerprint(stage, &b);
        let reasons = if opts.force {
            vec![Reason::Forced]
        } else {
            let entry = manifest.stage(stage.name);
            let mut r = explain(stage, entry, &b, &fp);
            if let (true, Some(e)) = (r.is_empty(), entry) {
                r = check_outputs(e, &paths)?;
            }
            r
        };
        if reasons.is_empty() {
            log.line(stage.name, "up to date, skipped");
            manifest.skipped.push(stage.name.to_string());
            report.skipped.push(stage.name.to_string());
            continue;
        }
        log.reasons(stage.name, &reasons);
        memo.reset_stats();
        let (summary, seconds) = match run_stage(stage, &ctx, &paths, &mut manifest, b, &fp, &log) {
            Ok(x) => x,
            Err(e) => {
                fail_run(&mut manifest, &paths);
                return Err(e);
            }
        };
        let reuse = memo.stats();
        if reuse.hits + reuse.misses > 0 {
            log.line(
                stage.name,
                format!(
                    "reused {} results of the previous run, computed {}",
                    reuse.hits, reuse.misses
                ),
            );
        }
        memo.prune(stage.name)?;
        release_freed_memory();
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
        log.stage_done(stage.name, &summary, seconds);
        report
            .stages
            .push((stage.name.to_string(), summary, seconds));
    }
    manifest.status = RunStatus::Complete;
    manifest.finished = Some(now_utc());
    manifest.seconds = Some(run_started.elapsed().as_secs_f64());
    manifest.save(&paths.out_dir)?;
    report.manifest = manifest;
    Ok(report)
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

/// The process allocates with mimalloc (`main.rs`). glibc's allocator, which the C libraries
/// still use, keeps its mmap threshold fixed at 4 MiB: a block that large is then always mapped
/// on its own and unmapped when freed, instead of raising the threshold and keeping freed
/// large blocks in its arenas.
fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; it is called before the stages
    // allocate their tables and touches no allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Hands the memory a finished stage freed back to the operating system, so that in one
/// process the next stage's peak does not come on top of what the previous stages freed.
fn release_freed_memory() {
    // SAFETY: mi_collect only frees mimalloc's unused pages and touches no live allocation.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system; it
    // touches no live allocation and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs one stage: clears its old outputs, records it as running, runs it with its
/// fingerprint set for the Parquet footers, writes `summary.json`, records its outputs.
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
    let mut entry = StageEntry {
        name: stage.name.to_string(),
        version: stage.version,
        status: StageStatus::Running,
        fingerprint: fp.to_string(),
        run_id: manifest.run_id.clone(),
        started: now_utc(),
        finished: None,
        seconds: None,
        relcap_version: RELCAP_VERSION.to_string(),
        config: b.config,
        pseudonym_key_id: b.key_id,
        inputs: b.inputs,
        upstream: b.upstream,
        outputs: vec![],
        rows_in: 0,
        rows_out: 0,
        quarantined: 0,
        tables: Value::Null,
        warnings: vec![],
    };
    manifest.set_stage(entry.clone(), &names);
    manifest.save(&paths.out_dir)?;

    let t0 = Instant::now();
    let spinner = log.spinner(stage.name);
    let result = io::with_stage_fingerprint(stage.name, fp, || (stage.run)(ctx));
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
        io::write_json(&file, &ctx.stage_dir(stage.name).join("summary.json"))?;
        let mut outputs = scan_outputs(&paths.out_dir, stage.name, Root::Out, None)?;
        if stage.writes_reports {
            outputs.extend(scan_outputs(
                &paths.reports_dir,
                "",
                Root::Reports,
                Some(&before),
            )?);
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

fn is_temp_file(name: &str) -> bool {
    name.starts_with(".relcap-") && name.ends_with(".tmp")
}

/// Every file under `root/sub`, sorted, hashed; temporary files of unfinished writes left out;
/// with `unchanged_since`, only files that are new or changed since that snapshot.
fn scan_outputs(
    root: &Path,
    sub: &str,
    kind: Root,
    unchanged_since: Option<&BTreeMap<PathBuf, Option<SystemTime>>>,
) -> Result<Vec<OutputRecord>> {
    let dir = if sub.is_empty() {
        root.to_path_buf()
    } else {
        root.join(sub)
    };
    let mut files = vec![];
    walk(&dir, &mut files)?;
    files.sort();
    let mut out = vec![];
    for p in files {
        if let Some(before) = unchanged_since {
            let now = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            if before.get(&p) == Some(&now) {
                continue;
            }
        }
        let (blake3, bytes) = io::hash_file_with(&p, |_| {})?;
        out.push(OutputRecord {
            root: kind,
            path: relative_name(root, &p),
            blake3,
            bytes,
        });
    }
    Ok(out)
}

/// Files (recursively) under `dir`, without temporary files; nothing when `dir` is absent.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let p = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if !is_temp_file(&entry.file_name().to_string_lossy()) {
            out.push(p);
        }
    }
    Ok(())
}

/// Modification times of the files under `dir`.
fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Option<SystemTime>>> {
    let mut files = vec![];
    walk(dir, &mut files)?;
    Ok(files
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, t)
        })
        .collect())
}

/// Removes what a stage wrote before: its folder under OUT (with any temporary files a killed
/// run left), and the report files recorded for it.
fn remove_previous_outputs(
    stage: &Stage,
    entry: Option<&StageEntry>,
    paths: &StudyPaths,
) -> Result<()> {
    let dir = paths.out_dir.join(stage.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the old outputs in {}", dir.display()))?;
    }
    if let Some(e) = entry {
        for o in e.outputs.iter().filter(|o| o.root == Root::Reports) {
            let p = manifest::output_path(&paths.out_dir, &paths.reports_dir, o);
            if p.is_file() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove the old report {}", p.display()))?;
            }
        }
    }
    if stage.writes_reports {
        remove_temp_files(&paths.reports_dir)?;
    }
    Ok(())
}

/// Removes temporary files of unfinished writes directly in `dir` (not below it).
fn remove_temp_files_in(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && is_temp_file(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn remove_temp_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_temp_files(&entry.path())?;
        } else if is_temp_file(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
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

/// One stage in `relcap status`.
#[derive(Debug, Clone, Serialize)]
pub struct StageState {
    pub stage: String,
    pub up_to_date: bool,
    /// The fingerprint the stage would have now (None when a stage it reads has not run).
    pub fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    /// The run that produced the recorded outputs.
    pub run_id: Option<String>,
    pub reasons: Vec<Reason>,
}

/// `relcap status`: every stage up to date or stale, with the reasons.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub out_dir: String,
    /// The manifest read, if there is one.
    pub manifest: Option<String>,
    pub run_id: Option<String>,
    pub run_status: Option<RunStatus>,
    pub up_to_date: bool,
    pub stages: Vec<StageState>,
}

/// Compares the present config, inputs, key and outputs with the manifest in OUT.
pub fn status(config: &Config, paths: &StudyPaths) -> Result<StatusReport> {
    let found = Manifest::load_from_out(&paths.out_dir)?;
    let log = Log {
        quiet: true,
        verbose: false,
        progress: false,
    };
    // Without a key the present key id is unknown; ingest is then reported stale.
    let key_id = Pseudonymizer::for_study(config, &paths.data_dir, true)
        .ok()
        .map(|p| p.key_id().to_string());
    let empty = Manifest {
        manifest_version: MANIFEST_VERSION,
        run_id: String::new(),
        status: RunStatus::Complete,
        started: String::new(),
        finished: None,
        seconds: None,
        command: vec![],
        relcap_version: RELCAP_VERSION.to_string(),
        cargo_lock_blake3: String::new(),
        config: config_record(config, None)?,
        data_dir: String::new(),
        out_dir: String::new(),
        reports_dir: String::new(),
        pseudonym_key: KeyRecord {
            id: String::new(),
            source: String::new(),
        },
        seeds: BTreeMap::new(),
        selected: vec![],
        ran: vec![],
        skipped: vec![],
        stages: vec![],
    };
    let m = found.as_ref().unwrap_or(&empty);
    let mut stale: BTreeSet<&str> = BTreeSet::new();
    let mut states = vec![];
    for stage in STAGES {
        let entry = m.stage(stage.name);
        let mut reasons = vec![];
        let mut fp_now = None;
        match basis(stage, config, paths, key_id.as_deref(), m, &log)? {
            Ok(b) => {
                let fp = fingerprint(stage, &b);
                reasons.extend(explain(stage, entry, &b, &fp));
                fp_now = Some(fp);
            }
            Err(missing) => {
                if entry.is_none() {
                    reasons.push(Reason::NeverRun);
                } else {
                    for s in missing {
                        reasons.push(Reason::UpstreamMissing { stage: s });
                    }
                }
            }
        }
        for input in stage.reads {
            if let Input::Stage(s) = input {
                if stale.contains(s)
                    && entry.is_some()
                    && !reasons.contains(&Reason::UpstreamMissing {
                        stage: s.to_string(),
                    })
                {
                    reasons.push(Reason::UpstreamStale {
                        stage: s.to_string(),
                    });
                }
            }
        }
        if let Some(e) = entry.filter(|e| e.status == StageStatus::Complete) {
            reasons.extend(check_outputs(e, paths)?);
        }
        if !reasons.is_empty() {
            stale.insert(stage.name);
        }
        states.push(StageState {
            stage: stage.name.to_string(),
            up_to_date: reasons.is_empty(),
            fingerprint: fp_now,
            recorded_fingerprint: entry.map(|e| e.fingerprint.clone()),
            run_id: entry.map(|e| e.run_id.clone()),
            reasons,
        });
    }
    Ok(StatusReport {
        out_dir: paths.out_dir.display().to_string(),
        manifest: found
            .as_ref()
            .map(|_| paths.out_dir.join(MANIFEST_FILE).display().to_string()),
        run_id: found.as_ref().map(|m| m.run_id.clone()),
        run_status: found.as_ref().map(|m| m.status),
        up_to_date: stale.is_empty(),
        stages: states,
    })
}

impl StatusReport {
    /// The status as a table for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match (&self.manifest, &self.run_id, &self.run_status) {
            (Some(m), Some(id), Some(st)) => s.push_str(&format!(
                "manifest {m} (run {id}, {})\n",
                match st {
                    RunStatus::Running => "running or killed",
                    RunStatus::Complete => "complete",
                    RunStatus::Failed => "failed",
                }
            )),
            _ => s.push_str(&format!(
                "no manifest in {}: nothing has run\n",
                self.out_dir
            )),
        }
        for st in &self.stages {
            let state = if st.up_to_date { "up to date" } else { "STALE" };
            let fp = st
                .recorded_fingerprint
                .as_deref()
                .map(|f| &f[..f.len().min(12)])
                .unwrap_or("-");
            s.push_str(&format!("{:<7} {state:<10} {fp}\n", st.stage));
            for r in &st.reasons {
                s.push_str(&format!("        - {r}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_only_earlier_stages() {
        for (i, s) in STAGES.iter().enumerate() {
            for input in s.reads {
                if let Input::Stage(up) = input {
                    let j = stage_index(up).unwrap();
                    assert!(
                        j < i,
                        "{} reads {up}, which does not come before it",
                        s.name
                    );
                }
            }
        }
        assert!(STAGES[0].reads.contains(&Input::Sources));
    }

    /// The source of stage `name` (its module file and any files of its submodule folder),
    /// without test modules.
    fn stage_source(name: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline/stages");
        let mut files = vec![dir.join(format!("{name}.rs"))];
        if let Ok(rd) = std::fs::read_dir(dir.join(name)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
        let mut text = String::new();
        for f in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        {
            let t = std::fs::read_to_string(&f).unwrap();
            text.push_str(t.split("#[cfg(test)]").next().unwrap_or(""));
        }
        text
    }

    /// Every `"literal"` that follows `prefix` in `text`.
    fn literals_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.match_indices(prefix)
            .filter_map(|(i, _)| {
                let rest = &text[i + prefix.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
            .collect()
    }

    #[test]
    fn stages_read_only_what_they_declare() {
        // A stage reading another stage's files or a config key that its fingerprint does not
        // cover would be skipped when what it reads changed. This reads the stages' source for
        // `table_path("stage", ..)`, `stage_dir("stage")` and `config.section.key`.
        let cfg = Config::from_toml("[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n")
            .unwrap();
        for stage in STAGES {
            let src = stage_source(stage.name);
            let mut read: Vec<&str> = literals_after(&src, "table_path(\"");
            read.extend(literals_after(&src, "stage_dir(\""));
            for r in read {
                let declared = stage
                    .reads
                    .iter()
                    .any(|i| matches!(i, Input::Stage(s) if *s == r));
                assert!(
                    r == stage.name || declared,
                    "stage {} reads stage {r}'s files but does not declare it in STAGES",
                    stage.name
                );
            }
            let section = cfg.section_for_stage(stage.name);
            let keys: Vec<&String> = section.as_object().unwrap().keys().collect();
            for (i, _) in src.match_indices("config.") {
                let path: String = src[i + "config.".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                let mut parts = path.split('.').filter(|p| !p.is_empty());
                let Some(first) = parts.next() else { continue };
                let two = parts.next().map(|p| format!("{first}.{p}"));
                assert!(
                    keys.iter()
                        .any(|k| *k == first || Some(k.as_str()) == two.as_deref()),
                    "stage {} reads config.{path}, which Config::section_for_stage(\"{}\") \
                     does not include, so a change to it would not rerun the stage",
                    stage.name,
                    stage.name
                );
            }
        }
    }

    fn basis_with(config: Value) -> Basis {
        Basis {
            config,
            key_id: None,
            inputs: vec![InputRecord {
                name: "ingest/units.parquet".into(),
                file: Some("ingest/units.parquet".into()),
                blake3: Some("aa".into()),
                bytes: Some(1),
            }],
            upstream: [("ingest".to_string(), "f1".to_string())].into(),
        }
    }

    fn entry_for(stage: &Stage, b: &Basis) -> StageEntry {
        StageEntry {
            name: stage.name.into(),
            version: stage.version,
            status: StageStatus::Complete,
            fingerprint: fingerprint(stage, b),
            run_id: "r1".into(),
            started: String::new(),
            finished: None,
            seconds: None,
            relcap_version: RELCAP_VERSION.into(),
            config: b.config.clone(),
            pseudonym_key_id: b.key_id.clone(),
            inputs: b.inputs.clone(),
            upstream: b.upstream.clone(),
            outputs: vec![],
            rows_in: 0,
            rows_out: 0,
            quarantined: 0,
            tables: Value::Null,
            warnings: vec![],
        }
    }

    #[test]
    fn fingerprint_changes_with_each_part_and_explain_names_it() {
        let stage = &STAGES[1];
        let b = basis_with(json!({"instrument": {"scale_max": 5}}));
        let e = entry_for(stage, &b);
        let fp = fingerprint(stage, &b);
        assert!(explain(stage, Some(&e), &b, &fp).is_empty());
        assert_eq!(explain(stage, None, &b, &fp), vec![Reason::NeverRun]);

        let mut c = b.clone();
        c.config = json!({"instrument": {"scale_max": 7}});
        let fp_c = fingerprint(stage, &c);
        assert_ne!(fp, fp_c);
        assert_eq!(
            explain(stage, Some(&e), &c, &fp_c),
            vec![Reason::Config {
                key: "instrument.scale_max".into(),
                old: Some(json!(5)),
                new: Some(json!(7)),
            }]
        );

        let mut i = b.clone();
        i.inputs[0].blake3 = Some("bb".into());
        let fp_i = fingerprint(stage, &i);
        assert_ne!(fp, fp_i);
        let r = explain(stage, Some(&e), &i, &fp_i);
        assert!(matches!(&r[0], Reason::Input { name, .. } if name == "ingest/units.parquet"));

        let mut u = b.clone();
        u.upstream.insert("ingest".into(), "f2".into());
        let fp_u = fingerprint(stage, &u);
        assert_ne!(fp, fp_u);
        assert_eq!(
            explain(stage, Some(&e), &u, &fp_u),
            vec![Reason::UpstreamChanged {
                stage: "ingest".into()
            }]
        );

        // An upstream that ran again is named once, not file by file.
        let mut both = u.clone();
        both.inputs[0].blake3 = Some("cc".into());
        let fp_both = fingerprint(stage, &both);
        assert_eq!(
            explain(stage, Some(&e), &both, &fp_both),
            vec![Reason::UpstreamChanged {
                stage: "ingest".into()
            }]
        );

        let mut k = b.clone();
        k.key_id = Some("k2".into());
        assert_ne!(fp, fingerprint(stage, &k));

        // Input byte counts are recorded but do not enter the fingerprint.
        let mut n = b.clone();
        n.inputs[0].bytes = Some(99);
        assert_eq!(fp, fingerprint(stage, &n));

        let mut running = e.clone();
        running.status = StageStatus::Running;
        assert_eq!(
            explain(stage, Some(&running), &b, &fp),
            vec![Reason::Interrupted {
                run_id: "r1".into()
            }]
        );
    }

    #[test]
    fn fingerprint_is_a_known_function_of_its_parts() {
        // Pinned: what goes into the fingerprint, written out by hand as the canonical JSON
        // it hashes. A change here changes every Parquet footer, so it must be deliberate (and
        // bump FINGERPRINT_FORMAT).
        let stage = &STAGES[1];
        let b = basis_with(json!({"instrument": {"scale_max": 5}}));
        let text = format!(
            r#"{{"config":{{"instrument":{{"scale_max":5}}}},"fingerprint_format":1,"inputs":[["ingest/units.parquet","ingest/units.parquet","aa"]],"pseudonym_key_id":null,"relcap_version":"{RELCAP_VERSION}","stage":"clean","stage_version":1,"upstream":{{"ingest":"f1"}}}}"#
        );
        assert_eq!(
            fingerprint(stage, &b),
            blake3::hash(text.as_bytes()).to_hex().to_string()
        );
    }

    #[test]
    fn paths_resolve_overrides_first() {
        let cfg = Config::from_toml(
            "[study]\nname = \"s\"\ndata_dir = \"d\"\nout_dir = \"o\"\nreports_dir = \"r\"\n",
        )
        .unwrap();
        let p = StudyPaths::resolve(&cfg, None, Some(Path::new("/x")), None);
        assert_eq!(p.data_dir, PathBuf::from("d"));
        assert_eq!(p.out_dir, PathBuf::from("/x"));
        assert_eq!(p.reports_dir, PathBuf::from("r/s"));
    }

    #[test]
    fn report_outputs_are_the_files_new_or_rewritten_since_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("old.html"), "kept, not ours").unwrap();
        std::fs::write(root.join("again.csv"), "a").unwrap();
        let before = snapshot(root).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        io::write_json(&json!({"x": 1}), &root.join("sub/new.json")).unwrap();
        io::write_atomic(&root.join("again.csv"), |w| {
            std::io::Write::write_all(w, b"a")?;
            Ok(())
        })
        .unwrap();
        std::fs::write(root.join(".relcap-x.tmp"), "partial").unwrap();
        let found = scan_outputs(root, "", Root::Reports, Some(&before)).unwrap();
        let paths: Vec<&str> = found.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["again.csv", "sub/new.json"]);
        assert_eq!(found[0].blake3, blake3::hash(b"a").to_hex().to_string());
        assert_eq!(found[0].bytes, 1);
        let all = scan_outputs(root, "", Root::Out, None).unwrap();
        assert_eq!(all.len(), 3, "temporary files are never outputs");
    }

    #[test]
    fn relative_names_use_slashes() {
        assert_eq!(
            relative_name(Path::new("/a/b"), Path::new("/a/b/c/d.parquet")),
            "c/d.parquet"
        );
        assert!(is_temp_file(".relcap-abc.tmp"));
        assert!(!is_temp_file("x.tmp"));
    }
}
