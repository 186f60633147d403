//! What the manifest records about a run besides its stages: the config (path, hash, text,
//! resolved), the pseudonymisation key's id and source, the simulated study's seed.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::Config;
use crate::manifest::{hash_json, ConfigRecord, KeyRecord};
use crate::pseudonym::{KeySource, Pseudonymizer};

/// The key id, and whether the key came from the environment or the demo key.
pub(super) fn key_record(p: &Pseudonymizer) -> KeyRecord {
    KeyRecord {
        id: p.key_id().to_string(),
        source: match p.source() {
            KeySource::Environment => "environment",
            KeySource::DemoKey => "demo_key",
        }
        .to_string(),
    }
}

pub(super) fn config_record(config: &Config, path: Option<&Path>) -> Result<ConfigRecord> {
    let resolved = serde_json::to_value(config)?;
    let (path_s, blake3, text) = match path {
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read config {}", p.display()))?;
            let shown = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            (
                Some(shown.display().to_string()),
                Some(blake3::hash(&bytes).to_hex().to_string()),
                Some(String::from_utf8_lossy(&bytes).into_owned()),
            )
        }
        None => (None, None, None),
    };
    Ok(ConfigRecord {
        path: path_s,
        blake3,
        text,
        resolved_blake3: hash_json(&resolved),
        resolved,
    })
}

/// The seed of a simulated study (its `truth.json`), if the data folder holds one.
pub(super) fn simulation_seed(data_dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(data_dir.join("truth.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("seed")
        .or_else(|| v.get("params").and_then(|p| p.get("seed")))
        .cloned()
}
