//! The command line: clap subcommands, resolved into calls on the library. Only this module and
//! `main.rs` know about clap and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::orchestrate::{self, RunOptions};

#[derive(Debug, Parser)]
#[command(name = "relcap", version, about = "Relational capacity study pipeline")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the study: ingest, clean, score, link, model, report (the demo study by default).
    Run(RunArgs),
    /// Write a simulated study in canonical form, with its true effects in truth.json.
    Simulate(crate::sim::SimulateArgs),
    /// Fit a regression or mixed model on any Parquet or CSV table.
    Fit(crate::fit::FitArgs),
    /// Power by simulation: the share of simulated studies that detect each hypothesis.
    Power(crate::sim_study::power::PowerArgs),
    /// Parameter recovery: bias, RMSE and interval coverage over simulated studies.
    Validate(crate::sim_study::validate::ValidateArgs),
    /// Say which stages are up to date and why the others are stale (exit code 1 if any is).
    Status(StatusArgs),
    /// Rerun the study a manifest describes and compare every output with the recorded one.
    Verify(VerifyArgs),
    /// Show a Parquet output's row count, footer metadata, schema and first rows.
    Inspect(InspectArgs),
    /// Benchmark: wall time, CPU time and peak memory of every stage on the national and the
    /// demo study, a rerun after a model setting, `relcap power`, and the H3 model against lme4.
    Bench(crate::bench::BenchArgs),
    /// Print a new random pseudonymisation key (256 bits as 64 hex characters).
    Keygen,
}

/// Where the study is: shared by `run` and the commands that inspect a run.
#[derive(Debug, Clone, Args)]
pub struct StudyArgs {
    /// Study configuration.
    #[arg(long, default_value = "config/study.toml")]
    pub config: PathBuf,
    /// Folder with the canonical input tables (overrides study.data_dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (overrides study.out_dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Folder for reports (default: study.reports_dir/<study name>).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Start at this stage (earlier stages' outputs must exist).
    #[arg(long)]
    pub from: Option<String>,
    /// Stop after this stage.
    #[arg(long)]
    pub until: Option<String>,
    /// Run only this stage.
    #[arg(long)]
    pub only: Option<String>,
    /// Run the selected stages even when they are up to date.
    #[arg(long)]
    pub force: bool,
    /// No log on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Per-table counts and every reason a stage runs in the log.
    #[arg(long, short)]
    pub verbose: bool,
    /// When another run holds the output folder, wait for it to end instead of failing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Folder of the reports (default: where the run recorded them).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The manifest of the run to verify (OUT/manifest.json).
    #[arg(long)]
    pub manifest: PathBuf,
    /// Relative tolerance for numbers.
    #[arg(long, default_value = "1e-9")]
    pub rel_tol: f64,
    /// Absolute tolerance for numbers.
    #[arg(long, default_value = "1e-12")]
    pub abs_tol: f64,
    /// The data folder, if it is no longer where the manifest says.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep the rerun in this folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No log of the rerun on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Parquet output (or a JSON file such as summary.json or manifest.json).
    pub file: PathBuf,
    /// How many rows to show.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}

pub fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Simulate(args) => crate::sim::main(&args),
        Command::Fit(args) => crate::fit::main(&args),
        Command::Power(args) => crate::sim_study::power::main(&args),
        Command::Validate(args) => crate::sim_study::validate::main(&args),
        Command::Status(args) => status(args),
        Command::Verify(args) => verify(args),
        Command::Inspect(args) => inspect(args),
        Command::Bench(args) => crate::bench::main(&args),
        Command::Keygen => crate::keygen::main().map(|()| ExitCode::SUCCESS),
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let config = Config::load(&args.study.config)?;
    let opts = RunOptions {
        data_dir: args.study.data,
        out_dir: args.study.out,
        reports_dir: args.reports,
        from: args.from,
        until: args.until,
        only: args.only,
        force: args.force,
        quiet: args.quiet,
        verbose: args.verbose,
        no_cache: false,
        progress: stderr_is_terminal(),
        config_path: Some(args.study.config.clone()),
        wait: args.wait,
    };
    let report = orchestrate::run(&config, &opts)?;
    if !args.quiet {
        let ran = report.stages.len();
        eprintln!(
            "[relcap] {ran} {} ran, {} up to date; outputs and manifest.json in {}",
            if ran == 1 { "stage" } else { "stages" },
            report.skipped.len(),
            report.out_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn status(args: StatusArgs) -> Result<ExitCode> {
    let config = Config::load(&args.study.config)?;
    let mut paths = orchestrate::StudyPaths::resolve(
        &config,
        args.study.data.as_deref(),
        args.study.out.as_deref(),
        args.reports.as_deref(),
    );
    // Without --reports, the reports are where the run recorded them.
    if args.reports.is_none() {
        if let Ok(Some(m)) = crate::manifest::Manifest::load_from_out(&paths.out_dir) {
            paths.reports_dir = PathBuf::from(m.reports_dir);
        }
    }
    let report = orchestrate::status(&config, &paths)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.up_to_date {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    for (name, v) in [("--rel-tol", args.rel_tol), ("--abs-tol", args.abs_tol)] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(crate::config::ConfigError::Invalid {
                key: name.to_string(),
                message: format!("is {v}, but must be a finite number >= 0"),
            }
            .into());
        }
    }
    let opts = crate::verify::VerifyOptions {
        manifest: args.manifest,
        tolerance: crate::verify::Tolerance {
            rel: args.rel_tol,
            abs: args.abs_tol,
        },
        data_dir: args.data,
        keep: args.keep,
        quiet: args.quiet,
        verbose: false,
        progress: stderr_is_terminal(),
    };
    let report = crate::verify::verify(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn inspect(args: InspectArgs) -> Result<ExitCode> {
    print!("{}", crate::inspect::describe(&args.file, args.rows)?);
    Ok(ExitCode::SUCCESS)
}
