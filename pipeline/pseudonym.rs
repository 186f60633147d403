//! Pseudonymisation of person identifiers: HMAC-SHA-256 keyed by a secret from the environment,
//! lowercase hex of the tag cut to its first 32 characters, over the raw id's UTF-8 bytes.
//!
//! The key is never written anywhere; the run manifest records only its id (a blake3 hash of
//! the key), so a reviewer can tell whether two runs used the same key.
//!
//! Which key a run uses ([`Pseudonymizer::for_study`]): the environment variable the config names
//! (`RELCAP_PSEUDONYM_KEY`), at least [`MIN_KEY_BYTES`] bytes; without it, the config's public
//! demo key, but only for a study written by `relcap simulate` (its mark in `truth.json` matches
//! every input file read, see `sim_mark`); otherwise the run stops before it writes anything,
//! saying how to set a key and how to make one (`relcap keygen`).

use std::path::Path;

use anyhow::{bail, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Config, PrivacySection};

/// The shortest key accepted from the environment. The demo key is exempt: it is public by
/// design, and it pseudonymises only simulated people.
pub const MIN_KEY_BYTES: usize = 16;

/// Where the key came from: reports must say when the public demo key was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Environment,
    DemoKey,
}

#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
    key_id: String,
    source: KeySource,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("key_id", &self.key_id)
            .field("source", &self.source)
            .finish()
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8], source: KeySource) -> Result<Self> {
        if key.is_empty() {
            bail!("the pseudonymisation key is empty");
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        let key_id = blake3::hash(key).to_hex()[..16].to_string();
        Ok(Pseudonymizer {
            mac,
            key_id,
            source,
        })
    }

    /// The key from the environment variable the config names, else the config's demo key
    /// whatever the data; an error when there is neither. A run resolves its key with
    /// [`Pseudonymizer::for_study`], which allows the demo key for simulated data only.
    pub fn from_config(privacy: &PrivacySection) -> Result<Self> {
        if let Some(k) = env_key(privacy)? {
            return Self::new(k.as_bytes(), KeySource::Environment);
        }
        match &privacy.demo_key {
            Some(k) => Self::new(k.as_bytes(), KeySource::DemoKey),
            None => bail!(
                "no pseudonymisation key: set the environment variable {} (config key \
                 privacy.key_env); person identifiers must be pseudonymised before anything \
                 is written. {}",
                privacy.key_env,
                how_to_set(&privacy.key_env)
            ),
        }
    }

    /// The key for a run on the study in `data_dir`: the environment variable's, else the demo
    /// key when the run reads no input table (`reads_inputs` false: it starts after ingest) or
    /// when every input table it reads is one `relcap simulate` wrote there. Reads and hashes
    /// the input tables in that case; writes nothing.
    pub fn for_study(config: &Config, data_dir: &Path, reads_inputs: bool) -> Result<Self> {
        let privacy = &config.privacy;
        if env_key(privacy)?.is_some() || privacy.demo_key.is_none() || !reads_inputs {
            return Self::from_config(privacy);
        }
        match crate::sim_mark::check(config, data_dir)? {
            Ok(()) => Self::from_config(privacy),
            Err(why) => bail!(
                "no pseudonymisation key: {} is unset, and the public demo key \
                 (privacy.demo_key) pseudonymises only a study written by `relcap simulate`, \
                 but {why}. {}",
                privacy.key_env,
                how_to_set(&privacy.key_env)
            ),
        }
    }

    /// The pseudonym of `raw`: first 32 lowercase hex characters of HMAC-SHA-256(key, raw).
    pub fn pseudonym(&self, raw: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(raw.as_bytes());
        let tag = mac.finalize().into_bytes();
        hex::encode(&tag[..16])
    }

    /// A hash of the key (never the key), for the manifest.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn source(&self) -> KeySource {
        self.source
    }
}

/// The key in the environment variable `privacy.key_env`: None when unset or empty, an error
/// when it is shorter than [`MIN_KEY_BYTES`] or not UTF-8.
fn env_key(privacy: &PrivacySection) -> Result<Option<String>> {
    let name = &privacy.key_env;
    match std::env::var(name) {
        Ok(k) if k.is_empty() => Ok(None),
        Ok(k) if k.len() < MIN_KEY_BYTES => bail!(
            "the key in {name} is {} bytes long; a pseudonymisation key needs at least \
             {MIN_KEY_BYTES} (`relcap keygen` makes one of 64)",
            k.len()
        ),
        Ok(k) => Ok(Some(k)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("the key in {name} is not UTF-8 text (`relcap keygen` makes one)")
        }
    }
}

/// The two commands a user without a key needs.
fn how_to_set(key_env: &str) -> String {
    format!(
        "Set the study's secret key with `export {key_env}=...` (the same key for every run of \
         the study); to make a new one, run `relcap keygen`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let p = Pseudonymizer::new(b"Jefe", KeySource::Environment).unwrap();
        assert_eq!(
            p.pseudonym("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }

    #[test]
    fn utf8_bytes_and_distinct_keys() {
        let a = Pseudonymizer::new(b"k1", KeySource::Environment).unwrap();
        let b = Pseudonymizer::new(b"k2", KeySource::Environment).unwrap();
        assert_ne!(a.pseudonym("Søren"), b.pseudonym("Søren"));
        assert_eq!(a.pseudonym("Søren").len(), 32);
        assert_ne!(a.key_id(), b.key_id());
    }

    /// A config whose key variable is `var` (one per test: tests share the environment).
    fn config(var: &str) -> Config {
        Config::from_toml(&format!(
            "[study]\nname = \"t\"\ndata_dir = \".\"\nout_dir = \".\"\n\
             [privacy]\nkey_env = \"{var}\"\ndemo_key = \"relcap-demo-study-public-key\"\n"
        ))
        .unwrap()
    }

    /// A folder of survey files that `relcap simulate` did not write.
    fn real_data() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("units.csv"), "municipality,unit_id\nX,u1\n").unwrap();
        dir
    }

    #[test]
    fn a_key_shorter_than_16_bytes_is_refused() {
        let cfg = config("RELCAP_TEST_KEY_SHORT");
        std::env::set_var("RELCAP_TEST_KEY_SHORT", "fifteen-bytes!!");
        let e = Pseudonymizer::from_config(&cfg.privacy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("15 bytes") && e.contains("at least 16"), "{e}");
        let e = Pseudonymizer::for_study(&cfg, Path::new("."), true).unwrap_err();
        assert!(e.to_string().contains("15 bytes"), "{e}");
        std::env::set_var("RELCAP_TEST_KEY_SHORT", "sixteen-bytes!!!");
        let p = Pseudonymizer::from_config(&cfg.privacy).unwrap();
        assert_eq!(p.source(), KeySource::Environment);
    }

    #[test]
    fn the_demo_key_is_refused_for_data_not_simulated() {
        let cfg = config("RELCAP_TEST_KEY_UNSET");
        let dir = real_data();
        let e = Pseudonymizer::for_study(&cfg, dir.path(), true)
            .unwrap_err()
            .to_string();
        for part in [
            "RELCAP_TEST_KEY_UNSET is unset",
            "no truth.json",
            "export RELCAP_TEST_KEY_UNSET=",
            "relcap keygen",
        ] {
            assert!(e.contains(part), "{part:?} not in {e}");
        }
        // A run that starts after ingest reads no input table and pseudonymises nothing.
        let p = Pseudonymizer::for_study(&cfg, dir.path(), false).unwrap();
        assert_eq!(p.source(), KeySource::DemoKey);
    }

    #[test]
    fn the_key_from_the_environment_runs_any_data() {
        let cfg = config("RELCAP_TEST_KEY_SET");
        std::env::set_var("RELCAP_TEST_KEY_SET", "a-real-study-secret-key");
        let p = Pseudonymizer::for_study(&cfg, real_data().path(), true).unwrap();
        assert_eq!(p.source(), KeySource::Environment);
        let q = Pseudonymizer::new(b"a-real-study-secret-key", KeySource::Environment).unwrap();
        assert_eq!(p.key_id(), q.key_id());
    }

    #[test]
    fn the_demo_key_runs_a_simulated_study() {
        let cfg = config("RELCAP_TEST_KEY_DEMO");
        let dir = real_data();
        let mark = crate::sim_mark::tables_written(dir.path(), "csv").unwrap();
        let truth = serde_json::json!({ "simulated_tables": mark });
        std::fs::write(dir.path().join("truth.json"), truth.to_string()).unwrap();
        let p = Pseudonymizer::for_study(&cfg, dir.path(), true).unwrap();
        assert_eq!(p.source(), KeySource::DemoKey);
        // The manifest's key id is a hash, never the key.
        assert_eq!(p.key_id().len(), 16);
        assert!(!p.key_id().contains("demo"));
        assert!(!format!("{p:?}").contains("relcap-demo-study-public-key"));
    }
}
