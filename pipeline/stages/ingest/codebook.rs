//! `OUT/ingest/codebook.parquet`: every source variable of the two answer tables, what it is
//! and how it was answered, one row per variable and file, in table, file and column order.
//!
//! A SurveyXact export's variables are its dataset's columns, with the structure's question
//! text and the labels (an SPSS file's: its variables, with their variable and value labels
//! and user-missing values); a long table's variables are its items; a wide table's its mapped
//! columns and id columns. Columns:
//!
//! - `table` str, `source` str (the file, as in the tables' `source` column), `variable` str
//!   (the column in the file; for a long table the item), `question` str (the export's
//!   question text; null otherwise);
//! - `kind` str: `background` (an id, unit, municipality or wave column), `item` (an answer),
//!   `unmapped` (read by nothing: a warning names it too);
//! - `maps_to` str: the canonical column of a background variable, the item of an answer; null
//!   when unmapped. `target_group` str: the partner group of a tie item (null otherwise);
//! - `value_labels` str: `code = label` pairs, `; `-separated (null without labels);
//! - `missing_codes` str: the codes read as missing, `code = label (reason): count` for an
//!   export (its missing labels; an SPSS file's user-missing values too, reason `user_missing`
//!   unless their label is a missing label, a range as `lo..hi`), `code (reason): count` for
//!   the instrument's missing codes in
//!   a table (null when there are none);
//! - `answered` i64: non-empty cells (null when 1 to `privacy.min_cell` − 1: see below);
//! - `distribution` str: `code: count` per answer code as written, `; `-separated, in numeric
//!   order (items only).
//!
//! No figure comes from fewer than `privacy.min_cell` people: a count from 1 to min_cell − 1
//! is written `<min_cell` (and `answered` is null). Background variables get no distribution:
//! an id column's distribution would count each person.

use std::collections::BTreeMap;

use anyhow::Result;
use polars::prelude::*;

/// One source variable.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub table: String,
    pub source: String,
    pub variable: String,
    pub question: Option<String>,
    pub kind: &'static str,
    pub maps_to: Option<String>,
    pub target_group: Option<String>,
    pub labels: Vec<(String, String)>,
    /// (code, label, reason, count) of each missing code.
    pub missing: Vec<(String, Option<String>, String, u64)>,
    pub answered: u64,
    /// Answer code as written -> count (items only).
    pub counts: BTreeMap<String, u64>,
}

/// The codes of `counts`, numbers first in numeric order, then text.
fn code_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// A count as published: `<min_cell` when it comes from 1 to min_cell − 1 cells.
fn shown(n: u64, min_cell: u64) -> String {
    if n > 0 && n < min_cell {
        format!("<{min_cell}")
    } else {
        n.to_string()
    }
}

/// The codebook table of `entries` (see the module doc).
pub fn frame(entries: &[Entry], min_cell: u64) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&Entry) -> Option<String>| -> Vec<Option<String>> {
        entries.iter().map(f).collect()
    };
    let labels = s(&|e| {
        (!e.labels.is_empty()).then(|| {
            e.labels
                .iter()
                .map(|(c, l)| format!("{c} = {l}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    let missing = s(&|e| {
        (!e.missing.is_empty()).then(|| {
            e.missing
                .iter()
                .map(|(c, l, r, n)| match l {
                    Some(l) => format!("{c} = {l} ({r}): {}", shown(*n, min_cell)),
                    None => format!("{c} ({r}): {}", shown(*n, min_cell)),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    let distribution = s(&|e| {
        (e.kind == "item").then(|| {
            let mut codes: Vec<(&String, &u64)> = e.counts.iter().collect();
            codes.sort_by(|a, b| code_order(a.0, b.0));
            codes
                .iter()
                .map(|(c, n)| format!("{c}: {}", shown(**n, min_cell)))
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    let answered: Vec<Option<i64>> = entries
        .iter()
        .map(|e| (e.answered == 0 || e.answered >= min_cell).then_some(e.answered as i64))
        .collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("table".into(), s(&|e| Some(e.table.clone()))),
        Column::new("source".into(), s(&|e| Some(e.source.clone()))),
        Column::new("variable".into(), s(&|e| Some(e.variable.clone()))),
        Column::new("question".into(), s(&|e| e.question.clone())),
        Column::new("kind".into(), s(&|e| Some(e.kind.to_string()))),
        Column::new("maps_to".into(), s(&|e| e.maps_to.clone())),
        Column::new("target_group".into(), s(&|e| e.target_group.clone())),
        Column::new("value_labels".into(), labels),
        Column::new("missing_codes".into(), missing),
        Column::new("answered".into(), answered),
        Column::new("distribution".into(), distribution),
    ])?)
}

/// Counts of the non-empty cells of a text column, by cell text (trimmed).
pub fn cell_counts(col: &StringChunked) -> (u64, BTreeMap<String, u64>) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered = 0;
    for c in col.iter().flatten() {
        let t = c.trim();
        if t.is_empty() {
            continue;
        }
        answered += 1;
        match counts.get_mut(t) {
            Some(n) => *n += 1,
            None => {
                counts.insert(t.to_string(), 1);
            }
        }
    }
    (answered, counts)
}

/// The entries of a table's typed rows (one file, long or wide): one per item, the values as
/// numbers in their shortest form; the instrument's missing codes among them counted apart.
pub fn table_entries(
    table: &str,
    source: &str,
    frames: &[DataFrame],
    missing_codes: &[crate::config::MissingCode],
) -> Result<Vec<Entry>> {
    // Counted by the value's bits: a lookup of the item only when it changes, no text until
    // the end.
    type Slot = (u64, std::collections::HashMap<u64, u64>);
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut slots: Vec<Slot> = vec![];
    for f in frames {
        let item = f.column("item")?.str()?;
        let value = f.column("value")?.f64()?;
        let mut last: Option<(&str, usize)> = None;
        for (it, v) in item.iter().zip(value.iter()) {
            let Some(it) = it else { continue };
            let k = match last {
                Some((p, k)) if p == it => k,
                _ => match index.get(it) {
                    Some(&k) => k,
                    None => {
                        index.insert(it.to_string(), slots.len());
                        slots.push(Slot::default());
                        slots.len() - 1
                    }
                },
            };
            last = Some((it, k));
            if let Some(v) = v {
                slots[k].0 += 1;
                *slots[k].1.entry(v.to_bits()).or_default() += 1;
            }
        }
    }
    let by_item: Vec<(String, Slot)> = index
        .into_iter()
        .map(|(item, k)| (item, std::mem::take(&mut slots[k])))
        .collect();
    Ok(by_item
        .into_iter()
        .map(|(item, (answered, counts))| {
            let counts: BTreeMap<String, u64> = counts
                .into_iter()
                .map(|(bits, n)| (format!("{}", f64::from_bits(bits)), n))
                .collect();
            let missing = missing_codes
                .iter()
                .filter_map(|mc| {
                    let code = format!("{}", mc.code);
                    let n = *counts.get(&code)?;
                    Some((code, None, mc.reason.clone(), n))
                })
                .collect();
            Entry {
                table: table.to_string(),
                source: source.to_string(),
                variable: item.clone(),
                kind: "item",
                maps_to: Some(item),
                missing,
                answered,
                counts,
                ..Entry::default()
            }
        })
        .collect())
}

/// The entries of a SurveyXact export: one per dataset column. `background`: (column, the
/// canonical column it fills); `mapped`: the answer columns.
pub fn export_entries(
    table: &str,
    source: &str,
    ex: &super::surveyxact::Export,
    background: &[(String, &str)],
    mapped: &[super::wide::Mapped],
    missing_labels: &[crate::config::MissingLabel],
) -> Vec<Entry> {
    let d = &ex.dataset;
    let mut out = vec![];
    for (h, col) in d.header.iter().zip(&d.columns) {
        let (answered, mut counts) = cell_counts(col);
        let question = ex
            .structure
            .get(h)
            .map(|v| v.question_text.clone())
            .filter(|q| !q.is_empty());
        let labels = ex.labels.get(h).cloned().unwrap_or_default();
        let mut e = Entry {
            table: table.to_string(),
            source: source.to_string(),
            variable: h.clone(),
            question,
            answered,
            ..Entry::default()
        };
        if let Some((_, c)) = background.iter().find(|(b, _)| b == h) {
            e.kind = "background";
            e.maps_to = Some(c.to_string());
        } else if let Some(m) = mapped.iter().find(|m| m.column == *h) {
            e.kind = "item";
            e.maps_to = Some(m.item.clone());
            e.target_group = m.target.clone();
            for (code, label) in &labels {
                let key = crate::config::label_key(label);
                if let Some(ml) = missing_labels
                    .iter()
                    .find(|ml| crate::config::label_key(&ml.label) == key)
                {
                    let n = counts.get(code).copied().unwrap_or(0);
                    e.missing
                        .push((code.clone(), Some(label.clone()), ml.reason.clone(), n));
                }
            }
            user_missing_entries(ex, h, &labels, &counts, &mut e.missing);
            e.counts = std::mem::take(&mut counts);
        } else {
            e.kind = "unmapped";
        }
        e.labels = labels;
        out.push(e);
    }
    out
}

/// The user-missing values of SPSS variable `var` not already among `missing` (as a missing
/// label's code): a code with its label, or a range `lo..hi`, with reason `user_missing` and
/// the count of cells they hold.
fn user_missing_entries(
    ex: &super::surveyxact::Export,
    var: &str,
    labels: &[(String, String)],
    counts: &BTreeMap<String, u64>,
    missing: &mut Vec<(String, Option<String>, String, u64)>,
) {
    use super::surveyxact::{UserMissing, USER_MISSING};
    for m in ex.user_missing.get(var).into_iter().flatten() {
        let n = counts
            .iter()
            .filter(|(c, _)| m.matches(c) && !missing.iter().any(|x| x.0 == **c))
            .map(|(_, n)| n)
            .sum();
        let (code, label) = match m {
            UserMissing::Code(c) if missing.iter().any(|x| x.0 == *c) => continue,
            UserMissing::Code(c) => {
                let label = labels.iter().find(|(k, _)| k == c).map(|(_, l)| l.clone());
                (c.clone(), label)
            }
            UserMissing::Range(lo, hi) => (format!("{lo}..{hi}"), None),
        };
        missing.push((code, label, USER_MISSING.to_string(), n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed_and_codes_in_numeric_order() {
        let mut e = Entry {
            table: "employee_responses".into(),
            source: "w1/dataset.csv".into(),
            variable: "srm_1".into(),
            kind: "item",
            labels: vec![
                ("1".into(), "Uenig".into()),
                ("9".into(), "Ved ikke".into()),
            ],
            missing: vec![("9".into(), Some("Ved ikke".into()), "dont_know".into(), 2)],
            answered: 4,
            ..Entry::default()
        };
        e.counts.insert("10".into(), 6);
        e.counts.insert("9".into(), 2);
        let f = frame(&[e], 5).unwrap();
        let get = |c: &str| {
            f.column(c)
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .map(str::to_string)
        };
        assert_eq!(get("distribution").as_deref(), Some("9: <5; 10: 6"));
        assert_eq!(
            get("missing_codes").as_deref(),
            Some("9 = Ved ikke (dont_know): <5")
        );
        assert_eq!(
            get("value_labels").as_deref(),
            Some("1 = Uenig; 9 = Ved ikke")
        );
        assert_eq!(f.column("answered").unwrap().i64().unwrap().get(0), None);
    }
}
