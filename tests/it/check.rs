//! `relcap check`: the demo study checks clean (exit 0) and nothing is written; a dirty copy
//! exits 1 naming each reason with its file:line and the cell as written; a missing table, or a
//! study that is not simulated and has no key, exits 2 with the reason. Each runs in a
//! temporary folder; without `--config` there is no config file (the built-in defaults).

use std::path::Path;
use std::process::Output;

use crate::common::{copy_dir, files, output_within, relcap_command, repo, RUN_LIMIT};

const KEY_ENV: &str = "RELCAP_PSEUDONYM_KEY";
/// A test key (never a study's).
const KEY: &str = "check-test-key-0123456789abcdefg";

/// `relcap check --data DATA` from `cwd`, with the key `key` (None: no key variable), and
/// the repository's config when `demo_config` (its public demo key serves simulated data).
fn check(cwd: &Path, data: &Path, key: Option<&str>, demo_config: bool) -> (i32, String) {
    let mut cmd = relcap_command();
    cmd.current_dir(cwd).arg("check").arg("--data").arg(data);
    if demo_config {
        cmd.arg("--config").arg(repo().join("config/study.toml"));
    }
    if let Some(k) = key {
        cmd.env(KEY_ENV, k);
    }
    let out: Output = output_within(&mut cmd, RUN_LIMIT).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A temporary folder holding a copy of the demo tables in `data/`.
fn demo_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&repo().join("data/demo"), &data);
    (tmp, data)
}

/// Every file under `dir` with its content.
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Appends `row` to `<data>/<table>.csv`; returns its line (the header is line 1).
fn append(data: &Path, table: &str, row: &str) -> usize {
    let path = data.join(format!("{table}.csv"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    text.push_str(row);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    line
}

#[test]
fn the_demo_checks_clean_and_nothing_is_written() {
    let (tmp, data) = demo_copy();
    let before = tree(tmp.path());
    let (code, text) = check(tmp.path(), &data, None, true);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("verdict: the data would run clean"), "{text}");
    assert!(text.contains("clean employee_responses:"), "{text}");
    assert_eq!(
        tree(tmp.path()),
        before,
        "relcap check wrote or changed a file"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_dirty_copy_exits_1_with_each_reason_and_its_file_line() {
    let (tmp, data) = demo_copy();
    let bad_value = append(
        &data,
        "employee_responses",
        "1,E0010001,Hedensted,HED-U001,job_consultants,frequent,abc",
    );
    let unknown_unit = append(&data, "intervention", "NOPE-U999,intervention,1");
    let before = tree(tmp.path());
    let (code, text) = check(tmp.path(), &data, Some(KEY), false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("quarantined not_a_number: 1"), "{text}");
    let cell = format!("employee_responses.csv:{bad_value} value \"abc\"");
    assert!(text.contains(&cell), "{text}");
    assert!(text.contains("quarantined unknown_reference: 1"), "{text}");
    let unit = format!("intervention.csv:{unknown_unit} unit_id \"NOPE-U999\"");
    assert!(text.contains(&unit), "{text}");
    assert!(text.contains("rows would be set aside"), "{text}");
    assert_eq!(
        tree(tmp.path()),
        before,
        "relcap check wrote or changed a file"
    );
}

#[test]
fn a_missing_table_exits_2_with_the_reason() {
    let (tmp, data) = demo_copy();
    std::fs::remove_file(data.join("units.csv")).unwrap();
    let (code, text) = check(tmp.path(), &data, Some(KEY), false);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("problem (the run would stop)"), "{text}");
    assert!(text.contains("required table units"), "{text}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_study_not_simulated_without_a_key_exits_2_naming_the_key() {
    let (tmp, data) = demo_copy();
    // No longer the simulated study its marker describes: the demo key is refused.
    append(
        &data,
        "employee_responses",
        "1,E0010001,Hedensted,HED-U001,job_consultants,frequent,3",
    );
    let (code, text) = check(tmp.path(), &data, None, true);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no pseudonymisation key"), "{text}");
    assert!(text.contains(KEY_ENV), "{text}");
    // The rows are checked all the same.
    assert!(text.contains("clean employee_responses:"), "{text}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_bad_config_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("study.toml"), "[study\n").unwrap();
    let (code, text) = check(tmp.path(), tmp.path(), Some(KEY), false);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("problem (the run would stop)"), "{text}");
}
