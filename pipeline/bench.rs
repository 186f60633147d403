//! `relcap bench`: the performance benchmark of the whole pipeline, against the targets of the
//! national-scale issue (national study end to end, demo study end to end, rerun after a model
//! setting, `relcap power` with 200 replications, the H3 mixed model against lme4).
//!
//! Every measurement is a child process of this binary (the same executable, so a release build
//! measures release code), timed here:
//!
//! - **wall**: a monotonic clock around spawn and wait;
//! - **CPU**: user + system time of the child, from `wait4(2)`'s `rusage`;
//! - **peak memory**: the child's `ru_maxrss` from the same `rusage` (the kernel's high-water mark
//!   of its resident set, in KiB; the largest of the child and the children it waited for).
//!
//! Peak memory per stage needs a process per stage, so each stage runs as
//! `relcap run --only <stage> --force` on the outputs of the stages before it. The end-to-end
//! figures are one `relcap run --force` process (all stages in one process, as a user runs it),
//! measured separately from the per-stage processes.
//!
//! What runs, in this order (folders under `--dir`, default `data/bench`):
//!
//! 1. `national/data/`: `relcap simulate --preset national --seed S`, generated once and reused
//!    when its `truth.json` is there and names the national preset and seed S (another seed is an
//!    error, so that figures are never labelled with the wrong study; the generation is timed only
//!    when it runs);
//! 2. for the national study, then the demo study (`study.data_dir` of `--config`, run once first
//!    so that the binary and the files are warm): the end-to-end run into `<study>/out/`, the
//!    per-stage runs, the rerun after a model setting changed (`model.alpha` changed in a copy
//!    of the config, `<study>/config_model_change.toml`; only `model` and `report` rerun), and
//!    `relcap check` of the study (compared with the ingest and clean runs); for the national
//!    study also `benches/data_stages.sql`, the data stages as DuckDB SQL, run by
//!    `benches/data_stages_duckdb.py` (both written to `national/`, outputs in
//!    `national/duckdb_out/`) beside the per-stage runs of ingest, clean, score and link, when
//!    `python3 -c "import duckdb"` works (else skipped with a note);
//! 3. `relcap power` with `--power-replications` (default 200) replications of the demo design
//!    (140 positions per municipality, the demo preset's effects) into `power/`;
//! 4. unless `--no-lme4`: the rows of the national H3 model sample (`link/h3_panel` without
//!    exclusion) written to `national/h3_sample.csv`, fitted with `relcap fit` (the formula of
//!    the model stage's pooled primary H3 model, `cluster_did`) and with R's `lme4::lmer`
//!    (`Rscript`, the script is written beside the CSV), with the largest relative difference
//!    of the estimates.
//!
//! Results: a table on stdout and `bench.json` in `--dir` (with the machine: CPU model, cores,
//! memory, from `/proc`). Child output goes to `logs/<step>.{out,err}` under `--dir`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{col, CsvWriter, LazyFrame, PlRefPath, ScanArgsParquet, SerWriter};
use serde::Serialize;

use crate::config::Config;
use crate::orchestrate::{StudyPaths, STAGES};

/// The formula of the model stage's pooled primary H3 model, `cluster_did` (panel design), on
/// the same rows (`benches/h3_lme4.R` fits the same formula with lme4).
pub const H3_FORMULA: &str = "rcap ~ post + intervention + post:intervention + C(municipality) + (1 | respondent_id) + (1 | unit_id) + (1 | unit_id:post)";

const H3_R_SCRIPT: &str = include_str!("../benches/h3_lme4.R");
const DUCKDB_SQL: &str = include_str!("../benches/data_stages.sql");
const DUCKDB_RUNNER: &str = include_str!("../benches/data_stages_duckdb.py");

/// What `relcap bench` is asked to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Study configuration (the demo study's data folder and every setting).
    pub config: PathBuf,
    /// Working folder: the national study, outputs, logs and bench.json.
    pub dir: PathBuf,
    /// Seed of the national study.
    pub seed: u64,
    /// Replications of `relcap power` (0: skip it).
    pub power_replications: usize,
    /// Skip the national study (and the lme4 comparison).
    pub skip_national: bool,
    /// Skip the H3 comparison with R's lme4.
    pub no_lme4: bool,
    /// A label stored in bench.json (e.g. the commit measured).
    pub label: Option<String>,
}

/// One measured child process.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub step: String,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
}

/// The measurements of one study.
#[derive(Debug, Serialize)]
pub struct StudyBench {
    pub study: String,
    pub data_dir: String,
    pub end_to_end: Measure,
    pub stages: Vec<Measure>,
    pub rerun_after_model_change: Measure,
    /// Rerun wall time as a share of the end-to-end wall time.
    pub rerun_share: f64,
    /// `relcap check` on the study (exit 0 or 1: the data would run).
    pub check: Measure,
    /// Check's wall time as a share of the per-stage ingest and clean runs' together.
    pub check_share: f64,
    /// Input and output sizes.
    pub input_bytes: u64,
    pub output_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct LmmBench {
    pub rows: usize,
    pub relcap_fit: Measure,
    /// lme4::lmer alone (REML, default settings), as timed inside R.
    pub lme4_lmer_s: f64,
    /// lmerTest::lmer + summary (Satterthwaite df), as timed inside R.
    pub lmertest_summary_s: f64,
    /// The whole Rscript process (reading the CSV included).
    pub rscript: Measure,
    /// Largest relative difference of fixed effects, their standard errors and the variance
    /// components between relcap and lme4/lmerTest.
    pub max_rel_diff_estimates: f64,
    pub max_rel_diff_std_errors: f64,
    pub max_rel_diff_variances: f64,
    pub relcap_terms: Vec<(String, f64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub label: Option<String>,
    pub machine: Machine,
    pub relcap_version: String,
    /// Seed of the national study (the study reused from an earlier bench was made with it).
    pub national_seed: Option<u64>,
    pub simulate_national: Option<Measure>,
    pub studies: Vec<StudyBench>,
    pub power: Option<Measure>,
    pub power_replications: usize,
    pub h3_lmm: Option<LmmBench>,
    /// The data stages as a DuckDB SQL script on the national study, beside relcap's.
    pub duckdb: Option<DuckDbBench>,
    /// Why the DuckDB baseline was not run (Python's `duckdb` not installed).
    pub duckdb_skipped: Option<String>,
}

/// `benches/data_stages.sql` (ingest, clean, score and link as DuckDB SQL) against relcap's
/// four data stages, each run in its own process, on the same input.
#[derive(Debug, Serialize)]
pub struct DuckDbBench {
    /// The Python process that runs the script (start and `import duckdb` included).
    pub duckdb: Measure,
    /// relcap's ingest, clean, score and link: wall and CPU summed, peak the largest.
    pub relcap_data_stages: Measure,
    /// relcap's wall time over DuckDB's.
    pub wall_ratio: f64,
    pub cpu_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
}

pub fn main(args: &BenchOptions) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the relcap executable")?;
    let dir = absolute(&args.dir)?;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
    let config_path = absolute(&args.config)?;
    let config = Config::load(&config_path)?;
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let bench = Bench {
        exe,
        logs: dir.join("logs"),
    };

    let mut report = BenchReport {
        label: args.label.clone(),
        machine: machine(),
        relcap_version: env!("CARGO_PKG_VERSION").to_string(),
        national_seed: (!args.skip_national).then_some(args.seed),
        simulate_national: None,
        studies: Vec::new(),
        power: None,
        power_replications: args.power_replications,
        h3_lmm: None,
        duckdb: None,
        duckdb_skipped: None,
    };

    if !args.skip_national {
        let data = dir.join("national").join("data");
        if !data.join("truth.json").is_file() {
            crate::say!(
                "[bench] simulating the national study into {}",
                data.display()
            );
            let m = bench.run(
                "simulate_national",
                &[
                    "simulate",
                    "--preset",
                    "national",
                    "--seed",
                    &args.seed.to_string(),
                    "--out",
                    &path_str(&data)?,
                ],
            )?;
            report.simulate_national = Some(m);
        } else {
            check_reused_study(&data, args.seed)?;
            crate::say!("[bench] reusing the national study in {}", data.display());
        }
        let s = bench.study("national", &config_path, &config_text, &data, &dir)?;
        match duckdb_missing() {
            None => report.duckdb = Some(bench.duckdb(&data, &dir.join("national"), &s)?),
            Some(why) => {
                crate::say!("[bench] DuckDB baseline skipped: {why}");
                report.duckdb_skipped = Some(why);
            }
        }
        report.studies.push(s);
    }

    let demo_data = StudyPaths::resolve(&config, None, None, None).data_dir;
    // Warm the binary and the page cache before the demo is measured.
    let warm_out = dir.join("demo").join("warm");
    bench.run(
        "demo_warm",
        &[
            "run",
            "--config",
            &path_str(&config_path)?,
            "--data",
            &path_str(&demo_data)?,
            "--out",
            &path_str(&warm_out)?,
            "--reports",
            &path_str(&dir.join("demo").join("warm_reports"))?,
            "--force",
            "-q",
        ],
    )?;
    let s = bench.study("demo", &config_path, &config_text, &demo_data, &dir)?;
    report.studies.push(s);

    if args.power_replications > 0 {
        crate::say!(
            "[bench] relcap power, {} replications of the demo design",
            args.power_replications
        );
        let out = dir.join("power");
        let m = bench.run(
            "power",
            &[
                "power",
                "--config",
                &path_str(&config_path)?,
                "--out",
                &path_str(&out)?,
                "--replications",
                &args.power_replications.to_string(),
                "--employees-per-municipality",
                "140",
                "--quiet",
            ],
        )?;
        report.power = Some(m);
    }

    if !args.skip_national && !args.no_lme4 {
        let out = dir.join("national").join("out");
        report.h3_lmm = Some(bench.lmm(&out, &dir.join("national"))?);
    }

    let json = serde_json::to_string_pretty(&report)?;
    write_text(&dir.join("bench.json"), &json)?;
    crate::show!("{}", to_text(&report));
    Ok(())
}

struct Bench {
    exe: PathBuf,
    logs: PathBuf,
}

impl Bench {
    /// Runs this binary with `args` as a measured child; fails when it fails.
    fn run(&self, step: &str, args: &[&str]) -> Result<Measure> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args);
        self.measure(step, cmd)
    }

    fn measure(&self, step: &str, cmd: Command) -> Result<Measure> {
        self.measure_accepting(step, cmd, &[0])
    }

    /// [`Bench::measure`], the child's exit codes in `accept` counting as success.
    fn measure_accepting(&self, step: &str, mut cmd: Command, accept: &[i32]) -> Result<Measure> {
        let out = self.logs.join(format!("{step}.out"));
        let err = self.logs.join(format!("{step}.err"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out).with_context(|| format!("cannot create {}", out.display()))?)
            .stderr(
                File::create(&err).with_context(|| format!("cannot create {}", err.display()))?,
            );
        let (m, code) = measure_child(step, cmd)?;
        if !code.is_some_and(|c| accept.contains(&c)) {
            let tail = std::fs::read_to_string(&err).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "bench step {step} failed (log {}):\n{}",
                err.display(),
                tail.join("\n")
            );
        }
        crate::say!(
            "[bench] {step:<28} {:>8.2} s wall {:>8.2} s CPU {:>8.0} MiB peak",
            m.wall_s,
            m.cpu_s,
            m.peak_rss_mib
        );
        Ok(m)
    }

    fn study(
        &self,
        name: &str,
        config_path: &Path,
        config_text: &str,
        data: &Path,
        dir: &Path,
    ) -> Result<StudyBench> {
        let root = dir.join(name);
        let out = root.join("out");
        let reports = root.join("reports");
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot remove {}", out.display()))?;
        }
        let (cfg, data_s, out_s, rep_s) = (
            path_str(config_path)?,
            path_str(data)?,
            path_str(&out)?,
            path_str(&reports)?,
        );
        let base = ["--data", &data_s, "--out", &out_s, "--reports", &rep_s];
        crate::say!("[bench] {name}: end to end");
        let mut a = vec!["run", "--config", &cfg];
        a.extend(base);
        a.extend(["--force", "-q"]);
        let end_to_end = self.run(&format!("{name}_end_to_end"), &a)?;

        let mut stages = Vec::new();
        for stage in STAGES {
            let mut a = vec!["run", "--config", &cfg];
            a.extend(base);
            a.extend(["--only", stage.name, "--force", "-q"]);
            stages.push(self.run(&format!("{name}_{}", stage.name), &a)?);
        }

        let changed = root.join("config_model_change.toml");
        write_text(&changed, &model_change(config_text)?)?;
        let ch = path_str(&changed)?;
        let mut a = vec!["run", "--config", &ch];
        a.extend(base);
        a.push("-q");
        let rerun = self.run(&format!("{name}_rerun_model_change"), &a)?;
        let a = ["check", "--config", &cfg, "--data", &data_s];
        let mut cmd = Command::new(&self.exe);
        cmd.args(a);
        // Exit 1 (rows would be set aside) is a check that ran; 2 (the run would fail) is not.
        let check = self.measure_accepting(&format!("{name}_check"), cmd, &[0, 1])?;
        let ingest_clean: f64 = stages
            .iter()
            .filter(|m| m.step.ends_with("_ingest") || m.step.ends_with("_clean"))
            .map(|m| m.wall_s)
            .sum();
        let manifest = crate::manifest::Manifest::load_from_out(&out)?
            .ok_or_else(|| anyhow!("no manifest in {}", out.display()))?;
        let ran: Vec<&str> = manifest.ran.iter().map(String::as_str).collect();
        if ran.iter().any(|s| !matches!(*s, "model" | "report")) {
            bail!("the rerun after a model setting ran {ran:?}, not only model and report");
        }
        Ok(StudyBench {
            study: name.to_string(),
            data_dir: data_s.clone(),
            rerun_share: rerun.wall_s / end_to_end.wall_s,
            check_share: check.wall_s / ingest_clean,
            check,
            end_to_end,
            stages,
            rerun_after_model_change: rerun,
            input_bytes: dir_bytes(data)?,
            output_bytes: dir_bytes(&out)?,
        })
    }

    /// The DuckDB script of the data stages on `data`, in its own process (outputs under
    /// `root/duckdb_out`), beside the per-stage runs of relcap's data stages in `study`.
    fn duckdb(&self, data: &Path, root: &Path, study: &StudyBench) -> Result<DuckDbBench> {
        let sql = root.join("data_stages.sql");
        let runner = root.join("data_stages_duckdb.py");
        write_text(&sql, DUCKDB_SQL)?;
        write_text(&runner, DUCKDB_RUNNER)?;
        let out = root.join("duckdb_out");
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot remove {}", out.display()))?;
        }
        crate::say!("[bench] the data stages as DuckDB SQL (benches/data_stages.sql)");
        let mut cmd = Command::new("python3");
        cmd.arg(&runner).arg(data).arg(&out).arg(&sql);
        let duckdb = self.measure("national_duckdb_data_stages", cmd)?;
        let data_stages = ["ingest", "clean", "score", "link"];
        let ours: Vec<&Measure> = study
            .stages
            .iter()
            .filter(|m| {
                data_stages
                    .iter()
                    .any(|s| m.step == format!("{}_{s}", study.study))
            })
            .collect();
        if ours.len() != data_stages.len() {
            bail!("the bench has no per-stage runs of the four data stages");
        }
        let relcap = Measure {
            step: format!("{}_data_stages", study.study),
            wall_s: ours.iter().map(|m| m.wall_s).sum(),
            cpu_s: ours.iter().map(|m| m.cpu_s).sum(),
            peak_rss_mib: ours.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max),
        };
        Ok(DuckDbBench {
            wall_ratio: relcap.wall_s / duckdb.wall_s,
            cpu_ratio: relcap.cpu_s / duckdb.cpu_s,
            duckdb,
            relcap_data_stages: relcap,
        })
    }

    fn lmm(&self, out: &Path, root: &Path) -> Result<LmmBench> {
        let panel = out.join("link").join("h3_panel.parquet");
        let csv = root.join("h3_sample.csv");
        let p = PlRefPath::try_from_path(&panel)
            .with_context(|| format!("cannot read {}", panel.display()))?;
        let mut df = LazyFrame::scan_parquet(p, ScanArgsParquet::default())
            .map_err(|e| anyhow!("cannot read {}: {e}", panel.display()))?
            .filter(col("exclusion").is_null())
            .select([
                col("rcap"),
                col("post"),
                col("intervention"),
                col("municipality"),
                col("respondent_id"),
                col("unit_id"),
            ])
            .collect()
            .map_err(|e| anyhow!("cannot read {}: {e}", panel.display()))?;
        let rows = df.height();
        let mut f =
            File::create(&csv).with_context(|| format!("cannot create {}", csv.display()))?;
        CsvWriter::new(&mut f)
            .finish(&mut df)
            .map_err(|e| anyhow!("cannot write {}: {e}", csv.display()))?;
        drop(df);
        crate::say!("[bench] H3 model on {rows} rows: relcap fit, then lme4");
        let csv_s = path_str(&csv)?;
        let relcap_fit = self.run(
            "h3_relcap_fit",
            &[
                "fit",
                "--data",
                &csv_s,
                "--formula",
                H3_FORMULA,
                "--format",
                "json",
            ],
        )?;
        let fit_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            self.logs.join("h3_relcap_fit.out"),
        )?)
        .context("relcap fit did not print JSON")?;

        let script = root.join("h3_lme4.R");
        write_text(&script, H3_R_SCRIPT)?;
        let r_out = root.join("h3_lme4_estimates.csv");
        let mut cmd = Command::new("Rscript");
        cmd.args([path_str(&script)?, csv_s.clone(), path_str(&r_out)?]);
        let rscript = self.measure("h3_lme4", cmd)?;
        let r_text = std::fs::read_to_string(&r_out)
            .with_context(|| format!("cannot read {}", r_out.display()))?;
        compare_lmm(rows, relcap_fit, rscript, &fit_json, &r_text)
    }
}

/// Spawns `cmd` and waits for it with `wait4`, which gives the child's CPU time and peak RSS;
/// returns them with the child's exit code (None when a signal ended it).
fn measure_child(step: &str, mut cmd: Command) -> Result<(Measure, Option<i32>)> {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: the pointers are to live locals; `pid` is our own unwaited child (the std
        // `Child` handle is dropped without waiting, which neither kills nor reaps it).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(anyhow!("waiting for {step}: {e}"));
        }
    }
    drop(child);
    let wall_s = start.elapsed().as_secs_f64();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok((
        Measure {
            step: step.to_string(),
            wall_s,
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_mib: ru.ru_maxrss as f64 / 1024.0,
        },
        code,
    ))
}

/// The config text with `model.alpha` changed (0.05 → 0.049, or any other value → 0.05).
fn model_change(text: &str) -> Result<String> {
    let mut t: toml::Table = text.parse().context("cannot parse the config")?;
    let model = t
        .entry("model")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| anyhow!("config: [model] is not a table"))?;
    let old = model.get("alpha").and_then(toml::Value::as_float);
    let new = if old == Some(0.049) { 0.05 } else { 0.049 };
    model.insert("alpha".into(), toml::Value::Float(new));
    Ok(toml::to_string(&t)?)
}

fn compare_lmm(
    rows: usize,
    relcap_fit: Measure,
    rscript: Measure,
    fit: &serde_json::Value,
    r_text: &str,
) -> Result<LmmBench> {
    // R writes `kind,name,value,std_error` rows: `coef`, `var` (variance components, by group
    // with "Residual"), `time` (lmer, lmertest).
    let mut lme4_lmer_s = f64::NAN;
    let mut lmertest_summary_s = f64::NAN;
    let mut r_coef = std::collections::BTreeMap::new();
    let mut r_var = std::collections::BTreeMap::new();
    for line in r_text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        if f.len() != 4 {
            bail!("unexpected line from the R script: {line}");
        }
        let v: f64 = f[2].parse().with_context(|| format!("R output: {line}"))?;
        match f[0] {
            "coef" => {
                let se: f64 = f[3].parse().with_context(|| format!("R output: {line}"))?;
                r_coef.insert(f[1].to_string(), (v, se));
            }
            "var" => {
                r_var.insert(f[1].to_string(), v);
            }
            "time" if f[1] == "lmer" => lme4_lmer_s = v,
            "time" => lmertest_summary_s = v,
            _ => bail!("unexpected line from the R script: {line}"),
        }
    }
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
    let coefs = fit["coefficients"]
        .as_array()
        .ok_or_else(|| anyhow!("relcap fit JSON without coefficients"))?;
    let (mut de, mut dse, mut dv) = (0f64, 0f64, 0f64);
    let mut terms = Vec::new();
    for c in coefs {
        let term = c["term"].as_str().unwrap_or_default().to_string();
        let est = c["estimate"].as_f64().unwrap_or(f64::NAN);
        let se = c["std_error"].as_f64().unwrap_or(f64::NAN);
        let (re, rse) = r_coef
            .get(&term)
            .copied()
            .ok_or_else(|| anyhow!("lme4 has no term {term}"))?;
        de = de.max(rel(est, re));
        dse = dse.max(rel(se, rse));
        terms.push((term, est, se));
    }
    if terms.len() != r_coef.len() {
        bail!("relcap has {} terms, lme4 {}", terms.len(), r_coef.len());
    }
    for re in fit["random_effects"].as_array().into_iter().flatten() {
        let g = re["group"].as_str().unwrap_or_default();
        let v = re["variance"].as_f64().unwrap_or(f64::NAN);
        let rv = r_var
            .get(g)
            .copied()
            .ok_or_else(|| anyhow!("lme4 has no variance component {g}"))?;
        dv = dv.max(rel(v, rv));
    }
    Ok(LmmBench {
        rows,
        relcap_fit,
        lme4_lmer_s,
        lmertest_summary_s,
        rscript,
        max_rel_diff_estimates: de,
        max_rel_diff_std_errors: dse,
        max_rel_diff_variances: dv,
        relcap_terms: terms,
    })
}

fn to_text(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "machine: {}, {} cores, {:.1} GiB; {}",
        m.cpu, m.cores, m.memory_gib, m.os
    );
    if let Some(sim) = &r.simulate_national {
        let _ = writeln!(s, "simulate --preset national: {:.1} s wall", sim.wall_s);
    }
    for st in &r.studies {
        let _ = writeln!(
            s,
            "\n{} ({:.0} MB in, {:.0} MB out)",
            st.study,
            st.input_bytes as f64 / 1e6,
            st.output_bytes as f64 / 1e6
        );
        let _ = writeln!(s, "| step | wall s | CPU s | peak MiB |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
        let row = |s: &mut String, name: &str, m: &Measure| {
            let _ = writeln!(
                s,
                "| {name} | {:.2} | {:.2} | {:.0} |",
                m.wall_s, m.cpu_s, m.peak_rss_mib
            );
        };
        for m in &st.stages {
            let name = m
                .step
                .trim_start_matches(&format!("{}_", st.study))
                .to_string();
            row(&mut s, &name, m);
        }
        row(&mut s, "end to end (one process)", &st.end_to_end);
        row(
            &mut s,
            &format!(
                "rerun after model.alpha changed ({:.1}% of end to end)",
                100.0 * st.rerun_share
            ),
            &st.rerun_after_model_change,
        );
        row(
            &mut s,
            &format!("check ({:.0}% of ingest + clean)", 100.0 * st.check_share),
            &st.check,
        );
    }
    if let Some(d) = &r.duckdb {
        let (m, ours) = (&d.duckdb, &d.relcap_data_stages);
        let _ = writeln!(
            s,
            "\ndata stages against DuckDB SQL (benches/data_stages.sql), national: relcap \
             ingest + clean + score + link {:.2} s wall, {:.2} s CPU, {:.0} MiB peak; DuckDB \
             {:.2} s wall, {:.2} s CPU, {:.0} MiB peak; relcap/DuckDB {:.2}x wall, {:.2}x CPU",
            ours.wall_s,
            ours.cpu_s,
            ours.peak_rss_mib,
            m.wall_s,
            m.cpu_s,
            m.peak_rss_mib,
            d.wall_ratio,
            d.cpu_ratio
        );
    }
    if let Some(why) = &r.duckdb_skipped {
        let _ = writeln!(s, "\nDuckDB baseline skipped: {why}");
    }
    if let Some(p) = &r.power {
        let _ = writeln!(
            s,
            "\npower, {} replications of the demo design: {:.1} s wall, {:.1} s CPU, {:.0} MiB peak",
            r.power_replications, p.wall_s, p.cpu_s, p.peak_rss_mib
        );
    }
    if let Some(l) = &r.h3_lmm {
        let _ = writeln!(
            s,
            "\nH3 model on the national sample ({} rows): relcap fit {:.2} s wall ({:.0} MiB); \
             lme4::lmer {:.2} s, lmerTest + summary {:.2} s (Rscript in all {:.1} s); \
             max relative difference: estimates {:.1e}, SEs {:.1e}, variances {:.1e}",
            l.rows,
            l.relcap_fit.wall_s,
            l.relcap_fit.peak_rss_mib,
            l.lme4_lmer_s,
            l.lmertest_summary_s,
            l.rscript.wall_s,
            l.max_rel_diff_estimates,
            l.max_rel_diff_std_errors,
            l.max_rel_diff_variances
        );
    }
    s
}

/// Why the DuckDB baseline cannot run here (None when `python3 -c "import duckdb"` works).
fn duckdb_missing() -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => None,
        Ok(_) => Some("Python's duckdb package is not installed (pip install duckdb)".into()),
        Err(e) => Some(format!("python3 cannot be started ({e})")),
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0 / 1024.0)
        .unwrap_or(f64::NAN);
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    Machine {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_gib,
        os,
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::io::write_atomic(path, |w| {
        std::io::Write::write_all(w, text.as_bytes())?;
        Ok(())
    })
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        let md = e.metadata()?;
        total += if md.is_dir() {
            dir_bytes(&e.path())?
        } else {
            md.len()
        };
    }
    Ok(total)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// A national study left by an earlier bench is reused only when its `truth.json` says it is the
/// national preset made with `seed`: figures of another study must not be labelled with this one.
fn check_reused_study(data: &Path, seed: u64) -> Result<()> {
    let path = data.join("truth.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let truth: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the JSON `relcap simulate` writes",
            path.display()
        )
    })?;
    let params = &truth["params"];
    let (made_seed, preset) = (params["seed"].as_u64(), params["preset"].as_str());
    if made_seed != Some(seed) || preset != Some("national") {
        bail!(
            "{} holds a study made with preset {} and seed {}, not the national preset with seed \
             {seed}: pass --seed {} or remove the folder to simulate it again",
            data.display(),
            preset.unwrap_or("?"),
            made_seed.map_or_else(|| "?".to_string(), |s| s.to_string()),
            made_seed.map_or_else(|| "S".to_string(), |s| s.to_string()),
        );
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("path is not UTF-8: {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_change_changes_only_alpha() {
        let text = "[study]\nname = \"x\"\n[model]\nalpha = 0.05\nmin_clusters = 5\n";
        let t: toml::Table = model_change(text).unwrap().parse().unwrap();
        assert_eq!(t["model"]["alpha"].as_float(), Some(0.049));
        assert_eq!(t["model"]["min_clusters"].as_integer(), Some(5));
        assert_eq!(t["study"]["name"].as_str(), Some("x"));
        let back: toml::Table = model_change(&toml::to_string(&t).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(back["model"]["alpha"].as_float(), Some(0.05));
    }

    #[test]
    fn measures_a_child_that_allocates() {
        // A shell that holds ~64 MiB in a variable: the peak must be at least that, and the exit
        // status must be seen.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null",
        ]);
        let (m, code) = measure_child("t", cmd).unwrap();
        assert_eq!(code, Some(0));
        assert!(m.peak_rss_mib >= 64.0, "peak {}", m.peak_rss_mib);
        assert!(m.wall_s > 0.0 && m.cpu_s > 0.0);
        let mut fail = Command::new("sh");
        fail.args(["-c", "exit 3"]);
        assert_eq!(measure_child("f", fail).unwrap().1, Some(3));
    }

    #[test]
    fn a_reused_study_must_be_the_national_preset_with_the_seed_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let write = |preset: &str, seed: u64| {
            let truth = serde_json::json!({"params": {"preset": preset, "seed": seed}});
            std::fs::write(dir.path().join("truth.json"), truth.to_string()).unwrap();
        };
        write("national", 7);
        check_reused_study(dir.path(), 7).unwrap();
        let e = check_reused_study(dir.path(), 8).unwrap_err().to_string();
        assert!(e.contains("seed 7") && e.contains("--seed 7"), "{e}");
        write("demo", 8);
        let e = check_reused_study(dir.path(), 8).unwrap_err().to_string();
        assert!(e.contains("preset demo"), "{e}");
        std::fs::write(dir.path().join("truth.json"), "not json").unwrap();
        assert!(check_reused_study(dir.path(), 8).is_err());
    }
}
