//! `relcap status` and the reasons a stage is stale: the present config, inputs, key and outputs
//! compared with the manifest in OUT.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::fingerprint::{basis, explain, fingerprint};
use super::logging::Log;
use super::outputs::display_output;
use super::records::config_record;
use super::stage_list::{Input, STAGES};
use super::StudyPaths;
use crate::config::Config;
use crate::io;
use crate::manifest::{
    self, KeyRecord, Manifest, RunStatus, StageEntry, StageStatus, MANIFEST_FILE, MANIFEST_VERSION,
    RELCAP_VERSION,
};
use crate::pseudonym::Pseudonymizer;

/// Why a stage is stale (must run), as `relcap status` and the run log tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No record of the stage in the manifest.
    NeverRun,
    /// The run that started it was killed or crashed before it finished.
    Interrupted {
        run_id: String,
    },
    /// It failed in its last run.
    Failed {
        run_id: String,
    },
    /// `--force`.
    Forced,
    StageVersion {
        old: u32,
        new: u32,
    },
    RelcapVersion {
        old: String,
        new: String,
    },
    /// A key of the config section the stage reads changed (null = absent).
    Config {
        key: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    /// An input file changed, appeared or disappeared.
    Input {
        name: String,
        old_file: Option<String>,
        new_file: Option<String>,
        old_blake3: Option<String>,
        new_blake3: Option<String>,
    },
    /// The pseudonymisation key is another one (ids only; None = no key available now).
    PseudonymKey {
        old: Option<String>,
        new: Option<String>,
    },
    /// A stage it reads ran again since (its fingerprint changed).
    UpstreamChanged {
        stage: String,
    },
    /// A stage it reads is stale itself, so this one will run after it.
    UpstreamStale {
        stage: String,
    },
    /// A stage it reads has no complete record.
    UpstreamMissing {
        stage: String,
    },
    OutputMissing {
        path: String,
    },
    OutputModified {
        path: String,
    },
    /// The fingerprint differs for a reason none of the above names (e.g. a new fingerprint
    /// format).
    Fingerprint {
        old: String,
        new: String,
    },
}

fn short(h: &Option<String>) -> String {
    match h {
        Some(h) => h.chars().take(12).collect(),
        None => "absent".to_string(),
    }
}

pub(super) fn compact(v: &Option<Value>) -> String {
    match v {
        Some(v) => manifest::canonical_json(v),
        None => "(absent)".to_string(),
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverRun => write!(f, "never run"),
            Reason::Interrupted { run_id } => write!(f, "interrupted in run {run_id}"),
            Reason::Failed { run_id } => write!(f, "failed in run {run_id}"),
            Reason::Forced => write!(f, "--force"),
            Reason::StageVersion { old, new } => write!(f, "stage version {old} → {new}"),
            Reason::RelcapVersion { old, new } => write!(f, "relcap version {old} → {new}"),
            Reason::Config { key, old, new } => {
                write!(f, "config {key}: {} → {}", compact(old), compact(new))
            }
            Reason::Input {
                name,
                old_file,
                new_file,
                old_blake3,
                new_blake3,
            } => {
                if old_file != new_file {
                    write!(
                        f,
                        "input {name}: file {} → {}",
                        old_file.as_deref().unwrap_or("(absent)"),
                        new_file.as_deref().unwrap_or("(absent)")
                    )
                } else {
                    write!(
                        f,
                        "input {name} changed (blake3 {} → {})",
                        short(old_blake3),
                        short(new_blake3)
                    )
                }
            }
            Reason::PseudonymKey { old, new } => write!(
                f,
                "pseudonymisation key id {} → {}",
                old.as_deref().unwrap_or("(none)"),
                new.as_deref().unwrap_or("(no key available)")
            ),
            Reason::UpstreamChanged { stage } => write!(f, "stage {stage} ran again since"),
            Reason::UpstreamStale { stage } => write!(f, "stage {stage} is stale"),
            Reason::UpstreamMissing { stage } => write!(f, "stage {stage} has not run"),
            Reason::OutputMissing { path } => write!(f, "output {path} is missing"),
            Reason::OutputModified { path } => {
                write!(f, "output {path} was modified after the run")
            }
            Reason::Fingerprint { old, new } => write!(
                f,
                "fingerprint {} → {}",
                short(&Some(old.clone())),
                short(&Some(new.clone()))
            ),
        }
    }
}

/// Recorded outputs that are missing or no longer have their recorded hash.
pub(super) fn check_outputs(e: &StageEntry, paths: &StudyPaths) -> Result<Vec<Reason>> {
    let mut r = vec![];
    for o in &e.outputs {
        let p = manifest::output_path(&paths.out_dir, &paths.reports_dir, o);
        let shown = display_output(o);
        if !p.is_file() {
            r.push(Reason::OutputMissing { path: shown });
        } else if io::hash_file(&p)? != o.blake3 {
            r.push(Reason::OutputModified { path: shown });
        }
    }
    Ok(r)
}

/// One stage in `relcap status`.
#[derive(Debug, Clone, Serialize)]
pub struct StageState {
    pub stage: String,
    pub up_to_date: bool,
    /// The fingerprint the stage would have now (None when a stage it reads has not run).
    pub fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    /// The run that produced the recorded outputs.
    pub run_id: Option<String>,
    pub reasons: Vec<Reason>,
}

/// `relcap status`: every stage up to date or stale, with the reasons.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub out_dir: String,
    /// The manifest read, if there is one.
    pub manifest: Option<String>,
    pub run_id: Option<String>,
    pub run_status: Option<RunStatus>,
    pub up_to_date: bool,
    pub stages: Vec<StageState>,
}

/// Compares the present config, inputs, key and outputs with the manifest in OUT.
pub fn status(config: &Config, paths: &StudyPaths) -> Result<StatusReport> {
    let found = Manifest::load_from_out(&paths.out_dir)?;
    let log = Log::silent();
    // Without a key the present key id is unknown; ingest is then reported stale.
    let key_id = Pseudonymizer::for_study(config, &paths.data_dir, true)
        .ok()
        .map(|p| p.key_id().to_string());
    let empty = Manifest {
        manifest_version: MANIFEST_VERSION,
        run_id: String::new(),
        status: RunStatus::Complete,
        started: String::new(),
        finished: None,
        seconds: None,
        command: vec![],
        relcap_version: RELCAP_VERSION.to_string(),
        cargo_lock_blake3: String::new(),
        config: config_record(config, None)?,
        data_dir: String::new(),
        out_dir: String::new(),
        reports_dir: String::new(),
        pseudonym_key: KeyRecord {
            id: String::new(),
            source: String::new(),
        },
        seeds: BTreeMap::new(),
        selected: vec![],
        ran: vec![],
        skipped: vec![],
        stages: vec![],
    };
    let m = found.as_ref().unwrap_or(&empty);
    let mut stale: BTreeSet<&str> = BTreeSet::new();
    let mut states = vec![];
    for stage in STAGES {
        let entry = m.stage(stage.name);
        let mut reasons = vec![];
        let mut fp_now = None;
        match basis(stage, config, paths, key_id.as_deref(), m, &log)? {
            Ok(b) => {
                let fp = fingerprint(stage, &b);
                reasons.extend(explain(stage, entry, &b, &fp));
                fp_now = Some(fp);
            }
            Err(missing) => {
                if entry.is_none() {
                    reasons.push(Reason::NeverRun);
                } else {
                    for s in missing {
                        reasons.push(Reason::UpstreamMissing { stage: s });
                    }
                }
            }
        }
        for input in stage.reads {
            if let Input::Stage(s) = input {
                if stale.contains(s)
                    && entry.is_some()
                    && !reasons.contains(&Reason::UpstreamMissing {
                        stage: s.to_string(),
                    })
                {
                    reasons.push(Reason::UpstreamStale {
                        stage: s.to_string(),
                    });
                }
            }
        }
        if let Some(e) = entry.filter(|e| e.status == StageStatus::Complete) {
            reasons.extend(check_outputs(e, paths)?);
        }
        if !reasons.is_empty() {
            stale.insert(stage.name);
        }
        states.push(StageState {
            stage: stage.name.to_string(),
            up_to_date: reasons.is_empty(),
            fingerprint: fp_now,
            recorded_fingerprint: entry.map(|e| e.fingerprint.clone()),
            run_id: entry.map(|e| e.run_id.clone()),
            reasons,
        });
    }
    Ok(StatusReport {
        out_dir: paths.out_dir.display().to_string(),
        manifest: found
            .as_ref()
            .map(|_| paths.out_dir.join(MANIFEST_FILE).display().to_string()),
        run_id: found.as_ref().map(|m| m.run_id.clone()),
        run_status: found.as_ref().map(|m| m.status),
        up_to_date: stale.is_empty(),
        stages: states,
    })
}

impl StatusReport {
    /// The status as a table for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match (&self.manifest, &self.run_id, &self.run_status) {
            (Some(m), Some(id), Some(st)) => s.push_str(&format!(
                "manifest {m} (run {id}, {})\n",
                match st {
                    RunStatus::Running => "running or killed",
                    RunStatus::Complete => "complete",
                    RunStatus::Failed => "failed",
                }
            )),
            _ => s.push_str(&format!(
                "no manifest in {}: nothing has run\n",
                self.out_dir
            )),
        }
        for st in &self.stages {
            let state = if st.up_to_date { "up to date" } else { "STALE" };
            let fp = st
                .recorded_fingerprint
                .as_deref()
                .map(|f| &f[..f.len().min(12)])
                .unwrap_or("-");
            s.push_str(&format!("{:<7} {state:<10} {fp}\n", st.stage));
            for r in &st.reasons {
                s.push_str(&format!("        - {r}\n"));
            }
        }
        s
    }
}
