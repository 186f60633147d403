//! The command line: clap subcommands, resolved into calls on the library. Only this module and
//! `main.rs` know about clap and exit codes: each subcommand's arguments become the plain options
//! its module takes (`SimulateOptions`, `FitRequest`, ...), and the modules return `Result`s
//! that only this module turns into exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{value_parser, Args, Parser, Subcommand};

use crate::config::{Config, Method, Vcov};
use crate::fit::{FitRequest, Output};
use crate::orchestrate::{self, RunOptions};
use crate::sim::{Format, Preset, SimulateOptions, StudyDesign};
use crate::sim_study::{power::PowerOptions, shard::ShardSpec, validate::ValidateOptions};

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
    /// Write the reports again from the stage outputs (`run --only report`); with --pdf each
    /// feedback report is printed to PDF as well, when Chromium is installed.
    Report(ReportArgs),
    /// Write a simulated study in canonical form, with its true effects in truth.json.
    Simulate(SimulateArgs),
    /// Fit a regression or mixed model on any Parquet or CSV table.
    Fit(FitArgs),
    /// Power by simulation: the share of simulated studies that detect each hypothesis
    /// (`power merge`: combine the partial results of `--shard` runs).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Power(PowerArgs),
    /// Parameter recovery: bias, RMSE and interval coverage over simulated studies
    /// (`validate merge`: combine the partial results of `--shard` runs).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Validate(ValidateArgs),
    /// Read, type and validate the input as `run` would, writing nothing: the rows that would be
    /// quarantined or excluded, with file:line examples, and every problem that would stop the
    /// run (exit code 0: clean, 1: rows set aside, 2: the run would fail).
    Check(CheckArgs),
    /// Say which stages are up to date and why the others are stale (exit code 1 if any is).
    Status(StatusArgs),
    /// Rerun the study a manifest describes and compare every output with the recorded one.
    Verify(VerifyArgs),
    /// Show a Parquet output's row count, footer metadata, schema and first rows.
    Inspect(InspectArgs),
    /// Benchmark: wall time, CPU time and peak memory of every stage on the national and the
    /// demo study, a rerun after a model setting, `relcap power`, and the H3 model against lme4.
    Bench(BenchArgs),
    /// Print a new random pseudonymisation key (256 bits as 64 hex characters).
    Keygen,
    /// Make a new study folder: study.toml with every setting at its default, and empty
    /// templates of the five input tables in DIR/data/ (`relcap run` inside DIR then needs no
    /// arguments).
    Init(InitArgs),
}

/// A parser for a plain enum of the library (a `config::choice!`): its `FromStr`, with the
/// values listed in `--help` and in the usage error.
fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// Where the study is: shared by `run` and the commands that inspect a run.
#[derive(Debug, Clone, Args)]
pub struct StudyArgs {
    /// Study configuration (default: ./study.toml, else ./config/study.toml, else the built-in
    /// defaults); it only changes what it names.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder with the canonical input tables (overrides study.data_dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (overrides study.out_dir); the report goes to OUT/report/.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Folder for reports (default: OUT/report/ with --out; else study.reports_dir/<study name>
    /// when the config sets it, else <out_dir>/report/).
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
    /// Print each feedback report to PDF too (as report.pdf = true), with headless Chromium
    /// when installed; without it the run says so and writes the HTML only.
    #[arg(long)]
    pub pdf: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Folder for reports (as for `run`).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Print each feedback report to PDF too (as report.pdf = true), with headless Chromium
    /// when installed; without it the run says so and writes the HTML only.
    #[arg(long)]
    pub pdf: bool,
    /// Write the reports even when they are up to date.
    #[arg(long)]
    pub force: bool,
    /// No log on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// When another run holds the output folder, wait for it to end instead of failing.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Study configuration (default: ./study.toml, else ./config/study.toml, else the built-in
    /// defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder with the canonical input tables (overrides study.data_dir).
    #[arg(long)]
    pub data: Option<PathBuf>,
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
pub struct InitArgs {
    /// The study folder (created if missing; an existing study.toml is never overwritten).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Parquet output (or a JSON file such as summary.json or manifest.json).
    pub file: PathBuf,
    /// How many rows to show.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder (created if missing); the five tables, truth.json and the truth tables.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random streams: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Size preset: `demo` (the five study municipalities, CSV) or `national` (98, Parquet).
    #[arg(long, default_value = "demo", value_parser = choice::<Preset>(Preset::NAMES))]
    pub preset: Preset,
    #[command(flatten)]
    pub sizes: SizeArgs,
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The intervention happens after this wave (must be below the number of waves).
    #[arg(long, default_value_t = 1)]
    pub after_wave: u32,
    /// Share of units per municipality in the intervention arm.
    #[arg(long, default_value_t = 0.5)]
    pub intervention_share: f64,
    /// Output format of the five tables (default: csv for demo, parquet for national).
    #[arg(long, value_parser = choice::<Format>(Format::NAMES))]
    pub format: Option<Format>,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The sizes of a simulated study that `simulate`, `power` and `validate` share (default: the
/// preset's; `power` and `validate` simulate the demo preset).
#[derive(Debug, Args)]
pub struct SizeArgs {
    /// Number of municipalities.
    #[arg(long, value_parser = value_parser!(u32).range(1..=999))]
    pub municipalities: Option<u32>,
    /// Number of waves (2-9).
    #[arg(long, value_parser = value_parser!(u32).range(2..=9))]
    pub waves: Option<u32>,
    /// Number of work groups (2-99).
    #[arg(long, value_parser = value_parser!(u32).range(2..=99))]
    pub work_groups: Option<u32>,
    /// New citizens (one case each) per municipality and wave.
    #[arg(long, value_parser = value_parser!(u32).range(0..=1_000_000))]
    pub citizens_per_municipality: Option<u32>,
    /// Only intervention units (the design without controls; H3 becomes a pre/post comparison).
    #[arg(long)]
    pub no_control: bool,
    #[command(flatten)]
    pub effect_sd: EffectSdArgs,
}

/// Between-municipality heterogeneity of the simulated effects (`simulate`, `power`,
/// `validate`): each municipality's effect is the effect plus this SD times a standard normal.
#[derive(Debug, Args)]
pub struct EffectSdArgs {
    /// SD of the municipalities' H1 effects around --effect-h1 (answer points).
    #[arg(long, default_value_t = 0.0)]
    pub effect_sd_h1: f64,
    /// SD of the municipalities' H2 effects around --effect-h2 (answer points).
    #[arg(long, default_value_t = 0.0)]
    pub effect_sd_h2: f64,
    /// SD of the municipalities' H3 effects around --effect-h3 (answer points).
    #[arg(long, default_value_t = 0.0)]
    pub effect_sd_h3: f64,
}

/// One simulated design's size and effects (`simulate`, `validate`; `power` takes lists).
#[derive(Debug, Args)]
pub struct PointArgs {
    /// Target positions per municipality; units of 8-20 are added until it is reached.
    #[arg(long, value_parser = value_parser!(u32).range(1..=100_000))]
    pub employees_per_municipality: Option<u32>,
    /// H1: answer points of citizen quality per point of true case RCap.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub effect_h1: f64,
    /// H2: answer points of respondent RCap per point of the manager's true SRM.
    #[arg(long, default_value_t = 0.25, allow_negative_numbers = true)]
    pub effect_h2: f64,
    /// H3: answer points added to respondent RCap in intervention units after the intervention.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub effect_h3: f64,
}

impl SizeArgs {
    /// The design with these sizes and `point`'s size and effects.
    fn design(self, point: PointArgs) -> StudyDesign {
        StudyDesign {
            municipalities: self.municipalities,
            employees_per_municipality: point.employees_per_municipality,
            waves: self.waves,
            work_groups: self.work_groups,
            citizens_per_municipality: self.citizens_per_municipality,
            effect_h1: point.effect_h1,
            effect_h2: point.effect_h2,
            effect_h3: point.effect_h3,
            no_control: self.no_control,
            cluster: Default::default(),
            effect_sd: crate::sim::EffectSd {
                h1: self.effect_sd.effect_sd_h1,
                h2: self.effect_sd.effect_sd_h2,
                h3: self.effect_sd.effect_sd_h3,
            },
        }
    }
}

/// H3's cluster-level departures in a simulated study (`simulate`, `validate`).
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// SD of a unit x wave effect on respondent RCap (answer points; 0: none).
    #[arg(long, default_value_t = 0.0)]
    pub sd_unit_wave: f64,
    /// Baseline difference of the intervention arm in every wave (answer points; 0: none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub arm_baseline: f64,
}

impl ClusterArgs {
    fn effects(&self) -> crate::sim::ClusterEffects {
        crate::sim::ClusterEffects {
            sd_unit_wave: self.sd_unit_wave,
            arm_baseline: self.arm_baseline,
        }
    }
}

/// The design of `sizes` and `point` with H3's cluster-level settings.
fn design_with(sizes: SizeArgs, point: PointArgs, cluster: &ClusterArgs) -> StudyDesign {
    StudyDesign {
        cluster: cluster.effects(),
        ..sizes.design(point)
    }
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Table to fit on: a .parquet or .csv file.
    #[arg(long)]
    pub data: PathBuf,
    /// Model formula in R/lme4 style, e.g. "rcap ~ srm_between + C(wave) + (1 | unit_id)".
    #[arg(long)]
    pub formula: String,
    /// Standard errors: any for OLS models; for mixed models the model-based ones (the
    /// default) or cr2 with --cluster.
    #[arg(long, default_value = "classical", value_parser = choice::<Vcov>(Vcov::NAMES))]
    pub vcov: Vcov,
    /// Cluster column for cluster-robust standard errors: CR1 (clusters − 1 df) unless --vcov
    /// cr2 (Bell-McCaffrey with Satterthwaite df, the better choice with few clusters; on a
    /// mixed model, clubSandwich's CR2 with the fitted model as working model).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Estimation method for mixed models.
    #[arg(long, default_value = "reml", value_parser = choice::<Method>(Method::NAMES))]
    pub method: Method,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Output: a readable summary, or one JSON object.
    #[arg(long, default_value = "table", value_parser = choice::<Output>(Output::NAMES))]
    pub format: Output,
}

#[derive(Debug, Args)]
pub struct PowerArgs {
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
    /// Run only shard K of N: replication r belongs to shard (r mod N) + 1; --out is then the
    /// partial result file to write, combined by `relcap power merge` (docs/cluster.md).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ShardSpec>,
    /// Study configuration (its model settings decide detection; data and output folders are not
    /// used). Default: found as `run` finds it, else the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder for power.csv, power.json and power.svg (with --shard: the partial result file).
    /// Required; an Option only so that `power merge` can do without it.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Simulated studies per cell of the grid.
    #[arg(long, default_value_t = 100)]
    pub replications: usize,
    /// Base seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Sizes: positions per municipality, comma-separated.
    #[arg(long, default_value = "70,140,280")]
    pub employees_per_municipality: String,
    /// H1 effects, comma-separated (one per scenario, or one for all).
    #[arg(long, default_value = "0.5", allow_hyphen_values = true)]
    pub effect_h1: String,
    /// H2 effects, comma-separated.
    #[arg(long, default_value = "0.25", allow_hyphen_values = true)]
    pub effect_h2: String,
    /// H3 effects, comma-separated.
    #[arg(long, default_value = "0.2", allow_hyphen_values = true)]
    pub effect_h3: String,
    #[command(flatten)]
    pub sizes: SizeArgs,
    /// No progress bar and no table on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
    /// Run only shard K of N: replication r (and reference replication r) belongs to shard
    /// (r mod N) + 1; --out is then the partial result file to write, combined by
    /// `relcap validate merge` (docs/cluster.md).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ShardSpec>,
    /// Study configuration (its model settings are used; data and output folders are not).
    /// Default: found as `run` finds it, else the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder for validate.json and replications.csv (with --shard: the partial result file).
    /// Required; an Option only so that `validate merge` can do without it.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Number of simulated studies.
    #[arg(long, default_value_t = 200)]
    pub replications: usize,
    /// Base seed; replication r uses a seed derived from it and r.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub sizes: SizeArgs,
    #[command(flatten)]
    pub point: PointArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Replications of the large-sample reference design (0: no `large_sample` target).
    #[arg(long, default_value_t = 20)]
    pub reference_replications: usize,
    /// The reference design has this many times the municipalities.
    #[arg(long, default_value_t = 10)]
    pub reference_scale: u32,
    /// No progress bar and no table on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `power merge` and `validate merge`.
#[derive(Debug, Subcommand)]
pub enum MergeCommand {
    /// Combine the partial results of `--shard K/N` runs into exactly the files an unsharded
    /// run writes; refuses partials of different settings or builds, and a replication missing
    /// or held twice.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Folder for the merged files (those an unsharded run writes).
    #[arg(long)]
    pub out: PathBuf,
    /// The partial result files, one per shard, in any order.
    #[arg(required = true, value_name = "PARTIAL")]
    pub partials: Vec<PathBuf>,
    /// No table on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Study configuration (the demo study's data folder and every setting).
    #[arg(long, default_value = "config/study.toml")]
    pub config: PathBuf,
    /// Working folder: the national study, outputs, logs and bench.json.
    #[arg(long, default_value = "data/bench")]
    pub dir: PathBuf,
    /// Seed of the national study.
    #[arg(long, default_value_t = 20261123)]
    pub seed: u64,
    /// Replications of `relcap power` (0: skip it).
    #[arg(long, default_value_t = 200)]
    pub power_replications: usize,
    /// Skip the national study (and the lme4 comparison).
    #[arg(long)]
    pub skip_national: bool,
    /// Skip the H3 comparison with R's lme4.
    #[arg(long)]
    pub no_lme4: bool,
    /// A label stored in bench.json (e.g. the commit measured).
    #[arg(long)]
    pub label: Option<String>,
}

pub fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Report(a) => run(RunArgs {
            study: a.study,
            reports: a.reports,
            from: None,
            until: None,
            only: Some("report".to_string()),
            force: a.force,
            quiet: a.quiet,
            verbose: false,
            wait: a.wait,
            pdf: a.pdf,
        }),
        Command::Simulate(a) => done(crate::sim::main(&SimulateOptions {
            out: a.out,
            seed: a.seed,
            preset: a.preset,
            design: design_with(a.sizes, a.point, &a.cluster),
            after_wave: a.after_wave,
            intervention_share: a.intervention_share,
            format: a.format,
            quiet: a.quiet,
        })),
        Command::Fit(a) => done(crate::fit::main(&FitRequest {
            data: a.data,
            formula: a.formula,
            vcov: a.vcov,
            cluster: a.cluster,
            method: a.method,
            level: a.level,
            format: a.format,
        })),
        Command::Power(PowerArgs {
            merge: Some(MergeCommand::Merge(m)),
            ..
        }) => done(crate::sim_study::power::merge(&m.out, &m.partials, m.quiet)),
        Command::Validate(ValidateArgs {
            merge: Some(MergeCommand::Merge(m)),
            ..
        }) => done(crate::sim_study::validate::merge(
            &m.out,
            &m.partials,
            m.quiet,
        )),
        Command::Power(a) => done(crate::sim_study::power::main(&PowerOptions {
            config: a.config,
            out: required_out(a.out)?,
            replications: a.replications,
            seed: a.seed,
            threads: a.threads,
            employees_per_municipality: a.employees_per_municipality,
            effect_h1: a.effect_h1,
            effect_h2: a.effect_h2,
            effect_h3: a.effect_h3,
            // The grid sets the size and the effects of each cell.
            design: a.sizes.design(PointArgs {
                employees_per_municipality: None,
                effect_h1: 0.0,
                effect_h2: 0.0,
                effect_h3: 0.0,
            }),
            quiet: a.quiet,
            shard: a.shard,
        })),
        Command::Validate(a) => done(crate::sim_study::validate::main(&ValidateOptions {
            config: a.config,
            out: required_out(a.out)?,
            replications: a.replications,
            seed: a.seed,
            threads: a.threads,
            design: design_with(a.sizes, a.point, &a.cluster),
            reference_replications: a.reference_replications,
            reference_scale: a.reference_scale,
            quiet: a.quiet,
            shard: a.shard,
        })),
        Command::Check(args) => check(args),
        Command::Status(args) => status(args),
        Command::Verify(args) => verify(args),
        Command::Inspect(args) => inspect(args),
        Command::Bench(a) => done(crate::bench::main(&crate::bench::BenchOptions {
            config: a.config,
            dir: a.dir,
            seed: a.seed,
            power_replications: a.power_replications,
            skip_national: a.skip_national,
            no_lme4: a.no_lme4,
            label: a.label,
        })),
        Command::Keygen => done(crate::keygen::main()),
        Command::Init(args) => init(args),
    }
}

/// `--out` of `power` and `validate`, which clap requires unless `merge` follows.
fn required_out(out: Option<PathBuf>) -> Result<PathBuf> {
    out.ok_or_else(|| {
        crate::config::ConfigError::Invalid {
            key: "--out".to_string(),
            message: "is required".to_string(),
        }
        .into()
    })
}

/// A command that has no verdict of its own: success unless it failed.
fn done(result: Result<()>) -> Result<ExitCode> {
    result.map(|()| ExitCode::SUCCESS)
}

/// The study's config (`Config::find`) with its name filled in, and the config file read.
/// With a config file, `--data` without `--out` must be the config's own data folder: another
/// study's outputs would overwrite this one's.
fn study_config(study: &StudyArgs) -> Result<(Config, Option<PathBuf>)> {
    let (config, path) = Config::find(study.config.as_deref())?;
    if let (Some(file), Some(data), None) = (&path, &study.data, &study.out) {
        let same = |a: &std::path::Path, b: &std::path::Path| {
            std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
        };
        if !same(data, &config.study.data_dir) {
            return Err(crate::config::ConfigError::Invalid {
                key: "--out".to_string(),
                message: format!(
                    "is needed with --data {}: that is not the data folder of {} ({}), whose \
                     outputs in {} it would overwrite",
                    data.display(),
                    file.display(),
                    config.study.data_dir.display(),
                    config.study.out_dir.display()
                ),
            }
            .into());
        }
    }
    let data_dir = study.data.as_ref().unwrap_or(&config.study.data_dir);
    Ok((config.named_after_data(data_dir), path))
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let (mut config, config_path) = study_config(&args.study)?;
    config.report.pdf |= args.pdf;
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
        config_path,
        wait: args.wait,
    };
    let report = orchestrate::run(&config, &opts)?;
    if !args.quiet {
        let ran = report.stages.len();
        crate::say!(
            "[relcap] {ran} {} ran, {} up to date; outputs and manifest.json in {}",
            if ran == 1 { "stage" } else { "stages" },
            report.skipped.len(),
            report.out_dir.display()
        );
        let html = report.reports_dir.join("report.html");
        if html.is_file() {
            crate::say!("[relcap] report: {}", html.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// `relcap check`: the report on stdout; exit 0 clean, 1 rows set aside, 2 the run would fail
/// (a config that cannot be read or is invalid included).
fn check(args: CheckArgs) -> Result<ExitCode> {
    use crate::check::Verdict;
    let (config, _) = match Config::find(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            crate::show!("problem (the run would stop): {e}\nverdict: the run would fail\n");
            return Ok(ExitCode::from(2));
        }
    };
    let report = crate::check::check(&config, args.data.as_deref(), stderr_is_terminal());
    crate::show!("{}", report.to_text());
    Ok(match report.verdict() {
        Verdict::Clean => ExitCode::SUCCESS,
        Verdict::RowsSetAside => ExitCode::from(1),
        Verdict::WouldFail => ExitCode::from(2),
    })
}

fn status(args: StatusArgs) -> Result<ExitCode> {
    let (config, _) = study_config(&args.study)?;
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
        crate::showln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::show!("{}", report.to_text());
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
        crate::showln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::show!("{}", report.to_text());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn init(args: InitArgs) -> Result<ExitCode> {
    let r = crate::init::init(&args.dir)?;
    crate::say!(
        "[relcap] wrote {} and {} empty table templates in {}; put the study's tables there, \
         set its key (`relcap keygen`), then run `relcap run` inside {}",
        r.config.display(),
        r.tables.len(),
        args.dir.join("data").display(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> Result<ExitCode> {
    crate::show!("{}", crate::inspect::describe(&args.file, args.rows)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn only_cli_and_main_know_clap_and_exit_codes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline");
        let mut files = vec![];
        sources(&root, &mut files);
        let mut found = vec![];
        for f in files {
            let rel = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
            if rel == "cli.rs" || rel == "main.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if !code.starts_with("//") && (code.contains("clap") || code.contains("ExitCode")) {
                    found.push(format!("pipeline/{rel}:{}: {}", i + 1, code));
                }
            }
        }
        assert!(
            found.is_empty(),
            "outside cli.rs and main.rs:\n{}",
            found.join("\n")
        );
    }
}
