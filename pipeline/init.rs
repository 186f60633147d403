//! `relcap init DIR`: a new study folder to start from. `DIR/study.toml` holds every setting at
//! its default with the comments of the repository's demo config (that file is checked to be
//! the built-in defaults, so this one is too: a test parses it back), with the study's own
//! folders (`data`, `out`; the report in `out/report/`) and no demo key; `DIR/data/` holds the
//! five input tables as CSV files with their exact headers and no rows. `relcap run` inside
//! DIR then needs no arguments.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::schema;

/// The demo study's config: the comments and defaults the new study.toml starts from.
const DEMO_CONFIG: &str = include_str!("../config/study.toml");

/// What `relcap init` wrote.
#[derive(Debug)]
pub struct InitReport {
    pub config: PathBuf,
    pub tables: Vec<PathBuf>,
}

/// Writes the study folder `dir` (created if missing). Refuses when `dir/study.toml` exists;
/// a table template that exists already is left as it is.
pub fn init(dir: &Path) -> Result<InitReport> {
    let config = dir.join("study.toml");
    if config.exists() {
        bail!(
            "{} exists already; relcap init does not overwrite a study",
            config.display()
        );
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let name = std::fs::canonicalize(dir)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "study".to_string());
    let mut tables = vec![];
    for t in schema::ALL {
        let path = data.join(format!("{}.csv", t.name));
        if !path.exists() {
            let header = format!("{}\n", t.names().join(","));
            write_text(&path, &header)?;
            tables.push(path);
        }
    }
    write_text(&config, &study_toml(&name))?;
    Ok(InitReport { config, tables })
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::io::write_atomic(path, |w| Ok(std::io::Write::write_all(w, text.as_bytes())?))
}

/// The study.toml of a new study named `name`: the demo config's settings and comments, with
/// the study's own name and folders and without the demo key.
pub fn study_toml(name: &str) -> String {
    // From [study] to the demo's display names, which a new study does not share.
    let start = DEMO_CONFIG
        .find("[study]")
        .expect("the demo config has [study]");
    let end = DEMO_CONFIG
        .find("\n# Display names")
        .unwrap_or(DEMO_CONFIG.len());
    let body = &DEMO_CONFIG[start..end];
    let mut out = String::from(
        "# relcap study configuration, made by `relcap init`: every setting at its built-in \
         default.\n# Change what your study needs; a setting left out keeps its default. The \
         keys are described in\n# docs/data-contract.md of relcap. Relative paths are \
         resolved against the folder of this file.\n# Unknown keys are an error.\n\n",
    );
    let mut comments: Vec<&str> = vec![];
    for line in body.lines() {
        if line.starts_with('#') {
            comments.push(line);
            continue;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let replaced = match key {
            "name" if comments.is_empty() => Some(format!("name = {}", toml_str(name))),
            "data_dir" => Some("data_dir = \"data\"".to_string()),
            "out_dir" => Some("out_dir = \"out\"".to_string()),
            // The report goes to <out_dir>/report/; a study shares no folder with another.
            "reports_dir" | "demo_key" => {
                comments.clear();
                continue;
            }
            _ => None,
        };
        for c in comments.drain(..) {
            out.push_str(c);
            out.push('\n');
        }
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
        if line.trim() == "[instrument]" {
            out.push_str(FREQUENCY_SCALE);
        }
    }
    out.push_str(
        "\n# Display names for the ids of your data, e.g.:\n# [labels.work_groups]\n\
         # job_consultants = \"Jobkonsulenter\"\n# [labels.municipalities]\n\
         # Randers = \"Randers Kommune\"\n",
    );
    out
}

/// The frequency item's scale, written out so that a study chooses it (the demo config leaves
/// it at its default, which is the same choice).
const FREQUENCY_SCALE: &str = "\
# The scale the frequency item (`frequent`) was fielded with; relcap cannot tell from the
# answers alone, so check your questionnaire:
#   \"sufficiency\": not nearly enough (1), not enough, just the right amount, too often, much
#     too often (5) as printed on the form, scored through value_maps.frequent below (just
#     right scores highest: 1, 3, 5, 4, 2). The default: the RC survey's published form.
#   \"frequency\": never (1) ... constantly (5), scored as answered; the value map below is
#     then dropped (leave it as it is, or delete it).
# A wrong choice shows in `relcap check` and the codebook: the item's corrected item-total
# correlation falls to about 0 and it is flagged.
frequency_scale = \"sufficiency\"
";

/// `s` as a TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_new_study_toml_is_the_defaults_with_the_study_folders() {
        let text = study_toml("my \"study\"");
        let c = Config::from_toml(&text).unwrap();
        let mut expected = Config::default();
        expected.study.name = "my \"study\"".to_string();
        // Written out, so that a study chooses it; the same as the default.
        expected.instrument.frequency_scale = Some(crate::config::FrequencyScale::Sufficiency);
        assert!(text.contains("\"frequency\": never (1)"), "{text}");
        assert_eq!(c, expected);
        assert!(!text.contains("demo"), "{text}");
        assert!(text.contains("data_dir = \"data\"\n"));
    }

    #[test]
    fn init_writes_the_templates_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let r = init(&dir).unwrap();
        assert_eq!(r.tables.len(), 5);
        let units = std::fs::read_to_string(dir.join("data/units.csv")).unwrap();
        assert_eq!(
            units,
            "municipality,unit_id,work_group,manager_id,headcount\n"
        );
        let c = Config::load(&dir.join("study.toml")).unwrap();
        assert_eq!(c.study.name, "s");
        assert_eq!(c.study.data_dir, dir.join("data"));
        let e = init(&dir).unwrap_err().to_string();
        assert!(e.contains("exists already"), "{e}");
    }
}
