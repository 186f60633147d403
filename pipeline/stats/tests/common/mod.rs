//! Helpers shared by the integration tests: read committed fixtures, compare numbers.
#![allow(dead_code)]

use relcap_stats::design::{Column, Data};
use serde_json::Value;
use std::path::PathBuf;

pub mod rng;

/// Path of a fixture under `tests/fixtures/`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(rel)
}

/// Parse a committed JSON fixture.
pub fn load_json(rel: &str) -> Value {
    let path = fixture_path(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// A number from a fixture: JSON numbers, `null` (NaN), and the strings "Inf"/"-Inf".
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::Null => f64::NAN,
        Value::String(s) if s == "Inf" => f64::INFINITY,
        Value::String(s) if s == "-Inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

/// A vector of numbers (a scalar becomes a one-element vector).
pub fn nums(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().map(num).collect(),
        other => vec![num(other)],
    }
}

/// Relative error |a - b| / |b| (absolute when b = 0); 0 when both are equal (incl. infinities).
pub fn rel_err(a: f64, b: f64) -> f64 {
    relcap_stats::prec::rel_err(a, b)
}

/// A `Data` from a JSON object of columns: numbers, strings (a factor) or booleans; null is
/// missing.
pub fn data_from_json(cols: &Value) -> Data {
    let mut d = Data::new();
    for (name, v) in cols.as_object().expect("object") {
        let arr = v.as_array().expect("array");
        let col = if arr.iter().any(|x| x.is_string()) {
            Column::Str(arr.iter().map(|x| x.as_str().map(String::from)).collect())
        } else if arr.iter().any(|x| x.is_boolean()) {
            Column::Bool(arr.iter().map(|x| x.as_bool()).collect())
        } else {
            Column::Num(arr.iter().map(|x| x.as_f64()).collect())
        };
        d.push(name.clone(), col).expect("push");
    }
    d
}
