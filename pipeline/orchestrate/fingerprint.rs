//! A stage's fingerprint: what it is made of (`Basis`: its config section, key id, the content
//! hashes of what it reads, the fingerprints of the stages it reads), the hash itself, and why a
//! recorded fingerprint differs from the present one (`explain`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::logging::Log;
use super::outputs::{relative_name, scan_outputs};
use super::stage_list::{Input, Stage};
use super::status::Reason;
use super::StudyPaths;
use crate::config::{Config, TABLES};
use crate::io;
use crate::manifest::{
    hash_json, json_changes, now_utc, InputRecord, Manifest, Root, StageEntry, StageStatus,
    RELCAP_VERSION,
};

/// What a stage's fingerprint is made of, besides its name and version.
#[derive(Debug, Clone)]
pub(super) struct Basis {
    pub(super) config: Value,
    pub(super) key_id: Option<String>,
    pub(super) inputs: Vec<InputRecord>,
    pub(super) upstream: BTreeMap<String, String>,
}

impl Basis {
    /// The manifest entry of `stage` about to run on this basis in run `run_id`: `running`,
    /// started now, no outputs or counts yet.
    pub(super) fn into_entry(self, stage: &Stage, fp: &str, run_id: &str) -> StageEntry {
        StageEntry {
            name: stage.name.to_string(),
            version: stage.version,
            status: StageStatus::Running,
            fingerprint: fp.to_string(),
            run_id: run_id.to_string(),
            started: now_utc(),
            finished: None,
            seconds: None,
            relcap_version: RELCAP_VERSION.to_string(),
            config: self.config,
            pseudonym_key_id: self.key_id,
            inputs: self.inputs,
            upstream: self.upstream,
            outputs: vec![],
            rows_in: 0,
            rows_out: 0,
            quarantined: 0,
            tables: Value::Null,
            warnings: vec![],
        }
    }
}

/// Format of the fingerprint's input; bumped if what goes into it changes.
const FINGERPRINT_FORMAT: u32 = 1;

pub(super) fn fingerprint(stage: &Stage, b: &Basis) -> String {
    let inputs: Vec<Value> = b
        .inputs
        .iter()
        .map(|i| json!([i.name, i.file, i.blake3]))
        .collect();
    hash_json(&json!({
        "fingerprint_format": FINGERPRINT_FORMAT,
        "stage": stage.name,
        "stage_version": stage.version,
        "relcap_version": RELCAP_VERSION,
        "config": b.config,
        "pseudonym_key_id": b.key_id,
        "inputs": inputs,
        "upstream": b.upstream,
    }))
}

/// The stage's basis, with the files of the stages it reads taken from `manifest`. Err lists
/// the stages it reads that have no complete record.
pub(super) fn basis(
    stage: &Stage,
    config: &Config,
    paths: &StudyPaths,
    key_id: Option<&str>,
    manifest: &Manifest,
    log: &Log,
) -> Result<std::result::Result<Basis, Vec<String>>> {
    let mut b = Basis {
        config: config.section_for_stage(stage.name),
        key_id: None,
        inputs: vec![],
        upstream: BTreeMap::new(),
    };
    let mut missing = vec![];
    for input in stage.reads {
        match input {
            Input::Sources => {
                b.key_id = key_id.map(str::to_string);
                b.inputs
                    .extend(source_inputs(config, &paths.data_dir, log)?);
            }
            Input::Stage(s) => match manifest.stage(s) {
                Some(e) if e.status == StageStatus::Complete => {
                    b.upstream.insert(s.to_string(), e.fingerprint.clone());
                    b.inputs
                        .extend(e.outputs.iter().filter(|o| o.root == Root::Out).map(|o| {
                            InputRecord {
                                name: o.path.clone(),
                                file: Some(o.path.clone()),
                                blake3: Some(o.blake3.clone()),
                                bytes: Some(o.bytes),
                            }
                        }));
                }
                Some(_) => missing.push(s.to_string()),
                // Files no run recorded (written by hand, or by a relcap without manifests):
                // used as they are, their content hashes in the fingerprint.
                None => {
                    let found = scan_outputs(&paths.out_dir, s, Root::Out, None)?;
                    if found.is_empty() {
                        missing.push(s.to_string());
                        continue;
                    }
                    log.line(
                        stage.name,
                        format!(
                            "reads the files in {}, which no run recorded: used as they are",
                            paths.out_dir.join(s).display()
                        ),
                    );
                    b.inputs.extend(found.into_iter().map(|o| InputRecord {
                        name: o.path.clone(),
                        file: Some(o.path),
                        blake3: Some(o.blake3),
                        bytes: Some(o.bytes),
                    }));
                }
            },
        }
    }
    Ok(if missing.is_empty() {
        Ok(b)
    } else {
        Err(missing)
    })
}

/// The canonical tables as ingest finds them: per table its file (relative to the data folder)
/// and content hash, or nothing for an absent (optional) table.
fn source_inputs(config: &Config, data_dir: &Path, log: &Log) -> Result<Vec<InputRecord>> {
    let mut found = vec![];
    for table in TABLES {
        let spec = config
            .sources
            .get(table)
            .with_context(|| format!("no source spec for table {table}"))?;
        for (i, stem) in spec.files().into_iter().enumerate() {
            // Further files of one table (`more_files`) are named `<table>#2`, `<table>#3`, ...
            let name = if i == 0 {
                table.to_string()
            } else {
                format!("{table}#{}", i + 1)
            };
            let path = if spec.is_export() {
                // A folder export is hashed as its files (`io::hash_file_with`).
                crate::stages::ingest::find_export(spec, data_dir, stem)
            } else {
                io::find_table(data_dir, stem)
            };
            found.push((name, path));
        }
    }
    let total: u64 = found
        .iter()
        .filter_map(|(_, p)| p.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = log.bytes_bar(total, "hashing inputs");
    let mut out = vec![];
    for (table, path) in found {
        out.push(match path {
            Some(p) => {
                let (h, n) = io::hash_file_with(&p, |k| bar.inc(k))?;
                InputRecord {
                    name: table.clone(),
                    file: Some(relative_name(data_dir, &p)),
                    blake3: Some(h),
                    bytes: Some(n),
                }
            }
            None => InputRecord {
                name: table.clone(),
                file: None,
                blake3: None,
                bytes: None,
            },
        });
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The canonical tables' files and hashes as ingest would read them now.
pub fn input_tables(config: &Config, data_dir: &Path) -> Result<Vec<InputRecord>> {
    source_inputs(config, data_dir, &Log::silent())
}

/// Why `entry` does not match the present basis (empty when the fingerprints agree).
pub(super) fn explain(
    stage: &Stage,
    entry: Option<&StageEntry>,
    b: &Basis,
    fp: &str,
) -> Vec<Reason> {
    let Some(e) = entry else {
        return vec![Reason::NeverRun];
    };
    match e.status {
        StageStatus::Running => {
            return vec![Reason::Interrupted {
                run_id: e.run_id.clone(),
            }]
        }
        StageStatus::Failed => {
            return vec![Reason::Failed {
                run_id: e.run_id.clone(),
            }]
        }
        StageStatus::Complete => {}
    }
    if e.fingerprint == fp {
        return vec![];
    }
    let mut r = vec![];
    if e.version != stage.version {
        r.push(Reason::StageVersion {
            old: e.version,
            new: stage.version,
        });
    }
    if e.relcap_version != RELCAP_VERSION {
        r.push(Reason::RelcapVersion {
            old: e.relcap_version.clone(),
            new: RELCAP_VERSION.to_string(),
        });
    }
    for c in json_changes(&e.config, &b.config) {
        r.push(Reason::Config {
            key: c.key,
            old: c.old,
            new: c.new,
        });
    }
    if e.pseudonym_key_id != b.key_id {
        r.push(Reason::PseudonymKey {
            old: e.pseudonym_key_id.clone(),
            new: b.key_id.clone(),
        });
    }
    // An upstream stage that ran again changes its files too; name the stage, not each file.
    let rerun: Vec<&String> = b
        .upstream
        .iter()
        .filter(|(s, fp)| e.upstream.get(*s) != Some(*fp))
        .map(|(s, _)| s)
        .collect();
    let of_rerun = |name: &str| rerun.iter().any(|s| name.starts_with(&format!("{s}/")));
    let old: BTreeMap<&str, &InputRecord> = e.inputs.iter().map(|i| (i.name.as_str(), i)).collect();
    let new: BTreeMap<&str, &InputRecord> = b.inputs.iter().map(|i| (i.name.as_str(), i)).collect();
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    for name in names {
        if of_rerun(name) {
            continue;
        }
        let (o, n) = (old.get(name), new.get(name));
        let file = |x: Option<&&InputRecord>| x.and_then(|i| i.file.clone());
        let hash = |x: Option<&&InputRecord>| x.and_then(|i| i.blake3.clone());
        if file(o) != file(n) || hash(o) != hash(n) {
            r.push(Reason::Input {
                name: name.to_string(),
                old_file: file(o),
                new_file: file(n),
                old_blake3: hash(o),
                new_blake3: hash(n),
            });
        }
    }
    for s in rerun {
        r.push(Reason::UpstreamChanged { stage: s.clone() });
    }
    if r.is_empty() {
        r.push(Reason::Fingerprint {
            old: e.fingerprint.clone(),
            new: fp.to_string(),
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::STAGES;

    fn basis_with(config: Value) -> Basis {
        Basis {
            config,
            key_id: None,
            inputs: vec![InputRecord {
                name: "ingest/units.parquet".into(),
                file: Some("ingest/units.parquet".into()),
                blake3: Some("aa".into()),
                bytes: Some(1),
            }],
            upstream: [("ingest".to_string(), "f1".to_string())].into(),
        }
    }

    fn entry_for(stage: &Stage, b: &Basis) -> StageEntry {
        let mut e = b.clone().into_entry(stage, &fingerprint(stage, b), "r1");
        e.status = StageStatus::Complete;
        e
    }

    #[test]
    fn fingerprint_changes_with_each_part_and_explain_names_it() {
        let stage = &STAGES[1];
        let b = basis_with(json!({"instrument": {"scale_max": 5}}));
        let e = entry_for(stage, &b);
        let fp = fingerprint(stage, &b);
        assert!(explain(stage, Some(&e), &b, &fp).is_empty());
        assert_eq!(explain(stage, None, &b, &fp), vec![Reason::NeverRun]);

        let mut c = b.clone();
        c.config = json!({"instrument": {"scale_max": 7}});
        let fp_c = fingerprint(stage, &c);
        assert_ne!(fp, fp_c);
        assert_eq!(
            explain(stage, Some(&e), &c, &fp_c),
            vec![Reason::Config {
                key: "instrument.scale_max".into(),
                old: Some(json!(5)),
                new: Some(json!(7)),
            }]
        );

        let mut i = b.clone();
        i.inputs[0].blake3 = Some("bb".into());
        let fp_i = fingerprint(stage, &i);
        assert_ne!(fp, fp_i);
        let r = explain(stage, Some(&e), &i, &fp_i);
        assert!(matches!(&r[0], Reason::Input { name, .. } if name == "ingest/units.parquet"));

        let mut u = b.clone();
        u.upstream.insert("ingest".into(), "f2".into());
        let fp_u = fingerprint(stage, &u);
        assert_ne!(fp, fp_u);
        assert_eq!(
            explain(stage, Some(&e), &u, &fp_u),
            vec![Reason::UpstreamChanged {
                stage: "ingest".into()
            }]
        );

        // An upstream that ran again is named once, not file by file.
        let mut both = u.clone();
        both.inputs[0].blake3 = Some("cc".into());
        let fp_both = fingerprint(stage, &both);
        assert_eq!(
            explain(stage, Some(&e), &both, &fp_both),
            vec![Reason::UpstreamChanged {
                stage: "ingest".into()
            }]
        );

        let mut k = b.clone();
        k.key_id = Some("k2".into());
        assert_ne!(fp, fingerprint(stage, &k));

        // Input byte counts are recorded but do not enter the fingerprint.
        let mut n = b.clone();
        n.inputs[0].bytes = Some(99);
        assert_eq!(fp, fingerprint(stage, &n));

        let mut running = e.clone();
        running.status = StageStatus::Running;
        assert_eq!(
            explain(stage, Some(&running), &b, &fp),
            vec![Reason::Interrupted {
                run_id: "r1".into()
            }]
        );
    }

    #[test]
    fn fingerprint_is_a_known_function_of_its_parts() {
        // Pinned: what goes into the fingerprint, written out by hand as the canonical JSON
        // it hashes. A change here changes every Parquet footer, so it must be deliberate (and
        // bump FINGERPRINT_FORMAT).
        let stage = &STAGES[1];
        let b = basis_with(json!({"instrument": {"scale_max": 5}}));
        let text = format!(
            r#"{{"config":{{"instrument":{{"scale_max":5}}}},"fingerprint_format":1,"inputs":[["ingest/units.parquet","ingest/units.parquet","aa"]],"pseudonym_key_id":null,"relcap_version":"{RELCAP_VERSION}","stage":"clean","stage_version":1,"upstream":{{"ingest":"f1"}}}}"#
        );
        assert_eq!(
            fingerprint(stage, &b),
            blake3::hash(text.as_bytes()).to_hex().to_string()
        );
    }
}
