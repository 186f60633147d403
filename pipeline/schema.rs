//! The five input tables of a study, in one place: each table's name and its columns in the
//! canonical long form, in output order, with the type a cell is read as, whether a cell may be
//! empty, whether the column may be absent from a file, and whether it is part of the table's
//! key. The config (which `sources.<table>.columns` and `constants` it accepts), the ingest stage
//! (how each cell is typed), the clean stage (which rows are duplicates or conflicts) and the
//! simulator (the tables it writes) all take the tables from here.
//!
//! The reasons a row is quarantined or excluded, in every stage, are [`Reason`].
//!
//! | table | column | type | empty cell | key |
//! | --- | --- | --- | --- | --- |
//! | units | municipality | text | no | |
//! | | unit_id | text | no | key |
//! | | work_group | text | no | |
//! | | manager_id | person id | yes | |
//! | | headcount | count (integer ≥ 0) | yes; the column may be absent | |
//! | intervention | unit_id | text | no | key |
//! | | arm | `intervention` or `control` (any letter case) | no | |
//! | | after_wave | integer | no | |
//! | employee_responses | wave | integer | no | key |
//! | | respondent_id | person id | no | key |
//! | | municipality | text | no | |
//! | | unit_id | text | no | |
//! | | target_group | text | yes (person items) | key |
//! | | item | text | no | key |
//! | | value | number (finite) | yes (no answer) | |
//! | citizen_responses | wave | integer | no | key |
//! | | citizen_id | person id | no | key |
//! | | municipality | text | no | |
//! | | case_id | person id | no | |
//! | | item | text | no | key |
//! | | value | number (finite) | yes | |
//! | case_involvement | wave | integer | no | key |
//! | | case_id | person id | no | key |
//! | | unit_id | text | no | key |
//! | | lead | boolean | no | |
//!
//! A key's columns, in column order, are the key the clean stage sorts by and checks for
//! conflicting duplicates.

mod reason;

pub use reason::Reason;

use polars::prelude::DataType;

/// The type a canonical column is read as; the values it accepts are in the variant's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellType {
    /// Text, kept as written (trimmed).
    Text,
    /// A person id: text replaced by its pseudonym.
    PersonId,
    /// i64.
    Int,
    /// i64 that must not be negative (headcount).
    Count,
    /// f64, finite.
    Float,
    /// true/false.
    Bool,
    /// `intervention` or `control`.
    Arm,
}

impl CellType {
    /// The polars type of the typed column.
    pub fn dtype(self) -> DataType {
        match self {
            CellType::Text | CellType::PersonId | CellType::Arm => DataType::String,
            CellType::Int | CellType::Count => DataType::Int64,
            CellType::Float => DataType::Float64,
            CellType::Bool => DataType::Boolean,
        }
    }
}

/// One canonical column: its name, type, whether an empty cell is allowed, whether the column
/// itself may be absent from the file, and whether it is part of the table's key.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub ty: CellType,
    pub nullable: bool,
    pub optional_column: bool,
    pub key: bool,
}

/// A required column.
pub const fn req(name: &'static str, ty: CellType) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        nullable: false,
        optional_column: false,
        key: false,
    }
}

/// A column whose cells may be empty.
pub const fn nullable(name: &'static str, ty: CellType) -> ColumnSpec {
    ColumnSpec {
        nullable: true,
        ..req(name, ty)
    }
}

impl ColumnSpec {
    /// The same column as part of the table's key.
    const fn key(self) -> ColumnSpec {
        ColumnSpec { key: true, ..self }
    }
}

/// One input table: its name and its columns in output order.
#[derive(Debug, Clone, Copy)]
pub struct TableSchema {
    pub name: &'static str,
    pub columns: &'static [ColumnSpec],
}

impl TableSchema {
    /// The column names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// The key columns, in column order.
    pub fn key(&self) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name)
            .collect()
    }
}

use CellType::*;

pub const UNITS: TableSchema = TableSchema {
    name: "units",
    columns: &[
        req("municipality", Text),
        req("unit_id", Text).key(),
        req("work_group", Text),
        nullable("manager_id", PersonId),
        ColumnSpec {
            optional_column: true,
            ..nullable("headcount", Count)
        },
    ],
};

pub const INTERVENTION: TableSchema = TableSchema {
    name: "intervention",
    columns: &[
        req("unit_id", Text).key(),
        req("arm", Arm),
        req("after_wave", Int),
    ],
};

pub const EMPLOYEE_RESPONSES: TableSchema = TableSchema {
    name: "employee_responses",
    columns: &[
        req("wave", Int).key(),
        req("respondent_id", PersonId).key(),
        req("municipality", Text),
        req("unit_id", Text),
        nullable("target_group", Text).key(),
        req("item", Text).key(),
        nullable("value", Float),
    ],
};

pub const CITIZEN_RESPONSES: TableSchema = TableSchema {
    name: "citizen_responses",
    columns: &[
        req("wave", Int).key(),
        req("citizen_id", PersonId).key(),
        req("municipality", Text),
        req("case_id", PersonId),
        req("item", Text).key(),
        nullable("value", Float),
    ],
};

pub const CASE_INVOLVEMENT: TableSchema = TableSchema {
    name: "case_involvement",
    columns: &[
        req("wave", Int).key(),
        req("case_id", PersonId).key(),
        req("unit_id", Text).key(),
        req("lead", Bool),
    ],
};

/// The five input tables, in the order they are read and listed.
pub const ALL: [TableSchema; 5] = [
    UNITS,
    INTERVENTION,
    EMPLOYEE_RESPONSES,
    CITIZEN_RESPONSES,
    CASE_INVOLVEMENT,
];

/// The names of the five input tables, in [`ALL`]'s order.
pub const TABLES: [&str; 5] = [
    ALL[0].name,
    ALL[1].name,
    ALL[2].name,
    ALL[3].name,
    ALL[4].name,
];

/// The input table named `name`.
pub fn table(name: &str) -> Option<&'static TableSchema> {
    ALL.iter().find(|t| t.name == name)
}

/// The columns of table `name` (none for a name that is not an input table).
pub fn columns(name: &str) -> &'static [ColumnSpec] {
    table(name).map_or(&[], |t| t.columns)
}

/// The columns of a wide export (`sources.<table>.wide`) that come from the melt (the item and
/// partner group from the file column's name, the value from its cell) rather than from a
/// column of the file.
pub const MELTED: [&str; 3] = ["target_group", "item", "value"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_column_order_and_names_unique() {
        assert_eq!(
            EMPLOYEE_RESPONSES.key(),
            ["wave", "respondent_id", "target_group", "item"]
        );
        assert_eq!(CITIZEN_RESPONSES.key(), ["wave", "citizen_id", "item"]);
        assert_eq!(CASE_INVOLVEMENT.key(), ["wave", "case_id", "unit_id"]);
        assert_eq!(UNITS.key(), ["unit_id"]);
        assert_eq!(INTERVENTION.key(), ["unit_id"]);
        for t in ALL {
            let mut names = t.names();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "{}", t.name);
            assert!(!t.key().is_empty(), "{}", t.name);
        }
        assert!(table("quarantine").is_none());
        assert_eq!(columns("units").len(), 5);
    }
}
