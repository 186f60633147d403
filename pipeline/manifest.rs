//! The run manifest `OUT/manifest.json`: what ran, on what, with which settings, and what it
//! wrote. `relcap run` keeps it up to date stage by stage (rewritten atomically before and after
//! every stage, so a killed run leaves a manifest saying which stage was interrupted);
//! `relcap status` compares the present against it; `relcap verify` reruns the study it
//! describes and compares the outputs.
//!
//! The manifest is the only file of a run that holds timestamps and wall times: the Parquet
//! files and each stage's `summary.json` are byte-identical across runs of the same inputs and
//! config, and the times of issue 2 ("how long did each stage take") are here.
//!
//! # Layout (`manifest_version` 1)
//!
//! | key | type | meaning |
//! | --- | --- | --- |
//! | `manifest_version` | int | 1 |
//! | `run_id` | str | `YYYYMMDDTHHMMSSZ-` + 8 hex: the run that last wrote this manifest |
//! | `status` | str | `running`, `complete` or `failed` |
//! | `started`, `finished` | str | UTC, RFC 3339 with milliseconds; `finished` null while running |
//! | `seconds` | float | wall time of the run |
//! | `command` | [str] | the command line |
//! | `relcap_version` | str | version of the binary |
//! | `cargo_lock_blake3` | str | blake3 of the `Cargo.lock` the binary was built with |
//! | `config` | object | `path` (null for a config built in code), `blake3` of the file's bytes (null likewise), `text` (the file), `resolved_blake3` and `resolved` (the validated config as JSON, paths resolved) |
//! | `data_dir`, `out_dir`, `reports_dir` | str | the folders used |
//! | `pseudonym_key` | object | `id` (blake3 of the key, first 16 hex; never the key), `source` (`environment`, `demo_key`) |
//! | `seeds` | object | seeds that shaped the inputs or outputs: `simulate` (the seed in the data folder's `truth.json`, for a simulated study) and any `seed` a stage reports among its facts |
//! | `selected`, `ran`, `skipped` | [str] | the stages this run selected, ran, and found up to date |
//! | `stages` | [object] | one entry per stage that has ever completed or started in OUT, in pipeline order |
//!
//! A stage entry: `name`, `version`, `status` (`running`, `complete`, `failed`), `fingerprint`
//! (blake3, hex), `run_id`/`started`/`finished`/`seconds` of the run that produced it (a stage
//! found up to date keeps its entry), `relcap_version`, `config` (the part of the config it
//! reads), `pseudonym_key_id` (ingest only), `inputs` (`name`, `file`, `blake3`, `bytes`: for
//! ingest `name` is the canonical table and `file` its path under the data folder, null when an
//! optional table is absent; for later stages `name` = `file` = the upstream output's path under
//! OUT), `upstream` (fingerprints of the stages it reads), `outputs` (`root` = `out` or
//! `reports`, `path` relative to that root, `blake3`, `bytes`), `rows_in`, `rows_out`,
//! `quarantined` (sums over its tables), `tables` (its row accounting per table, as in
//! `summary.json`) and `warnings`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::io;

/// File name of the manifest in OUT.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Bumped when the manifest layout changes.
pub const MANIFEST_VERSION: u32 = 1;

/// The version of this binary.
pub const RELCAP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The lock file the binary was built with (cargo rebuilds when it changes).
const CARGO_LOCK: &[u8] = include_bytes!("../Cargo.lock");

/// blake3 of the `Cargo.lock` this binary was built with.
pub fn cargo_lock_hash() -> String {
    blake3::hash(CARGO_LOCK).to_hex().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Running,
    Complete,
    Failed,
}

/// Where an output lives: under OUT, or under the reports folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Root {
    Out,
    Reports,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub path: Option<String>,
    pub blake3: Option<String>,
    pub text: Option<String>,
    pub resolved_blake3: String,
    pub resolved: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub source: String,
}

/// One file a stage read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The canonical table (ingest) or the upstream output's path under OUT.
    pub name: String,
    /// The file: under the data folder (ingest; None when an optional table is absent) or OUT.
    pub file: Option<String>,
    pub blake3: Option<String>,
    pub bytes: Option<u64>,
}

/// One file a stage wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub root: Root,
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub blake3: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    pub name: String,
    pub version: u32,
    pub status: StageStatus,
    pub fingerprint: String,
    pub run_id: String,
    pub started: String,
    pub finished: Option<String>,
    pub seconds: Option<f64>,
    pub relcap_version: String,
    pub config: Value,
    pub pseudonym_key_id: Option<String>,
    pub inputs: Vec<InputRecord>,
    pub upstream: BTreeMap<String, String>,
    pub outputs: Vec<OutputRecord>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub quarantined: u64,
    pub tables: Value,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub run_id: String,
    pub status: RunStatus,
    pub started: String,
    pub finished: Option<String>,
    pub seconds: Option<f64>,
    pub command: Vec<String>,
    pub relcap_version: String,
    pub cargo_lock_blake3: String,
    pub config: ConfigRecord,
    pub data_dir: String,
    pub out_dir: String,
    pub reports_dir: String,
    pub pseudonym_key: KeyRecord,
    pub seeds: BTreeMap<String, Value>,
    pub selected: Vec<String>,
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
    pub stages: Vec<StageEntry>,
}

impl Manifest {
    /// Reads a manifest, refusing one of another layout version.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let probe: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        match probe.get("manifest_version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(MANIFEST_VERSION) => {}
            Some(v) => bail!(
                "{}: manifest version {v}; this relcap reads version {MANIFEST_VERSION}",
                path.display()
            ),
            None => bail!("{} is not a relcap run manifest", path.display()),
        }
        serde_json::from_value(probe)
            .with_context(|| format!("{} is not a valid relcap run manifest", path.display()))
    }

    /// The manifest in `out_dir`, None when there is none; an unreadable one is an error.
    pub fn load_from_out(out_dir: &Path) -> Result<Option<Manifest>> {
        let path = out_dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Manifest::load(&path).map(Some)
    }

    /// Writes the manifest atomically to `out_dir/manifest.json`.
    pub fn save(&self, out_dir: &Path) -> Result<()> {
        io::write_json(self, &out_dir.join(MANIFEST_FILE))
    }

    pub fn stage(&self, name: &str) -> Option<&StageEntry> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Puts `entry` in place of the stage's entry, keeping the entries in `order`.
    pub fn set_stage(&mut self, entry: StageEntry, order: &[&str]) {
        self.stages.retain(|s| s.name != entry.name);
        self.stages.push(entry);
        let pos = |n: &str| order.iter().position(|o| *o == n).unwrap_or(usize::MAX);
        self.stages.sort_by_key(|s| pos(&s.name));
    }

    pub fn stage_mut(&mut self, name: &str) -> Option<&mut StageEntry> {
        self.stages.iter_mut().find(|s| s.name == name)
    }
}

/// The path of a recorded output on this machine.
pub fn output_path(out_dir: &Path, reports_dir: &Path, o: &OutputRecord) -> PathBuf {
    let root = match o.root {
        Root::Out => out_dir,
        Root::Reports => reports_dir,
    };
    root.join(o.path.split('/').collect::<PathBuf>())
}

/// Serialises `v` as JSON with object keys sorted at every level, no whitespace: the same value
/// always gives the same text, whatever map type built it.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// blake3 (hex) of the canonical JSON of `v`.
pub fn hash_json(v: &Value) -> String {
    blake3::hash(canonical_json(v).as_bytes())
        .to_hex()
        .to_string()
}

/// One difference between two JSON values, at a dotted key path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The leaves (dotted object paths; arrays are compared whole) where `old` and `new` differ.
pub fn json_changes(old: &Value, new: &Value) -> Vec<Change> {
    fn walk(prefix: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    walk(&join(k), a.get(k), b.get(k), out);
                }
            }
            (a, b) if a == b => {}
            (a, b) => out.push(Change {
                key: if prefix.is_empty() {
                    "(all)".to_string()
                } else {
                    prefix.to_string()
                },
                old: a.cloned(),
                new: b.cloned(),
            }),
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

/// Now, UTC, RFC 3339 with milliseconds (`2026-11-23T03:15:00.123Z`).
pub fn now_utc() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(d.as_secs() as i64, d.subsec_millis())
}

/// Formats seconds since the Unix epoch (and milliseconds) as RFC 3339 UTC.
pub fn format_utc(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A run id: the start time to the second, then 8 hex of a hash of the exact time and process.
pub fn new_run_id(started: &str) -> String {
    let stamp: String = started
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let salt = blake3::hash(format!("{nanos}-{}-{started}", std::process::id()).as_bytes());
    format!("{stamp}Z-{}", &salt.to_hex()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_match_known_calendar_days() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 12:34:56 UTC (a leap day) = 1709210096 (date -u -d @1709210096).
        assert_eq!(format_utc(1_709_210_096, 7), "2024-02-29T12:34:56.007Z");
        // 2000-03-01 00:00:00 UTC = 951868800; 1969-12-31 23:59:59 = -1.
        assert_eq!(format_utc(951_868_800, 0), "2000-03-01T00:00:00.000Z");
        assert_eq!(format_utc(-1, 0), "1969-12-31T23:59:59.000Z");
        let id = new_run_id("2026-11-23T03:15:00.123Z");
        assert!(id.starts_with("20261123T031500Z-"), "{id}");
        assert_eq!(id.len(), "20261123T031500Z-".len() + 8);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#
        );
        assert_eq!(hash_json(&a), hash_json(&a.clone()));
    }

    #[test]
    fn changes_name_dotted_keys_old_and_new() {
        let old = json!({"model": {"alpha": 0.05, "h1": {"vcov": "cr1"}}, "x": [1, 2]});
        let new = json!({"model": {"alpha": 0.01, "h1": {"vcov": "cr1"}, "extra": true}, "x": [1]});
        let c = json_changes(&old, &new);
        let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, vec!["model.alpha", "model.extra", "x"]);
        assert_eq!(c[0].old, Some(json!(0.05)));
        assert_eq!(c[0].new, Some(json!(0.01)));
        assert_eq!(c[1].old, None);
        assert!(json_changes(&old, &old).is_empty());
    }

    #[test]
    fn manifest_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MANIFEST_FILE);
        std::fs::write(&p, r#"{"manifest_version": 99}"#).unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
        std::fs::write(&p, "{}").unwrap();
        assert!(Manifest::load(&p).is_err());
        assert!(Manifest::load_from_out(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn cargo_lock_hash_is_hex() {
        let h = cargo_lock_hash();
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
