//! The orchestrator's store of results a stage may reuse in a later run: `OUT/.cache/<stage>/`,
//! one file per entry, named by the blake3 hash of a key the stage derives from everything the
//! result depends on (for the model stage: the rows and columns a model is fitted on, its
//! formula and estimator, and a version of the fitting code). A stage asks with
//! [`Memo::get`] and stores with [`Memo::put`]; what a key covers, and how an entry is encoded,
//! is the stage's business, where and for how long entries live is this module's.
//!
//! Rules: an entry is written atomically, so a crash leaves whole entries only; an entry that
//! cannot be read or decoded is a miss, never an error; `--force` reads nothing (every result
//! is computed again) but still stores; after a stage completes, its entries that the run did
//! not use are removed, so the store holds the results of the latest run only. Nothing in the
//! store is an output: it is not in the manifest, and a study folder without it gives the same
//! outputs, only later.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// Name of the folder under OUT.
pub const CACHE_DIR: &str = ".cache";

/// The store of one study's output folder (or none, for runs that keep nothing).
#[derive(Debug, Default)]
pub struct Memo {
    root: Option<PathBuf>,
    read: bool,
    used: Mutex<BTreeSet<(String, String)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How often a stage found what it asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
}

impl Memo {
    /// A store that keeps nothing: every `get` misses, every `put` is dropped.
    pub fn disabled() -> Memo {
        Memo::default()
    }

    /// The store under `out_dir/.cache`; with `read` false (`--force`) nothing is read back.
    pub fn new(out_dir: &Path, read: bool) -> Memo {
        Memo {
            root: Some(out_dir.join(CACHE_DIR)),
            read,
            ..Memo::default()
        }
    }

    fn path(&self, stage: &str, key: &blake3::Hash) -> Option<PathBuf> {
        self.root
            .as_ref()
            .map(|r| r.join(stage).join(format!("{}.bin", key.to_hex())))
    }

    fn mark_used(&self, stage: &str, key: &blake3::Hash) {
        if let Ok(mut used) = self.used.lock() {
            used.insert((stage.to_string(), format!("{}.bin", key.to_hex())));
        }
    }

    /// The entry stored under `key` by `stage`, decoded by `decode`, if there is one, reading
    /// is on and `decode` accepts it (an entry it refuses counts as a miss).
    pub fn get<T>(
        &self,
        stage: &str,
        key: &blake3::Hash,
        decode: impl FnOnce(Vec<u8>) -> Option<T>,
    ) -> Option<T> {
        let path = self.path(stage, key)?;
        let found = if self.read {
            std::fs::read(&path).ok().and_then(decode)
        } else {
            None
        };
        match found {
            Some(value) => {
                self.mark_used(stage, key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores `bytes` under `key` (atomically; replaces an entry with the same key).
    pub fn put(&self, stage: &str, key: &blake3::Hash, bytes: &[u8]) -> Result<()> {
        let Some(path) = self.path(stage, key) else {
            return Ok(());
        };
        crate::io::write_atomic(&path, |w| {
            std::io::Write::write_all(w, bytes)?;
            Ok(())
        })?;
        self.mark_used(stage, key);
        Ok(())
    }

    /// What `stage` found and missed so far in this run.
    pub fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Resets the counters (the orchestrator calls it before each stage).
    pub fn reset_stats(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }

    /// Removes the entries of `stage` that this run neither read nor wrote; returns how many.
    pub fn prune(&self, stage: &str) -> Result<usize> {
        let Some(root) = &self.root else {
            return Ok(0);
        };
        let dir = root.join(stage);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let used = self
            .used
            .lock()
            .map_err(|_| anyhow::anyhow!("the cache's record of used entries is poisoned"))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !used.contains(&(stage.to_string(), name)) {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_reads_back_and_prunes_what_a_run_did_not_use() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (blake3::hash(b"one"), blake3::hash(b"two"));
        let m = Memo::new(dir.path(), true);
        assert_eq!(m.get("model", &k1, Some), None);
        m.put("model", &k1, b"first").unwrap();
        m.put("model", &k2, b"second").unwrap();
        assert_eq!(m.prune("model").unwrap(), 0);

        // A later run that uses only k1: k2 goes.
        let m = Memo::new(dir.path(), true);
        assert_eq!(m.get("model", &k1, Some).as_deref(), Some(&b"first"[..]));
        assert_eq!(m.stats(), MemoStats { hits: 1, misses: 0 });
        assert_eq!(m.prune("model").unwrap(), 1);
        let m = Memo::new(dir.path(), true);
        assert_eq!(m.get("model", &k2, Some), None);
        assert_eq!(m.get("model", &k1, Some).as_deref(), Some(&b"first"[..]));
        // No temporary file is left behind by the atomic writes.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(CACHE_DIR).join("model"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("{}.bin", k1.to_hex())]);
    }

    #[test]
    fn forced_runs_read_nothing_and_disabled_stores_keep_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let k = blake3::hash(b"k");
        Memo::new(dir.path(), true).put("model", &k, b"x").unwrap();
        let forced = Memo::new(dir.path(), false);
        assert_eq!(forced.get("model", &k, Some), None);
        assert_eq!(forced.stats(), MemoStats { hits: 0, misses: 1 });

        let off = Memo::disabled();
        off.put("model", &k, b"y").unwrap();
        assert_eq!(off.get("model", &k, Some), None);
        assert_eq!(off.prune("model").unwrap(), 0);
    }

    #[test]
    fn an_entry_the_stage_refuses_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let k = blake3::hash(b"k");
        let m = Memo::new(dir.path(), true);
        m.put("model", &k, b"garbage").unwrap();
        let m = Memo::new(dir.path(), true);
        assert_eq!(m.get("model", &k, |_| None::<u8>), None);
        assert_eq!(m.stats(), MemoStats { hits: 0, misses: 1 });
        // Not used by the run, so it goes.
        assert_eq!(m.prune("model").unwrap(), 1);
    }
}
