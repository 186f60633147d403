//! Why a row is set aside: the `reason` of a quarantine row (bad input: ingest and clean) and
//! the reason a row is excluded on purpose (`excluded` in `summary.json`: ingest's wide
//! exports, score; the `exclusion` column of link's tables). [`Reason::as_str`] is the text
//! written to the outputs.

use std::fmt;

/// Every reason a stage quarantines or excludes a row for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    // Quarantine, ingest: a cell that cannot be typed (clean: a tie item without target group).
    /// An empty cell in a column that needs a value.
    MissingRequired,
    NotAnInteger,
    NotANumber,
    NotABoolean,
    /// An arm other than intervention/control, or a negative headcount.
    InvalidValue,
    /// The row's wave differs from the wave the source declares (`constants.wave`).
    WaveMismatch,
    // Quarantine, ingest: a whole record.
    /// More or fewer fields than the header.
    RaggedRow,
    /// Bytes the file's encoding cannot decode.
    Encoding,
    // Quarantine, ingest: survey exports.
    /// A code of a closed variable that its value labels do not name.
    UnlabelledCode,
    /// A respondent with more than one record in one survey export (one wave).
    DuplicateRespondent,
    // Quarantine, clean.
    /// Rows that share a key but differ elsewhere.
    DuplicateConflict,
    /// An item the instrument does not declare, or of the wrong kind for the table.
    UnknownItem,
    /// A person item with a target group.
    UnexpectedTargetGroup,
    /// A unit or target group that no clean unit has.
    UnknownReference,
    /// An employee answer whose municipality differs from its unit's.
    MunicipalityMismatch,
    /// A value outside the instrument's scale or value map.
    OutOfRange,
    // Excluded, ingest (wide exports).
    /// A cell with a `not_asked` code.
    NotAsked,
    /// An empty cell (unless `empty_cells = "keep"`).
    EmptyCell,
    // Excluded, score.
    TieItemWithoutTargetGroup,
    PersonItemWithTargetGroup,
    CitizenItemInEmployeeResponses,
    EmployeeItemInCitizenResponses,
    ItemNotInInstrument,
    // Excluded, link (`h1_cases`).
    NotInCaseInvolvement,
    NoLeadUnit,
    SeveralLeadUnits,
    FewerThanTwoGroups,
    NoDefinedDyad,
    NoCitizenQuality,
    // Excluded, link (`h2_respondents`, `h3_panel`).
    NoRcap,
    NoSrmOthers,
    UnitNotInDesign,
    WaveOutsideWindow,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 33] = [
        Reason::MissingRequired,
        Reason::NotAnInteger,
        Reason::NotANumber,
        Reason::NotABoolean,
        Reason::InvalidValue,
        Reason::WaveMismatch,
        Reason::RaggedRow,
        Reason::Encoding,
        Reason::UnlabelledCode,
        Reason::DuplicateRespondent,
        Reason::DuplicateConflict,
        Reason::UnknownItem,
        Reason::UnexpectedTargetGroup,
        Reason::UnknownReference,
        Reason::MunicipalityMismatch,
        Reason::OutOfRange,
        Reason::NotAsked,
        Reason::EmptyCell,
        Reason::TieItemWithoutTargetGroup,
        Reason::PersonItemWithTargetGroup,
        Reason::CitizenItemInEmployeeResponses,
        Reason::EmployeeItemInCitizenResponses,
        Reason::ItemNotInInstrument,
        Reason::NotInCaseInvolvement,
        Reason::NoLeadUnit,
        Reason::SeveralLeadUnits,
        Reason::FewerThanTwoGroups,
        Reason::NoDefinedDyad,
        Reason::NoCitizenQuality,
        Reason::NoRcap,
        Reason::NoSrmOthers,
        Reason::UnitNotInDesign,
        Reason::WaveOutsideWindow,
    ];

    /// Adds `n` rows under this reason to a count by reason (`TableCount::quarantined` or
    /// `excluded`).
    pub fn add_to(self, counts: &mut std::collections::BTreeMap<String, u64>, n: u64) {
        *counts.entry(self.as_str().to_string()).or_default() += n;
    }

    /// The reason as written in the outputs and `summary.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::MissingRequired => "missing_required",
            Reason::NotAnInteger => "not_an_integer",
            Reason::NotANumber => "not_a_number",
            Reason::NotABoolean => "not_a_boolean",
            Reason::InvalidValue => "invalid_value",
            Reason::WaveMismatch => "wave_mismatch",
            Reason::RaggedRow => "ragged_row",
            Reason::Encoding => "encoding",
            Reason::UnlabelledCode => "unlabelled_code",
            Reason::DuplicateRespondent => "duplicate_respondent",
            Reason::DuplicateConflict => "duplicate_conflict",
            Reason::UnknownItem => "unknown_item",
            Reason::UnexpectedTargetGroup => "unexpected_target_group",
            Reason::UnknownReference => "unknown_reference",
            Reason::MunicipalityMismatch => "municipality_mismatch",
            Reason::OutOfRange => "out_of_range",
            Reason::NotAsked => "not_asked",
            Reason::EmptyCell => "empty_cell",
            Reason::TieItemWithoutTargetGroup => "tie_item_without_target_group",
            Reason::PersonItemWithTargetGroup => "person_item_with_target_group",
            Reason::CitizenItemInEmployeeResponses => "citizen_item_in_employee_responses",
            Reason::EmployeeItemInCitizenResponses => "employee_item_in_citizen_responses",
            Reason::ItemNotInInstrument => "item_not_in_instrument",
            Reason::NotInCaseInvolvement => "not_in_case_involvement",
            Reason::NoLeadUnit => "no_lead_unit",
            Reason::SeveralLeadUnits => "several_lead_units",
            Reason::FewerThanTwoGroups => "fewer_than_two_groups",
            Reason::NoDefinedDyad => "no_defined_dyad",
            Reason::NoCitizenQuality => "no_citizen_quality",
            Reason::NoRcap => "no_rcap",
            Reason::NoSrmOthers => "no_srm_others",
            Reason::UnitNotInDesign => "unit_not_in_design",
            Reason::WaveOutsideWindow => "wave_outside_window",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_distinct_snake_case_of_the_variant() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            let camel: String = s
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert_eq!(format!("{r:?}").to_lowercase(), camel.to_lowercase());
            assert_eq!(r.to_string(), s);
        }
    }
}
