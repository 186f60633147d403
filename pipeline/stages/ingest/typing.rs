//! Cell-by-cell typing of text columns: the rules of the canonical form, one function per type,
//! and a column typer that turns a text column into a typed polars column plus the cells it
//! could not type.
//!
//! The rules: surrounding whitespace is removed from every cell (Unicode whitespace, as
//! `str::trim`). An empty cell is missing: null where the column allows it, else
//! `missing_required`. Integers accept `2` and `2.0` (any finite number with no fractional part
//! that fits in i64), not `2.5` or text (`not_an_integer`). Numbers are Rust's decimal syntax
//! (`3`, `3.0`, `-1.5`, `1e3`); `3,5`, text, NaN and infinities are `not_a_number`. Booleans
//! are true/false/yes/no/1/0 in any letter case (`not_a_boolean` otherwise). The arm is
//! `intervention` or `control` in any letter case, written lowercase (`invalid_value`
//! otherwise). A negative headcount is `invalid_value`. Person ids are replaced by their
//! pseudonym as they are typed.
//!
//! The column typer is a tight loop over `Option<&str>` that allocates only for pseudonyms it
//! has not seen before and for the (rare) cells it rejects.

use polars::prelude::*;

use crate::pseudonym::Pseudonymizer;

pub use crate::schema::{CellType, ColumnSpec, Reason};

/// An integer: `2`, `+2`, `2.0`, `2e0`; not `2.5`, not text. Input is already trimmed.
pub fn parse_int(s: &str) -> Result<i64, Reason> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        // 2^63 is exactly representable; every integral f64 below it in magnitude fits i64.
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9_223_372_036_854_775_808.0 => {
            Ok(v as i64)
        }
        _ => Err(Reason::NotAnInteger),
    }
}

/// A finite number in Rust's decimal syntax. Input is already trimmed.
pub fn parse_float(s: &str) -> Result<f64, Reason> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Reason::NotANumber),
    }
}

/// true/false/yes/no/1/0 in any letter case. Input is already trimmed.
pub fn parse_bool(s: &str) -> Result<bool, Reason> {
    for (word, v) in [
        ("true", true),
        ("false", false),
        ("yes", true),
        ("no", false),
        ("1", true),
        ("0", false),
    ] {
        if s.eq_ignore_ascii_case(word) {
            return Ok(v);
        }
    }
    Err(Reason::NotABoolean)
}

/// `intervention` or `control` in any letter case, as the lowercase word.
pub fn parse_arm(s: &str) -> Result<&'static str, Reason> {
    if s.eq_ignore_ascii_case("intervention") {
        Ok("intervention")
    } else if s.eq_ignore_ascii_case("control") {
        Ok("control")
    } else {
        Err(Reason::InvalidValue)
    }
}

/// A cell that could not be typed: its row (0-based in the column), why, and the value to show
/// in the quarantine (as written, or the pseudonym for person ids; None for an empty cell).
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    pub row: usize,
    pub reason: Reason,
    pub value: Option<String>,
}

impl CellError {
    pub fn new(row: usize, reason: Reason, value: Option<&str>) -> Self {
        CellError {
            row,
            reason,
            value: value.map(str::to_string),
        }
    }
}

/// Pseudonyms already computed, so each distinct raw id is hashed once.
pub struct PseudonymCache<'a> {
    pseudonymizer: &'a Pseudonymizer,
    seen: PlHashMap<String, Box<str>>,
}

impl<'a> PseudonymCache<'a> {
    pub fn new(pseudonymizer: &'a Pseudonymizer) -> Self {
        PseudonymCache {
            pseudonymizer,
            seen: PlHashMap::new(),
        }
    }

    pub fn get(&mut self, raw: &str) -> &str {
        // One hash lookup, whether the id was seen or not.
        let pseudonymizer = self.pseudonymizer;
        self.seen
            .entry_ref(raw)
            .or_insert_with(|| pseudonymizer.pseudonym(raw).into_boxed_str())
    }
}

/// A number written with a decimal comma (`3,5`) in Rust's syntax (`3.5`); a cell that also has
/// a `.` (a thousands mark, or a decimal point where a comma is declared) or several commas is
/// returned unchanged so that it fails typing.
pub fn comma_to_point(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('.') && s.matches(',').count() == 1 {
        std::borrow::Cow::Owned(s.replacen(',', ".", 1))
    } else if s.contains('.') {
        std::borrow::Cow::Borrowed("not a number")
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn numeric(t: &str, decimal_comma: bool) -> std::borrow::Cow<'_, str> {
    if decimal_comma {
        comma_to_point(t)
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

/// Types one text column by `spec`. Returns the typed column (null where a cell failed) and
/// the failed cells in row order. With `decimal_comma`, numbers are read with `,` as the
/// decimal mark and a `.` makes a cell `not_a_number` / `not_an_integer`.
pub fn type_column(
    raw: &StringChunked,
    spec: &ColumnSpec,
    ids: &mut PseudonymCache,
    decimal_comma: bool,
) -> (Column, Vec<CellError>) {
    let name = PlSmallStr::from_str(spec.name);
    let mut errors = Vec::new();
    let column = match spec.ty {
        CellType::Text | CellType::PersonId | CellType::Arm => {
            type_text(raw, spec, ids, &mut errors).into_column()
        }
        CellType::Int | CellType::Count => {
            let v = parse_cells(raw, spec.nullable, &mut errors, |t| {
                match parse_int(&numeric(t, decimal_comma)) {
                    Ok(x) if spec.ty == CellType::Count && x < 0 => Err(Reason::InvalidValue),
                    other => other,
                }
            });
            Int64Chunked::from_iter_options(name, v.into_iter()).into_column()
        }
        CellType::Float => {
            let v = parse_cells(raw, spec.nullable, &mut errors, |t| {
                parse_float(&numeric(t, decimal_comma))
            });
            Float64Chunked::from_iter_options(name, v.into_iter()).into_column()
        }
        CellType::Bool => {
            let v = parse_cells(raw, spec.nullable, &mut errors, parse_bool);
            BooleanChunked::from_iter_options(name, v.into_iter()).into_column()
        }
    };
    (column, errors)
}

/// Whether a column read from a Parquet file with its own type can be typed by `spec` without
/// going through text ([`type_native`]), with the same result, cell for cell, as typing the
/// text Parquet's type gives it: an `Int64` column as an integer or count, or as a number when
/// every value is an integer an f64 holds exactly (so the number reads back as the text, and
/// `value_text` stays null); a `Boolean` column as a boolean; and a text column as text when no
/// cell is empty or has surrounding whitespace (typing would change nothing). Person ids and
/// arms always go through text.
pub fn native_ok(c: &Column, spec: &ColumnSpec) -> bool {
    const EXACT: i64 = 1 << 53;
    match (c.dtype(), spec.ty) {
        (DataType::Int64, CellType::Int | CellType::Count) => true,
        (DataType::Int64, CellType::Float) => c
            .i64()
            .is_ok_and(|ca| ca.iter().flatten().all(|v| (-EXACT..=EXACT).contains(&v))),
        (DataType::Boolean, CellType::Bool) => true,
        (DataType::String, CellType::Text) => c.str().is_ok_and(|ca| {
            ca.iter()
                .flatten()
                .all(|t| !t.is_empty() && t.trim().len() == t.len())
        }),
        _ => false,
    }
}

/// Types a column that [`native_ok`] accepts, as [`type_column`] types its text: an empty cell
/// is `missing_required` unless `spec` is nullable, a negative count `invalid_value` (with the
/// number as written).
pub fn type_native(c: &Column, spec: &ColumnSpec) -> PolarsResult<(Column, Vec<CellError>)> {
    let name = PlSmallStr::from_str(spec.name);
    let mut errors = Vec::new();
    if !spec.nullable && c.null_count() > 0 {
        for (row, valid) in c.is_not_null().iter().enumerate() {
            if valid != Some(true) {
                errors.push(CellError::new(row, Reason::MissingRequired, None));
            }
        }
    }
    let column = match (c.dtype(), spec.ty) {
        (DataType::Int64, CellType::Count) => {
            let ca = c.i64()?;
            if ca.iter().flatten().any(|v| v < 0) {
                let v: Int64Chunked = ca
                    .iter()
                    .enumerate()
                    .map(|(row, v)| match v {
                        Some(x) if x < 0 => {
                            let text = x.to_string();
                            errors.push(CellError::new(row, Reason::InvalidValue, Some(&text)));
                            None
                        }
                        other => other,
                    })
                    .collect();
                errors.sort_by_key(|e| e.row);
                v.into_column()
            } else {
                c.clone()
            }
        }
        (DataType::Int64, CellType::Float) => c.cast(&DataType::Float64)?,
        _ => c.clone(),
    };
    Ok((column.with_name(name), errors))
}

/// The `value_text` column of a typed `value` column: per row the cell as written (trimmed)
/// where it is not the shortest decimal form of the number it was read as (`{}` of the f64),
/// null where it is, or where the cell is empty or could not be typed. One null scalar when
/// every cell reads back as written (the usual case, which costs no memory per row).
pub fn value_text(text: Option<&StringChunked>, typed: &Float64Chunked) -> Column {
    let name = PlSmallStr::from_static("value_text");
    let mut buf = String::new();
    let Some(text) = text.filter(|text| {
        text.iter()
            .zip(typed.iter())
            .any(|(c, v)| as_written(c, v, &mut buf).is_some())
    }) else {
        return Column::full_null(name, typed.len(), &DataType::String);
    };
    let texts: StringChunked = text
        .iter()
        .zip(typed.iter())
        .map(|(c, v)| as_written(c, v, &mut buf))
        .collect();
    texts.with_name(name).into_column()
}

/// The cell trimmed, when it is not how its number `v` is shown (`{}` of the f64, written
/// into `buf`); None for an empty or untyped cell.
fn as_written<'a>(cell: Option<&'a str>, v: Option<f64>, buf: &mut String) -> Option<&'a str> {
    use std::fmt::Write;
    let (t, v) = (trimmed(cell)?, v?);
    buf.clear();
    let _ = write!(buf, "{v}");
    (buf.as_str() != t).then_some(t)
}

/// A cell trimmed, or None when it is empty.
fn trimmed(c: Option<&str>) -> Option<&str> {
    c.map(str::trim).filter(|t| !t.is_empty())
}

/// The cells of `raw` parsed by `parse` (a trimmed, non-empty cell). An empty cell is None, and
/// `missing_required` unless `nullable`; a cell `parse` refuses is None and its reason, with the
/// cell as written.
fn parse_cells<T>(
    raw: &StringChunked,
    nullable: bool,
    errors: &mut Vec<CellError>,
    mut parse: impl FnMut(&str) -> Result<T, Reason>,
) -> Vec<Option<T>> {
    let mut v = Vec::with_capacity(raw.len());
    for (row, c) in raw.iter().enumerate() {
        v.push(match trimmed(c) {
            None => {
                if !nullable {
                    errors.push(CellError::new(row, Reason::MissingRequired, None));
                }
                None
            }
            Some(t) => match parse(t) {
                Ok(x) => Some(x),
                Err(reason) => {
                    errors.push(CellError::new(row, reason, c));
                    None
                }
            },
        });
    }
    v
}

/// A text, person id or arm column: trimmed, pseudonymised, or the arm's lowercase word.
fn type_text(
    raw: &StringChunked,
    spec: &ColumnSpec,
    ids: &mut PseudonymCache,
    errors: &mut Vec<CellError>,
) -> StringChunked {
    let mut b = StringChunkedBuilder::new(PlSmallStr::from_str(spec.name), raw.len());
    // Long tables repeat an id over consecutive rows: reuse the last pseudonym.
    let mut last: Option<(&str, String)> = None;
    for (row, c) in raw.iter().enumerate() {
        let Some(t) = trimmed(c) else {
            if !spec.nullable {
                errors.push(CellError::new(row, Reason::MissingRequired, None));
            }
            b.append_null();
            continue;
        };
        match spec.ty {
            CellType::PersonId => match &last {
                Some((raw, p)) if *raw == t => b.append_value(p.as_str()),
                _ => {
                    let p = ids.get(t).to_string();
                    b.append_value(p.as_str());
                    last = Some((t, p));
                }
            },
            CellType::Arm => match parse_arm(t) {
                Ok(a) => b.append_value(a),
                Err(r) => {
                    errors.push(CellError::new(row, r, c));
                    b.append_null();
                }
            },
            _ => b.append_value(t),
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::KeySource;
    use crate::schema::{self, nullable, req};

    #[test]
    fn integers() {
        assert_eq!(parse_int("2"), Ok(2));
        assert_eq!(parse_int("2.0"), Ok(2));
        assert_eq!(parse_int("-3"), Ok(-3));
        assert_eq!(parse_int("+4"), Ok(4));
        assert_eq!(parse_int("1e3"), Ok(1000));
        assert_eq!(parse_int("2.5"), Err(Reason::NotAnInteger));
        assert_eq!(parse_int("two"), Err(Reason::NotAnInteger));
        assert_eq!(parse_int("2,0"), Err(Reason::NotAnInteger));
        assert_eq!(parse_int("NaN"), Err(Reason::NotAnInteger));
        assert_eq!(parse_int("inf"), Err(Reason::NotAnInteger));
        assert_eq!(parse_int("1e30"), Err(Reason::NotAnInteger));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_float("3"), Ok(3.0));
        assert_eq!(parse_float("3.0"), Ok(3.0));
        assert_eq!(parse_float("-1.5"), Ok(-1.5));
        assert_eq!(parse_float("3,5"), Err(Reason::NotANumber));
        assert_eq!(parse_float("dont know"), Err(Reason::NotANumber));
        assert_eq!(parse_float("NaN"), Err(Reason::NotANumber));
        assert_eq!(parse_float("nan"), Err(Reason::NotANumber));
        assert_eq!(parse_float("inf"), Err(Reason::NotANumber));
        assert_eq!(parse_float("-Infinity"), Err(Reason::NotANumber));
    }

    #[test]
    fn decimal_comma_numbers() {
        let f = |s: &str| parse_float(&comma_to_point(s));
        assert_eq!(f("3,5"), Ok(3.5));
        assert_eq!(f("3"), Ok(3.0));
        assert_eq!(f("-0,25"), Ok(-0.25));
        assert_eq!(f("3.5"), Err(Reason::NotANumber));
        assert_eq!(f("1.000,5"), Err(Reason::NotANumber));
        assert_eq!(f("3,5,1"), Err(Reason::NotANumber));
        assert_eq!(parse_int(&comma_to_point("2,0")), Ok(2));
        assert_eq!(parse_int(&comma_to_point("2.0")), Err(Reason::NotAnInteger));
    }

    #[test]
    fn booleans_and_arms() {
        for t in ["true", "TRUE", "True", "yes", "YES", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "FALSE", "no", "No", "0"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["2", "y", "ja", "1.0", "t"] {
            assert_eq!(parse_bool(bad), Err(Reason::NotABoolean), "{bad}");
        }
        assert_eq!(parse_arm("Intervention"), Ok("intervention"));
        assert_eq!(parse_arm("control"), Ok("control"));
        assert_eq!(parse_arm("treatment"), Err(Reason::InvalidValue));
    }

    fn text(v: &[Option<&str>]) -> StringChunked {
        StringChunked::from_iter_options(PlSmallStr::from_str("x"), v.iter().copied())
    }

    fn run(v: &[Option<&str>], spec: ColumnSpec) -> (Column, Vec<CellError>) {
        let p = Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let mut ids = PseudonymCache::new(&p);
        type_column(&text(v), &spec, &mut ids, false)
    }

    fn err(row: usize, reason: Reason, value: Option<&str>) -> CellError {
        CellError::new(row, reason, value)
    }

    #[test]
    fn required_text_is_trimmed_and_empty_is_missing_required() {
        let (c, e) = run(
            &[Some(" Randers "), Some(""), Some("  "), None],
            req("municipality", CellType::Text),
        );
        let got: Vec<_> = c.str().unwrap().iter().collect();
        assert_eq!(got, vec![Some("Randers"), None, None, None]);
        assert_eq!(
            e,
            vec![
                err(1, Reason::MissingRequired, None),
                err(2, Reason::MissingRequired, None),
                err(3, Reason::MissingRequired, None)
            ]
        );
    }

    #[test]
    fn nullable_text_keeps_empty_as_null() {
        let (c, e) = run(
            &[Some(""), Some("caseworkers")],
            nullable("target_group", CellType::Text),
        );
        assert!(e.is_empty());
        assert_eq!(c.null_count(), 1);
    }

    #[test]
    fn person_ids_are_pseudonymised() {
        let p = Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let (c, e) = run(
            &[Some("R1"), Some(" R1 "), Some("")],
            req("respondent_id", CellType::PersonId),
        );
        let got: Vec<_> = c.str().unwrap().iter().collect();
        let r1 = p.pseudonym("R1");
        assert_eq!(got, vec![Some(r1.as_str()), Some(r1.as_str()), None]);
        assert_eq!(e, vec![err(2, Reason::MissingRequired, None)]);
    }

    #[test]
    fn integer_column() {
        let (c, e) = run(
            &[Some("1"), Some("2.0"), Some("2.5"), Some("x"), Some("")],
            req("wave", CellType::Int),
        );
        let got: Vec<_> = c.i64().unwrap().iter().collect();
        assert_eq!(got, vec![Some(1), Some(2), None, None, None]);
        assert_eq!(
            e,
            vec![
                err(2, Reason::NotAnInteger, Some("2.5")),
                err(3, Reason::NotAnInteger, Some("x")),
                err(4, Reason::MissingRequired, None)
            ]
        );
    }

    #[test]
    fn headcount_is_optional_and_not_negative() {
        let spec = schema::UNITS.columns[4];
        let (c, e) = run(&[Some("12"), Some(""), Some("-1")], spec);
        let got: Vec<_> = c.i64().unwrap().iter().collect();
        assert_eq!(got, vec![Some(12), None, None]);
        assert_eq!(e, vec![err(2, Reason::InvalidValue, Some("-1"))]);
    }

    #[test]
    fn value_column() {
        let (c, e) = run(
            &[
                Some("3"),
                Some("3.0"),
                Some(""),
                Some("3,5"),
                Some("NaN"),
                Some("inf"),
                Some("ved ikke"),
            ],
            nullable("value", CellType::Float),
        );
        let got: Vec<_> = c.f64().unwrap().iter().collect();
        assert_eq!(
            got,
            vec![Some(3.0), Some(3.0), None, None, None, None, None]
        );
        let reasons: Vec<_> = e.iter().map(|x| (x.row, x.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (3, Reason::NotANumber),
                (4, Reason::NotANumber),
                (5, Reason::NotANumber),
                (6, Reason::NotANumber)
            ]
        );
        assert_eq!(e[0].value.as_deref(), Some("3,5"));
    }

    #[test]
    fn bool_and_arm_columns() {
        let (c, e) = run(
            &[Some("TRUE"), Some("0"), Some("maybe"), Some("")],
            req("lead", CellType::Bool),
        );
        let got: Vec<_> = c.bool().unwrap().iter().collect();
        assert_eq!(got, vec![Some(true), Some(false), None, None]);
        assert_eq!(
            e,
            vec![
                err(2, Reason::NotABoolean, Some("maybe")),
                err(3, Reason::MissingRequired, None)
            ]
        );
        let (c, e) = run(
            &[Some("Control"), Some("placebo")],
            req("arm", CellType::Arm),
        );
        assert_eq!(c.str().unwrap().get(0), Some("control"));
        assert_eq!(e, vec![err(1, Reason::InvalidValue, Some("placebo"))]);
    }

    #[test]
    fn value_text_keeps_the_cells_a_number_does_not_show_as_written() {
        let cells = [
            Some("0"),
            Some(" 4.0 "),
            Some("1e3"),
            Some("-99"),
            None,
            Some("2.5"),
        ];
        let text = StringChunked::from_iter_options("value".into(), cells.into_iter());
        let spec = nullable("value", CellType::Float);
        let p = crate::pseudonym::Pseudonymizer::new(b"k", KeySource::Environment).unwrap();
        let mut ids = PseudonymCache::new(&p);
        let (typed, _) = type_column(&text, &spec, &mut ids, false);
        let kept = value_text(Some(&text), typed.f64().unwrap());
        let kept: Vec<_> = kept.str().unwrap().iter().collect();
        assert_eq!(kept, [None, Some("4.0"), Some("1e3"), None, None, None]);
        let comma = StringChunked::from_iter_options("value".into(), [Some("3,5")].into_iter());
        let (typed, _) = type_column(&comma, &spec, &mut ids, true);
        let kept = value_text(Some(&comma), typed.f64().unwrap());
        assert_eq!(kept.str().unwrap().get(0), Some("3,5"));
        // Nothing to keep: one null scalar, no text per row.
        let plain = StringChunked::from_iter_options("value".into(), [Some("1"), None].into_iter());
        let (typed, _) = type_column(&plain, &spec, &mut ids, false);
        let kept = value_text(Some(&plain), typed.f64().unwrap());
        assert!(kept.as_scalar_column().is_some());
        assert_eq!(kept.null_count(), 2);
    }
}
