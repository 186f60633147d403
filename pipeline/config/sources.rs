//! Settings of survey-system exports and of the frequency item's scale: a source's `format`
//! (`surveyxact`, `spss`), the labels that mean a missing answer (`missing_labels`), and
//! `instrument.frequency_scale`. A left-out setting is `None`, so that the canonical JSON of a
//! section (which fingerprints cover) is what was written; what `None` means is decided here.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, InstrumentSection, SourceSpec};

super::choice! {
    /// `sources.<table>.format`: how a source's files are laid out.
    pub enum SourceFormat {
        /// A table (CSV, Parquet, `.xlsx`), long or wide through `wide` (the default).
        Table = "table",
        /// A SurveyXact export: a folder with `dataset.csv`, `structure.csv`, `labels.csv`, or
        /// a workbook with the sheets Dataset (and Dataset (2), ...), Structure and Labels.
        Surveyxact = "surveyxact",
        /// SPSS data files (`.sav`, `.zsav`): one per survey and wave, with value labels and
        /// user-missing values.
        Spss = "spss",
    }
}

/// A value label that means a missing answer, and the reason it is missing for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MissingLabel {
    /// The label as the export has it; compared ignoring case and surrounding spaces.
    pub label: String,
    /// `dont_know`, `not_relevant`, `refused`, ...: the `missing_reason` of the answer.
    pub reason: String,
}

/// The labels read as missing when a source does not set `missing_labels`.
pub fn default_missing_labels() -> Vec<MissingLabel> {
    [
        ("Ved ikke", "dont_know"),
        ("Ikke relevant", "not_relevant"),
        ("Vil ikke svare", "refused"),
        ("Don't know", "dont_know"),
        ("Not relevant", "not_relevant"),
        ("Prefer not to say", "refused"),
    ]
    .into_iter()
    .map(|(l, r)| MissingLabel {
        label: l.to_string(),
        reason: r.to_string(),
    })
    .collect()
}

/// A label as compared: lower case, surrounding and repeated inner spaces removed.
pub fn label_key(label: &str) -> String {
    label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl SourceSpec {
    /// Whether the source is a SurveyXact export.
    pub fn is_surveyxact(&self) -> bool {
        self.format == Some(SourceFormat::Surveyxact)
    }

    /// Whether the source is SPSS data files.
    pub fn is_spss(&self) -> bool {
        self.format == Some(SourceFormat::Spss)
    }

    /// Whether the source is a labelled survey export (SurveyXact or SPSS): read through the
    /// wide mapping, its labels deciding missing answers.
    pub fn is_export(&self) -> bool {
        self.is_surveyxact() || self.is_spss()
    }

    /// The missing labels of this source: its own, else [`default_missing_labels`].
    pub fn missing_labels(&self) -> Vec<MissingLabel> {
        self.missing_labels
            .clone()
            .unwrap_or_else(default_missing_labels)
    }
}

/// Checks the export settings of source `t`.
pub(super) fn validate_export(t: &str, spec: &SourceSpec) -> Result<(), ConfigError> {
    let key = |k: &str| format!("sources.{t}.{k}");
    if let Some(labels) = &spec.missing_labels {
        let mut seen = std::collections::BTreeSet::new();
        for l in labels {
            if l.label.trim().is_empty() {
                return Err(invalid(&key("missing_labels"), "a label must not be empty"));
            }
            super::check_name(&key("missing_labels.reason"), &l.reason)?;
            if !seen.insert(label_key(&l.label)) {
                return Err(invalid(
                    &key("missing_labels"),
                    format!("label {:?} is listed twice", l.label),
                ));
            }
        }
    }
    if !spec.is_export() {
        if spec.missing_labels.is_some() {
            return Err(invalid(
                &key("missing_labels"),
                "only a source with format = \"surveyxact\" or \"spss\" has value labels",
            ));
        }
        return Ok(());
    }
    if !matches!(t, "employee_responses" | "citizen_responses") {
        return Err(invalid(
            &key("format"),
            "only employee_responses and citizen_responses can be survey exports",
        ));
    }
    if spec.wide.is_none() {
        return Err(invalid(
            &key("wide"),
            "a survey export is wide: give the mapping of its variables (patterns and items)",
        ));
    }
    if spec.is_spss() {
        // An SPSS file declares its own encoding and stores numbers as numbers.
        let text_keys = [
            ("encoding", spec.encoding.is_some()),
            ("separator", spec.separator.is_some()),
            ("decimal", spec.decimal.is_some()),
            ("sheet", spec.sheet.is_some()),
        ];
        if let Some((k, _)) = text_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(
                &key(k),
                "does not apply to SPSS files (a .sav declares its encoding and stores numbers)",
            ));
        }
        return Ok(());
    }
    if spec.sheet.is_some() {
        return Err(invalid(
            &key("sheet"),
            "a SurveyXact workbook's sheets are found by name (Dataset, Structure, Labels)",
        ));
    }
    Ok(())
}

super::choice! {
    /// `instrument.frequency_scale`: the answer scale the frequency item (`frequent`) was
    /// fielded with.
    pub enum FrequencyScale {
        /// Not nearly enough (1) ... just the right amount (3) ... much too often (5), scored
        /// through `value_maps.frequent` (the default map: 1→1, 2→3, 3→5, 4→4, 5→2).
        Sufficiency = "sufficiency",
        /// Never (1) ... constantly (5), scored as answered (no value map).
        Frequency = "frequency",
    }
}

/// The frequency item the setting applies to.
pub const FREQUENCY_ITEM: &str = "frequent";

impl InstrumentSection {
    /// The frequency item's scale: as set, else `sufficiency` (what the defaults score).
    pub fn frequency_scale(&self) -> FrequencyScale {
        self.frequency_scale.unwrap_or(FrequencyScale::Sufficiency)
    }

    /// Makes `value_maps` agree with `frequency_scale` when it is set: `frequency` removes the
    /// default sufficiency map of the frequency item (an explicit, different map is an error);
    /// `sufficiency` needs a map for it (the default one is restored if it was left out).
    pub(super) fn resolve_frequency_scale(&mut self) -> Result<(), ConfigError> {
        let key = "instrument.frequency_scale";
        let Some(scale) = self.frequency_scale else {
            return Ok(());
        };
        if !self.dimensions().iter().any(|d| d == FREQUENCY_ITEM) {
            return Err(invalid(
                key,
                format!("the instrument has no item {FREQUENCY_ITEM:?} for it to apply to"),
            ));
        }
        let default_map = InstrumentSection::default()
            .value_maps
            .remove(FREQUENCY_ITEM)
            .unwrap_or_default();
        match scale {
            FrequencyScale::Frequency => match self.value_maps.get(FREQUENCY_ITEM) {
                Some(m) if *m == default_map => {
                    self.value_maps.remove(FREQUENCY_ITEM);
                }
                Some(_) => {
                    return Err(invalid(
                        key,
                        "is \"frequency\" (scored as answered), but \
                         instrument.value_maps.frequent maps its answers: remove one",
                    ))
                }
                None => {}
            },
            FrequencyScale::Sufficiency => {
                self.value_maps
                    .entry(FREQUENCY_ITEM.to_string())
                    .or_insert(default_map);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const MINIMAL: &str = "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n";

    #[test]
    fn frequency_scale_decides_the_value_map() {
        let c = Config::from_toml(&format!(
            "{MINIMAL}[instrument]\nfrequency_scale = \"frequency\"\n"
        ))
        .unwrap();
        assert!(!c.instrument.value_maps.contains_key("frequent"));
        assert_eq!(c.instrument.frequency_scale(), FrequencyScale::Frequency);
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.instrument.frequency_scale(), FrequencyScale::Sufficiency);
        assert_eq!(c.instrument.value_maps["frequent"]["3"], 5.0);
        let e = Config::from_toml(&format!(
            "{MINIMAL}[instrument]\nfrequency_scale = \"frequency\"\n\
             [instrument.value_maps.frequent]\n\"1\" = 5.0\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("instrument.frequency_scale"), "{e}");
        let e = Config::from_toml(&format!(
            "{MINIMAL}[instrument]\nfrequency_scale = \"often\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("frequency_scale") && e.contains("sufficiency"),
            "{e}"
        );
    }

    #[test]
    fn export_settings_are_checked() {
        let e = Config::from_toml(&format!(
            "{MINIMAL}[sources.units]\nfile = \"units\"\nformat = \"surveyxact\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sources.units.format"), "{e}");
        let e = Config::from_toml(&format!(
            "{MINIMAL}[sources.employee_responses]\nfile = \"e\"\nformat = \"surveyxact\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sources.employee_responses.wide"), "{e}");
        let e = Config::from_toml(&format!(
            "{MINIMAL}[sources.employee_responses]\nfile = \"e\"\nformat = \"spss\"\n\
             encoding = \"utf-8\"\n[sources.employee_responses.wide]\n\
             patterns = [\"{{item}}\"]\nitems = [\"srm_1\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sources.employee_responses.encoding"), "{e}");
        assert_eq!(label_key("  VED  ikke "), "ved ikke");
    }
}
