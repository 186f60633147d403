//! SPSS data files (`format = "spss"`): one `.sav` (or `.zsav`) per survey and wave, read by
//! the `ambers` crate and turned into the same [`Export`] a SurveyXact export gives, so that
//! the wide mapping, the label rules and the codebook are the ones of [`super::surveyxact`].
//!
//! - **Dataset.** One record per case, one column per variable, in the file's order; the line
//!   of a record is its case number (1-based, the row SPSS's Data View shows). Numeric values
//!   are written as the shortest decimal that reads back as the number (`3`, `2.5`, `1001`);
//!   the system-missing value is an empty cell; string values lose SPSS's trailing padding;
//!   dates and times are written as ISO text.
//! - **Structure.** A variable with value labels is a closed question (its codes are checked
//!   against them); its question text is the variable label.
//! - **Labels.** The value labels, codes written as the data are.
//! - **User-missing values** (discrete codes and ranges) are kept as the export's
//!   [`UserMissing`]; [`super::surveyxact::label_cells`] reads them as missing.
//! - **Encoding.** The file's character-encoding record (or its code page) decodes every
//!   string; it is recorded as the file's encoding. Text it cannot decode means the declared
//!   encoding is wrong for the file: an error naming the variables.
//!
//! A file that cannot be read (not an SPSS file, cut short, a damaged dictionary) is an error
//! naming it; so is a file whose header declares more or fewer cases than its data hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use polars::prelude::{PlSmallStr, StringChunked, StringChunkedBuilder};

use super::csv::TextTable;
use super::surveyxact::{code_text, Export, UserMissing, Variable};

/// The `.sav` named `stem` in `dir`: `stem` itself when it is a file, else `stem.sav`, else
/// `stem.zsav`.
pub fn find(dir: &Path, stem: &Path) -> Option<PathBuf> {
    let base = if stem.is_absolute() {
        stem.to_path_buf()
    } else {
        dir.join(stem)
    };
    if base.is_file() {
        return Some(base);
    }
    ["sav", "zsav"]
        .into_iter()
        .map(|e| base.with_extension(e))
        .find(|p| p.is_file())
}

/// Reads a `.sav` file as an export (see the module doc).
pub fn open(path: &Path) -> Result<Export> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let read = std::io::BufReader::new(file);
    let (batch, meta) = ambers::read_sav_from_reader(read)
        .map_err(|e| anyhow::anyhow!("{name}: not a readable SPSS data file: {e}"))?;
    let rows = batch.num_rows();
    if let Some(n) = meta.number_rows.filter(|n| *n >= 0) {
        if n as usize != rows {
            bail!(
                "{name}: the file declares {n} cases but holds {rows}: it is cut short or \
                 damaged"
            );
        }
    }
    let mut header = Vec::with_capacity(meta.variable_names.len());
    let mut columns = Vec::with_capacity(meta.variable_names.len());
    for (var, array) in meta.variable_names.iter().zip(batch.columns()) {
        header.push(var.clone());
        columns.push(text_column(&name, var, array.as_ref())?);
    }
    let mut structure = BTreeMap::new();
    let mut labels = BTreeMap::new();
    let mut user_missing = BTreeMap::new();
    for var in &meta.variable_names {
        let value_labels: Vec<(String, String)> = meta
            .value_labels(var)
            .map(|m| {
                m.iter()
                    .map(|(v, l)| (value_text(v), l.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let kind = if !value_labels.is_empty() {
            "closed"
        } else if meta.format(var).is_some_and(|f| f.starts_with('A')) {
            "string"
        } else {
            "numeric"
        };
        structure.insert(
            var.clone(),
            Variable {
                question_type: kind.to_string(),
                sub_type: meta.format(var).unwrap_or("").to_string(),
                question_text: meta.label(var).unwrap_or("").trim().to_string(),
            },
        );
        if !value_labels.is_empty() {
            labels.insert(var.clone(), value_labels);
        }
        let specs = meta.variable_missing_values.get(var);
        let missing: Vec<UserMissing> = specs
            .into_iter()
            .flatten()
            .map(|s| match s {
                ambers::MissingSpec::Value(v) => UserMissing::Code(code_text(*v)),
                ambers::MissingSpec::Range { lo, hi } => UserMissing::Range(*lo, *hi),
                ambers::MissingSpec::StringValue(t) => UserMissing::Code(t.trim_end().to_string()),
            })
            .collect();
        if !missing.is_empty() {
            user_missing.insert(var.clone(), missing);
        }
    }
    check_text(
        &name,
        &meta.file_encoding,
        &header,
        &columns,
        &structure,
        &labels,
    )?;
    let warnings = meta
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", source_name(path)))
        .collect();
    Ok(Export {
        dataset: TextTable {
            header,
            columns,
            lines: (1..=rows as i64).collect(),
            rejected: vec![],
            blank_lines: 0,
        },
        structure,
        labels,
        user_missing,
        encoding: Some(encoding_name(&meta.file_encoding)),
        warnings,
    })
}

/// Text the declared encoding could not decode (read as U+FFFD) means the declaration is wrong
/// for the file: an error naming the variables where it is.
fn check_text(
    file: &str,
    encoding: &str,
    header: &[String],
    columns: &[StringChunked],
    structure: &BTreeMap<String, Variable>,
    labels: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<()> {
    let bad = |t: &str| t.contains(char::REPLACEMENT_CHARACTER);
    let mut found: Vec<String> = vec![];
    for (var, col) in header.iter().zip(columns) {
        let in_data = col.iter().flatten().any(bad);
        let in_labels = labels
            .get(var)
            .is_some_and(|l| l.iter().any(|(c, l)| bad(c) || bad(l)));
        let in_label = structure.get(var).is_some_and(|v| bad(&v.question_text));
        if bad(var) || in_data || in_labels || in_label {
            found.push(format!("`{var}`"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    bail!(
        "{file}: text that is not valid {encoding}, the encoding the file declares (its \
         encoding record or code page is wrong), in the name, labels or values of {}",
        found.join(", ")
    )
}

/// The name of a `.sav` in the `source` column: its file name.
pub fn source_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The encoding a file declares, as the other readers name theirs (`utf-8`, `windows-1252`).
fn encoding_name(declared: &str) -> &'static str {
    let enc = encoding_rs::Encoding::for_label(declared.trim().as_bytes())
        .unwrap_or(encoding_rs::WINDOWS_1252);
    if enc == encoding_rs::UTF_8 {
        "utf-8"
    } else if enc == encoding_rs::WINDOWS_1252 {
        "windows-1252"
    } else {
        enc.name()
    }
}

/// A value-label code as the data's cells are written.
fn value_text(v: &ambers::Value) -> String {
    match v {
        ambers::Value::Numeric(x) => code_text(*x),
        ambers::Value::String(s) => s.trim_end().to_string(),
    }
}

/// One variable's values as text: numbers in their shortest form, system-missing (null) as
/// an empty cell, strings without trailing blanks, dates and times as ISO text.
fn text_column(file: &str, var: &str, array: &dyn Array) -> Result<StringChunked> {
    let n = array.len();
    let mut b = StringChunkedBuilder::new(PlSmallStr::from_str(var), n);
    match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            for i in 0..n {
                match a.is_valid(i) {
                    true => b.append_value(code_text(a.value(i))),
                    false => b.append_value(""),
                }
            }
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            for i in 0..n {
                match a.is_valid(i) {
                    true => b.append_value(a.value(i).trim_end()),
                    false => b.append_value(""),
                }
            }
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            for i in 0..n {
                match a.is_valid(i) {
                    true => b.append_value(a.value(i).trim_end()),
                    false => b.append_value(""),
                }
            }
        }
        _ => {
            let opts = FormatOptions::default();
            let f = ArrayFormatter::try_new(array, &opts).map_err(|e| {
                anyhow::anyhow!("{file}: variable `{var}` cannot be read as text: {e}")
            })?;
            for i in 0..n {
                match array.is_valid(i) {
                    true => b.append_value(f.value(i).to_string()),
                    false => b.append_value(""),
                }
            }
        }
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_encodings_are_named_as_the_csv_reader_names_them() {
        assert_eq!(encoding_name("UTF-8"), "utf-8");
        assert_eq!(encoding_name("windows-1252"), "windows-1252");
        assert_eq!(encoding_name("CP1252"), "windows-1252");
        assert_eq!(encoding_name("ISO-8859-2"), "ISO-8859-2");
    }

    #[test]
    fn a_file_that_is_not_spss_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sav");
        std::fs::write(&p, b"respondent;unit\n1;2\n").unwrap();
        let e = open(&p).err().expect("an error").to_string();
        assert!(
            e.contains("x.sav") && e.contains("not a readable SPSS"),
            "{e}"
        );
        assert_eq!(find(dir.path(), Path::new("x")), Some(p));
    }
}
