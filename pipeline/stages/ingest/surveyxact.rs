//! SurveyXact exports (`format = "surveyxact"`): one survey (one wave) as three tables.
//!
//! - **dataset**: one row per respondent, one column per variable (background variables too).
//! - **structure**: one row per variable, header `questionName, variableName, questionType,
//!   subType, questionText, choiceValue, choiceText` (an empty trailing column is allowed).
//! - **labels**: one row per code of a closed variable, `variableName, value, valueLabel`, no
//!   header row.
//!
//! An export is a folder holding `dataset.csv`, `structure.csv` and `labels.csv` (separated by
//! `;` or `,` in Windows-1252 or UTF-8, or by tabs in UTF-16 with a byte-order mark; separator
//! and encoding detected per file as for any CSV, or as the source's settings say), or a workbook
//! with the sheets `Dataset` (a wide survey continues in `Dataset (2)`, `Dataset (3)`, ... with
//! further columns of the same rows), `Structure` and `Labels` (sheet names compared ignoring
//! case). Lines are the dataset file's lines, or the Dataset sheet's rows.
//!
//! Checks, each naming the file: every dataset column must be a structure variable and every
//! structure variable a dataset column (an error). Labels decide missing answers and codes
//! ([`label_cells`]): a code whose label is a missing label becomes the instrument's missing
//! code for that reason, or, when the instrument has none, no answer (excluded under the reason);
//! a code a closed variable's labels do not name is quarantined (`unlabelled_code`); the labels
//! of a mapped item that contradict the instrument's scale are an error naming the variable. A
//! respondent with two records in one export is quarantined on each (`duplicate_respondent`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::{ChunkFilter, PlSmallStr, StringChunked, StringChunkedBuilder};

use super::csv::{self, Decoded, Rejected, TextTable};
use super::source::{self, ReadOptions};
use crate::config::{label_key, InstrumentSection, MissingLabel};
use crate::schema::Reason;

/// The three tables' names in a folder export.
pub const FILES: [&str; 3] = ["dataset.csv", "structure.csv", "labels.csv"];

/// One variable of the structure table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variable {
    pub question_type: String,
    pub sub_type: String,
    pub question_text: String,
}

impl Variable {
    /// A closed question: its answers are codes with labels.
    pub fn closed(&self) -> bool {
        self.question_type.eq_ignore_ascii_case("closed")
    }
}

/// A read export: the dataset as text, the structure and the labels.
pub struct Export {
    /// The dataset's records, every column, in header order.
    pub dataset: TextTable,
    /// variableName -> its structure row.
    pub structure: BTreeMap<String, Variable>,
    /// variableName -> (code as written, label), in file order.
    pub labels: BTreeMap<String, Vec<(String, String)>>,
    /// variableName -> its user-missing values (SPSS files; none in a SurveyXact export).
    pub user_missing: BTreeMap<String, Vec<UserMissing>>,
    /// Encoding of the files (None: a workbook).
    pub encoding: Option<&'static str>,
    /// Labels of variables the dataset does not have.
    pub warnings: Vec<String>,
}

/// A value a variable declares missing (SPSS's user-missing values).
#[derive(Debug, Clone, PartialEq)]
pub enum UserMissing {
    /// A code, written as the data are (`9`, `-1`, or a string value).
    Code(String),
    /// Every number from the first to the second, both included.
    Range(f64, f64),
}

impl UserMissing {
    /// Whether a cell (trimmed text) is this missing value.
    pub fn matches(&self, cell: &str) -> bool {
        match self {
            UserMissing::Code(c) => c == cell,
            UserMissing::Range(lo, hi) => cell.parse::<f64>().is_ok_and(|v| v >= *lo && v <= *hi),
        }
    }
}

/// The reason of a user-missing value whose label is not one of the missing labels.
pub const USER_MISSING: &str = "user_missing";

/// The export named `stem` in `dir`: the folder `stem`, else the workbook `stem` (or
/// `stem.xlsx`).
pub fn find(dir: &Path, stem: &Path) -> Option<PathBuf> {
    let base = if stem.is_absolute() {
        stem.to_path_buf()
    } else {
        dir.join(stem)
    };
    if base.is_dir() {
        return Some(base);
    }
    if base.is_file() {
        return Some(base);
    }
    let x = base.with_extension("xlsx");
    x.is_file().then_some(x)
}

/// The name of an export in the `source` column: `<folder>/dataset.csv`, or the workbook's.
pub fn source_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_dir() {
        format!("{name}/{}", FILES[0])
    } else {
        name
    }
}

/// Reads an export (folder or workbook) and checks its structure against its dataset.
pub fn open(path: &Path, opts: &ReadOptions) -> Result<Export> {
    let (dataset, structure_rows, label_rows, encoding) = if path.is_dir() {
        let part = |f: &str| path.join(f);
        for f in FILES {
            if !part(f).is_file() {
                bail!(
                    "{}: a SurveyXact export folder needs {} (missing: {f})",
                    path.display(),
                    FILES.join(", ")
                );
            }
        }
        let (dataset, e1) = read_csv(&part(FILES[0]), opts, false)?;
        let (structure, e2) = read_csv(&part(FILES[1]), opts, false)?;
        let (labels, e3) = read_csv(&part(FILES[2]), opts, true)?;
        // The export's encoding: a file of plain ASCII reads as UTF-8 whatever it was
        // written in, so the one that is not UTF-8, if any.
        let enc = [e1, e2, e3]
            .into_iter()
            .find(|e| *e != "utf-8")
            .unwrap_or(e1);
        (dataset, structure, labels, Some(enc))
    } else {
        let (d, s, l) = read_workbook(path)?;
        (d, s, l, None)
    };
    let name = path.display().to_string();
    let structure = structure_table(&name, &structure_rows)?;
    check_columns(&name, &dataset.header, &structure)?;
    let (labels, warnings) = labels_table(&name, &label_rows, &dataset.header)?;
    Ok(Export {
        dataset,
        structure,
        labels,
        user_missing: BTreeMap::new(),
        encoding,
        warnings,
    })
}

/// A CSV part of a folder export, every column as text. `no_header`: the file has no header
/// row (labels), so one is supplied and lines still count from the file's first line.
fn read_csv(path: &Path, opts: &ReadOptions, no_header: bool) -> Result<(TextTable, &'static str)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut d = decode(&bytes, &opts.encoding);
    if d.bad_lines.first() == Some(&1) {
        bail!(
            "{}, line 1: bytes that are not valid {} (config key csv.encoding)",
            path.display(),
            d.encoding
        );
    }
    let sep = csv::separator(&opts.separator, &d.text);
    if no_header {
        let s = sep as char;
        d.text = format!("variableName{s}value{s}valueLabel\n{}", d.text);
        d.bad_lines.iter_mut().for_each(|l| *l += 1);
    }
    let header = csv::read_header(&d.text, sep)
        .with_context(|| format!("{}: cannot read the header", path.display()))?;
    let all: Vec<usize> = (0..header.len()).collect();
    let mut t = csv::parse(
        &d.text,
        sep,
        &all,
        &path.display().to_string(),
        &d.bad_lines,
    )?;
    if no_header {
        t.lines.iter_mut().for_each(|l| *l -= 1);
        t.rejected.iter_mut().for_each(|r| r.line -= 1);
    }
    Ok((t, d.encoding))
}

/// Decodes a file: UTF-16 when it starts with a UTF-16 byte-order mark, else as any CSV.
pub fn decode(bytes: &[u8], encoding: &str) -> Decoded {
    let utf16 = match bytes {
        [0xFF, 0xFE, ..] => Some(encoding_rs::UTF_16LE),
        [0xFE, 0xFF, ..] => Some(encoding_rs::UTF_16BE),
        _ => None,
    };
    match utf16 {
        Some(enc) => {
            let (text, _, bad) = enc.decode(bytes);
            let text = text.into_owned();
            let bad_lines = if bad {
                // Lines holding a replacement character.
                let mut v = Vec::new();
                for (i, l) in text.split('\n').enumerate() {
                    if l.contains(char::REPLACEMENT_CHARACTER) {
                        v.push(i as i64 + 1);
                    }
                }
                v
            } else {
                vec![]
            };
            let name = if enc == encoding_rs::UTF_16LE {
                "utf-16le"
            } else {
                "utf-16be"
            };
            Decoded {
                text,
                encoding: name,
                bad_lines,
            }
        }
        None => csv::decode(bytes, encoding),
    }
}

/// The dataset (sheets joined side by side), structure and labels sheets of a workbook.
fn read_workbook(path: &Path) -> Result<(TextTable, TextTable, TextTable)> {
    let names = source::sheet_names(path)?;
    let find = |want: &str| names.iter().find(|n| n.trim().eq_ignore_ascii_case(want));
    let mut data_sheets: Vec<(u32, &String)> = names
        .iter()
        .filter_map(|n| {
            let l = n.trim().to_ascii_lowercase();
            if l == "dataset" {
                return Some((1, n));
            }
            let k = l.strip_prefix("dataset (")?.strip_suffix(')')?;
            k.trim().parse::<u32>().ok().map(|k| (k, n))
        })
        .collect();
    data_sheets.sort();
    let (Some(structure), Some(labels), false) =
        (find("structure"), find("labels"), data_sheets.is_empty())
    else {
        bail!(
            "{}: a SurveyXact workbook needs the sheets Dataset, Structure and Labels; it has: {}",
            path.display(),
            names.join(", ")
        );
    };
    let mut dataset: Option<TextTable> = None;
    for (_, sheet) in data_sheets {
        let t = sheet_table(path, sheet, false)?;
        dataset = Some(match dataset {
            None => t,
            Some(d) => join_sheets(path, sheet, d, t)?,
        });
    }
    let dataset = dataset.context("no dataset sheet")?;
    Ok((
        dataset,
        sheet_table(path, structure, false)?,
        sheet_table(path, labels, true)?,
    ))
}

/// A worksheet as a text table (the first non-blank row the header, unless `no_header`).
fn sheet_table(path: &Path, sheet: &str, no_header: bool) -> Result<TextTable> {
    let rows = source::xlsx_rows(path, Some(sheet))?;
    let mut it = rows
        .into_iter()
        .filter(|(_, r)| r.iter().any(|c| !c.trim().is_empty()));
    let header: Vec<String> = if no_header {
        vec!["variableName".into(), "value".into(), "valueLabel".into()]
    } else {
        it.next()
            .map(|(_, r)| r.into_iter().map(|c| c.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let mut cols: Vec<StringChunkedBuilder> = header
        .iter()
        .map(|h| StringChunkedBuilder::new(PlSmallStr::from_str(h), 0))
        .collect();
    let mut lines = Vec::new();
    for (line, row) in it {
        for (j, b) in cols.iter_mut().enumerate() {
            b.append_value(row.get(j).map(String::as_str).unwrap_or(""));
        }
        lines.push(line);
    }
    Ok(TextTable {
        header,
        columns: cols.into_iter().map(|b| b.finish()).collect(),
        lines,
        rejected: vec![],
        blank_lines: 0,
    })
}

/// Dataset sheet `sheet` (`t`) added beside the sheets before it (`d`): same rows, further
/// columns; a column both have must hold the same cells.
fn join_sheets(path: &Path, sheet: &str, mut d: TextTable, t: TextTable) -> Result<TextTable> {
    if t.lines.len() != d.lines.len() {
        bail!(
            "{}: sheet {sheet:?} has {} rows, the first Dataset sheet {}: a split dataset \
             continues the same respondents' rows",
            path.display(),
            t.lines.len(),
            d.lines.len()
        );
    }
    for (h, c) in t.header.into_iter().zip(t.columns) {
        if let Some(i) = d.header.iter().position(|x| *x == h) {
            if !d.columns[i].iter().eq(c.iter()) {
                bail!(
                    "{}: column `{h}` is on sheet {sheet:?} and an earlier Dataset sheet with \
                     different cells",
                    path.display()
                );
            }
            continue;
        }
        d.header.push(h);
        d.columns.push(c);
    }
    Ok(d)
}

/// The text of row `r` of column `name`, trimmed ("" when absent).
fn cell<'a>(t: &'a TextTable, name: &str, r: usize) -> &'a str {
    t.header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))
        .and_then(|i| t.columns[i].get(r))
        .unwrap_or("")
        .trim()
}

fn structure_table(file: &str, t: &TextTable) -> Result<BTreeMap<String, Variable>> {
    let has = |c: &str| t.header.iter().any(|h| h.eq_ignore_ascii_case(c));
    for c in ["variableName", "questionType", "questionText"] {
        if !has(c) {
            bail!(
                "{file}: the structure table has no column `{c}` (its header: {})",
                t.header.join(", ")
            );
        }
    }
    if let Some(r) = t.rejected.first() {
        bail!("{file}: structure, line {}: {}", r.line, r.detail);
    }
    let mut out = BTreeMap::new();
    for r in 0..t.lines.len() {
        let name = cell(t, "variableName", r);
        if name.is_empty() {
            continue;
        }
        let v = Variable {
            question_type: cell(t, "questionType", r).to_string(),
            sub_type: cell(t, "subType", r).to_string(),
            question_text: cell(t, "questionText", r).to_string(),
        };
        if out.insert(name.to_string(), v).is_some() {
            bail!(
                "{file}: structure, line {}: variable `{name}` is listed twice",
                t.lines[r]
            );
        }
    }
    Ok(out)
}

/// Every dataset column is a structure variable and every structure variable a column.
fn check_columns(
    file: &str,
    header: &[String],
    structure: &BTreeMap<String, Variable>,
) -> Result<()> {
    let not_in_structure: Vec<&str> = header
        .iter()
        .filter(|h| !structure.contains_key(*h))
        .map(String::as_str)
        .collect();
    let not_in_dataset: Vec<&str> = structure
        .keys()
        .filter(|k| !header.contains(k))
        .map(String::as_str)
        .collect();
    if not_in_structure.is_empty() && not_in_dataset.is_empty() {
        return Ok(());
    }
    let mut parts = vec![];
    if !not_in_structure.is_empty() {
        parts.push(format!(
            "dataset columns not in the structure: {}",
            not_in_structure.join(", ")
        ));
    }
    if !not_in_dataset.is_empty() {
        parts.push(format!(
            "structure variables not in the dataset: {}",
            not_in_dataset.join(", ")
        ));
    }
    bail!(
        "{file}: the structure does not match the dataset's columns ({})",
        parts.join("; ")
    )
}

#[allow(clippy::type_complexity)]
fn labels_table(
    file: &str,
    t: &TextTable,
    header: &[String],
) -> Result<(BTreeMap<String, Vec<(String, String)>>, Vec<String>)> {
    if let Some(r) = t.rejected.first() {
        bail!("{file}: labels, line {}: {}", r.line, r.detail);
    }
    if t.header.len() < 3 {
        bail!("{file}: the labels table needs 3 columns (variableName, value, valueLabel)");
    }
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in 0..t.lines.len() {
        let get = |j: usize| t.columns[j].get(r).unwrap_or("").trim().to_string();
        let (var, code, label) = (get(0), get(1), get(2));
        if var.is_empty() {
            continue;
        }
        let codes = out.entry(var.clone()).or_default();
        if codes.iter().any(|(c, _)| *c == code) {
            bail!(
                "{file}: labels, line {}: code {code} of `{var}` is labelled twice",
                t.lines[r]
            );
        }
        codes.push((code, label));
    }
    let unknown: Vec<&str> = out
        .keys()
        .filter(|k| !header.contains(k))
        .map(String::as_str)
        .collect();
    let warnings = if unknown.is_empty() {
        vec![]
    } else {
        vec![format!(
            "{file}: labels of variables the dataset does not have: {}",
            unknown.join(", ")
        )]
    };
    Ok((out, warnings))
}

/// What the labels made of cells (record index, column index in the table given).
#[derive(Debug, Default)]
pub struct CellNotes {
    /// A missing label with no missing code in the instrument: no answer, for this reason.
    pub excluded: HashMap<(usize, usize), String>,
    /// A code the variable's labels do not name: the code as written.
    pub unlabelled: HashMap<(usize, usize), String>,
}

impl CellNotes {
    pub fn is_empty(&self) -> bool {
        self.excluded.is_empty() && self.unlabelled.is_empty()
    }
}

/// What the label check needs to know.
pub struct LabelRules<'a> {
    pub instrument: &'a InstrumentSection,
    pub missing: &'a [MissingLabel],
}

/// A number as the instrument's codes are written (`9`, `-1`, `2.5`).
pub fn code_text(v: f64) -> String {
    format!("{v}")
}

/// Applies the labels to the value columns `value_columns` (indices into `columns`, with their
/// variable and item): missing labels to the instrument's missing code for their reason (or
/// notes), then the variable's user-missing values (a code whose label is no missing label:
/// reason [`USER_MISSING`]), and unlabelled codes of closed variables to notes. Err: labels
/// that contradict the instrument's scale (a user-missing code's label is not checked).
pub fn label_cells(
    ex: &Export,
    file: &str,
    columns: &mut [StringChunked],
    value_columns: &[(usize, String, String)],
    rules: &LabelRules,
) -> Result<CellNotes> {
    let mut notes = CellNotes::default();
    let ins = rules.instrument;
    // A reason's replacement: the instrument's missing code for it, or Err(the reason).
    let resolve = |reason: &str| -> Result<String, String> {
        ins.missing_codes
            .iter()
            .find(|c| c.reason == reason)
            .map(|c| code_text(c.code))
            .ok_or_else(|| reason.to_string())
    };
    let user_missing = resolve(USER_MISSING);
    for (j, var, item) in value_columns {
        let closed = ex.structure.get(var).is_some_and(Variable::closed);
        let labels = ex.labels.get(var);
        let declared: &[UserMissing] = ex.user_missing.get(var).map_or(&[], Vec::as_slice);
        if !closed && labels.is_none() && declared.is_empty() {
            continue;
        }
        let check_codes = closed || labels.is_some();
        let labels: &[(String, String)] = labels.map(Vec::as_slice).unwrap_or(&[]);
        // code -> Some(replacement) | None (excluded: reason) for missing labels.
        let mut missing: HashMap<&str, Result<String, String>> = HashMap::new();
        for (code, label) in labels {
            let key = label_key(label);
            if let Some(m) = rules.missing.iter().find(|m| label_key(&m.label) == key) {
                missing.insert(code.as_str(), resolve(&m.reason));
                continue;
            }
            if declared.iter().any(|m| m.matches(code)) {
                continue;
            }
            check_scale(file, var, item, code, label, ins)?;
        }
        let col = &columns[*j];
        let mut b = StringChunkedBuilder::new(col.name().clone(), col.len());
        for (r, c) in col.iter().enumerate() {
            let t = c.unwrap_or("").trim();
            if t.is_empty() {
                b.append_value(t);
                continue;
            }
            let to = match missing.get(t) {
                Some(to) => Some(to),
                None if declared.iter().any(|m| m.matches(t)) => Some(&user_missing),
                None => None,
            };
            match to {
                Some(Ok(code)) => b.append_value(code.as_str()),
                Some(Err(reason)) => {
                    notes.excluded.insert((r, *j), reason.clone());
                    b.append_value(t);
                }
                None => {
                    if check_codes && !labels.iter().any(|(code, _)| code == t) {
                        notes.unlabelled.insert((r, *j), t.to_string());
                    }
                    b.append_value(t);
                }
            }
        }
        columns[*j] = b.finish();
    }
    Ok(notes)
}

/// An answer label (not a missing one) of item `item` must be a code the instrument scores: on
/// the scale, or in the item's value map, and not one of its missing codes.
fn check_scale(
    file: &str,
    var: &str,
    item: &str,
    code: &str,
    label: &str,
    ins: &InstrumentSection,
) -> Result<()> {
    let v = code.trim().parse::<f64>().ok();
    let map = ins.value_maps.get(item);
    let ok = match (v, map) {
        (None, _) => false,
        (Some(v), _) if ins.missing_codes.iter().any(|m| m.code == v) => false,
        (Some(v), Some(m)) => m.keys().any(|k| k.trim().parse::<f64>().ok() == Some(v)),
        (Some(v), None) => v >= ins.scale_min && v <= ins.scale_max,
    };
    if ok {
        return Ok(());
    }
    let expected = match map {
        Some(m) => format!(
            "the codes of instrument.value_maps.{item} ({})",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => format!(
            "the instrument's scale {}..{} (instrument.scale_min, scale_max)",
            ins.scale_min, ins.scale_max
        ),
    };
    bail!(
        "{file}: the labels of variable `{var}` (item {item}) contradict the instrument: code \
         {code} is labelled {label:?}, outside {expected}; a missing answer's label must be one \
         of the source's missing_labels"
    )
}

/// Rejects every record of a respondent that has more than one record in the export (same
/// `id` and `wave` cells, both indices into `t.columns`): each is quarantined as
/// `duplicate_respondent`, naming the other lines. Returns the table without them.
pub fn reject_duplicates(mut t: TextTable, id: usize, wave: Option<usize>) -> Result<TextTable> {
    let mut seen: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for r in 0..t.lines.len() {
        let id_text = t.columns[id].get(r).unwrap_or("").trim().to_string();
        if id_text.is_empty() {
            continue;
        }
        let w = wave
            .and_then(|w| t.columns[w].get(r))
            .unwrap_or("")
            .trim()
            .to_string();
        seen.entry((id_text, w)).or_default().push(r);
    }
    let mut drop = vec![false; t.lines.len()];
    for rows in seen.values().filter(|v| v.len() > 1) {
        for &r in rows {
            drop[r] = true;
            let others: Vec<String> = rows
                .iter()
                .filter(|&&o| o != r)
                .map(|&o| t.lines[o].to_string())
                .collect();
            t.rejected.push(Rejected {
                line: t.lines[r],
                reason: Reason::DuplicateRespondent,
                detail: format!("the same respondent is on line {}", others.join(", ")),
            });
        }
    }
    if !drop.iter().any(|d| *d) {
        return Ok(t);
    }
    t.rejected.sort_by_key(|r| r.line);
    let keep: polars::prelude::BooleanChunked = drop.iter().map(|d| !d).collect();
    for c in t.columns.iter_mut() {
        *c = c.filter(&keep)?;
    }
    t.lines = t
        .lines
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(l, _)| *l)
        .collect();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_with_bom_decodes_and_names_its_encoding() {
        let text = "a\tb\nRødovre\t1\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        let d = decode(&bytes, "auto");
        assert_eq!((d.text.as_str(), d.encoding), (text, "utf-16le"));
        assert!(d.bad_lines.is_empty());
        let d = decode("a;b\n".as_bytes(), "auto");
        assert_eq!(d.encoding, "utf-8");
    }

    #[test]
    fn structure_mismatch_names_both_sides() {
        let mut s = BTreeMap::new();
        s.insert("srm_1".to_string(), Variable::default());
        s.insert("srm_9".to_string(), Variable::default());
        let e = check_columns("x", &["srm_1".into(), "unit".into()], &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the structure: unit"), "{e}");
        assert!(e.contains("not in the dataset: srm_9"), "{e}");
    }
}
