//! `[labels]`: the names the reports show for the ids of the data, and `[report.language]`:
//! the language of each kind of report. The data keep their ids; only what a reader sees changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// `[labels]`: display names by id. A work group, municipality or item without one is shown as
/// before: a work group by its id with underscores as spaces, a municipality by its id, an item
/// by the name in the report's catalogue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsSection {
    /// `job_consultants = "Jobkonsulenter"`.
    pub work_groups: BTreeMap<String, String>,
    /// `Randers = "Randers Kommune"`.
    pub municipalities: BTreeMap<String, String>,
    /// `frequent = "hyppig kommunikation"`.
    pub items: BTreeMap<String, String>,
}

impl LabelsSection {
    pub fn is_empty(&self) -> bool {
        self.work_groups.is_empty() && self.municipalities.is_empty() && self.items.is_empty()
    }

    /// The display name of a municipality.
    pub fn municipality<'a>(&'a self, id: &'a str) -> &'a str {
        self.municipalities.get(id).map_or(id, String::as_str)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (section, map) in [
            ("work_groups", &self.work_groups),
            ("municipalities", &self.municipalities),
            ("items", &self.items),
        ] {
            if let Some((id, _)) = map.iter().find(|(_, l)| l.trim().is_empty()) {
                return Err(invalid(
                    &format!("labels.{section}.{id}"),
                    "is empty; leave the id out to show it as it is",
                ));
            }
        }
        Ok(())
    }
}

/// `[report.language]`: the language of the study report (for publication, default English)
/// and of the municipalities' feedback reports (default Danish); each names a catalogue,
/// built in (`en`, `da`) or `lang/<language>.toml` in `report.templates_dir`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportLanguage {
    pub study: String,
    pub feedback: String,
}

impl Default for ReportLanguage {
    fn default() -> Self {
        ReportLanguage {
            study: "en".into(),
            feedback: "da".into(),
        }
    }
}

impl ReportLanguage {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, lang) in [("study", &self.study), ("feedback", &self.feedback)] {
            let ok = !lang.is_empty()
                && lang.len() <= 16
                && lang
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(invalid(
                    &format!("report.language.{key}"),
                    format!("is {lang:?}; use a language code such as \"da\" or \"en\""),
                ));
            }
        }
        Ok(())
    }
}
