//! Pseudonymisation of person identifiers: HMAC-SHA-256 keyed by a secret from the environment,
//! lowercase hex of the tag cut to its first 32 characters, over the raw id's UTF-8 bytes.
//!
//! The key is never written anywhere; the run manifest records only its id (a blake3 hash of
//! the key), so a reviewer can tell whether two runs used the same key.

use anyhow::{bail, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::PrivacySection;

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

    /// The key from the environment variable the config names, else the config's demo key;
    /// an error when there is neither (a real study must not run without a key).
    pub fn from_config(privacy: &PrivacySection) -> Result<Self> {
        match std::env::var(&privacy.key_env) {
            Ok(k) if !k.is_empty() => Self::new(k.as_bytes(), KeySource::Environment),
            _ => match &privacy.demo_key {
                Some(k) => Self::new(k.as_bytes(), KeySource::DemoKey),
                None => bail!(
                    "no pseudonymisation key: set the environment variable {} (config key \
                     privacy.key_env); person identifiers must be pseudonymised before anything \
                     is written",
                    privacy.key_env
                ),
            },
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
}
