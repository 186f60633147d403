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
    /// No log on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Per-table counts in the log.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Simulate(args) => crate::sim::main(&args),
        Command::Fit(args) => crate::fit::main(&args),
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
        quiet: args.quiet,
        verbose: args.verbose,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = orchestrate::run(&config, &opts)?;
    if !args.quiet {
        eprintln!("[relcap] outputs in {}", report.out_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
