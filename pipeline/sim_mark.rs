//! The mark `relcap simulate` leaves on a study it writes, and the check that a data folder is
//! such a study.
//!
//! `truth.json` carries `simulated_tables`: for each canonical table the simulator wrote, its
//! file name, length in bytes and blake3 hash. The public demo key (`privacy.demo_key`) may
//! pseudonymise a study only when every input file the run reads is one of those files, byte for
//! byte: simulated people have no identity to protect, real ones do. The mark guards against
//! accidents (real survey files in a folder run with the demo config), not against someone who
//! writes a `truth.json` by hand to get past it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{Config, TABLES};

/// One table file as the simulator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMark {
    /// The file name in the study folder (`units.csv`).
    pub file: String,
    pub bytes: u64,
    /// blake3 of the file's bytes, lowercase hex.
    pub blake3: String,
}

/// `truth.json`'s `simulated_tables`: table name to the file the simulator wrote for it.
pub type Mark = BTreeMap<String, TableMark>;

/// The mark of the five canonical tables written into `out` with the extension `ext` (`csv`,
/// `parquet`), read back from disk after they were committed. A table the simulator did not write
/// is left out.
pub fn tables_written(out: &Path, ext: &str) -> Result<Mark> {
    let mut mark = Mark::new();
    for table in TABLES {
        let file = format!("{table}.{ext}");
        let path = out.join(&file);
        if !path.is_file() {
            continue;
        }
        let (blake3, bytes) = crate::io::hash_file_with(&path, |_| {})?;
        mark.insert(
            table.to_string(),
            TableMark {
                file,
                bytes,
                blake3,
            },
        );
    }
    Ok(mark)
}

/// The mark in `data_dir/truth.json`; Err says why there is none.
fn read_mark(data_dir: &Path) -> std::result::Result<Mark, String> {
    let path = data_dir.join("truth.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| format!("{} holds no truth.json", data_dir.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    let Some(m) = v.get("simulated_tables") else {
        return Err(format!(
            "{} carries no mark of `relcap simulate` (simulated_tables)",
            path.display()
        ));
    };
    serde_json::from_value(m.clone())
        .map_err(|e| format!("{}: simulated_tables cannot be read ({e})", path.display()))
}

/// Ok when every input file a run would read from `data_dir` (the canonical tables as ingest
/// finds them, `more_files` included) is a file `relcap simulate` wrote there, by its hash in
/// `truth.json`; else the reason, for the error message. Reads and hashes; writes nothing.
pub fn check(config: &Config, data_dir: &Path) -> Result<std::result::Result<(), String>> {
    let mark = match read_mark(data_dir) {
        Ok(m) => m,
        Err(why) => return Ok(Err(why)),
    };
    let inputs = crate::orchestrate::input_tables(config, data_dir)
        .with_context(|| format!("cannot hash the input tables in {}", data_dir.display()))?;
    let mut read = 0;
    for input in &inputs {
        let (Some(file), Some(hash)) = (&input.file, &input.blake3) else {
            continue; // an optional table that is absent: nothing read
        };
        read += 1;
        match mark.get(&input.name) {
            Some(m) if &m.blake3 == hash => {}
            Some(m) => {
                return Ok(Err(format!(
                    "{file} is not the {} that `relcap simulate` wrote (its hash differs from \
                     truth.json's)",
                    m.file
                )))
            }
            None => {
                return Ok(Err(format!(
                    "{file} ({}) is not among the tables truth.json records",
                    input.name
                )))
            }
        }
    }
    if read == 0 {
        return Ok(Err(format!(
            "no input table was found in {}",
            data_dir.display()
        )));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml(
            "[study]\nname = \"t\"\ndata_dir = \".\"\nout_dir = \".\"\n\
             [privacy]\ndemo_key = \"relcap-demo-study-public-key\"\n",
        )
        .unwrap()
    }

    /// A folder with four tables (no intervention) and a truth.json marking them.
    fn simulated() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for t in TABLES.iter().filter(|&&t| t != "intervention") {
            std::fs::write(dir.path().join(format!("{t}.csv")), format!("a\n{t}\n")).unwrap();
        }
        let mark = tables_written(dir.path(), "csv").unwrap();
        assert_eq!(mark.len(), 4);
        let truth = serde_json::json!({ "generator": "relcap simulate", "simulated_tables": mark });
        std::fs::write(dir.path().join("truth.json"), truth.to_string()).unwrap();
        dir
    }

    #[test]
    fn the_mark_records_file_length_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("units.parquet"), b"xyz").unwrap();
        std::fs::write(dir.path().join("units.csv"), b"other").unwrap();
        let mark = tables_written(dir.path(), "parquet").unwrap();
        assert_eq!(
            mark["units"],
            TableMark {
                file: "units.parquet".into(),
                bytes: 3,
                blake3: blake3::hash(b"xyz").to_hex().to_string(),
            }
        );
        assert_eq!(mark.len(), 1);
    }

    #[test]
    fn simulated_files_pass_and_an_absent_optional_table_is_fine() {
        let dir = simulated();
        assert_eq!(check(&config(), dir.path()).unwrap(), Ok(()));
    }

    #[test]
    fn a_changed_or_added_file_fails_naming_it() {
        let dir = simulated();
        std::fs::write(dir.path().join("citizen_responses.csv"), "a\nreal\n").unwrap();
        let why = check(&config(), dir.path()).unwrap().unwrap_err();
        assert!(why.contains("citizen_responses.csv"), "{why}");

        let dir = simulated();
        std::fs::write(dir.path().join("intervention.csv"), "a\n").unwrap();
        let why = check(&config(), dir.path()).unwrap().unwrap_err();
        assert!(why.contains("intervention.csv"), "{why}");
    }

    #[test]
    fn no_truth_or_no_mark_fails() {
        let dir = simulated();
        std::fs::write(dir.path().join("truth.json"), r#"{"seed": 1}"#).unwrap();
        let why = check(&config(), dir.path()).unwrap().unwrap_err();
        assert!(why.contains("simulated_tables"), "{why}");
        std::fs::remove_file(dir.path().join("truth.json")).unwrap();
        let why = check(&config(), dir.path()).unwrap().unwrap_err();
        assert!(why.contains("no truth.json"), "{why}");
    }
}
