//! `relcap keygen`: a new random pseudonymisation key, 256 bits from the operating system's
//! random source, as 64 lowercase hex characters on stdout (the key is those 64 characters as
//! text, as `RELCAP_PSEUDONYM_KEY` holds it); how to use it on stderr, so that
//! `relcap keygen > key` keeps only the key.

use anyhow::{Context, Result};
use rand::RngCore;

/// 32 random bytes from the operating system, as 64 lowercase hex characters.
pub fn new_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .context("the operating system's random source failed")?;
    Ok(hex::encode(bytes))
}

/// Prints a new key on stdout and how to use it on stderr.
pub fn main() -> Result<()> {
    let key = new_key()?;
    crate::showln!("{key}");
    crate::say!(
        "[relcap] a new pseudonymisation key (above). Keep it secret and keep it: every run of \
         the study needs the same key, and pseudonyms made with it cannot be matched without \
         it. Use it with: export RELCAP_PSEUDONYM_KEY=<the key>"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_characters_and_differ() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert!(a.len() >= crate::pseudonym::MIN_KEY_BYTES);
    }
}
