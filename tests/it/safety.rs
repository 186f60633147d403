//! Keys that cannot go wrong and one run per output folder, through the binary: the public demo
//! key only for a study written by `relcap simulate`, a refusal that writes nothing and says how to
//! set and make a key, `relcap keygen`, the 16-byte floor, and the lock on `OUT/.lock` (held,
//! waited for, left by a killed run). Every child process runs under a timeout.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

const KEY_ENV: &str = "RELCAP_PSEUDONYM_KEY";
/// Long enough for any run here; a child that outlives it is killed and its test fails.
const TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relcap() -> Command {
    let mut c = Command::cargo_bin("relcap").unwrap();
    c.env_remove(KEY_ENV).timeout(TIMEOUT);
    c
}

/// A copy of the demo study in `<tmp>/data`; without `truth.json` unless `with_truth`.
fn demo_copy(with_truth: bool) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for e in std::fs::read_dir(repo().join("data/demo")).unwrap() {
        let e = e.unwrap();
        if with_truth || e.file_name() != "truth.json" {
            std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
        }
    }
    tmp
}

/// `relcap run --until ingest` on `<tmp>/data` into `<tmp>/out` (reports in `<tmp>/reports`),
/// with the key `key` in the environment, or none.
fn ingest(tmp: &Path, key: Option<&str>, extra: &[&str]) -> Output {
    let mut c = relcap();
    c.args(["run", "--until", "ingest", "--config"])
        .arg(repo().join("config/study.toml"))
        .arg("--data")
        .arg(tmp.join("data"))
        .arg("--out")
        .arg(tmp.join("out"))
        .arg("--reports")
        .arg(tmp.join("reports"))
        .args(extra);
    if let Some(k) = key {
        c.env(KEY_ENV, k);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key_source(tmp: &Path) -> String {
    let text = std::fs::read_to_string(tmp.join("out/manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["pseudonym_key"]["source"].as_str().unwrap().to_string()
}

/// Refused before anything is written: no output folder, no reports.
fn refused_writing_nothing(tmp: &Path, o: &Output) -> String {
    assert!(!o.status.success(), "the run must be refused");
    assert!(!tmp.join("out").exists(), "the refused run wrote into OUT");
    assert!(
        !tmp.join("reports").exists(),
        "the refused run wrote reports"
    );
    stderr(o)
}

#[test]
fn data_not_simulated_is_refused_without_a_key_and_nothing_written_but_runs_with_one() {
    let tmp = demo_copy(false);
    let err = refused_writing_nothing(tmp.path(), &ingest(tmp.path(), None, &[]));
    for part in [
        "no pseudonymisation key",
        "holds no truth.json",
        "export RELCAP_PSEUDONYM_KEY=",
        "relcap keygen",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }

    let key = "0123456789abcdef-a-study-key";
    let o = ingest(tmp.path(), Some(key), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(key_source(tmp.path()), "environment");
    let manifest = std::fs::read_to_string(tmp.path().join("out/manifest.json")).unwrap();
    assert!(!manifest.contains(key), "the manifest holds the key");
}

#[test]
fn the_demo_study_runs_without_a_key_but_not_once_edited() {
    let tmp = demo_copy(true);
    let o = ingest(tmp.path(), None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(key_source(tmp.path()), "demo_key");

    let tmp = demo_copy(true);
    let units = tmp.path().join("data/units.csv");
    let text = std::fs::read_to_string(&units).unwrap();
    std::fs::write(&units, text.replace("Randers", "Rander")).unwrap();
    let err = refused_writing_nothing(tmp.path(), &ingest(tmp.path(), None, &[]));
    assert!(err.contains("units.csv is not the units.csv"), "{err}");
}

#[test]
fn a_key_of_15_bytes_is_refused() {
    let tmp = demo_copy(true);
    let o = ingest(tmp.path(), Some("fifteen-bytes!!"), &[]);
    let err = refused_writing_nothing(tmp.path(), &o);
    assert!(
        err.contains("15 bytes") && err.contains("at least 16"),
        "{err}"
    );
    let o = ingest(tmp.path(), Some("sixteen-bytes!!!"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn keygen_prints_a_new_256_bit_key_each_time() {
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let o = relcap().arg("keygen").output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            assert!(stderr(&o).contains("export RELCAP_PSEUDONYM_KEY="));
            let out = String::from_utf8(o.stdout).unwrap();
            let key = out.strip_suffix('\n').unwrap().to_string();
            assert_eq!(key.len(), 64, "{key}");
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            key
        })
        .collect();
    assert_ne!(keys[0], keys[1]);
}

/// Locks `<tmp>/out/.lock` as a run does, naming this process.
fn hold_lock(tmp: &Path) -> File {
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out.join(".lock"))
        .unwrap();
    f.try_lock().unwrap();
    write!(f, "pid {}\ncommand safety test\n", std::process::id()).unwrap();
    f
}

#[test]
fn a_second_run_into_a_locked_folder_fails_at_once_naming_the_holder() {
    let tmp = demo_copy(true);
    let held = hold_lock(tmp.path());
    // Without --wait the run must return while the lock is held (a wait would hit the timeout).
    let o = ingest(tmp.path(), None, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "in use by another relcap run: pid {}",
            std::process::id()
        )),
        "{err}"
    );
    assert!(
        err.contains("safety test") && err.contains("--wait"),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.json").exists());
    drop(held);
}

#[test]
fn wait_runs_once_the_holder_ends() {
    let tmp = demo_copy(true);
    let held = hold_lock(tmp.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relcap"))
        .env_remove(KEY_ENV)
        .args(["run", "--until", "ingest", "--wait", "--config"])
        .arg(repo().join("config/study.toml"))
        .arg("--data")
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--reports")
        .arg(tmp.path().join("reports"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let early = child.try_wait().unwrap();
    let manifest_early = tmp.path().join("out/manifest.json").exists();
    drop(held);
    let mut status = early;
    for _ in 0..1200 {
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        status = child.try_wait().unwrap();
    }
    if status.is_none() {
        child.kill().unwrap();
    }
    assert!(
        early.is_none() && !manifest_early,
        "--wait ran while the lock was held"
    );
    assert!(status.unwrap().success());
    assert!(tmp.path().join("out/manifest.json").exists());
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over() {
    let tmp = demo_copy(true);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // What a killed run leaves: its pid in the file, and no process holding the lock.
    std::fs::write(
        out.join(".lock"),
        "pid 4194303\nstarted 1\ncommand relcap run\n",
    )
    .unwrap();
    let o = ingest(tmp.path(), None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("took over the lock") && err.contains("pid 4194303"),
        "{err}"
    );
    assert!(
        !out.join(".lock").exists(),
        "the run removes its lock file at the end"
    );
}

/// The binary is a position-independent executable (ELF type `ET_DYN`), so the operating system
/// loads it at a random address: a tool that handles personal data keeps that defence.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_is_position_independent() {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_relcap")).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    // e_type at offset 16, in the file's byte order (byte 5: 1 little-endian, 2 big-endian).
    let e_type = match bytes[5] {
        1 => u16::from_le_bytes([bytes[16], bytes[17]]),
        _ => u16::from_be_bytes([bytes[16], bytes[17]]),
    };
    assert_eq!(
        e_type, 3,
        "ELF type {e_type}: 2 is a fixed-address executable, 3 is PIE"
    );
}
