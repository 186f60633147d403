//! SPSS `.sav` files through the `relcap` binary. The fixtures (tests/fixtures/spss/, made by
//! `make_sav.py` with pyreadstat and GNU PSPP and by `make_sav.R` with R's haven from the small
//! canonical study in `canonical/`) hold one wide file per survey and wave: "Ved ikke" coded
//! 9 in some and 6 in others, user-missing values declared as codes and as ranges in some,
//! bytecode- and zlib-compressed files, and one Windows-1252 file. Read with
//! `config/examples/spss.toml`, they give the same tables, scores and results as the canonical
//! tables; each fault of a file has its reason and line, or its error.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::common::{assert_same_analysis, content, quarantine, read, repo, strs, summary, QRow};

const KEY: &str = "spss-test-key-0123456789abcdef";

fn relcap() -> assert_cmd::Command {
    let mut c = crate::common::relcap();
    c.env("RELCAP_PSEUDONYM_KEY", KEY);
    c
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/spss")
}

/// A study folder `dir`: the canonical units, intervention and case_involvement, and the SPSS
/// files `files` (fixture path, name in the study).
fn study(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for t in ["units.csv", "intervention.csv", "case_involvement.csv"] {
        std::fs::copy(fixtures().join("canonical").join(t), dir.join(t)).unwrap();
    }
    for (from, to) in files {
        std::fs::copy(fixtures().join(from), dir.join(to)).unwrap();
    }
    dir.to_path_buf()
}

/// The four files of one writer's set (`py`, `r`), citizens' wave 1 as `.zsav`.
fn writer_set(dir: &Path, set: &str) -> PathBuf {
    let f = |n: &str| format!("{set}/{n}");
    let files = [
        f("employees_wave1.sav"),
        f("employees_wave2.sav"),
        f("citizens_wave1.zsav"),
        f("citizens_wave2.sav"),
    ];
    let names = [
        "employees_wave1.sav",
        "employees_wave2.sav",
        "citizens_wave1.zsav",
        "citizens_wave2.sav",
    ];
    let pairs: Vec<(&str, &str)> = files.iter().map(String::as_str).zip(names).collect();
    study(dir, &pairs)
}

fn example_config() -> PathBuf {
    repo().join("config/examples/spss.toml")
}

/// Runs relcap on `data` into `out` (through `until` when given); returns exit code and stderr.
fn run(config: &Path, data: &Path, out: &Path, until: Option<&str>) -> (i32, String) {
    let mut c = relcap();
    c.args(["run", "-q", "--config"]).arg(config);
    if let Some(u) = until {
        c.args(["--until", u]);
    }
    let o = c
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn run_ok(config: &Path, data: &Path, out: &Path, until: Option<&str>) -> String {
    let (code, log) = run(config, data, out, until);
    assert_eq!(code, 0, "relcap run failed:\n{log}");
    log
}

/// The codebook row of `var` in file `src`: (question, value labels, missing codes).
fn book_row(out: &Path, src: &str, var: &str) -> [Option<String>; 3] {
    let book = read(out, "ingest", "codebook");
    let (s, v) = (strs(&book, "source"), strs(&book, "variable"));
    let i = (0..book.height())
        .find(|&i| s[i].as_deref() == Some(src) && v[i].as_deref() == Some(var))
        .unwrap_or_else(|| panic!("{src} {var} not in the codebook"));
    ["question", "value_labels", "missing_codes"].map(|c| strs(&book, c)[i].clone())
}

fn plain_config(dir: &Path) -> PathBuf {
    let plain = dir.join("plain.toml");
    std::fs::write(&plain, "[study]\ndata_dir = \"data\"\nout_dir = \"out\"\n").unwrap();
    plain
}

#[test]
fn sav_files_give_the_same_tables_scores_and_results_as_the_canonical_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let canonical = t.join("canonical");
    crate::common::copy_dir(&fixtures().join("canonical"), &canonical);
    // One study from all three writers: haven (bytecode, user-missing 9), pyreadstat
    // (bytecode, "Ved ikke" = 6 declared user-missing; a user-missing range 6..8), PSPP
    // (Windows-1252).
    let data = study(
        &t.join("mixed"),
        &[
            ("r/employees_wave1.sav", "employees_wave1.sav"),
            ("py/employees_wave2.sav", "employees_wave2.sav"),
            ("pspp/citizens_wave1.sav", "citizens_wave1.sav"),
            ("py/citizens_wave2.sav", "citizens_wave2.sav"),
        ],
    );
    let (a, b) = (t.join("out_canonical"), t.join("out_sav"));
    run_ok(&plain_config(t), &canonical, &a, None);
    let log = run_ok(&example_config(), &data, &b, None);
    assert!(!log.contains("map to nothing"), "{log}");
    let facts = &summary(&b, "ingest")["facts"];
    for (table, enc) in [
        ("employee_responses", ["utf-8", "utf-8"]),
        ("citizen_responses", ["windows-1252", "utf-8"]),
    ] {
        let files = facts[format!("input.{table}")]["files"].as_array().unwrap();
        let got: Vec<&str> = files
            .iter()
            .map(|f| f["encoding"].as_str().unwrap())
            .collect();
        assert_eq!(got, enc, "{table}");
        assert!(files.iter().all(|f| f["format"] == "spss"), "{files:?}");
    }
    let ingest = summary(&b, "ingest");
    for table in ["employee_responses", "citizen_responses"] {
        let q = &ingest["tables"][table]["quarantined"];
        assert_eq!(q, &serde_json::json!({}), "{table}");
    }
    assert_eq!(
        summary(&a, "clean")["counts"],
        summary(&b, "clean")["counts"]
    );
    // The codebook: variable labels decoded (UTF-8 and Windows-1252), each file's own
    // don't-know code named with its label and reason.
    let [q, labels, missing] = book_row(&b, "citizens_wave1.sav", "cq_2");
    assert_eq!(
        q.as_deref(),
        Some("Spørgsmål om din arbejdsplads (cq_2); æ ø å")
    );
    assert_eq!(
        labels.as_deref(),
        Some(
            "1 = Meget uenig; 2 = Uenig; 3 = Hverken/eller; 4 = Enig; 5 = Meget enig; 9 = Ved ikke"
        )
    );
    let missing = missing.unwrap();
    assert!(
        missing.starts_with("9 = Ved ikke (dont_know): "),
        "{missing}"
    );
    let [q, _, missing] = book_row(&b, "employees_wave2.sav", "timely__caseworkers");
    assert!(q
        .unwrap()
        .contains("præcist samarbejder du med caseworkers"));
    assert!(missing.unwrap().starts_with("6 = Ved ikke (dont_know): "));
    assert_same_analysis(&a, &b);
    // Each writer's whole set (pyreadstat's and haven's, citizens' wave 1 as .zsav) reads as
    // the canonical tables; so does a Windows-1252 file without an encoding record (as SPSS
    // wrote before version 16: only its code page tells).
    for set in ["py", "r", "codepage"] {
        let data = match set {
            "codepage" => {
                let data = writer_set(&t.join(set), "py");
                std::fs::remove_file(data.join("citizens_wave1.zsav")).unwrap();
                let from = fixtures().join("pspp/citizens_wave1_codepage.sav");
                std::fs::copy(from, data.join("citizens_wave1.sav")).unwrap();
                data
            }
            _ => writer_set(&t.join(set), set),
        };
        let out = t.join(format!("out_{set}"));
        run_ok(&example_config(), &data, &out, Some("ingest"));
        if set == "codepage" {
            let [q, _, _] = book_row(&out, "citizens_wave1.sav", "cq_1");
            assert_eq!(
                q.as_deref(),
                Some("Spørgsmål om din arbejdsplads (cq_1); æ ø å")
            );
            let files = &summary(&out, "ingest")["facts"]["input.citizen_responses"]["files"];
            assert_eq!(files[0]["encoding"], "windows-1252");
        }
        for name in ["employee_responses", "citizen_responses"] {
            let (x, y) = (
                content(read(&a, "ingest", name)),
                content(read(&out, "ingest", name)),
            );
            assert!(
                x.equals_missing(&y),
                "{set}: ingest/{name} differs:\n{x}\n{y}"
            );
        }
    }
}

fn has(q: &[QRow], line: i64, column: Option<&str>, value: Option<&str>, reason: &str) -> bool {
    q.iter().any(|x| {
        x.0 == "employee_responses"
            && x.1 == line
            && x.2.as_deref() == column
            && (value.is_none() || x.3.as_deref() == value)
            && x.4 == reason
    })
}

/// The pyreadstat set with `fault` (a fixture) as employees' wave 2.
fn faulty(dir: &Path, fault: &str) -> PathBuf {
    let data = writer_set(dir, "py");
    std::fs::copy(fixtures().join(fault), data.join("employees_wave2.sav")).unwrap();
    data
}

#[test]
fn each_fault_of_a_sav_file_has_its_reason_and_line_or_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = example_config();
    // Case 1: srm_1 = 7 without a label, srm_2 = 8 labelled "Uoplyst" and declared missing;
    // case 2: wellbeing = 98, in the declared range 97..99; cases 3 and 4: one respondent.
    let data = faulty(&t.join("a"), "faults/unlabelled.sav");
    let out = t.join("out_a");
    run_ok(&cfg, &data, &out, Some("ingest"));
    let q = quarantine(&out, "ingest");
    assert!(
        has(&q, 1, Some("srm_1"), Some("7"), "unlabelled_code"),
        "{q:?}"
    );
    assert!(has(&q, 3, None, None, "duplicate_respondent"), "{q:?}");
    assert!(has(&q, 4, None, None, "duplicate_respondent"), "{q:?}");
    let table = &summary(&out, "ingest")["tables"]["employee_responses"];
    assert_eq!(table["quarantined"]["unlabelled_code"], 1, "{table}");
    assert_eq!(table["quarantined"]["duplicate_respondent"], 2, "{table}");
    assert_eq!(table["excluded"]["user_missing"], 2, "{table}");
    let [_, _, m] = book_row(&out, "employees_wave2.sav", "srm_2");
    assert!(m.unwrap().contains("8 = Uoplyst (user_missing): <5"));
    let [_, labels, m] = book_row(&out, "employees_wave2.sav", "wellbeing");
    assert!(m.unwrap().contains("97..99 (user_missing): <5"));
    assert!(!labels.unwrap().contains("98"));

    // Labels of a 7-point item: an error naming the variable.
    let data = faulty(&t.join("b"), "faults/seven_point.sav");
    let (code, log) = run(&cfg, &data, &t.join("out_b"), Some("ingest"));
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("employees_wave2.sav")
            && log.contains("`srm_3`")
            && log.contains("contradict"),
        "{log}"
    );

    // An encoding record that does not fit the file's text (UTF-8 declared, Windows-1252
    // written): an error naming the file, the encoding and a variable.
    let data = writer_set(&t.join("enc"), "py");
    std::fs::remove_file(data.join("citizens_wave1.zsav")).unwrap();
    std::fs::copy(
        fixtures().join("faults/wrong_encoding.sav"),
        data.join("citizens_wave1.sav"),
    )
    .unwrap();
    let (code, log) = run(&cfg, &data, &t.join("out_enc"), Some("ingest"));
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("citizens_wave1.sav")
            && log.contains("not valid UTF-8")
            && log.contains("`cq_1`"),
        "{log}"
    );

    // Numeric ids read as the same text ids.
    let mut ingested = vec![];
    for ids in ["numeric_ids", "string_ids"] {
        let data = faulty(&t.join(ids), &format!("faults/{ids}.sav"));
        let out = t.join(format!("out_{ids}"));
        run_ok(&cfg, &data, &out, Some("ingest"));
        let df = read(&out, "ingest", "employee_responses");
        let wave2 = df
            .filter(&df.column("wave").unwrap().i64().unwrap().equal(2))
            .unwrap();
        assert_eq!(
            wave2.column("respondent_id").unwrap().n_unique().unwrap(),
            8
        );
        ingested.push(content(df));
    }
    assert!(ingested[0].equals_missing(&ingested[1]));

    // A file cut short, and one that is not an SPSS file: an error naming it, no panic.
    let whole = std::fs::read(fixtures().join("py/employees_wave1.sav")).unwrap();
    for (name, bytes) in [
        ("cut", whole[..whole.len() / 2].to_vec()),
        ("header", whole[..100].to_vec()),
        ("text", b"respondent;unit\n1;2\n".to_vec()),
    ] {
        let data = writer_set(&t.join(name), "py");
        std::fs::write(data.join("employees_wave1.sav"), bytes).unwrap();
        let (code, log) = run(&cfg, &data, &t.join(format!("out_{name}")), Some("ingest"));
        assert_eq!(code, 1, "{name}: {log}");
        assert!(log.contains("employees_wave1.sav"), "{name}: {log}");
        assert!(!log.contains("panicked"), "{name}: {log}");
    }
}
