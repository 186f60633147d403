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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(extra: &str) -> String {
        Config::from_toml(extra).unwrap_err().to_string()
    }

    #[test]
    fn languages_labels_and_dates_are_checked_and_named() {
        let c = Config::from_toml(
            "[report.language]\nstudy = \"da\"\n[labels.work_groups]\njob_consultants = \"Jobkonsulenter\"\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.report.language.study.as_str(),
                c.report.language.feedback.as_str()
            ),
            ("da", "da")
        );
        assert_eq!(c.labels.work_groups["job_consultants"], "Jobkonsulenter");
        assert!(
            err("[report.language]\nfeedback = \"Dansk\"\n").contains("report.language.feedback")
        );
        assert!(err("[report.language]\nstudy = \"\"\n").contains("report.language.study"));
        assert!(err("[labels.items]\nfrequent = \" \"\n").contains("labels.items.frequent"));
        assert!(err("[labels]\ngroups = {}\n").contains("groups"));
        assert!(err("[report]\ndate = \"12. maj 2026\"\n").contains("report.date"));
        assert!(err("[report]\ndate = \"2026-02-30\"\n").contains("report.date"));
        assert!(Config::from_toml("[report]\ndate = \"2026-05-12\"\n").is_ok());
    }

    #[test]
    fn labels_and_languages_are_in_the_report_fingerprint() {
        // Languages at their defaults are left out of it (as are `pdf` and `date`).
        let plain = Config::default().section_for_stage("report");
        assert_eq!(plain["labels"]["work_groups"], serde_json::json!({}));
        assert!(plain["report"].get("language").is_none());
        let mut c = Config::default();
        c.labels
            .municipalities
            .insert("Randers".into(), "Randers Kommune".into());
        c.report.language.feedback = "en".into();
        let set = c.section_for_stage("report");
        assert_eq!(
            set["labels"]["municipalities"]["Randers"],
            "Randers Kommune"
        );
        assert_eq!(set["report"]["language"]["feedback"], "en");
    }
}
