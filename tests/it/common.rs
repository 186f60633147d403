//! What the integration tests share: the binary under test (every child process with a time
//! limit), the demo config and instrument, temporary studies, and readers of the outputs
//! (Parquet tables, stage summaries, quarantine rows) and of the simulator's CSV files.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use polars::prelude::{DataFrame, DataType, PlSmallStr, SortMultipleOptions};
use relcap::config::{Config, InstrumentSection};
use relcap::pseudonym::{KeySource, Pseudonymizer};
use serde_json::Value;

/// How long one `relcap` command may run before the test kills it: generous, for a debug build
/// on a machine that runs many tests at once (a demo run takes seconds).
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test, hard-linked once per test process: several worktrees may share one
/// target folder, and a build there replaces `target/debug/relcap` under a running test.
/// `RELCAP_TEST_BIN` names another binary to test.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("RELCAP_TEST_BIN") {
            return PathBuf::from(p);
        }
        let built = PathBuf::from(env!("CARGO_BIN_EXE_relcap"));
        let tag = &blake3::hash(env!("CARGO_MANIFEST_DIR").as_bytes()).to_hex()[..12];
        let link =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("relcap-under-test-{tag}"));
        let _ = std::fs::remove_file(&link);
        match std::fs::hard_link(&built, &link) {
            Ok(()) => link,
            Err(_) => built,
        }
    })
}

/// `relcap` as a plain command (to spawn it, or to run it with [`output_within`]), without a
/// pseudonym key from the environment: the config's demo key serves unless a test sets one.
pub fn relcap_command() -> Command {
    let mut c = Command::new(bin());
    c.env_remove("RELCAP_PSEUDONYM_KEY");
    c
}

/// `relcap` through assert_cmd, killed after [`RUN_LIMIT`] (`.output()` then returns an error,
/// `.assert()` panics).
pub fn relcap() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::from_std(relcap_command());
    c.timeout(RUN_LIMIT);
    c
}

/// Runs `cmd` to its end and returns its output, or kills it and panics when it (or a process
/// it started that keeps its output open) runs longer than `limit`. An error is returned only
/// when the program cannot be started.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let deadline = Instant::now() + limit;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes are drained while the child runs, so that a full pipe cannot stall it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            panic!("{cmd:?} did not finish within {limit:?}; it was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                panic!("{cmd:?} ended, but its output was not closed within {limit:?}")
            })
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Reads `child`'s stderr line by line until a line contains `needle` or stderr closes, and
/// returns what it read; kills the child and panics when neither happens within `limit`.
pub fn stderr_until(child: &mut Child, needle: &str, limit: Duration) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut log = String::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(needle) {
                    return log;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return log,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill(child);
                panic!("no line {needle:?} within {limit:?}; the child was killed. Read:\n{log}");
            }
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Asserts that a command succeeded and returns its stderr (the run log).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "relcap failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `relcap simulate -q --out DIR ARGS` (`args` separated by white space); returns DIR.
pub fn simulate(dir: &Path, args: &str) -> PathBuf {
    relcap()
        .args(["simulate", "-q", "--out"])
        .arg(dir)
        .args(args.split_whitespace())
        .assert()
        .success();
    dir.to_path_buf()
}

// ---- The demo study's config ----

/// The text of `config/study.toml` with each `(from, to)` replaced; each `from` must occur.
pub fn demo_config_text(replace: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("config/study.toml")).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "config/study.toml has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// [`demo_config_text`] written as `dir/name`; returns its path.
pub fn write_demo_config(dir: &Path, name: &str, replace: &[(&str, &str)]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, demo_config_text(replace)).unwrap();
    p
}

/// The demo study's config, as the pipeline reads it.
pub fn demo_config() -> Config {
    Config::load(&repo().join("config/study.toml")).unwrap()
}

/// The instrument of the demo config (item names, scale, value maps).
pub fn instrument() -> &'static InstrumentSection {
    static INSTRUMENT: OnceLock<InstrumentSection> = OnceLock::new();
    INSTRUMENT.get_or_init(|| demo_config().instrument)
}

/// The pseudonym of a raw id under the demo config's public key.
pub fn demo_pseudonym(raw: &str) -> String {
    let key = demo_config()
        .privacy
        .demo_key
        .expect("the demo config has a demo key");
    Pseudonymizer::new(key.as_bytes(), KeySource::DemoKey)
        .unwrap()
        .pseudonym(raw)
}

// ---- Files ----

/// Every file under `dir`, recursively, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copies the folder `from` into `to` (created), recursively; a missing `from` copies nothing.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    if !from.is_dir() {
        return;
    }
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CSV file written by the simulator: header and rows (plain comma-separated text: no quoted
/// fields, no byte-order mark, every row as wide as the header).
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    pub fn read(path: &Path) -> Csv {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            !text.contains('"'),
            "{}: unexpected quoting",
            path.display()
        );
        assert!(!text.starts_with('\u{feff}'), "no byte-order mark");
        let mut lines = text.lines();
        let header = lines
            .next()
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>();
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        for r in &rows {
            assert_eq!(
                r.len(),
                header.len(),
                "{}: ragged row {r:?}",
                path.display()
            );
        }
        Csv { header, rows }
    }

    /// The index of column `name`.
    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }
}

// ---- A stage's outputs ----

/// Table `table` of `stage` in the output folder `out`.
pub fn read(out: &Path, stage: &str, table: &str) -> DataFrame {
    relcap::io::read_parquet(&out.join(stage).join(format!("{table}.parquet"))).unwrap()
}

/// The tables in which an export format must give what the study's canonical tables give: the
/// clean tables, the scores, the analysis tables and the model results.
pub const ANALYSIS_TABLES: [(&str, &str); 13] = [
    ("clean", "employee_responses"),
    ("clean", "citizen_responses"),
    ("clean", "case_involvement"),
    ("score", "ties"),
    ("score", "respondents"),
    ("score", "dyads"),
    ("score", "units"),
    ("score", "citizens"),
    ("score", "reliability"),
    ("link", "h1_cases"),
    ("link", "h2_respondents"),
    ("link", "h3_panel"),
    ("model", "results"),
];

/// `df` without the provenance columns (`source`, `line`), rows sorted on every column.
pub fn content(mut df: DataFrame) -> DataFrame {
    for c in ["source", "line"] {
        if df.column(c).is_ok() {
            df = df.drop(c).unwrap();
        }
    }
    let names: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
    df.sort(names, SortMultipleOptions::default()).unwrap()
}

/// Asserts that every table of [`ANALYSIS_TABLES`] in the output folders `a` and `b` is
/// non-empty and has the same content (provenance aside, in any row order).
pub fn assert_same_analysis(a: &Path, b: &Path) {
    for (stage, t) in ANALYSIS_TABLES {
        let (x, y) = (content(read(a, stage, t)), content(read(b, stage, t)));
        assert!(x.height() > 0, "{stage}/{t} is empty");
        assert!(x.equals_missing(&y), "{stage}/{t} differs:\n{x}\n{y}");
    }
}

/// `summary.json` of `stage` in the output folder `out`.
pub fn summary(out: &Path, stage: &str) -> Value {
    read_json(&out.join(stage).join("summary.json"))
}

/// Column `c` as text (cast from any type).
pub fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

pub fn ints(df: &DataFrame, c: &str) -> Vec<Option<i64>> {
    df.column(c).unwrap().i64().unwrap().iter().collect()
}

pub fn floats(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c).unwrap().f64().unwrap().iter().collect()
}

pub fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .into_iter()
        .map(|n| n.to_string())
        .collect()
}

/// Asserts that the counts of table `table` in a stage summary balance:
/// in = out + quarantined + duplicates + excluded.
pub fn assert_balances(stage: &str, table: &str, counts: &Value) {
    let n = |k: &str| counts[k].as_u64().unwrap();
    let total = |k: &str| -> u64 {
        counts[k]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        n("rows_in"),
        n("rows_out") + total("quarantined") + n("duplicates_collapsed") + total("excluded"),
        "{stage}/{table} does not balance: {counts}"
    );
}

/// (table, line, column, value, reason) of a quarantine row.
pub type QRow = (String, i64, Option<String>, Option<String>, String);

/// Every quarantine row of `stage` in the output folder `out`.
pub fn quarantine(out: &Path, stage: &str) -> Vec<QRow> {
    let q = read(out, stage, "quarantine");
    let (t, line) = (strs(&q, "table"), ints(&q, "line"));
    let (c, v, r) = (strs(&q, "column"), strs(&q, "value"), strs(&q, "reason"));
    (0..q.height())
        .map(|i| {
            (
                t[i].clone().unwrap(),
                line[i].unwrap(),
                c[i].clone(),
                v[i].clone(),
                r[i].clone().unwrap(),
            )
        })
        .collect()
}

// ---- The published German RC survey ----

/// `rc_gp.csv` of the published German Relational Coordination survey (816 general
/// practitioners; data of KaiKeller/Relational-Coordination-psychometrics, DOI
/// 10.5281/zenodo.19392497, CC BY-NC 4.0, so never copied into this repository): the path in
/// `RELCAP_RC_GP_CSV` (CI sets it), else where `config/examples/rc-survey-germany.toml` reads it
/// (beside its units.csv). None, with a note, when the file is absent: the tests that need it
/// then pass without checking.
pub fn german_survey() -> Option<PathBuf> {
    let p = match std::env::var_os("RELCAP_RC_GP_CSV") {
        Some(p) => PathBuf::from(p),
        None => repo().join("config/examples/rc-survey-germany/rc_gp.csv"),
    };
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "note: {} is absent (set RELCAP_RC_GP_CSV); the German RC survey checks are skipped",
            p.display()
        );
        None
    }
}

/// The German survey file as (header, rows of fields): plain comma-separated numbers with a
/// quoted header, `NA` for a missing value.
pub fn german_survey_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(|h| h.trim_matches('"').to_string())
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}
