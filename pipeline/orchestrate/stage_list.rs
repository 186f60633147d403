//! The declared list of stages: each stage's name, version, what it reads and its entry point.
//! What a stage declares here is what its fingerprint covers (`fingerprint`); a test at the
//! foot of this file scans the stages' sources to check that they read nothing else.

use anyhow::{Context, Result};

use crate::stages::{self, StageContext, StageSummary};

/// What a stage reads, besides its config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The canonical tables in the data folder, located as ingest locates them.
    Sources,
    /// Every file an earlier stage wrote under `OUT/<stage>/`.
    Stage(&'static str),
}

/// A stage: its name (= module = output folder = manifest key), a version bumped whenever its
/// outputs change meaning, what it reads, whether it writes into the reports folder, and its
/// entry point.
pub struct Stage {
    pub name: &'static str,
    pub version: u32,
    pub reads: &'static [Input],
    /// Writes files under the reports folder (`reports/<study>/`) as well as `OUT/<stage>/`.
    pub writes_reports: bool,
    pub run: fn(&StageContext) -> Result<StageSummary>,
}

/// The pipeline, in order. `reads` must name only earlier stages (a unit test checks it).
pub const STAGES: &[Stage] = &[
    Stage {
        name: "ingest",
        version: 2,
        reads: &[Input::Sources],
        writes_reports: false,
        run: stages::ingest::run,
    },
    Stage {
        name: "clean",
        version: 1,
        reads: &[Input::Stage("ingest")],
        writes_reports: false,
        run: stages::clean::run,
    },
    Stage {
        name: "score",
        version: 3,
        reads: &[Input::Stage("clean")],
        writes_reports: false,
        run: stages::score::run,
    },
    Stage {
        name: "link",
        version: 3,
        reads: &[Input::Stage("clean"), Input::Stage("score")],
        writes_reports: false,
        run: stages::link::run,
    },
    Stage {
        name: "model",
        version: 3,
        reads: &[Input::Stage("link")],
        writes_reports: false,
        run: stages::model::run,
    },
    Stage {
        name: "report",
        // 3: audited disclosure control (margins over shown cells, disclosure_audit).
        version: 3,
        // Every earlier stage: the sample flow reads each stage's summary.json.
        reads: &[
            Input::Stage("ingest"),
            Input::Stage("clean"),
            Input::Stage("score"),
            Input::Stage("link"),
            Input::Stage("model"),
        ],
        writes_reports: true,
        run: stages::report::run,
    },
];

pub(super) fn stage_names() -> Vec<&'static str> {
    STAGES.iter().map(|s| s.name).collect()
}

pub fn stage_index(name: &str) -> Result<usize> {
    STAGES.iter().position(|s| s.name == name).with_context(|| {
        format!(
            "unknown stage {name:?}; stages are {}",
            stage_names().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn stages_read_only_earlier_stages() {
        for (i, s) in STAGES.iter().enumerate() {
            for input in s.reads {
                if let Input::Stage(up) = input {
                    let j = stage_index(up).unwrap();
                    assert!(
                        j < i,
                        "{} reads {up}, which does not come before it",
                        s.name
                    );
                }
            }
        }
        assert!(STAGES[0].reads.contains(&Input::Sources));
    }

    /// The source of stage `name` (its module file and any files of its submodule folder),
    /// without test modules.
    fn stage_source(name: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline/stages");
        let mut files = vec![dir.join(format!("{name}.rs"))];
        if let Ok(rd) = std::fs::read_dir(dir.join(name)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
        let mut text = String::new();
        for f in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        {
            let t = std::fs::read_to_string(&f).unwrap();
            text.push_str(t.split("#[cfg(test)]").next().unwrap_or(""));
        }
        text
    }

    /// Every `"literal"` that follows `prefix` in `text`.
    fn literals_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.match_indices(prefix)
            .filter_map(|(i, _)| {
                let rest = &text[i + prefix.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
            .collect()
    }

    #[test]
    fn stages_read_only_what_they_declare() {
        // A stage reading another stage's files or a config key that its fingerprint does not
        // cover would be skipped when what it reads changed. This reads the stages' source for
        // `table_path("stage", ..)`, `stage_dir("stage")` and `config.section.key`.
        let cfg = Config::from_toml("[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n")
            .unwrap();
        for stage in STAGES {
            let src = stage_source(stage.name);
            let mut read: Vec<&str> = literals_after(&src, "table_path(\"");
            read.extend(literals_after(&src, "stage_dir(\""));
            for r in read {
                let declared = stage
                    .reads
                    .iter()
                    .any(|i| matches!(i, Input::Stage(s) if *s == r));
                assert!(
                    r == stage.name || declared,
                    "stage {} reads stage {r}'s files but does not declare it in STAGES",
                    stage.name
                );
            }
            let section = cfg.section_for_stage(stage.name);
            let keys: Vec<&String> = section.as_object().unwrap().keys().collect();
            for (i, _) in src.match_indices("config.") {
                let path: String = src[i + "config.".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                let mut parts = path.split('.').filter(|p| !p.is_empty());
                let Some(first) = parts.next() else { continue };
                let two = parts.next().map(|p| format!("{first}.{p}"));
                assert!(
                    keys.iter()
                        .any(|k| *k == first || Some(k.as_str()) == two.as_deref()),
                    "stage {} reads config.{path}, which Config::section_for_stage(\"{}\") \
                     does not include, so a change to it would not rerun the stage",
                    stage.name,
                    stage.name
                );
            }
        }
    }

    #[test]
    fn no_stage_imports_another() {
        // Stages talk only through their files: no stage names another stage's module.
        for stage in STAGES {
            let code: String = stage_source(stage.name)
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for other in STAGES.iter().filter(|o| o.name != stage.name) {
                for path in [
                    format!("stages::{}", other.name),
                    format!("super::{}::", other.name),
                ] {
                    assert!(
                        !code.contains(&path),
                        "stage {} uses `{path}`: stages share only files",
                        stage.name
                    );
                }
            }
        }
    }
}
