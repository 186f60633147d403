//! Orchestration of a study run: the declared list of stages, their order, timing, the
//! `summary.json` each stage leaves, and the log on stderr. The stages themselves know nothing
//! of each other or of this module; everything cross-cutting lives here.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::io;
use crate::pseudonym::Pseudonymizer;
use crate::stages::{self, StageContext, StageSummary};

/// A stage: its name (= module = output folder = manifest key), a version bumped whenever its
/// outputs change meaning, and its entry point.
pub struct Stage {
    pub name: &'static str,
    pub version: u32,
    pub run: fn(&StageContext) -> Result<StageSummary>,
}

/// The pipeline, in order.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "ingest",
        version: 1,
        run: stages::ingest::run,
    },
    Stage {
        name: "clean",
        version: 1,
        run: stages::clean::run,
    },
    Stage {
        name: "score",
        version: 1,
        run: stages::score::run,
    },
    Stage {
        name: "link",
        version: 1,
        run: stages::link::run,
    },
    Stage {
        name: "model",
        version: 1,
        run: stages::model::run,
    },
    Stage {
        name: "report",
        version: 1,
        run: stages::report::run,
    },
];

pub fn stage_index(name: &str) -> Result<usize> {
    STAGES.iter().position(|s| s.name == name).with_context(|| {
        let names: Vec<_> = STAGES.iter().map(|s| s.name).collect();
        format!("unknown stage {name:?}; stages are {}", names.join(", "))
    })
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
    pub quiet: bool,
    pub verbose: bool,
    pub progress: bool,
}

/// `summary.json` of one stage: the stage's own counts plus what the orchestrator measured.
#[derive(Debug, Serialize)]
struct SummaryFile<'a> {
    stage: &'a str,
    stage_version: u32,
    relcap_version: &'a str,
    seconds: f64,
    #[serde(flatten)]
    summary: &'a StageSummary,
}

/// The outcome of a run: per stage, its summary and wall time.
#[derive(Debug)]
pub struct RunReport {
    pub out_dir: PathBuf,
    pub stages: Vec<(String, StageSummary, f64)>,
}

/// Runs the selected stages in order.
pub fn run(config: &Config, opts: &RunOptions) -> Result<RunReport> {
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| config.study.data_dir.clone());
    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| config.study.out_dir.clone());
    let reports_dir = opts
        .reports_dir
        .clone()
        .unwrap_or_else(|| config.study.reports_dir.join(&config.study.name));
    if !data_dir.is_dir() {
        bail!("data folder {} does not exist", data_dir.display());
    }
    let pseudonymizer = Pseudonymizer::from_config(&config.privacy)?;
    let (first, last) = selection(opts)?;
    let ctx = StageContext {
        config,
        data_dir,
        out_dir: out_dir.clone(),
        reports_dir,
        pseudonymizer: &pseudonymizer,
        progress: opts.progress && !opts.quiet,
    };
    let mut report = RunReport {
        out_dir,
        stages: vec![],
    };
    for stage in &STAGES[first..=last] {
        let started = Instant::now();
        if !opts.quiet {
            eprintln!("[relcap] {:<7} running", stage.name);
        }
        let summary = (stage.run)(&ctx).with_context(|| format!("stage {} failed", stage.name))?;
        let seconds = started.elapsed().as_secs_f64();
        let file = SummaryFile {
            stage: stage.name,
            stage_version: stage.version,
            relcap_version: env!("CARGO_PKG_VERSION"),
            seconds,
            summary: &summary,
        };
        io::write_json(&file, &ctx.stage_dir(stage.name).join("summary.json"))?;
        if !opts.quiet {
            log_stage(stage.name, &summary, seconds, opts.verbose);
        }
        report
            .stages
            .push((stage.name.to_string(), summary, seconds));
    }
    Ok(report)
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

fn log_stage(name: &str, s: &StageSummary, seconds: f64, verbose: bool) {
    let rows_in: u64 = s.tables.values().map(|t| t.rows_in).sum();
    let rows_out: u64 = s.tables.values().map(|t| t.rows_out).sum();
    let quarantined: u64 = s.tables.values().flat_map(|t| t.quarantined.values()).sum();
    eprintln!(
        "[relcap] {name:<7} done in {seconds:.2}s: {rows_in} rows in, {rows_out} out, {quarantined} quarantined"
    );
    for w in &s.warnings {
        eprintln!("[relcap] {name:<7} warning: {w}");
    }
    if verbose {
        for (t, c) in &s.tables {
            eprintln!(
                "[relcap] {name:<7} {t}: in {} out {} quarantined {:?} duplicates {} excluded {:?}",
                c.rows_in, c.rows_out, c.quarantined, c.duplicates_collapsed, c.excluded
            );
        }
    }
}
