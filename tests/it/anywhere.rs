//! A study run from anywhere, through the binary: no config file (the built-in defaults), a
//! study folder made by `relcap init`, the report beside the outputs of the run (never in the
//! repository's reports/), and a log closed early (`| head -1`) that leaves a complete run.
//! Every child process runs under a timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

const KEY_ENV: &str = "RELCAP_PSEUDONYM_KEY";
/// A study key of the right length (not the demo key: these folders are not `relcap simulate`'s).
const KEY: &str = "0123456789abcdef0123456789abcdef";
/// Long enough for a debug run of the demo study; a child that outlives it is killed.
const TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relcap(cwd: &Path) -> Command {
    let mut c = Command::cargo_bin("relcap").unwrap();
    c.current_dir(cwd).env_remove(KEY_ENV).timeout(TIMEOUT);
    c
}

/// The demo study's tables (without truth.json and its truth tables) copied into `to`.
fn copy_demo_tables(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for t in relcap::schema::TABLES {
        let name = format!("{t}.csv");
        std::fs::copy(repo().join("data/demo").join(&name), to.join(&name)).unwrap();
    }
}

fn ok(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "status {:?}\nstderr:\n{err}", o.status);
    err
}

/// The run status recorded in `out/manifest.json`.
fn run_status(out: &Path) -> String {
    let text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["status"].as_str().unwrap().to_string()
}

#[test]
fn no_config_file_runs_with_the_built_in_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    copy_demo_tables(&tmp.path().join("kommune"));
    let o = relcap(tmp.path())
        .env(KEY_ENV, KEY)
        .args(["run", "--data", "kommune", "--out", "o"])
        .output()
        .unwrap();
    let log = ok(&o);
    let out = tmp.path().join("o");
    assert_eq!(run_status(&out), "complete");
    let html = out.join("report/report.html");
    assert!(html.is_file(), "{log}");
    // The study is named after its data folder, and the last log line names the report.
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("kommune"));
    let last = log.lines().last().unwrap();
    assert_eq!(last, "[relcap] report: o/report/report.html", "{log}");
    // Nothing else was written into the working folder.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["kommune", "o"]);
    // The report folder is the report stage's own: each file recorded once, so a rerun
    // reproduces the run.
    let v = relcap(tmp.path())
        .env(KEY_ENV, KEY)
        .args(["verify", "-q", "--manifest", "o/manifest.json"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn an_explicit_config_that_is_missing_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = relcap(tmp.path())
        .args(["run", "--config", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.toml"));
}

#[test]
fn init_makes_a_study_folder_that_runs_without_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    ok(&relcap(tmp.path()).args(["init", "s"]).output().unwrap());
    let s = tmp.path().join("s");
    let toml = std::fs::read_to_string(s.join("study.toml")).unwrap();
    assert!(toml.contains("name = \"s\"") && toml.contains("data_dir = \"data\""));
    assert!(!toml.contains("demo_key"), "{toml}");
    let header = |t: &str| {
        let text = std::fs::read_to_string(s.join("data").join(format!("{t}.csv"))).unwrap();
        assert_eq!(text.lines().count(), 1, "{t}: {text}");
        text.trim_end().to_string()
    };
    assert_eq!(header("intervention"), "unit_id,arm,after_wave");
    assert_eq!(
        header("citizen_responses"),
        "wave,citizen_id,municipality,case_id,item,value"
    );
    // A second init refuses and leaves the study as it was.
    let again = relcap(tmp.path()).args(["init", "s"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert_eq!(std::fs::read_to_string(s.join("study.toml")).unwrap(), toml);

    copy_demo_tables(&s.join("data"));
    // Without a key: refused before anything is written, saying how to set and make one.
    let refused = relcap(&s).arg("run").output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(KEY_ENV) && err.contains("relcap keygen"),
        "{err}"
    );
    assert!(!s.join("out").exists());
    // With a key: no arguments needed; outputs and report inside the study folder.
    let log = ok(&relcap(&s).env(KEY_ENV, KEY).arg("run").output().unwrap());
    assert_eq!(run_status(&s.join("out")), "complete");
    assert!(s.join("out/report/report.html").is_file(), "{log}");
    assert!(
        log.ends_with("[relcap] report: out/report/report.html\n"),
        "{log}"
    );
}

#[test]
fn a_run_with_out_leaves_the_repository_reports_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let reports = repo().join("reports");
    let before = snapshot(&reports);
    let o = tmp.path().join("o");
    // The repository's demo config (found as ./config/study.toml), its simulated data, another
    // output folder.
    ok(&relcap(&repo())
        .args(["run", "-q", "--out"])
        .arg(&o)
        .output()
        .unwrap());
    assert_eq!(run_status(&o), "complete");
    assert!(o.join("report/report.html").is_file());
    assert_eq!(snapshot(&reports), before, "reports/ changed");
    // --data of another study without --out would write over the config's study: refused.
    let other = tmp.path().join("other");
    copy_demo_tables(&other);
    let e = relcap(&repo())
        .env(KEY_ENV, KEY)
        .args(["run", "-q", "--data"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--out"));
    assert_eq!(snapshot(&reports), before, "reports/ changed");
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut all = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                all.push((e.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn a_log_closed_early_leaves_a_complete_run() {
    let tmp = tempfile::tempdir().unwrap();
    copy_demo_tables(&tmp.path().join("data"));
    let bin = assert_cmd::cargo::cargo_bin("relcap");
    // The inner timeout bounds relcap itself; the outer one bounds the shell.
    let script = format!(
        "timeout {} '{}' run --data data --out out 2>&1 | head -1",
        TIMEOUT.as_secs(),
        bin.display()
    );
    let o = Command::new("sh")
        .current_dir(tmp.path())
        .env(KEY_ENV, KEY)
        .args(["-c", &script])
        .timeout(TIMEOUT + Duration::from_secs(10))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    let out = tmp.path().join("out");
    assert_eq!(run_status(&out), "complete");
    assert!(out.join("report/report.html").is_file());
}
