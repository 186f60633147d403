//! The study configuration: `config/study.toml` read into typed settings, every default of the
//! study in one place, validated before any stage runs.
//!
//! Loading is strict: an unknown key, an item named twice, a dimension that names no item, or a
//! privacy threshold below 3 is an error that names the offending key. Relative paths are resolved
//! against the folder of the config file. The stages read only the sections they need, which is
//! what lets the orchestrator fingerprint a stage by the part of the config it reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The canonical input tables, in the order they are read (their columns: [`crate::schema`]).
pub use crate::schema::TABLES;

/// A configuration error, naming the key (dotted path) or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// An enum of settings spelled as given: in TOML and JSON (serde), on the command line
/// (`FromStr`, `NAMES`) and in outputs (`as_str`, `Display`). An unknown value fails where it is
/// read, with the values that are allowed.
macro_rules! choice {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, as written.
            pub const NAMES: &[&str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("is {other:?}; use {}", $name::NAMES.join(", "))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
    };
}
pub(crate) use choice;

mod labels;
mod model;
mod sources;

pub use labels::{LabelsSection, ReportLanguage};
pub use model::{
    Correction, Direction, HypothesisSpec, Linkage, MetaMethod, MetaSpec, MetaTest, Method,
    ModelSection, Vcov,
};
pub use sources::{
    default_missing_labels, label_key, FrequencyScale, MissingLabel, SourceFormat, FREQUENCY_ITEM,
};

/// A study's settings. Every section has a default (the defaults of docs/methods.md), so a
/// study runs with no config file at all (`Config::default()`); a config file only changes what
/// it names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub study: StudySection,
    #[serde(default)]
    pub privacy: PrivacySection,
    #[serde(default)]
    pub sources: SourcesSection,
    #[serde(default)]
    pub csv: CsvSection,
    #[serde(default)]
    pub instrument: InstrumentSection,
    #[serde(default)]
    pub scoring: ScoringSection,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub report: ReportSection,
    #[serde(default, skip_serializing_if = "LabelsSection::is_empty")]
    pub labels: LabelsSection,
}

/// `[study]`: the study's name and folders (relative paths are relative to the config file's
/// folder, or to the working folder without a config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StudySection {
    /// Empty (the default): the data folder's name ([`Config::named_after_data`]).
    pub name: String,
    /// The canonical input tables (default `data`).
    pub data_dir: PathBuf,
    /// Stage outputs and the manifest (default `out`).
    pub out_dir: PathBuf,
    /// Reports go to `<reports_dir>/<name>/` when set; None (the default): `<out_dir>/report/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports_dir: Option<PathBuf>,
}

impl Default for StudySection {
    fn default() -> Self {
        StudySection {
            name: String::new(),
            data_dir: PathBuf::from("data"),
            out_dir: PathBuf::from("out"),
            reports_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySection {
    #[serde(default = "default_key_env")]
    pub key_env: String,
    /// A public key for simulated data only; a real study leaves it out.
    #[serde(default)]
    pub demo_key: Option<String>,
    #[serde(default = "default_min_cell")]
    pub min_cell: u32,
    /// The narrowest interval (on the 1–5 response scale) that an attacker holding every
    /// published figure may derive for a hidden figure (the report's disclosure audit).
    #[serde(default = "default_protection_width")]
    pub protection_width: f64,
}

/// The width of the 1–5 response scale: no interval can be wider.
const SCALE_WIDTH: f64 = 4.0;

fn default_protection_width() -> f64 {
    1.0
}

fn default_key_env() -> String {
    "RELCAP_PSEUDONYM_KEY".into()
}
fn default_min_cell() -> u32 {
    5
}

impl Default for PrivacySection {
    fn default() -> Self {
        PrivacySection {
            key_env: default_key_env(),
            demo_key: None,
            min_cell: default_min_cell(),
            protection_width: default_protection_width(),
        }
    }
}

/// Where one canonical table comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Path relative to `study.data_dir`; without an extension `.parquet` then `.csv` is tried.
    pub file: PathBuf,
    /// A missing optional table is an empty table; a missing required one is an error.
    #[serde(default = "yes")]
    pub required: bool,
    /// Canonical column name -> column name in the file, for those that differ.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Further files of the same layout read into the same table (one wave split over several
    /// exports); each is resolved like `file`.
    #[serde(default)]
    pub more_files: Vec<PathBuf>,
    /// Canonical column -> a value for every row, for a column the file does not carry (a
    /// single-wave export: `wave = "1"`). When the file has the column too, every cell must
    /// equal the constant (for `wave`: else the row is quarantined as `wave_mismatch`).
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
    /// Overrides `csv.separator` for this source.
    #[serde(default)]
    pub separator: Option<String>,
    /// Overrides `csv.encoding` for this source.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Overrides `csv.decimal` for this source.
    #[serde(default)]
    pub decimal: Option<String>,
    /// Cell texts that mean an empty cell (e.g. `NA`), compared after trimming.
    #[serde(default)]
    pub na_values: Vec<String>,
    /// The worksheet of an `.xlsx` source (default: the first sheet).
    #[serde(default)]
    pub sheet: Option<String>,
    /// A 0-byte or header-only file of a required table is an empty table (with a warning)
    /// instead of an error.
    #[serde(default)]
    pub allow_empty: bool,
    /// The file is a wide export (one row per respondent, a column per item and partner
    /// group) melted into the canonical long table as it is read.
    #[serde(default)]
    pub wide: Option<WideSpec>,
    /// `surveyxact`: each file is a SurveyXact export (a folder or a workbook, one survey and
    /// wave each); `spss`: each file is an SPSS `.sav`/`.zsav` (one survey and wave each); both
    /// read through `wide`. None (the default): a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SourceFormat>,
    /// Value labels that mean a missing answer (with the reason); None: the defaults
    /// ([`default_missing_labels`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_labels: Option<Vec<MissingLabel>>,
}

/// How the columns of a wide export map to `item` and `target_group`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct WideSpec {
    /// Column-name patterns with `{item}` and optionally `{target}`, tried in order, e.g.
    /// `["{item}__{target}", "{item}"]`. A column matches when its `{item}` part (after
    /// `item_names`) is one of `items`.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// The items the patterns may match (canonical names).
    #[serde(default)]
    pub items: Vec<String>,
    /// Item names as written in the headers -> canonical item names.
    #[serde(default)]
    pub item_names: BTreeMap<String, String>,
    /// Partner-group names as written in the headers -> canonical work-group names.
    #[serde(default)]
    pub target_names: BTreeMap<String, String>,
    /// An explicit table: file column -> item and partner group; takes precedence over the
    /// patterns.
    #[serde(default)]
    pub columns: BTreeMap<String, WideColumn>,
    /// The file has no respondent id: the respondent is the record (`<file>:<line>`, then
    /// pseudonymised like any id). Only sound for a single-wave file.
    #[serde(default)]
    pub respondent_from_line: bool,
    /// An empty answer cell: `skip` (no long row, counted as excluded `empty_cell`), `keep`
    /// (a long row with an empty value, i.e. an item not answered) or `keep_answered` (kept
    /// within a partner group the record answered about, see [`EmptyCells`]).
    #[serde(default)]
    pub empty_cells: EmptyCells,
    /// Cell texts meaning "not asked" (no long row, counted as excluded `not_asked`).
    #[serde(default)]
    pub not_asked: Vec<String>,
}

/// One column of an explicit wide mapping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WideColumn {
    pub item: String,
    /// The partner group; absent for person-level items.
    #[serde(default)]
    pub target: Option<String>,
}

choice! {
    /// `sources.*.wide.empty_cells`: what an empty answer cell of a wide export becomes.
    #[derive(Default)]
    pub enum EmptyCells {
        #[default]
        Skip = "skip",
        Keep = "keep",
        /// Kept (an item not answered) when the record answered another item about the same
        /// partner group (person items: another person item); skipped as `empty_cell` when the
        /// whole block is blank (a partner group not asked about).
        KeepAnswered = "keep_answered",
    }
}

fn yes() -> bool {
    true
}

impl SourceSpec {
    fn named(stem: &str, required: bool) -> Self {
        SourceSpec {
            file: PathBuf::from(stem),
            required,
            columns: BTreeMap::new(),
            more_files: vec![],
            constants: BTreeMap::new(),
            separator: None,
            encoding: None,
            decimal: None,
            na_values: vec![],
            sheet: None,
            allow_empty: false,
            wide: None,
            format: None,
            missing_labels: None,
        }
    }

    /// `file` followed by `more_files`.
    pub fn files(&self) -> Vec<&Path> {
        std::iter::once(self.file.as_path())
            .chain(self.more_files.iter().map(PathBuf::as_path))
            .collect()
    }

    /// The name of canonical column `canonical` in the source file.
    pub fn column<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.columns
            .get(canonical)
            .map(String::as_str)
            .unwrap_or(canonical)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesSection {
    pub units: SourceSpec,
    pub intervention: SourceSpec,
    pub employee_responses: SourceSpec,
    pub citizen_responses: SourceSpec,
    pub case_involvement: SourceSpec,
}

impl Default for SourcesSection {
    fn default() -> Self {
        SourcesSection {
            units: SourceSpec::named("units", true),
            intervention: SourceSpec::named("intervention", false),
            employee_responses: SourceSpec::named("employee_responses", true),
            citizen_responses: SourceSpec::named("citizen_responses", true),
            case_involvement: SourceSpec::named("case_involvement", true),
        }
    }
}

impl SourcesSection {
    /// The spec of canonical table `table` (one of [`TABLES`]).
    pub fn get(&self, table: &str) -> Option<&SourceSpec> {
        match table {
            "units" => Some(&self.units),
            "intervention" => Some(&self.intervention),
            "employee_responses" => Some(&self.employee_responses),
            "citizen_responses" => Some(&self.citizen_responses),
            "case_involvement" => Some(&self.case_involvement),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CsvSection {
    /// "," ";" "\t" or "auto".
    #[serde(default = "default_separator")]
    pub separator: String,
    /// "auto" (valid UTF-8 is UTF-8, anything else Windows-1252), "utf-8" or "windows-1252".
    #[serde(default = "default_auto")]
    pub encoding: String,
    /// The decimal mark of numbers: "." or ",".
    #[serde(default = "default_decimal")]
    pub decimal: String,
}

fn default_auto() -> String {
    "auto".into()
}
fn default_decimal() -> String {
    ".".into()
}

fn default_separator() -> String {
    "auto".into()
}

impl Default for CsvSection {
    fn default() -> Self {
        CsvSection {
            separator: default_separator(),
            encoding: default_auto(),
            decimal: default_decimal(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MissingCode {
    pub code: f64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InstrumentSection {
    pub scale_min: f64,
    pub scale_max: f64,
    pub missing_codes: Vec<MissingCode>,
    pub reverse_coded: Vec<String>,
    pub communication_items: Vec<String>,
    pub relationship_items: Vec<String>,
    /// The per-partner relevance item; empty when the instrument does not ask it.
    pub relevance_item: String,
    pub srm_items: Vec<String>,
    pub person_items: Vec<String>,
    pub citizen_items: Vec<String>,
    /// item -> (answer code as written, e.g. "1") -> score.
    pub value_maps: BTreeMap<String, BTreeMap<String, f64>>,
    /// The scale the frequency item was fielded with; None: `sufficiency` (see
    /// [`FrequencyScale`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_scale: Option<FrequencyScale>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for InstrumentSection {
    fn default() -> Self {
        let mut frequent = BTreeMap::new();
        for (code, score) in [(1, 1.0), (2, 3.0), (3, 5.0), (4, 4.0), (5, 2.0)] {
            frequent.insert(code.to_string(), score);
        }
        let mut value_maps = BTreeMap::new();
        value_maps.insert("frequent".to_string(), frequent);
        InstrumentSection {
            scale_min: 1.0,
            scale_max: 5.0,
            missing_codes: vec![MissingCode {
                code: 9.0,
                reason: "dont_know".into(),
            }],
            reverse_coded: vec![],
            communication_items: strings(&["frequent", "timely", "accurate", "problem_solving"]),
            relationship_items: strings(&["shared_goals", "shared_knowledge", "mutual_respect"]),
            relevance_item: "relevance".into(),
            srm_items: strings(&["srm_1", "srm_2", "srm_3", "srm_4", "srm_5", "srm_6"]),
            person_items: strings(&["wellbeing", "manager_satisfaction"]),
            citizen_items: strings(&["cq_1", "cq_2", "cq_3", "cq_4", "cq_5"]),
            value_maps,
            frequency_scale: None,
        }
    }
}

/// Which level an item is asked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// Asked per partner group (the RC dimensions and relevance).
    Tie,
    /// Asked once per employee (SRM, wellbeing, ...).
    Person,
    /// Asked of citizens.
    Citizen,
}

impl InstrumentSection {
    /// The seven (or however many are configured) tie dimensions, communication first.
    pub fn dimensions(&self) -> Vec<String> {
        self.communication_items
            .iter()
            .chain(&self.relationship_items)
            .cloned()
            .collect()
    }

    /// Every item of the instrument with its kind, in declaration order.
    pub fn items(&self) -> Vec<(String, ItemKind)> {
        let mut out: Vec<(String, ItemKind)> = self
            .dimensions()
            .into_iter()
            .map(|i| (i, ItemKind::Tie))
            .collect();
        if !self.relevance_item.is_empty() {
            out.push((self.relevance_item.clone(), ItemKind::Tie));
        }
        for i in self.srm_items.iter().chain(&self.person_items) {
            out.push((i.clone(), ItemKind::Person));
        }
        for i in &self.citizen_items {
            out.push((i.clone(), ItemKind::Citizen));
        }
        out
    }

    /// The kind of item `name`, or None if the instrument does not declare it.
    pub fn kind_of(&self, name: &str) -> Option<ItemKind> {
        self.items()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringSection {
    pub tie_min_items: usize,
    /// A tie sub-score (communication, relationship) needs this many of its items; 0 means all.
    pub subscale_min_items: usize,
    /// 0 means ceil(k/2).
    pub srm_min_items: usize,
    /// 0 means ceil(k/2).
    pub citizen_min_items: usize,
    pub blind_spot_high: f64,
    pub blind_spot_low: f64,
    pub hub_relevance: f64,
    pub rwg_null_variance: f64,
    /// A dyad with fewer raters takes the pooled within-dyad variance for its sampling variance
    /// (`score/dyad_errors.parquet`).
    pub dyad_min_raters: usize,
}

impl Default for ScoringSection {
    fn default() -> Self {
        ScoringSection {
            tie_min_items: 5,
            subscale_min_items: 0,
            srm_min_items: 0,
            citizen_min_items: 0,
            blind_spot_high: 4.0,
            blind_spot_low: 3.0,
            hub_relevance: 4.0,
            rwg_null_variance: 2.0,
            dyad_min_raters: 3,
        }
    }
}

/// ceil(k/2) when `configured` is 0, else `configured`.
pub fn min_items(configured: usize, k: usize) -> usize {
    if configured == 0 {
        k.div_ceil(2)
    } else {
        configured
    }
}

impl ScoringSection {
    pub fn srm_min(&self, k: usize) -> usize {
        min_items(self.srm_min_items, k)
    }
    pub fn citizen_min(&self, k: usize) -> usize {
        min_items(self.citizen_min_items, k)
    }
}

/// `[report]`: how the report stage renders (what it shows is fixed by the results).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// p-value thresholds for significance stars in the publication tables, strictly
    /// decreasing, e.g. `[0.05, 0.01, 0.001]` for `*`, `**`, `***`. Empty (the default): no
    /// stars. When stars are shown, the table note says what they mean.
    pub stars: Vec<f64>,
    /// A folder of templates that replace the built-in ones of the same file name
    /// (`study.html.j2`, `municipality.html.j2`, `macros.html.j2`, `style.css`); files not found there keep the
    /// built-in version. None (the default): the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// The language of the study report and of the feedback reports.
    pub language: ReportLanguage,
    /// Print each feedback report to PDF with headless Chromium as well (`relcap run --pdf`);
    /// without Chromium the run says so and writes the HTML only.
    pub pdf: bool,
    /// A date printed on the reports (`2026-05-12`, shown as `12. maj 2026` on a Danish page).
    /// None (the default): no date, so a report is the same bytes whatever day it is made.
    pub date: Option<String>,
}

/// The template file names the report stage knows (the built-in ones and their overrides).
pub const REPORT_TEMPLATES: [&str; 4] = [
    "study.html.j2",
    "municipality.html.j2",
    "macros.html.j2",
    "style.css",
];

impl ReportSection {
    /// What the report's fingerprint covers of this section: the stars and the content hash of
    /// each overriding template found in `templates_dir` (not the folder's path, so a study
    /// moved elsewhere keeps its fingerprint, and an edited template reruns the report).
    fn fingerprint_json(&self) -> serde_json::Value {
        let mut templates = serde_json::Map::new();
        if let Some(dir) = &self.templates_dir {
            for name in REPORT_TEMPLATES {
                let hash = match std::fs::read(dir.join(name)) {
                    Ok(bytes) => blake3::hash(&bytes).to_hex().to_string(),
                    Err(_) => "built-in".to_string(),
                };
                templates.insert(name.to_string(), serde_json::Value::String(hash));
            }
            // Catalogues of the report languages (lang/<language>.toml) found there.
            let mut langs: Vec<PathBuf> = std::fs::read_dir(dir.join("lang"))
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            langs.retain(|p| p.extension().is_some_and(|x| x == "toml"));
            langs.sort();
            for p in langs {
                let hash = std::fs::read(&p)
                    .map(|b| blake3::hash(&b).to_hex().to_string())
                    .unwrap_or_default();
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                templates.insert(format!("lang/{name}"), serde_json::Value::String(hash));
            }
        }
        let mut v = serde_json::json!({ "stars": self.stars, "templates": templates });
        // Settings at their defaults are left out, so a config that does not use them keeps
        // its config hash and fingerprints.
        if self.language != ReportLanguage::default() {
            v["language"] = serde_json::to_value(&self.language).unwrap_or_default();
        }
        if self.pdf {
            v["pdf"] = serde_json::Value::Bool(true);
        }
        if let Some(d) = &self.date {
            v["date"] = serde_json::Value::String(d.clone());
        }
        v
    }
}

/// Checks a separator, encoding and decimal setting (of `[csv]` or of one source).
fn check_csv_options(
    prefix: &str,
    separator: Option<&String>,
    encoding: Option<&String>,
    decimal: Option<&String>,
) -> Result<(), ConfigError> {
    if let Some(sep) = separator {
        if !matches!(sep.as_str(), "auto" | "," | ";" | "\t" | "|") {
            return Err(invalid(
                &format!("{prefix}.separator"),
                format!("is {sep:?}; use \",\", \";\", \"\\t\", \"|\" or \"auto\""),
            ));
        }
    }
    if let Some(enc) = encoding {
        if !matches!(enc.as_str(), "auto" | "utf-8" | "windows-1252") {
            return Err(invalid(
                &format!("{prefix}.encoding"),
                format!("is {enc:?}; use \"auto\", \"utf-8\" or \"windows-1252\""),
            ));
        }
    }
    if let Some(d) = decimal {
        if !matches!(d.as_str(), "." | ",") {
            return Err(invalid(
                &format!("{prefix}.decimal"),
                format!("is {d:?}; use \".\" or \",\""),
            ));
        }
    }
    Ok(())
}

fn validate_source(t: &str, spec: &SourceSpec) -> Result<(), ConfigError> {
    let key = |k: &str| format!("sources.{t}.{k}");
    for f in spec.files() {
        if f.as_os_str().is_empty() {
            return Err(invalid(&key("file"), "must not be empty"));
        }
    }
    sources::validate_export(t, spec)?;
    check_csv_options(
        &format!("sources.{t}"),
        spec.separator.as_ref(),
        spec.encoding.as_ref(),
        spec.decimal.as_ref(),
    )?;
    let canonical = crate::schema::table(t).map_or_else(Vec::new, |t| t.names());
    for c in spec.columns.keys() {
        if !canonical.contains(&c.as_str()) {
            return Err(invalid(
                &key("columns"),
                format!(
                    "{c:?} is not a column of table {t} ({})",
                    canonical.join(", ")
                ),
            ));
        }
    }
    let melted: &[&str] = if spec.wide.is_some() {
        &crate::schema::MELTED
    } else {
        &[]
    };
    for c in spec.constants.keys() {
        if !canonical.contains(&c.as_str()) || melted.contains(&c.as_str()) {
            return Err(invalid(
                &key("constants"),
                format!("{c:?} is not a column of table {t} that a constant can fill"),
            ));
        }
    }
    if let Some(w) = spec.constants.get("wave") {
        if w.trim().parse::<i64>().is_err() {
            return Err(invalid(
                &key("constants"),
                format!("wave {w:?} is not an integer"),
            ));
        }
    }
    let Some(wide) = &spec.wide else {
        return Ok(());
    };
    if !matches!(t, "employee_responses" | "citizen_responses") {
        return Err(invalid(
            &key("wide"),
            "only employee_responses and citizen_responses can be wide",
        ));
    }
    if wide.patterns.is_empty() && wide.columns.is_empty() {
        return Err(invalid(
            &key("wide"),
            "needs `patterns` (with `items`) or an explicit `columns` table",
        ));
    }
    for p in &wide.patterns {
        let n_item = p.matches("{item}").count();
        let n_target = p.matches("{target}").count();
        let adjacent = p.contains("{item}{target}") || p.contains("{target}{item}");
        if n_item != 1 || n_target > 1 || adjacent {
            return Err(invalid(
                &key("wide.patterns"),
                format!(
                    "{p:?} must contain {{item}} once, {{target}} at most once, and text \
                     between them"
                ),
            ));
        }
        if n_target == 1 && t == "citizen_responses" {
            return Err(invalid(
                &key("wide.patterns"),
                "citizen items have no partner group: leave {target} out",
            ));
        }
    }
    if !wide.patterns.is_empty() && wide.items.is_empty() && wide.item_names.is_empty() {
        return Err(invalid(
            &key("wide.items"),
            "patterns need the list of items they may match",
        ));
    }
    if wide.respondent_from_line && t != "employee_responses" {
        return Err(invalid(
            &key("wide.respondent_from_line"),
            "only for employee_responses",
        ));
    }
    Ok(())
}

/// The config files a command looks for, in order, when no `--config` is given: a study folder
/// made by `relcap init`, then the repository's demo study.
pub const CONFIG_SEARCH: [&str; 2] = ["study.toml", "config/study.toml"];

impl Config {
    /// The study's settings and the file they came from: `explicit` when given (an error when it
    /// cannot be read); else the first of [`CONFIG_SEARCH`] found in the working folder; else
    /// the built-in defaults (`Config::default()`, no file).
    pub fn find(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => CONFIG_SEARCH
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        };
        match path {
            Some(p) => Ok((Config::load(&p)?, Some(p))),
            None => Ok((Config::default(), None)),
        }
    }

    /// This config with `study.name` set when it is empty: the name of the data folder, or of
    /// the folder holding it when the data folder is called `data` (a study folder made by
    /// `relcap init`); "study" when neither has a name.
    pub fn named_after_data(&self, data_dir: &Path) -> Config {
        let mut cfg = self.clone();
        if cfg.study.name.is_empty() {
            let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            let name_of = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| !n.trim().is_empty())
            };
            let name = match name_of(&dir) {
                Some(n) if n == "data" => dir.parent().and_then(name_of).unwrap_or(n),
                Some(n) => n,
                None => "study".to_string(),
            };
            cfg.study.name = name;
        }
        cfg
    }

    /// Reads and validates a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.study.data_dir = resolve(base, &cfg.study.data_dir);
        cfg.study.out_dir = resolve(base, &cfg.study.out_dir);
        cfg.study.reports_dir = cfg.study.reports_dir.map(|r| resolve(base, &r));
        if let Some(dir) = &cfg.report.templates_dir {
            let dir = resolve(base, dir);
            if !dir.is_dir() {
                return Err(invalid(
                    "report.templates_dir",
                    format!("{} is not a folder", dir.display()),
                ));
            }
            cfg.report.templates_dir = Some(dir);
        }
        Ok(cfg)
    }

    /// Parses and validates config text (paths left as written).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            // A value of the wrong kind (an unknown `method`, text for a number) names its key.
            match e.span().and_then(|span| key_at(text, span.start)) {
                Some(key) => invalid(&key, e.message()),
                None => ConfigError::Parse {
                    path: PathBuf::new(),
                    message: e.to_string(),
                },
            }
        })?;
        cfg.instrument.resolve_frequency_scale()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks everything serde cannot: cross-references, ranges, duplicates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.study.name;
        if (!name.is_empty() && name.trim().is_empty()) || name.contains(['/', '\\', '\0']) {
            return Err(invalid(
                "study.name",
                "must be a name without path separators (or left out: the data folder's name)",
            ));
        }
        let stars = &self.report.stars;
        if stars.iter().any(|p| !(*p > 0.0 && *p < 1.0)) || stars.windows(2).any(|w| w[1] >= w[0]) {
            return Err(invalid(
                "report.stars",
                format!(
                    "is {stars:?}, but must be p-value thresholds in (0, 1), strictly decreasing"
                ),
            ));
        }
        self.report.language.validate()?;
        self.labels.validate()?;
        if let Some(d) = &self.report.date {
            crate::stages::report::fmt::NumberFormat::default()
                .date(d)
                .map_err(|e| invalid("report.date", e))?;
        }
        if self.privacy.min_cell < 3 {
            return Err(invalid(
                "privacy.min_cell",
                format!(
                    "is {}, but no figure may come from fewer than 3 people",
                    self.privacy.min_cell
                ),
            ));
        }
        let width = self.privacy.protection_width;
        if !(width > 0.0 && width <= SCALE_WIDTH) {
            return Err(invalid(
                "privacy.protection_width",
                format!(
                    "is {width}, but must be above 0 and at most {SCALE_WIDTH} (the width of the \
                     1–5 response scale)"
                ),
            ));
        }
        if self.privacy.key_env.trim().is_empty() {
            return Err(invalid(
                "privacy.key_env",
                "must name an environment variable",
            ));
        }
        if let Some(k) = &self.privacy.demo_key {
            if k.is_empty() {
                return Err(invalid(
                    "privacy.demo_key",
                    "must not be empty (leave it out)",
                ));
            }
        }
        check_csv_options(
            "csv",
            Some(&self.csv.separator),
            Some(&self.csv.encoding),
            Some(&self.csv.decimal),
        )?;
        for t in TABLES {
            let Some(spec) = self.sources.get(t) else {
                continue;
            };
            validate_source(t, spec)?;
        }
        self.validate_instrument()?;
        self.validate_scoring()?;
        self.model.validate()
    }

    fn validate_instrument(&self) -> Result<(), ConfigError> {
        let ins = &self.instrument;
        if !(ins.scale_min.is_finite()
            && ins.scale_max.is_finite()
            && ins.scale_min < ins.scale_max)
        {
            return Err(invalid(
                "instrument.scale_min",
                format!(
                    "scale {}..{} is not an increasing finite range",
                    ins.scale_min, ins.scale_max
                ),
            ));
        }
        let lists: [(&str, &Vec<String>); 5] = [
            ("instrument.communication_items", &ins.communication_items),
            ("instrument.relationship_items", &ins.relationship_items),
            ("instrument.srm_items", &ins.srm_items),
            ("instrument.person_items", &ins.person_items),
            ("instrument.citizen_items", &ins.citizen_items),
        ];
        let mut seen = BTreeSet::new();
        for (key, list) in lists {
            for item in list {
                check_name(key, item)?;
                if !seen.insert(item.clone()) {
                    return Err(invalid(key, format!("item {item:?} is declared twice")));
                }
            }
        }
        if !ins.relevance_item.is_empty() {
            check_name("instrument.relevance_item", &ins.relevance_item)?;
            if !seen.insert(ins.relevance_item.clone()) {
                return Err(invalid(
                    "instrument.relevance_item",
                    format!("item {:?} is declared twice", ins.relevance_item),
                ));
            }
        }
        if ins.dimensions().is_empty() {
            return Err(invalid(
                "instrument.communication_items",
                "the instrument needs at least one tie dimension",
            ));
        }
        for item in &ins.reverse_coded {
            if !seen.contains(item) {
                return Err(invalid(
                    "instrument.reverse_coded",
                    format!("names item {item:?}, which the instrument does not declare"),
                ));
            }
        }
        for (item, map) in &ins.value_maps {
            let key = format!("instrument.value_maps.{item}");
            if !seen.contains(item) {
                return Err(invalid(
                    &key,
                    format!("names item {item:?}, which the instrument does not declare"),
                ));
            }
            for (code, score) in map {
                if code.trim().parse::<f64>().is_err() {
                    return Err(invalid(
                        &key,
                        format!("answer code {code:?} is not a number"),
                    ));
                }
                if !(*score >= ins.scale_min && *score <= ins.scale_max) {
                    return Err(invalid(
                        &key,
                        format!(
                            "maps {code} to {score}, outside the scale {}..{}",
                            ins.scale_min, ins.scale_max
                        ),
                    ));
                }
            }
        }
        let mut reasons = BTreeSet::new();
        for mc in &ins.missing_codes {
            if !mc.code.is_finite() {
                return Err(invalid(
                    "instrument.missing_codes",
                    "codes must be finite numbers",
                ));
            }
            if mc.code >= ins.scale_min && mc.code <= ins.scale_max && mc.code.fract() == 0.0 {
                return Err(invalid(
                    "instrument.missing_codes",
                    format!("code {} is a valid answer on the scale", mc.code),
                ));
            }
            check_name("instrument.missing_codes.reason", &mc.reason)?;
            if !reasons.insert(mc.code.to_bits()) {
                return Err(invalid(
                    "instrument.missing_codes",
                    format!("code {} is listed twice", mc.code),
                ));
            }
        }
        Ok(())
    }

    fn validate_scoring(&self) -> Result<(), ConfigError> {
        let s = &self.scoring;
        let k = self.instrument.dimensions().len();
        if s.tie_min_items == 0 || s.tie_min_items > k {
            return Err(invalid(
                "scoring.tie_min_items",
                format!(
                    "is {}, but must be between 1 and the {k} dimensions",
                    s.tie_min_items
                ),
            ));
        }
        let smallest_subscale = [
            self.instrument.communication_items.len(),
            self.instrument.relationship_items.len(),
        ]
        .into_iter()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0);
        if s.subscale_min_items > smallest_subscale {
            return Err(invalid(
                "scoring.subscale_min_items",
                format!(
                    "is {}, more than the {smallest_subscale} items of the smaller sub-scale \
                     (0 means all items of each sub-scale)",
                    s.subscale_min_items
                ),
            ));
        }
        if s.srm_min_items > self.instrument.srm_items.len() {
            return Err(invalid(
                "scoring.srm_min_items",
                format!(
                    "is {}, more than the {} SRM items",
                    s.srm_min_items,
                    self.instrument.srm_items.len()
                ),
            ));
        }
        if s.citizen_min_items > self.instrument.citizen_items.len() {
            return Err(invalid(
                "scoring.citizen_min_items",
                format!(
                    "is {}, more than the {} citizen items",
                    s.citizen_min_items,
                    self.instrument.citizen_items.len()
                ),
            ));
        }
        // partial_cmp so that NaN is rejected too.
        if s.blind_spot_low.partial_cmp(&s.blind_spot_high) != Some(std::cmp::Ordering::Less) {
            return Err(invalid(
                "scoring.blind_spot_low",
                "must be below scoring.blind_spot_high",
            ));
        }
        if s.rwg_null_variance.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(invalid("scoring.rwg_null_variance", "must be positive"));
        }
        Ok(())
    }

    /// The part of the config a stage reads, as canonical JSON: what its fingerprint covers.
    pub fn section_for_stage(&self, stage: &str) -> serde_json::Value {
        let v = |x: &dyn erased::Ser| x.to_json();
        match stage {
            // The instrument: a survey export's labels are checked against its scale and its
            // missing labels become its missing codes; min_cell: the codebook's counts.
            "ingest" => serde_json::json!({
                "sources": v(&self.sources),
                "csv": v(&self.csv),
                "privacy.key_env": self.privacy.key_env,
                "privacy.min_cell": self.privacy.min_cell,
                "instrument": v(&self.instrument),
            }),
            "clean" => serde_json::json!({ "instrument": v(&self.instrument) }),
            "score" => serde_json::json!({
                "instrument": v(&self.instrument),
                "scoring": v(&self.scoring),
            }),
            "link" => serde_json::json!({ "scoring": v(&self.scoring) }),
            "model" => serde_json::json!({ "model": v(&self.model) }),
            "report" => serde_json::json!({
                "study.name": self.study.name,
                "privacy.min_cell": self.privacy.min_cell,
                "privacy.protection_width": self.privacy.protection_width,
                "scoring.hub_relevance": self.scoring.hub_relevance,
                "model.alpha": self.model.alpha,
                "model.h1": v(&self.model.h1),
                "report": self.report.fingerprint_json(),
                "labels": v(&self.labels),
                // The feedback report names the relational-coordination items.
                "instrument.communication_items": self.instrument.communication_items,
                "instrument.relationship_items": self.instrument.relationship_items,
            }),
            _ => serde_json::Value::Null,
        }
    }
}

mod erased {
    /// Object-safe "serialize to JSON" so `section_for_stage` can take any section.
    pub trait Ser {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// The dotted key whose value starts at byte `offset` of TOML `text`: the last table header above
/// it and the key on its line (`[model.h2]` + `method = "x"` is `model.h2.method`). None when the
/// offset is not in a `key = value` line (e.g. a key that is not known, or a multi-line array).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.contains(['"', '\'', '[', '{', ',']) {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(invalid(
            key,
            format!("{name:?} is not a valid name (letters, digits, _ - . only)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n";

    #[test]
    fn defaults_are_the_study_settings() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.instrument.dimensions().len(), 7);
        assert_eq!(c.scoring.tie_min_items, 5);
        assert_eq!(c.scoring.srm_min(6), 3);
        assert_eq!(c.scoring.citizen_min(5), 3);
        assert_eq!(c.privacy.min_cell, 5);
        assert_eq!(c.instrument.value_maps["frequent"]["3"], 5.0);
    }

    #[test]
    fn shipped_config_loads_and_equals_defaults_where_it_should() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/study.toml");
        let mut c = Config::load(&path).unwrap();
        assert!(c.study.data_dir.ends_with("data/demo"));
        // Every setting of the demo config is the built-in default, apart from the study's
        // name and folders, the public demo key and the display names of its groups and
        // municipalities.
        assert_eq!(
            c.privacy.demo_key.take().as_deref(),
            Some("relcap-demo-study-public-key")
        );
        assert_eq!(c.labels.work_groups["job_consultants"], "Jobkonsulenter");
        assert_eq!(c.labels.municipality("Rødovre"), "Rødovre Kommune");
        c.labels = LabelsSection::default();
        c.study = StudySection::default();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn no_config_file_means_the_defaults_and_a_name_from_the_data_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("kommune-2027").join("data");
        std::fs::create_dir_all(&data).unwrap();
        let c = Config::default();
        assert_eq!(c.named_after_data(&data).study.name, "kommune-2027");
        assert_eq!(
            c.named_after_data(&tmp.path().join("kommune-2027"))
                .study
                .name,
            "kommune-2027"
        );
        let (found, path) = Config::find(None).unwrap();
        // Tests run in the repository, whose demo config is found.
        assert_eq!(path, Some(PathBuf::from("config/study.toml")));
        assert_eq!(found.study.name, "demo");
        let e = Config::find(Some(&tmp.path().join("missing.toml"))).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        // A config file may leave [study] out.
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn source_settings_are_checked_and_named() {
        let bad = |extra: &str, key: &str| {
            let e = Config::from_toml(&format!("{MINIMAL}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{extra}: {e}");
        };
        bad("[csv]\nencoding = \"latin1\"\n", "csv.encoding");
        bad("[csv]\ndecimal = \";\"\n", "csv.decimal");
        bad(
            "[sources.units]\nfile = \"u\"\nwide = { patterns = [\"{item}\"], items = [\"x\"] }\n",
            "sources.units.wide",
        );
        let wide = "[sources.employee_responses]\nfile = \"e\"\n";
        bad(
            &format!("{wide}wide = {{ patterns = [\"{{item}}{{target}}\"], items = [\"x\"] }}\n"),
            "sources.employee_responses.wide.patterns",
        );
        bad(
            &format!("{wide}wide = {{ patterns = [\"{{item}}\"] }}\n"),
            "sources.employee_responses.wide.items",
        );
        bad(
            &format!("{wide}constants = {{ wave = \"one\" }}\n"),
            "sources.employee_responses.constants",
        );
        bad(
            &format!(
                "{wide}constants = {{ item = \"x\" }}\n\
                 wide = {{ columns = {{ a = {{ item = \"x\" }} }} }}\n"
            ),
            "sources.employee_responses.constants",
        );
        bad(
            &format!("{wide}columns = {{ wav = \"w\" }}\n"),
            "sources.employee_responses.columns",
        );
        let ok = Config::from_toml(&format!(
            "{MINIMAL}{wide}more_files = [\"e2\"]\nencoding = \"windows-1252\"\n\
             wide = {{ patterns = [\"{{item}}__{{target}}\"], items = [\"timely\"] }}\n"
        ))
        .unwrap();
        assert_eq!(ok.sources.employee_responses.files().len(), 2);
    }

    #[test]
    fn example_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let c = Config::load(&dir.join("rc-survey-germany.toml")).unwrap();
        assert_eq!(c.scoring.tie_min_items, 7);
        assert!(c.instrument.value_maps.is_empty());
        assert_eq!(
            c.sources
                .employee_responses
                .wide
                .as_ref()
                .map(|w| w.columns.len()),
            Some(7)
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml(&format!("{MINIMAL}[scoring]\ntie_min_itemz = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tie_min_itemz"), "{e}");
    }

    #[test]
    fn threshold_below_three_is_refused() {
        let e = Config::from_toml(&format!("{MINIMAL}[privacy]\nmin_cell = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("privacy.min_cell"), "{e}");
    }

    #[test]
    fn reverse_coding_an_unknown_item_is_named() {
        let text = MINIMAL.to_string()
            + "[instrument]\nscale_min = 1\nscale_max = 5\nmissing_codes = []\nreverse_coded = [\"nope\"]\n\
               communication_items = [\"a\"]\nrelationship_items = [\"b\"]\nrelevance_item = \"\"\n\
               srm_items = []\nperson_items = []\ncitizen_items = []\nvalue_maps = {}\n";
        let e = Config::from_toml(&text).unwrap_err().to_string();
        assert!(
            e.contains("instrument.reverse_coded") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn value_map_for_unknown_item_is_named() {
        let text = format!("{MINIMAL}[instrument.value_maps.ghost]\n1 = 2\n");
        let e = Config::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("instrument.value_maps.ghost"), "{e}");
    }

    #[test]
    fn an_unknown_setting_value_is_named_with_its_key() {
        for (extra, key, value) in [
            ("[model]\ncorrection = \"sidak\"\n", "model.correction", "holm"),
            (
                "[model.h2]\nprimary_term = \"srm_unit\"\ndirection = \"up\"\n",
                "model.h2.direction",
                "positive",
            ),
            (
                "[model.h2]\nprimary_term = \"srm_unit\"\ndirection = \"positive\"\nmethod = \"mle\"\n",
                "model.h2.method",
                "reml",
            ),
            (
                "[model.h1]\nprimary_term = \"case_rcap\"\ndirection = \"positive\"\nvcov = \"hc4\"\n",
                "model.h1.vcov",
                "hc3",
            ),
            (
                "[model.h3]\nprimary_term = \"post\"\ndirection = \"positive\"\ndesign = \"pooled\"\n",
                "model.h3.design",
                "cross_section",
            ),
            ("[model.meta]\nmethods = [\"reml\", \"pm\"]\n", "model.meta.methods", "dl"),
            (
                "[sources.employee_responses]\nfile = \"e\"\n\
                 wide = { patterns = [\"{item}\"], items = [\"x\"], empty_cells = \"drop\" }\n",
                "sources.employee_responses.wide",
                "keep",
            ),
        ] {
            let e = Config::from_toml(&format!("{MINIMAL}{extra}")).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{text}");
            assert!(text.contains(key) && text.contains(value), "{extra}: {text}");
        }
    }

    #[test]
    fn tie_min_items_above_dimensions_is_refused() {
        let e = Config::from_toml(&format!("{MINIMAL}[scoring]\ntie_min_items = 8\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("scoring.tie_min_items"), "{e}");
    }
}
