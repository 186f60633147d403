//! A dirty study: the demo study with bad rows of every kind appended to every input table, run
//! through the binary (`relcap run`, every stage). Every bad row must be quarantined (by ingest
//! or clean) with the right reason, column and source line, the quarantined cell must be the
//! text of the source file (`0`, not `0.0`), and per table and stage rows in = rows out +
//! quarantined + collapsed + excluded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use polars::prelude::*;
use relcap::pseudonym::{KeySource, Pseudonymizer};

/// A test key (never a study's).
const KEY: &str = "refs-test-key-0123456789abcdefgh";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pseudo(raw: &str) -> String {
    Pseudonymizer::new(KEY.as_bytes(), KeySource::Environment)
        .unwrap()
        .pseudonym(raw)
}

/// Appends `rows` to `<data>/<table>.csv`; returns the line of each (the header is line 1).
fn append(data: &Path, table: &str, rows: &[&str]) -> Vec<i64> {
    let path = data.join(format!("{table}.csv"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let first = text.lines().count() as i64 + 1;
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    (first..first + rows.len() as i64).collect()
}

/// (table, line, column, value, reason) of every row of a quarantine table.
type QRow = (String, i64, Option<String>, Option<String>, String);

fn quarantine(out: &Path, stage: &str) -> Vec<QRow> {
    let df = read(out, stage, "quarantine");
    let s = |c: &str| -> Vec<Option<String>> {
        let col = df.column(c).unwrap().str().unwrap().clone();
        col.iter().map(|v| v.map(str::to_string)).collect()
    };
    let (table, column, value, reason) = (s("table"), s("column"), s("value"), s("reason"));
    let line: Vec<Option<i64>> = df.column("line").unwrap().i64().unwrap().iter().collect();
    (0..df.height())
        .map(|i| {
            let (t, r) = (table[i].clone().unwrap(), reason[i].clone().unwrap());
            (t, line[i].unwrap(), column[i].clone(), value[i].clone(), r)
        })
        .collect()
}

fn read(out: &Path, stage: &str, table: &str) -> DataFrame {
    let p = out.join(stage).join(format!("{table}.parquet"));
    ParquetReader::new(std::fs::File::open(&p).unwrap())
        .finish()
        .unwrap()
}

fn summary(out: &Path, stage: &str) -> serde_json::Value {
    let p = out.join(stage).join("summary.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn texts(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    let col = df.column(c).unwrap().str().unwrap().clone();
    col.iter().map(|v| v.map(str::to_string)).collect()
}

/// Sum of a `{reason: n}` object (0 when absent).
fn total(v: &serde_json::Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().map(|n| n.as_u64().unwrap()).sum())
}

/// One expected quarantine row: table, line, column, value (None: not checked), reason.
struct Bad {
    table: &'static str,
    line: i64,
    column: Option<&'static str>,
    value: Option<&'static str>,
    reason: &'static str,
}

fn bad(
    table: &'static str,
    line: i64,
    column: Option<&'static str>,
    value: Option<&'static str>,
    reason: &'static str,
) -> Bad {
    Bad {
        table,
        line,
        column,
        value,
        reason,
    }
}

#[test]
fn dirty_study_every_bad_row_is_quarantined_with_reason_line_and_cell_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for e in std::fs::read_dir(repo().join("data/demo")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    let mut expect = Vec::new();
    // units: an exact copy (collapsed), an empty unit id, a negative headcount.
    let u = append(
        &data,
        "units",
        &[
            "Hedensted,HED-U001,caseworkers,M0010001,18",
            "Hedensted,,caseworkers,M0019999,5",
            "Hedensted,HED-U098,caseworkers,M0019998,-3",
        ],
    );
    expect.push(bad(
        "units",
        u[1],
        Some("unit_id"),
        None,
        "missing_required",
    ));
    expect.push(bad(
        "units",
        u[2],
        Some("headcount"),
        Some("-3"),
        "invalid_value",
    ));
    // intervention: an unknown unit, an arm that is neither.
    let i = append(
        &data,
        "intervention",
        &["XXX-U999,intervention,1", "HED-U003,maybe,1"],
    );
    expect.push(bad(
        "intervention",
        i[0],
        Some("unit_id"),
        Some("XXX-U999"),
        "unknown_reference",
    ));
    expect.push(bad(
        "intervention",
        i[1],
        Some("arm"),
        Some("maybe"),
        "invalid_value",
    ));
    // employee answers.
    let e = append(
        &data,
        "employee_responses",
        &[
            "1,E9990002,Hedensted,XXX-U999,caseworkers,timely,3",
            "1,E9990003,RÃ¸dovre,ROD-U001,caseworkers,timely,3",
            "1,E9990004,Hedensted,HED-U001,astronauts,timely,3",
            "1,E9990005,Hedensted,HED-U001,caseworkers,timely,0",
            "1,E9990006,Hedensted,HED-U001,caseworkers,timely,abc",
            "1,E9990007,Hedensted,HED-U001,caseworkers,no_such_item,3",
            "1,E9990008,Hedensted,HED-U001,caseworkers,timely,2",
            "1,E9990008,Hedensted,HED-U001,caseworkers,timely,4",
            "1,E9990009,Hedensted,HED-U001,caseworkers,frequent,7",
            "1,E9990010,Hedensted,HED-U001,,timely,3",
            "1,E9990011,Hedensted,HED-U001,caseworkers,timely,5.50",
            "x,E9990012,Hedensted,HED-U001,caseworkers,timely,3",
            // Kept: a respondent whose unit changes between waves.
            "1,E9990013,Hedensted,HED-U001,,wellbeing,4",
            "2,E9990013,Hedensted,HED-U002,,wellbeing,4",
        ],
    );
    let t = "employee_responses";
    expect.extend([
        bad(
            t,
            e[0],
            Some("unit_id"),
            Some("XXX-U999"),
            "unknown_reference",
        ),
        bad(t, e[1], Some("municipality"), None, "municipality_mismatch"),
        bad(
            t,
            e[2],
            Some("target_group"),
            Some("astronauts"),
            "unknown_reference",
        ),
        bad(t, e[3], Some("value"), Some("0"), "out_of_range"),
        bad(t, e[4], Some("value"), Some("abc"), "not_a_number"),
        bad(t, e[5], Some("item"), Some("no_such_item"), "unknown_item"),
        bad(t, e[6], None, None, "duplicate_conflict"),
        bad(t, e[7], None, None, "duplicate_conflict"),
        bad(t, e[8], Some("value"), Some("7"), "out_of_range"),
        bad(t, e[9], Some("target_group"), None, "missing_required"),
        bad(t, e[10], Some("value"), Some("5.50"), "out_of_range"),
        bad(t, e[11], Some("wave"), Some("x"), "not_an_integer"),
    ]);
    // citizen answers: an unknown municipality (mis-decoded, misspelt), out of range, an
    // employee item, no case.
    let c = append(
        &data,
        "citizen_responses",
        &[
            "1,B9990001,RÃ¸dovre,S00410001,cq_1,3",
            "1,B9990002,Rodovre,S00410001,cq_1,3",
            "1,B9990003,Rødovre,S00410001,cq_1,0",
            "1,B9990004,Rødovre,S00410001,frequent,3",
            "1,B9990005,Rødovre,,cq_1,3",
        ],
    );
    let t = "citizen_responses";
    expect.extend([
        bad(
            t,
            c[0],
            Some("municipality"),
            Some("RÃ¸dovre"),
            "unknown_reference",
        ),
        bad(
            t,
            c[1],
            Some("municipality"),
            Some("Rodovre"),
            "unknown_reference",
        ),
        bad(t, c[2], Some("value"), Some("0"), "out_of_range"),
        bad(t, c[3], Some("item"), Some("frequent"), "unknown_item"),
        bad(t, c[4], Some("case_id"), None, "missing_required"),
    ]);
    // case involvement: an unknown unit, a lead that is no boolean; kept: a case with two leads.
    let k = append(
        &data,
        "case_involvement",
        &[
            "1,S09990001,XXX-U999,true",
            "1,S09990002,HED-U001,maybe",
            "1,S09990003,HED-U001,true",
            "1,S09990003,HED-U002,true",
        ],
    );
    let t = "case_involvement";
    expect.extend([
        bad(
            t,
            k[0],
            Some("unit_id"),
            Some("XXX-U999"),
            "unknown_reference",
        ),
        bad(t, k[1], Some("lead"), Some("maybe"), "not_a_boolean"),
    ]);

    let out = tmp.path().join("out");
    let run = Command::cargo_bin("relcap")
        .unwrap()
        .env("RELCAP_PSEUDONYM_KEY", KEY)
        .arg("run")
        .arg("-q")
        .arg("--config")
        .arg(repo().join("config/study.toml"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--reports")
        .arg(tmp.path().join("reports"))
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "relcap failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let mut q = quarantine(&out, "ingest");
    q.extend(quarantine(&out, "clean"));
    let appended: BTreeSet<(String, i64)> = [
        ("units", &u),
        ("intervention", &i),
        ("employee_responses", &e),
        ("citizen_responses", &c),
        ("case_involvement", &k),
    ]
    .iter()
    .flat_map(|(t, lines)| lines.iter().map(move |l| (t.to_string(), *l)))
    .collect();
    for b in &expect {
        let found = q.iter().any(|(t, line, column, value, reason)| {
            t == b.table
                && *line == b.line
                && column.as_deref() == b.column
                && reason == b.reason
                && b.value.is_none_or(|v| value.as_deref() == Some(v))
        });
        let near: Vec<_> = q
            .iter()
            .filter(|r| r.0 == b.table && r.1 == b.line)
            .collect();
        assert!(
            found,
            "{} line {}: expected {:?} {:?} {}, found {near:?}",
            b.table, b.line, b.column, b.value, b.reason
        );
    }
    // Nothing else of the study is quarantined: only the rows appended, and every row
    // appended but the kept ones.
    let quarantined: BTreeSet<(String, i64)> = q.iter().map(|r| (r.0.clone(), r.1)).collect();
    let expected: BTreeSet<(String, i64)> = expect
        .iter()
        .map(|b| (b.table.to_string(), b.line))
        .collect();
    assert_eq!(quarantined, expected);
    assert!(quarantined.is_subset(&appended));

    // Rows in = rows out + quarantined + collapsed + excluded, per table and stage.
    for stage in ["ingest", "clean"] {
        let s = summary(&out, stage);
        let tables = s["tables"].as_object().unwrap();
        for name in [
            "units",
            "intervention",
            "employee_responses",
            "citizen_responses",
            "case_involvement",
        ] {
            let c = &tables[name];
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            assert_eq!(
                n("rows_in"),
                n("rows_out")
                    + total(&c["quarantined"])
                    + n("duplicates_collapsed")
                    + total(&c["excluded"]),
                "{stage} {name}: {c}"
            );
        }
    }
    let clean = summary(&out, "clean");
    assert_eq!(clean["tables"]["units"]["duplicates_collapsed"], 1);

    // No sixth municipality anywhere downstream.
    let municipalities: BTreeSet<Option<String>> =
        texts(&read(&out, "clean", "units"), "municipality")
            .into_iter()
            .collect();
    assert_eq!(municipalities.len(), 5);
    for (stage, table) in [("clean", "citizen_responses"), ("score", "citizens")] {
        let seen: BTreeSet<Option<String>> = texts(&read(&out, stage, table), "municipality")
            .into_iter()
            .collect();
        assert!(seen.is_subset(&municipalities), "{stage}/{table}: {seen:?}");
    }

    // A respondent whose unit changes between waves keeps each wave's answers under that
    // wave's unit.
    let emp = read(&out, "clean", "employee_responses");
    let who = pseudo("E9990013");
    let mut units: Vec<(i64, String)> = texts(&emp, "respondent_id")
        .into_iter()
        .zip(emp.column("wave").unwrap().i64().unwrap().iter())
        .zip(texts(&emp, "unit_id"))
        .filter(|((r, _), _)| r.as_deref() == Some(who.as_str()))
        .map(|((_, w), u)| (w.unwrap(), u.unwrap()))
        .collect();
    units.sort();
    assert_eq!(
        units,
        [(1, "HED-U001".to_string()), (2, "HED-U002".to_string())]
    );

    // A case with two lead units is kept by clean (counted) and excluded from H1 by link.
    assert!(clean["counts"]["case_involvement.cases_with_several_leads"].as_u64() >= Some(1));
    let h1 = read(&out, "link", "h1_cases");
    let case = pseudo("S09990003");
    let row: Vec<_> = texts(&h1, "case_id")
        .into_iter()
        .zip(texts(&h1, "exclusion"))
        .filter(|(id, _)| id.as_deref() == Some(case.as_str()))
        .map(|(_, x)| x)
        .collect();
    assert_eq!(row, [Some("several_lead_units".to_string())]);
}
