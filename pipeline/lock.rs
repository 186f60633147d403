//! One run at a time per output folder: `OUT/.lock`, locked with the operating system's file
//! lock for as long as the run lasts, holding the pid, host, command and start time of the run.
//!
//! A second run into the same folder fails at once naming the run that holds it, or, with
//! `relcap run --wait`, waits until it ends. The operating system drops the lock when its process
//! ends, however it ends, so a lock file left by a killed run is simply locked again (and the log
//! says whose it was). The file is removed when the run ends, while still locked; a run that
//! opened the removed file in the meantime sees that it no longer is `OUT/.lock` and tries again.
//! `relcap status` and `relcap verify` take no lock on the folder they read (the manifest is
//! replaced atomically; a run in progress shows as stale or as a difference).

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = ".lock";

/// The run holding a lock, as its lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub command: Option<String>,
    /// Seconds since 1970 when the lock was taken.
    pub started: Option<u64>,
}

impl Holder {
    /// This process.
    fn me() -> Holder {
        Holder {
            pid: Some(std::process::id()),
            host: hostname(),
            command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
        }
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(p) = self.pid {
            s += &format!("pid {p}\n");
        }
        if let Some(h) = &self.host {
            s += &format!("host {h}\n");
        }
        if let Some(t) = self.started {
            s += &format!("started {t}\n");
        }
        if let Some(c) = &self.command {
            s += &format!("command {}\n", c.replace('\n', " "));
        }
        s
    }

    /// None when the text names nobody (an empty file, or one being written).
    fn parse(text: &str) -> Option<Holder> {
        let mut h = Holder::default();
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "pid" => h.pid = v.trim().parse().ok(),
                "host" => h.host = Some(v.to_string()),
                "started" => h.started = v.trim().parse().ok(),
                "command" => h.command = Some(v.to_string()),
                _ => {}
            }
        }
        (h != Holder::default()).then_some(h)
    }

    /// "pid 123 on host h (`relcap run ...`, started 5 s ago)".
    pub fn describe(&self) -> String {
        let mut s = match self.pid {
            Some(p) => format!("pid {p}"),
            None => "a process".to_string(),
        };
        if let Some(h) = &self.host {
            s += &format!(" on host {h}");
        }
        let mut more = vec![];
        if let Some(c) = &self.command {
            more.push(format!("`{c}`"));
        }
        if let Some(t) = self.started {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(t, |d| d.as_secs());
            more.push(format!("started {} s ago", now.saturating_sub(t)));
        }
        if !more.is_empty() {
            s += &format!(" ({})", more.join(", "));
        }
        s
    }
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

/// The lock on an output folder, held until dropped.
#[derive(Debug)]
pub struct OutLock {
    file: File,
    path: PathBuf,
    /// The run whose lock file was found and taken over (it ended without releasing it).
    pub taken_over: Option<Holder>,
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let a = file.metadata()?;
    Ok(match std::fs::metadata(path) {
        Ok(b) => a.dev() == b.dev() && a.ino() == b.ino(),
        Err(_) => false,
    })
}

#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> Result<bool> {
    Ok(path.is_file())
}

impl OutLock {
    /// Locks `out_dir` (created if missing) for this run. When another run holds it: an error
    /// naming that run, or with `wait` a line on stderr (unless `quiet`) and a wait until it ends.
    pub fn acquire(out_dir: &Path, wait: bool, quiet: bool) -> Result<OutLock> {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create output folder {}", out_dir.display()))?;
        let path = out_dir.join(LOCK_FILE);
        let mut told = false;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("cannot open the lock file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = read_holder(&path).unwrap_or_default();
                    if !wait {
                        bail!(
                            "{} is in use by another relcap run: {}. Wait for it to end, or run \
                             with --wait (or choose another --out)",
                            out_dir.display(),
                            holder.describe()
                        );
                    }
                    if !quiet && !told {
                        crate::say!(
                            "[relcap] waiting for {} to end ({} is in use)",
                            holder.describe(),
                            out_dir.display()
                        );
                        told = true;
                    }
                    file.lock()
                        .with_context(|| format!("cannot lock {}", path.display()))?;
                }
                Err(std::fs::TryLockError::Error(e))
                    if e.kind() == std::io::ErrorKind::Unsupported =>
                {
                    if !quiet {
                        crate::say!(
                            "[relcap] warning: this file system cannot lock {}; nothing stops \
                             a second run into the same folder",
                            path.display()
                        );
                    }
                    return Self::hold(file, path);
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
            // Locked; but the holder before may have removed the file in the meantime.
            if is_at(&file, &path)? {
                return Self::hold(file, path);
            }
        }
    }

    /// Records this run in the locked file; says whose lock it was if one was left behind.
    fn hold(mut file: File, path: PathBuf) -> Result<OutLock> {
        let taken_over = read_holder(&path);
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(Holder::me().to_text().as_bytes())
            .with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(OutLock {
            file,
            path,
            taken_over,
        })
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the file handle.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// The run named in a lock file, if the file names one.
pub fn read_holder(path: &Path) -> Option<Holder> {
    Holder::parse(&std::fs::read_to_string(path).ok()?)
}

/// Locks the output folder of a run and says on stderr (unless `quiet`) when a lock left by an
/// earlier run that ended without releasing it was taken over.
pub fn lock_out_dir(out_dir: &Path, wait: bool, quiet: bool) -> Result<OutLock> {
    let lock = OutLock::acquire(out_dir, wait, quiet)?;
    if let (Some(h), false) = (&lock.taken_over, quiet) {
        crate::say!(
            "[relcap] took over the lock on {} left by {}, which ended without releasing it",
            out_dir.display(),
            h.describe()
        );
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_at_once_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = OutLock::acquire(&out, false, true).unwrap();
        assert!(first.taken_over.is_none());
        let text = std::fs::read_to_string(out.join(LOCK_FILE)).unwrap();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );

        let t = std::time::Instant::now();
        let e = OutLock::acquire(&out, false, true).unwrap_err().to_string();
        assert!(t.elapsed().as_secs() < 5);
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("--wait"), "{e}");

        drop(first);
        assert!(!out.join(LOCK_FILE).exists(), "the lock file is removed");
        let again = OutLock::acquire(&out, false, true).unwrap();
        assert!(again.taken_over.is_none());
    }

    #[test]
    fn wait_takes_the_lock_when_the_holder_ends() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        let first = OutLock::acquire(&out, false, true).unwrap();
        let waiter = std::thread::spawn({
            let out = out.clone();
            move || OutLock::acquire(&out, true, true).map(|l| l.taken_over.clone())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiter.is_finished(), "the waiter must wait");
        drop(first);
        // The holder removed its file: the waiter locked the removed one, saw it, and retried.
        assert_eq!(waiter.join().unwrap().unwrap(), None);
        assert!(!out.join(LOCK_FILE).exists());
    }

    #[test]
    fn a_stale_lock_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // As a killed run leaves it: its pid in the file, no process holding the lock.
        let stale = "pid 4194303\nhost elsewhere\nstarted 1\ncommand relcap run\n";
        std::fs::write(dir.path().join(LOCK_FILE), stale).unwrap();
        let lock = OutLock::acquire(dir.path(), false, true).unwrap();
        let h = lock.taken_over.clone().unwrap();
        assert_eq!(h.pid, Some(4194303));
        assert_eq!(h.host.as_deref(), Some("elsewhere"));
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            text.starts_with(&format!("pid {}\n", std::process::id())),
            "{text}"
        );
    }

    #[test]
    fn holder_text_round_trips() {
        let h = Holder::me();
        assert_eq!(Holder::parse(&h.to_text()), Some(h.clone()));
        assert_eq!(Holder::parse(""), None);
        assert!(h.describe().starts_with("pid "));
    }
}
