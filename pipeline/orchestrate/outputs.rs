//! The files a stage wrote: found and hashed after it ran (its folder under OUT, and the report
//! files new or rewritten since a snapshot), removed before it runs again, and the temporary
//! files of unfinished writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::stage_list::Stage;
use super::StudyPaths;
use crate::io;
use crate::manifest::{self, OutputRecord, Root, StageEntry};

/// `path` relative to `root` with `/` separators, or the whole path when it is elsewhere.
pub(super) fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// An output as shown to people: its path under OUT, or `reports:` and its path there.
pub fn display_output(o: &OutputRecord) -> String {
    match o.root {
        Root::Out => o.path.clone(),
        Root::Reports => format!("reports:{}", o.path),
    }
}

fn is_temp_file(name: &str) -> bool {
    name.starts_with(".relcap-") && name.ends_with(".tmp")
}

/// Every file under `root/sub`, sorted, hashed; temporary files of unfinished writes left out;
/// with `unchanged_since`, only files that are new or changed since that snapshot.
pub(super) fn scan_outputs(
    root: &Path,
    sub: &str,
    kind: Root,
    unchanged_since: Option<&BTreeMap<PathBuf, Option<SystemTime>>>,
) -> Result<Vec<OutputRecord>> {
    let dir = if sub.is_empty() {
        root.to_path_buf()
    } else {
        root.join(sub)
    };
    let mut files = vec![];
    walk(&dir, &mut files)?;
    files.sort();
    let mut out = vec![];
    for p in files {
        if let Some(before) = unchanged_since {
            let now = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            if before.get(&p) == Some(&now) {
                continue;
            }
        }
        let (blake3, bytes) = io::hash_file_with(&p, |_| {})?;
        out.push(OutputRecord {
            root: kind,
            path: relative_name(root, &p),
            blake3,
            bytes,
        });
    }
    Ok(out)
}

/// Files (recursively) under `dir`, without temporary files; nothing when `dir` is absent.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let p = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if !is_temp_file(&entry.file_name().to_string_lossy()) {
            out.push(p);
        }
    }
    Ok(())
}

/// Modification times of the files under `dir`.
pub(super) fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Option<SystemTime>>> {
    let mut files = vec![];
    walk(dir, &mut files)?;
    Ok(files
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, t)
        })
        .collect())
}

/// Removes what a stage wrote before: its folder under OUT (with any temporary files a killed
/// run left), and the report files recorded for it.
pub(super) fn remove_previous_outputs(
    stage: &Stage,
    entry: Option<&StageEntry>,
    paths: &StudyPaths,
) -> Result<()> {
    let dir = paths.out_dir.join(stage.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the old outputs in {}", dir.display()))?;
    }
    if let Some(e) = entry {
        for o in e.outputs.iter().filter(|o| o.root == Root::Reports) {
            let p = manifest::output_path(&paths.out_dir, &paths.reports_dir, o);
            if p.is_file() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove the old report {}", p.display()))?;
            }
        }
    }
    if stage.writes_reports {
        remove_temp_files(&paths.reports_dir, true)?;
    }
    Ok(())
}

/// Removes the temporary files of unfinished writes in `dir`, and with `below` in its folders
/// too.
pub(super) fn remove_temp_files(dir: &Path, below: bool) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if below {
                remove_temp_files(&entry.path(), true)?;
            }
        } else if is_temp_file(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn report_outputs_are_the_files_new_or_rewritten_since_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("old.html"), "kept, not ours").unwrap();
        std::fs::write(root.join("again.csv"), "a").unwrap();
        let before = snapshot(root).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        io::write_json(&json!({"x": 1}), &root.join("sub/new.json")).unwrap();
        io::write_atomic(&root.join("again.csv"), |w| {
            std::io::Write::write_all(w, b"a")?;
            Ok(())
        })
        .unwrap();
        std::fs::write(root.join(".relcap-x.tmp"), "partial").unwrap();
        let found = scan_outputs(root, "", Root::Reports, Some(&before)).unwrap();
        let paths: Vec<&str> = found.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["again.csv", "sub/new.json"]);
        assert_eq!(found[0].blake3, blake3::hash(b"a").to_hex().to_string());
        assert_eq!(found[0].bytes, 1);
        let all = scan_outputs(root, "", Root::Out, None).unwrap();
        assert_eq!(all.len(), 3, "temporary files are never outputs");
    }

    #[test]
    fn relative_names_use_slashes() {
        assert_eq!(
            relative_name(Path::new("/a/b"), Path::new("/a/b/c/d.parquet")),
            "c/d.parquet"
        );
        assert!(is_temp_file(".relcap-abc.tmp"));
        assert!(!is_temp_file("x.tmp"));
    }
}
