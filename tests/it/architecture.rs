//! Invariants of ARCHITECTURE.md checked by reading the repository: the statistics engine
//! stays pure, functions and files stay small enough to read, and nothing points outside the
//! repository. ARCHITECTURE.md says which test keeps each of the others.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, relative to the repository root, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The lines of a file that are code: comments and the unit tests at its foot left out.
fn code_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(root().join(path)).unwrap();
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(str::to_string)
        .collect()
}

/// The pipeline's sources, the statistics engine and unit-test files (`tests.rs`) left out.
fn pipeline_sources() -> Vec<PathBuf> {
    rust_files(&root().join("pipeline"))
        .into_iter()
        .filter(|p| !p.starts_with("pipeline/stats") && !p.ends_with("tests.rs"))
        .collect()
}

/// The engine's sources, its tests and benches left out.
fn stats_sources() -> Vec<PathBuf> {
    rust_files(&root().join("pipeline/stats"))
        .into_iter()
        .filter(|p| {
            !p.starts_with("pipeline/stats/tests")
                && !p.starts_with("pipeline/stats/benches")
                && !p.ends_with("tests.rs")
        })
        .collect()
}

#[test]
fn the_statistics_engine_has_no_polars_no_files_no_config() {
    let manifest = fs::read_to_string(root().join("pipeline/stats/Cargo.toml")).unwrap();
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("polars")),
        "relcap-stats must not depend on polars"
    );
    let mut found = Vec::new();
    for path in stats_sources() {
        for line in code_lines(&path) {
            if ["polars", "std::fs", "crate::config", "relcap::"]
                .iter()
                .any(|n| line.contains(n))
            {
                found.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine is pure functions:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_function_over_150_lines_and_no_file_over_1200() {
    let mut found = Vec::new();
    for path in pipeline_sources().into_iter().chain(stats_sources()) {
        let lines = code_lines(&path);
        if lines.len() > 1200 {
            found.push(format!("{}: {} lines of code", path.display(), lines.len()));
        }
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let is_fn = t.starts_with("fn ")
                || t.starts_with("pub fn ")
                || t.starts_with("pub(crate) fn ")
                || t.starts_with("pub(super) fn ");
            if !is_fn || line.trim_end().ends_with(';') {
                continue;
            }
            let indent = &line[..line.len() - t.len()];
            let close = format!("{indent}}}");
            if let Some(len) = lines[i + 1..].iter().position(|l| *l == close) {
                if len + 2 > 150 {
                    found.push(format!("{}:{}: {} lines", path.display(), i + 1, len + 2));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "too long to read in one sitting:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_points_outside_the_repository() {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CONTRIBUTING.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for dir in ["docs", "config", "pipeline"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p
                    .extension()
                    .is_some_and(|e| ["rs", "md", "toml", "j2"].contains(&e.to_str().unwrap()))
                {
                    files.push(p.strip_prefix(root()).unwrap().to_path_buf());
                }
            }
        }
    }
    let mut found = Vec::new();
    for path in files {
        let text = fs::read_to_string(root().join(&path)).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("STUDY.md") || line.contains("../shared") {
                found.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the repository must stand alone:\n{}",
        found.join("\n")
    );
}
