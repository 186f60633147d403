//! End-to-end tests of `relcap run --until clean`: the tiny hand-written study in
//! `tests/fixtures/tiny/` (and dirty or broken copies of it) through the binary, with every
//! expected value computed by hand from the fixture and the instrument of `config/study.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use relcap::pseudonym::{KeySource, Pseudonymizer};

use crate::common::{
    assert_balances, demo_config_text, demo_pseudonym as pseudo, floats, ints, names, ok,
    quarantine as quarantine_rows, read, repo, simulate, strs, summary, Csv,
};

/// `relcap` with the demo key's bytes in the environment: the tiny study is not simulated, so
/// the demo key may not pseudonymise it, and the same bytes give the same pseudonyms.
fn relcap() -> assert_cmd::Command {
    let mut c = crate::common::relcap();
    c.env("RELCAP_PSEUDONYM_KEY", "relcap-demo-study-public-key");
    c
}

/// A copy of the tiny study in a fresh temporary folder (`<tmp>/data`); outputs go to
/// `<tmp>/out`.
fn tiny_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    crate::common::copy_dir(
        &repo().join("tests/fixtures/tiny"),
        &tmp.path().join("data"),
    );
    tmp
}

/// The demo config with `srm_2` reverse-coded (so reverse coding is exercised), written into
/// `dir`; `edit` may change the text further.
fn config(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = demo_config_text(&[("reverse_coded = []", "reverse_coded = [\"srm_2\"]")]);
    let path = dir.join("study.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// `relcap run --until clean` on `<tmp>/data` into `<tmp>/out`.
fn run_until_clean(tmp: &Path, cfg: &Path) -> std::process::Output {
    relcap()
        .args(["run", "--until", "clean", "-q", "--config"])
        .arg(cfg)
        .arg("--data")
        .arg(tmp.join("data"))
        .arg("--out")
        .arg(tmp.join("out"))
        .output()
        .unwrap()
}

fn out_dir(tmp: &Path) -> PathBuf {
    tmp.join("out")
}

/// Asserts the column names of `df`, in order (`expected` separated by white space).
fn assert_columns(df: &DataFrame, expected: &str) {
    assert_eq!(names(df), expected.split_whitespace().collect::<Vec<_>>());
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// Every table of a stage's summary balances: in = out + quarantined + duplicates + excluded.
fn assert_accounting(tmp: &Path, stage: &str, tables: &[&str]) {
    let sum = summary(&out_dir(tmp), stage);
    for t in tables {
        assert_balances(stage, t, &sum["tables"][t]);
    }
}

const TABLES: [&str; 5] = [
    "units",
    "intervention",
    "employee_responses",
    "citizen_responses",
    "case_involvement",
];

/// (line, column, value, reason) of the quarantine rows of `table`.
fn quarantine(
    tmp: &Path,
    stage: &str,
    table: &str,
) -> Vec<(i64, Option<String>, Option<String>, String)> {
    quarantine_rows(&out_dir(tmp), stage)
        .into_iter()
        .filter(|r| r.0 == table)
        .map(|(_, line, col, val, reason)| (line, col, val, reason))
        .collect()
}

fn quarantined(tmp: &Path, stage: &str, table: &str) -> BTreeMap<String, u64> {
    let sum = summary(&out_dir(tmp), stage);
    sum["tables"][table]["quarantined"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn tiny_study_gives_the_hand_computed_clean_tables() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    ok(&run_until_clean(tmp.path(), &cfg));

    // Employee answers, by line: value map for `frequent` (1,2,3,4,5 -> 1,3,5,4,2), missing
    // code 9 = dont_know, empty = empty, srm_2 reverse-coded (2 -> 1 + 5 - 2 = 4).
    let e = read(&out_dir(tmp.path()), "clean", "employee_responses");
    assert_columns(
        &e,
        "wave municipality unit_id work_group respondent_id target_group item item_kind value \
         missing_reason source line",
    );
    let (anna, bo, carl) = (pseudo("emp-anna"), pseudo("emp-bo"), pseudo("emp-carl"));
    // (line, wave, respondent, unit, work group, target group, item, kind, value, missing).
    type Row = (
        i64,
        i64,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        Option<f64>,
        Option<String>,
    );
    #[allow(clippy::too_many_arguments)]
    fn row(
        line: i64,
        wave: i64,
        resp: &str,
        unit: &str,
        wg: &str,
        tg: Option<&str>,
        item: &str,
        kind: &str,
        value: Option<f64>,
        missing: Option<&str>,
    ) -> Row {
        (
            line,
            wave,
            resp.to_string(),
            unit.to_string(),
            wg.to_string(),
            tg.map(str::to_string),
            item.to_string(),
            kind.to_string(),
            value,
            missing.map(str::to_string),
        )
    }
    let (cw, jc) = ("caseworkers", "job_consultants");
    let (a, b, c) = (anna.as_str(), bo.as_str(), carl.as_str());
    let expected: Vec<Row> = vec![
        row(
            2,
            1,
            a,
            "U1",
            cw,
            Some(jc),
            "frequent",
            "tie",
            Some(5.0),
            None,
        ),
        row(
            3,
            1,
            a,
            "U1",
            cw,
            Some(jc),
            "timely",
            "tie",
            Some(4.0),
            None,
        ),
        row(
            4,
            1,
            a,
            "U1",
            cw,
            Some(jc),
            "accurate",
            "tie",
            None,
            Some("dont_know"),
        ),
        row(
            5,
            1,
            a,
            "U1",
            cw,
            Some(jc),
            "problem_solving",
            "tie",
            None,
            Some("empty"),
        ),
        row(6, 1, a, "U1", cw, None, "srm_1", "person", Some(5.0), None),
        row(7, 1, a, "U1", cw, None, "srm_2", "person", Some(4.0), None),
        row(
            8,
            1,
            b,
            "U2",
            jc,
            Some(cw),
            "frequent",
            "tie",
            Some(1.0),
            None,
        ),
        row(
            9,
            1,
            b,
            "U2",
            jc,
            Some(cw),
            "timely",
            "tie",
            Some(2.0),
            None,
        ),
        row(10, 1, b, "U2", jc, None, "srm_1", "person", Some(3.0), None),
        row(
            11,
            2,
            a,
            "U1",
            cw,
            Some(jc),
            "frequent",
            "tie",
            Some(2.0),
            None,
        ),
        row(
            12,
            1,
            c,
            "U3",
            cw,
            Some(cw),
            "mutual_respect",
            "tie",
            Some(4.0),
            None,
        ),
    ];
    let line = ints(&e, "line");
    let wave = ints(&e, "wave");
    let resp = strs(&e, "respondent_id");
    let unit = strs(&e, "unit_id");
    let wg = strs(&e, "work_group");
    let tg = strs(&e, "target_group");
    let item = strs(&e, "item");
    let kind = strs(&e, "item_kind");
    let value = floats(&e, "value");
    let mr = strs(&e, "missing_reason");
    let muni = strs(&e, "municipality");
    let src = strs(&e, "source");
    let mut got: Vec<Row> = Vec::new();
    for i in 0..e.height() {
        got.push((
            line[i].unwrap(),
            wave[i].unwrap(),
            resp[i].clone().unwrap(),
            unit[i].clone().unwrap(),
            wg[i].clone().unwrap(),
            tg[i].clone(),
            item[i].clone().unwrap(),
            kind[i].clone().unwrap(),
            value[i],
            mr[i].clone(),
        ));
        let expect_muni = if unit[i].as_deref() == Some("U3") {
            "Stevns"
        } else {
            "Randers"
        };
        assert_eq!(muni[i].as_deref(), Some(expect_muni));
        assert_eq!(src[i].as_deref(), Some("employee_responses.csv"));
    }
    // The file is sorted by its key (wave, respondent_id, target_group with nulls first, item).
    let keys: Vec<_> = got
        .iter()
        .map(|r| (r.1, r.2.clone(), r.5.clone(), r.6.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "clean employee_responses is not sorted by its key"
    );
    got.sort_by_key(|r| r.0);
    assert_eq!(got, expected);

    // Citizens: 4 -> 4, 9 -> dont_know, empty -> empty, 5.0 -> 5.
    let c = read(&out_dir(tmp.path()), "clean", "citizen_responses");
    assert_columns(
        &c,
        "wave municipality citizen_id case_id item value missing_reason source line",
    );
    assert_eq!(ints(&c, "line"), vec![Some(2), Some(3), Some(4), Some(5)]);
    assert_eq!(floats(&c, "value"), vec![Some(4.0), None, None, Some(5.0)]);
    assert_eq!(
        strs(&c, "missing_reason"),
        vec![None, s("dont_know"), s("empty"), None]
    );
    assert_eq!(strs(&c, "citizen_id")[0], Some(pseudo("cit-gitte")));
    assert_eq!(strs(&c, "case_id")[0], Some(pseudo("case-1001")));

    // Units: the quoted note with a line break moves U2 to line 4; headcount "8.0" is 8.
    let u = read(&out_dir(tmp.path()), "ingest", "units");
    assert_eq!(ints(&u, "line"), vec![Some(2), Some(4), Some(5)]);
    let u = read(&out_dir(tmp.path()), "clean", "units");
    assert_columns(&u, "municipality unit_id work_group manager_id headcount");
    assert_eq!(strs(&u, "unit_id"), vec![s("U1"), s("U2"), s("U3")]);
    assert_eq!(ints(&u, "headcount"), vec![Some(12), None, Some(8)]);
    assert_eq!(
        strs(&u, "manager_id"),
        vec![
            Some(pseudo("mgr-dorte")),
            Some(pseudo("mgr-erik")),
            Some(pseudo("mgr-frida"))
        ]
    );

    // Intervention and case involvement.
    let i = read(&out_dir(tmp.path()), "clean", "intervention");
    assert_eq!(strs(&i, "arm"), vec![s("intervention"), s("control")]);
    assert_eq!(ints(&i, "after_wave"), vec![Some(1), Some(1)]);
    let k = read(&out_dir(tmp.path()), "clean", "case_involvement");
    assert_columns(
        &k,
        "wave case_id unit_id lead municipality work_group source line",
    );
    let lead: Vec<_> = k.column("lead").unwrap().bool().unwrap().iter().collect();
    assert_eq!(lead, vec![Some(true), Some(false), Some(true)]);
    assert_eq!(
        strs(&k, "work_group"),
        vec![s("caseworkers"), s("job_consultants"), s("caseworkers")]
    );

    // Counts.
    let sum = summary(&out_dir(tmp.path()), "clean");
    assert_eq!(sum["counts"]["employee_responses.missing.dont_know"], 1);
    assert_eq!(sum["counts"]["employee_responses.missing.empty"], 1);
    assert_eq!(sum["counts"]["citizen_responses.missing.dont_know"], 1);
    assert_eq!(sum["counts"]["citizen_responses.missing.empty"], 1);
    assert_eq!(sum["counts"]["case_involvement.cases_without_lead"], 0);
    assert_eq!(sum["tables"]["employee_responses"]["rows_in"], 11);
    assert_eq!(sum["tables"]["employee_responses"]["rows_out"], 11);
    assert_accounting(tmp.path(), "ingest", &TABLES);
    assert_accounting(tmp.path(), "clean", &TABLES);
    assert_eq!(
        read(&out_dir(tmp.path()), "clean", "quarantine").height(),
        0
    );
    assert_eq!(
        read(&out_dir(tmp.path()), "ingest", "quarantine").height(),
        0
    );
}

/// No raw person id appears in any value of any Parquet output, nor in any other file.
#[test]
fn no_raw_person_id_is_written() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    ok(&run_until_clean(tmp.path(), &cfg));
    let raw = [
        "emp-anna",
        "emp-bo",
        "emp-carl",
        "mgr-dorte",
        "mgr-erik",
        "mgr-frida",
        "cit-gitte",
        "case-1001",
    ];
    let mut files = 0;
    for stage in ["ingest", "clean"] {
        for e in std::fs::read_dir(tmp.path().join("out").join(stage)).unwrap() {
            let p = e.unwrap().path();
            files += 1;
            let bytes = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for r in raw {
                assert!(!text.contains(r), "{} holds {r}", p.display());
            }
            if p.extension().and_then(|x| x.to_str()) == Some("parquet") {
                let df = relcap::io::read_parquet(&p).unwrap();
                for c in df.columns() {
                    let c = c.cast(&DataType::String).unwrap();
                    for v in c.str().unwrap().iter().flatten() {
                        for r in raw {
                            assert!(
                                !v.contains(r),
                                "{} column {} holds {r}",
                                p.display(),
                                c.name()
                            );
                        }
                    }
                }
            }
        }
    }
    // Ingest also writes its codebook.
    assert_eq!(
        files,
        2 * 7 + 1,
        "5 tables + quarantine + summary per stage"
    );
    assert_ne!(pseudo("emp-anna"), "emp-anna");
}

#[test]
fn dirty_copy_gives_exactly_the_expected_quarantine() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    let er = tmp.path().join("data/employee_responses.csv");
    let mut text = std::fs::read_to_string(&er).unwrap();
    text.push_str(
        "1;emp-bo;Randers;U2;caseworkers;accurate;7\n\
         1;emp-bo;Randers;U2;caseworkers;problem_solving;often\n\
         1;emp-bo;Randers;U2;caseworkers;shared_goals;3,5\n\
         1;emp-bo;Randers;U2;;srm_1;4\n\
         1;emp-anna;Randers;U1;job_consultants;timely;4\n\
         1;emp-dan;Randers;U9;caseworkers;timely;3\n\
         1;emp-eva;Stevns;U1;job_consultants;timely;3\n",
    );
    std::fs::write(&er, text).unwrap();
    ok(&run_until_clean(tmp.path(), &cfg));

    // Ingest: text and a decimal comma in the value column are not numbers.
    assert_eq!(
        quarantine(tmp.path(), "ingest", "employee_responses"),
        vec![
            (14, s("value"), s("often"), "not_a_number".to_string()),
            (15, s("value"), s("3,5"), "not_a_number".to_string()),
        ]
    );
    let ing = summary(&out_dir(tmp.path()), "ingest");
    assert_eq!(ing["tables"]["employee_responses"]["rows_in"], 18);
    assert_eq!(ing["tables"]["employee_responses"]["rows_out"], 16);
    assert_eq!(
        quarantined(tmp.path(), "ingest", "employee_responses"),
        BTreeMap::from([("not_a_number".to_string(), 2)])
    );

    // Clean: 7 is off the scale; srm_1 of emp-bo in wave 1 is answered 3 (line 10) and 4
    // (line 16), so both go; line 17 repeats line 3 exactly and is collapsed; U9 is no unit;
    // emp-eva says Stevns but U1 is in Randers.
    let q = quarantine(tmp.path(), "clean", "employee_responses");
    let reasons: Vec<(i64, Option<String>, String)> =
        q.iter().map(|r| (r.0, r.1.clone(), r.3.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (10, None, "duplicate_conflict".to_string()),
            (13, s("value"), "out_of_range".to_string()),
            (16, None, "duplicate_conflict".to_string()),
            (18, s("unit_id"), "unknown_reference".to_string()),
            (19, s("municipality"), "municipality_mismatch".to_string()),
        ]
    );
    // The cell as written in the source file, not the parsed number (7.0).
    assert_eq!(q[1].2, s("7"));
    assert_eq!(q[3].2, s("U9"));
    let cl = summary(&out_dir(tmp.path()), "clean");
    let t = &cl["tables"]["employee_responses"];
    assert_eq!(t["rows_in"], 16);
    assert_eq!(t["duplicates_collapsed"], 1);
    assert_eq!(t["rows_out"], 10);
    assert_eq!(
        quarantined(tmp.path(), "clean", "employee_responses"),
        BTreeMap::from([
            ("duplicate_conflict".to_string(), 2),
            ("municipality_mismatch".to_string(), 1),
            ("out_of_range".to_string(), 1),
            ("unknown_reference".to_string(), 1),
        ])
    );
    assert_accounting(tmp.path(), "ingest", &TABLES);
    assert_accounting(tmp.path(), "clean", &TABLES);
    // The quarantine carries no raw id either.
    let q = read(&out_dir(tmp.path()), "clean", "quarantine");
    for c in q.columns() {
        let c = c.cast(&DataType::String).unwrap();
        for v in c.str().unwrap().iter().flatten() {
            assert!(!v.contains("emp-"), "{v}");
        }
    }
}

/// Runs on a broken copy and returns stderr, asserting a clean failure with nothing written.
fn fails_cleanly(tmp: &Path, cfg: &Path) -> String {
    let out = run_until_clean(tmp, cfg);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "should fail:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !tmp.join("out/ingest/units.parquet").exists(),
        "nothing may be written:\n{err}"
    );
    err
}

#[test]
fn empty_file_is_a_clear_error() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    std::fs::write(tmp.path().join("data/case_involvement.csv"), "").unwrap();
    let err = fails_cleanly(tmp.path(), &cfg);
    assert!(
        err.contains("case_involvement.csv") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn header_only_file_is_a_clear_error() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    std::fs::write(
        tmp.path().join("data/citizen_responses.csv"),
        "wave,citizen_id,municipality,case_id,item,value\n",
    )
    .unwrap();
    let err = fails_cleanly(tmp.path(), &cfg);
    assert!(
        err.contains("citizen_responses.csv") && err.contains("no rows"),
        "{err}"
    );
}

#[test]
fn missing_required_column_names_file_and_column() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    let p = tmp.path().join("data/citizen_responses.csv");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(",item,", ",question,");
    std::fs::write(&p, text).unwrap();
    let err = fails_cleanly(tmp.path(), &cfg);
    assert!(
        err.contains("citizen_responses.csv") && err.contains("`item`"),
        "{err}"
    );
}

#[test]
fn renamed_column_is_read_through_the_config() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| {
        t.replace(
            "[sources.citizen_responses]\nfile = \"citizen_responses\"\n",
            "[sources.citizen_responses]\nfile = \"citizen_responses\"\ncolumns = { item = \"question\" }\n",
        )
    });
    let p = tmp.path().join("data/citizen_responses.csv");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(",item,", ",question,");
    std::fs::write(&p, text).unwrap();
    ok(&run_until_clean(tmp.path(), &cfg));
    let c = read(&out_dir(tmp.path()), "clean", "citizen_responses");
    assert_eq!(c.height(), 4);
}

#[test]
fn missing_required_table_is_a_clear_error_and_optional_table_may_be_absent() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    std::fs::remove_file(tmp.path().join("data/intervention.csv")).unwrap();
    ok(&run_until_clean(tmp.path(), &cfg));
    assert_eq!(
        read(&out_dir(tmp.path()), "clean", "intervention").height(),
        0
    );
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    std::fs::remove_file(tmp.path().join("data/units.csv")).unwrap();
    let err = fails_cleanly(tmp.path(), &cfg);
    assert!(err.contains("units"), "{err}");
}

#[test]
fn run_without_key_and_without_demo_key_fails_clearly() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| {
        t.lines()
            .filter(|l| !l.starts_with("demo_key"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\"RELCAP_PSEUDONYM_KEY\"", "\"RELCAP_TEST_UNSET_KEY\"")
    });
    let err = fails_cleanly(tmp.path(), &cfg);
    assert!(err.contains("RELCAP_TEST_UNSET_KEY"), "{err}");
}

#[test]
fn key_from_environment_changes_every_pseudonym() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    let out = relcap()
        .env("RELCAP_PSEUDONYM_KEY", "another-key-of-19-b")
        .args(["run", "--until", "ingest", "-q", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    ok(&out);
    let e = read(&out_dir(tmp.path()), "ingest", "employee_responses");
    let p = Pseudonymizer::new(b"another-key-of-19-b", KeySource::Environment).unwrap();
    assert_eq!(strs(&e, "respondent_id")[0], Some(p.pseudonym("emp-anna")));
    assert_eq!(
        summary(&out_dir(tmp.path()), "ingest")["facts"]["pseudonym_key_source"],
        "environment"
    );
}

#[test]
fn two_runs_give_the_same_bytes() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    let mut hashes = Vec::new();
    for _ in 0..2 {
        ok(&run_until_clean(tmp.path(), &cfg));
        let mut h = BTreeMap::new();
        for stage in ["ingest", "clean"] {
            for e in std::fs::read_dir(tmp.path().join("out").join(stage)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().and_then(|x| x.to_str()) == Some("parquet") {
                    h.insert(p.clone(), relcap::io::hash_file(&p).unwrap());
                }
            }
        }
        hashes.push(h);
    }
    // 5 tables + quarantine per stage, and ingest's codebook.
    assert_eq!(hashes[0].len(), 13);
    assert_eq!(hashes[0], hashes[1]);
}

#[test]
fn parquet_sources_give_the_same_clean_values_as_csv() {
    let tmp = tiny_copy();
    let cfg = config(tmp.path(), |t| t);
    ok(&run_until_clean(tmp.path(), &cfg));
    let from_csv = read(&out_dir(tmp.path()), "clean", "citizen_responses");
    // The same table as Parquet with native types (wave i64, value f64 with a null).
    let p = tmp.path().join("data/citizen_responses.csv");
    std::fs::remove_file(&p).unwrap();
    let mut df = df!(
        "wave" => [1i64, 1, 1, 2],
        "citizen_id" => ["cit-gitte"; 4],
        "municipality" => ["Randers"; 4],
        "case_id" => ["case-1001"; 4],
        "item" => ["cq_1", "cq_2", "cq_3", "cq_1"],
        "value" => [Some(4.0f64), Some(9.0), None, Some(5.0)],
    )
    .unwrap();
    let f = std::fs::File::create(tmp.path().join("data/citizen_responses.parquet")).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    ok(&run_until_clean(tmp.path(), &cfg));
    let from_pq = read(&out_dir(tmp.path()), "clean", "citizen_responses");
    assert_eq!(floats(&from_pq, "value"), floats(&from_csv, "value"));
    assert_eq!(
        strs(&from_pq, "missing_reason"),
        strs(&from_csv, "missing_reason")
    );
    assert_eq!(strs(&from_pq, "citizen_id"), strs(&from_csv, "citizen_id"));
    // Parquet row r (1-based) is line r + 1.
    assert_eq!(
        ints(&from_pq, "line"),
        vec![Some(2), Some(3), Some(4), Some(5)]
    );
    assert_eq!(strs(&from_pq, "source")[0], s("citizen_responses.parquet"));
}

/// A simulated study through ingest and clean: every table balances, and the counts agree with
/// the simulated CSV files counted here independently (plain comma-separated text, no quotes).
#[test]
fn simulated_study_balances_through_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    simulate(&data, "--seed 7 --preset demo");
    let cfg = repo().join("config/study.toml");
    ok(&run_until_clean(tmp.path(), &cfg));
    assert_accounting(tmp.path(), "ingest", &TABLES);
    assert_accounting(tmp.path(), "clean", &TABLES);

    // Independent counts from the raw employee file: rows, "9" and empty values, and the raw
    // codes of `frequent`, which the value map turns into scores 1, 3, 5, 4, 2.
    let csv = Csv::read(&data.join("employee_responses.csv"));
    let (vi, ii, ri) = (csv.col("value"), csv.col("item"), csv.col("respondent_id"));
    let (mut rows, mut nines, mut empty) = (0u64, 0u64, 0u64);
    let mut frequent_scores: BTreeMap<i64, u64> = BTreeMap::new();
    let mut raw_ids = std::collections::BTreeSet::new();
    let score = |code: &str| match code {
        "1" => Some(1),
        "2" => Some(3),
        "3" => Some(5),
        "4" => Some(4),
        "5" => Some(2),
        _ => None,
    };
    for f in &csv.rows {
        rows += 1;
        match f[vi].as_str() {
            "9" => nines += 1,
            "" => empty += 1,
            v if f[ii] == "frequent" => {
                *frequent_scores.entry(score(v).unwrap()).or_default() += 1;
            }
            _ => {}
        }
        if raw_ids.len() < 50 {
            raw_ids.insert(f[ri].to_string());
        }
    }
    let ing = summary(&out_dir(tmp.path()), "ingest");
    assert_eq!(ing["tables"]["employee_responses"]["rows_in"], rows);
    let cl = summary(&out_dir(tmp.path()), "clean");
    assert_eq!(cl["tables"]["employee_responses"]["rows_out"], rows);
    assert_eq!(cl["counts"]["employee_responses.missing.dont_know"], nines);
    assert_eq!(cl["counts"]["employee_responses.missing.empty"], empty);
    let e = read(&out_dir(tmp.path()), "clean", "employee_responses");
    let item = strs(&e, "item");
    let value = floats(&e, "value");
    let mut got: BTreeMap<i64, u64> = BTreeMap::new();
    for (it, v) in item.iter().zip(&value) {
        if let (Some("frequent"), Some(v)) = (it.as_deref(), v) {
            *got.entry(*v as i64).or_default() += 1;
        }
    }
    assert_eq!(got, frequent_scores);
    // No raw respondent id survives.
    for id in strs(&e, "respondent_id").into_iter().flatten().take(1000) {
        assert!(!raw_ids.contains(&id), "{id} is a raw id");
        assert_eq!(id.len(), 32);
    }
}
