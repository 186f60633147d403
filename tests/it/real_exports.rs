//! Real survey exports through the `relcap` binary: wide layouts, semicolons, decimal commas,
//! Windows-1252, workbooks, and the catalogue of bad input, each with its quarantine reason or
//! its error. Expected values are computed by hand from the small files written here, or come
//! from the published German RC survey (its README: 705 complete respondents, alpha 0.8392).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use relcap::pseudonym::{KeySource, Pseudonymizer};

use crate::common::{
    assert_balances, demo_config_text, files, floats, german_survey, german_survey_rows,
    instrument, ints, ok, quarantine, read, repo, simulate, strs, summary, Csv, QRow,
};

/// `relcap` with the German example's public key in the environment: these exports are not
/// simulated, so the demo key may not pseudonymise them.
fn relcap() -> assert_cmd::Command {
    let mut c = crate::common::relcap();
    c.env(
        "RELCAP_PSEUDONYM_KEY",
        "relcap-rc-survey-germany-public-key",
    );
    c
}

/// Every table of every stage that ran balances: in = out + quarantined + duplicates +
/// excluded. Returns how many tables were checked.
fn assert_every_table_balances(out: &Path) -> usize {
    let mut checked = 0;
    for stage in ["ingest", "clean", "score", "link", "model"] {
        if !out.join(stage).join("summary.json").is_file() {
            continue;
        }
        for (t, c) in summary(out, stage)["tables"].as_object().unwrap() {
            assert_balances(stage, t, c);
            checked += 1;
        }
    }
    checked
}

fn q(t: &str, line: i64, c: Option<&str>, v: Option<&str>, r: &str) -> QRow {
    (
        t.to_string(),
        line,
        c.map(str::to_string),
        v.map(str::to_string),
        r.to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// The published German RC survey, read as it is through config/examples.

/// The authors' RC_score per data line of the file (None for NA), read independently of
/// relcap.
fn authors_scores(path: &Path) -> Vec<(i64, Option<f64>)> {
    let (header, rows) = german_survey_rows(path);
    let si = header.iter().position(|h| h == "RC_score").unwrap();
    rows.iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f[si].trim();
            let v = if f == "NA" {
                None
            } else {
                Some(f.parse().unwrap())
            };
            (i as i64 + 2, v)
        })
        .collect()
}

#[test]
fn german_rc_survey_reproduces_the_authors_scores_through_the_example_config() {
    let Some(german) = german_survey() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The example config as it is, but for where the survey file is (it is not in the repository).
    let example = repo().join("config/examples");
    let text = std::fs::read_to_string(example.join("rc-survey-germany.toml"))
        .unwrap()
        .replace(
            "data_dir = \"rc-survey-germany\"",
            &format!("data_dir = {:?}", example.join("rc-survey-germany")),
        )
        .replace("file = \"rc_gp.csv\"", &format!("file = {german:?}"));
    let config = tmp.path().join("rc-survey-germany.toml");
    std::fs::write(&config, text).unwrap();
    let o = relcap()
        .args(["run", "-q", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let authors = authors_scores(&german);
    assert_eq!(authors.len(), 816);
    // Respondents have no id: each is the pseudonym of `rc_gp.csv:<line>` under the config's
    // public key.
    let p = Pseudonymizer::new(b"relcap-rc-survey-germany-public-key", KeySource::DemoKey).unwrap();
    let ties = read(&out, "score", "ties");
    let ids = strs(&ties, "respondent_id");
    let rc = floats(&ties, "rc");
    let ours: BTreeMap<String, Option<f64>> = ids.into_iter().map(Option::unwrap).zip(rc).collect();
    let mut complete = 0;
    for (line, theirs) in &authors {
        let id = p.pseudonym(&format!("rc_gp.csv:{line}"));
        let mine = ours.get(&id).copied().flatten();
        match (mine, theirs) {
            (Some(a), Some(b)) => {
                complete += 1;
                assert!((a - b).abs() < 1e-12, "line {line}: rc {a} vs RC_score {b}");
            }
            (None, None) => {}
            (a, b) => panic!("line {line}: rc {a:?} vs RC_score {b:?}"),
        }
    }
    assert_eq!(complete, 705);
    let rel = read(&out, "score", "reliability");
    let (m, s) = (strs(&rel, "measure"), strs(&rel, "scale"));
    let value = floats(&rel, "value");
    let n = ints(&rel, "n");
    let i = (0..rel.height())
        .find(|&i| m[i].as_deref() == Some("alpha_raw") && s[i].as_deref() == Some("rc"))
        .expect("alpha of the rc scale");
    assert_eq!(format!("{:.4}", value[i].unwrap()), "0.8392");
    assert_eq!(n[i], Some(705));
    // Rows: 816 records × 7 items = 5712 cells, each either a long row or an NA cell skipped.
    let ing = summary(&out, "ingest");
    let e = &ing["tables"]["employee_responses"];
    assert_eq!(e["rows_in"], 816 * 7);
    assert_eq!(
        ing["tables"]["employee_responses.wide_records"]["rows_in"],
        816
    );
    assert_eq!(
        ing["tables"]["employee_responses.wide_records"]["rows_out"],
        816
    );
    let na_cells: u64 = german_survey_rows(&german)
        .1
        .iter()
        .map(|f| f.iter().take(7).filter(|f| *f == "NA").count() as u64)
        .sum();
    assert_eq!(e["excluded"]["empty_cell"], na_cells);
    assert_eq!(e["rows_out"], 816 * 7 - na_cells);
    assert!(assert_every_table_balances(&out) > 10);
}

// ---------------------------------------------------------------------------------------------
// A simulated study exported wide, Windows-1252, semicolons, decimal commas.

/// Writes the wide export of a canonical `employee_responses.csv` (plain, no quotes): one row
/// per (wave, respondent, municipality, unit), a column `<item>__<target>` or `<item>` per
/// answer, `-` where the respondent was not asked, an empty cell for an item left unanswered,
/// every number with a decimal comma (`4,0`), a free-text column with the separator and a line
/// break inside quotes, Danish header names; encoded as Windows-1252.
fn write_wide_export(canonical: &Path, wide: &Path) -> usize {
    let text = std::fs::read_to_string(canonical).unwrap();
    assert!(!text.contains('"'));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (wi, ri, mi, ui, ti, ii, vi) = (
        idx("wave"),
        idx("respondent_id"),
        idx("municipality"),
        idx("unit_id"),
        idx("target_group"),
        idx("item"),
        idx("value"),
    );
    let mut rows: BTreeMap<(String, String, String, String), BTreeMap<String, String>> =
        BTreeMap::new();
    let mut columns = BTreeSet::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let col = if f[ti].is_empty() {
            f[ii].to_string()
        } else {
            format!("{}__{}", f[ii], f[ti])
        };
        let v = if f[vi].is_empty() {
            String::new()
        } else {
            format!("{},0", f[vi])
        };
        columns.insert(col.clone());
        let key = (
            f[wi].to_string(),
            f[ri].to_string(),
            f[mi].to_string(),
            f[ui].to_string(),
        );
        let prev = rows.entry(key).or_default().insert(col, v);
        assert!(prev.is_none(), "the simulated file has a duplicate key");
    }
    let mut out = String::from("bølge;id;kommune;enhed;bemærkning");
    for c in &columns {
        out.push(';');
        out.push_str(c);
    }
    out.push_str("\r\n");
    for (i, ((w, r, m, u), answers)) in rows.iter().enumerate() {
        let remark = if i % 7 == 0 {
            "\"Godt samarbejde; men \"\"travlt\"\"\r\nmed sager\""
        } else {
            "Øvrigt"
        };
        out.push_str(&format!("{w};{r};{m};{u};{remark}"));
        for c in &columns {
            out.push(';');
            out.push_str(answers.get(c).map(String::as_str).unwrap_or("-"));
        }
        out.push_str("\r\n");
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&out);
    assert!(!unmappable);
    std::fs::write(wide, &bytes).unwrap();
    rows.len()
}

/// Clean table `t` without provenance, sorted by every column.
fn content(out: &Path, t: &str) -> DataFrame {
    let df = read(out, "clean", t);
    let df = df.drop_many(["source", "line"]);
    let cols: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    df.sort(cols, SortMultipleOptions::default()).unwrap()
}

#[test]
fn windows_1252_wide_export_gives_the_same_clean_tables_as_the_canonical_form() {
    let tmp = tempfile::tempdir().unwrap();
    let canon = tmp.path().join("canonical");
    simulate(
        &canon,
        "--seed 11 --municipalities 4 --employees-per-municipality 40 \
         --citizens-per-municipality 20",
    );
    let units = std::fs::read_to_string(canon.join("units.csv")).unwrap();
    assert!(units.contains("Rødovre"), "the test needs a Danish letter");
    let wide_dir = tmp.path().join("wide");
    std::fs::create_dir_all(&wide_dir).unwrap();
    for t in [
        "units",
        "intervention",
        "citizen_responses",
        "case_involvement",
    ] {
        std::fs::copy(
            canon.join(format!("{t}.csv")),
            wide_dir.join(format!("{t}.csv")),
        )
        .unwrap();
    }
    let records = write_wide_export(
        &canon.join("employee_responses.csv"),
        &wide_dir.join("eksport.csv"),
    );
    let bytes = std::fs::read(wide_dir.join("eksport.csv")).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "not Windows-1252");
    assert!(bytes.contains(&0xF8), "ø as Windows-1252");

    // Every employee item of the instrument (tie and person items, not the citizens').
    let ins = instrument();
    let items: Vec<String> = (ins.dimensions().iter())
        .chain([&ins.relevance_item])
        .chain(ins.srm_items.iter().chain(&ins.person_items))
        .map(|i| format!("{i:?}"))
        .collect();
    let study = demo_config_text(&[]);
    let wide_cfg = demo_config_text(&[(
        "[sources.employee_responses]\nfile = \"employee_responses\"\n",
        &format!(
            "[sources.employee_responses]\nfile = \"eksport.csv\"\nseparator = \";\"\n\
             decimal = \",\"\ncolumns = {{ wave = \"bølge\", respondent_id = \"id\", \
             municipality = \"kommune\", unit_id = \"enhed\" }}\n\
             [sources.employee_responses.wide]\npatterns = [\"{{item}}__{{target}}\", \"{{item}}\"]\n\
             items = [{}]\nempty_cells = \"keep\"\nnot_asked = [\"-\"]\n",
            items.join(", ")
        ),
    )]);
    assert_ne!(wide_cfg, study);
    let cfg_path = tmp.path().join("wide.toml");
    std::fs::write(&cfg_path, wide_cfg).unwrap();

    let run = |cfg: &Path, data: &Path, out: &Path| {
        let o = relcap()
            .args(["run", "-q", "--until", "clean", "--config"])
            .arg(cfg)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        ok(&o);
    };
    let (out_c, out_w) = (tmp.path().join("out_c"), tmp.path().join("out_w"));
    run(&repo().join("config/study.toml"), &canon, &out_c);
    run(&cfg_path, &wide_dir, &out_w);
    for t in [
        "units",
        "intervention",
        "employee_responses",
        "citizen_responses",
        "case_involvement",
    ] {
        let (a, b) = (content(&out_c, t), content(&out_w, t));
        assert_eq!(a.height(), b.height(), "{t}: row counts differ");
        assert!(a.equals_missing(&b), "{t} differs:\n{a}\n{b}");
    }
    let e = read(&out_w, "clean", "employee_responses");
    assert!(e.height() > 1000);
    let ing = summary(&out_w, "ingest");
    assert_eq!(
        ing["facts"]["input.employee_responses"]["encoding"],
        "windows-1252"
    );
    let wr = &ing["tables"]["employee_responses.wide_records"];
    assert_eq!(wr["rows_in"], records as u64);
    assert_eq!(wr["rows_out"], records as u64);
    let canon_rows = summary(&out_c, "ingest")["tables"]["employee_responses"]["rows_out"].clone();
    assert_eq!(ing["tables"]["employee_responses"]["rows_out"], canon_rows);
    assert!(ing["tables"]["employee_responses"]["excluded"]["not_asked"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(assert_every_table_balances(&out_w) >= 10);
    assert!(quarantine(&out_w, "ingest").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The catalogue of bad input, on a small hand-written wide export.

const UNITS: &str = "municipality,unit_id,work_group,manager_id\n\
                     Rødovre,U1,caseworkers,m1\nRødovre,U2,job_consultants,m2\n";
const CITIZENS: &str = "wave,citizen_id,municipality,case_id,item,value\n";
const INVOLVEMENT: &str = "wave,case_id,unit_id,lead\n";

/// A study folder with `units`, header-only citizen and case tables, and `files`.
fn study(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("units.csv"), UNITS).unwrap();
    std::fs::write(data.join("citizen_responses.csv"), CITIZENS).unwrap();
    std::fs::write(data.join("case_involvement.csv"), INVOLVEMENT).unwrap();
    for (n, b) in files {
        std::fs::write(data.join(n), b).unwrap();
    }
    tmp
}

/// A config for a wide employee export `file` with the extra `source` keys and `extra` sections.
fn wide_config(tmp: &Path, file: &str, source: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[study]\nname = \"x\"\ndata_dir = \"data\"\nout_dir = \"out\"\n\
         [privacy]\ndemo_key = \"k\"\n\
         [sources.citizen_responses]\nfile = \"citizen_responses\"\nallow_empty = true\n\
         [sources.case_involvement]\nfile = \"case_involvement\"\nallow_empty = true\n\
         [sources.employee_responses]\nfile = \"{file}\"\n\
         columns = {{ respondent_id = \"id\", municipality = \"kommune\", unit_id = \"enhed\", \
         wave = \"bølge\" }}\n{source}\n\
         [sources.employee_responses.wide]\npatterns = [\"{{item}}__{{target}}\", \"{{item}}\"]\n\
         items = [\"timely\", \"accurate\", \"srm_1\"]\n{extra}"
    );
    let p = tmp.join("study.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn run_clean(tmp: &Path, cfg: &Path) -> std::process::Output {
    relcap()
        .args(["run", "-q", "--until", "clean", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(tmp.join("out"))
        .output()
        .unwrap()
}

/// [`run_clean`], which must succeed; returns the output folder.
fn clean_ok(tmp: &Path, cfg: &Path) -> PathBuf {
    ok(&run_clean(tmp, cfg));
    tmp.join("out")
}

/// The quarantine row of a `timely__job_consultants` cell on `line` that is not a number.
fn timely_not_a_number(line: i64, value: &str) -> QRow {
    let column = Some("timely__job_consultants");
    q(
        "employee_responses",
        line,
        column,
        Some(value),
        "not_a_number",
    )
}

fn fails(tmp: &Path, cfg: &Path) -> String {
    let o = run_clean(tmp, cfg);
    assert!(!o.status.success(), "relcap should have failed");
    assert!(
        !tmp.join("out/ingest/employee_responses.parquet").exists(),
        "nothing is written before the error"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_bad_wide_record_gets_its_reason() {
    // Line by line (the header is line 1), semicolons, decimal point:
    //  2 r1 fine: 3 long rows
    //  3 r2 `3,5` is not a number with a decimal point; srm_1 = 7 is out of range (clean)
    //  4 ragged (one field short)
    //  5 r3 wave 2 in a file that declares wave 1
    //  6 empty id: all 3 long rows missing_required
    //  7 r4 unit U9 unknown (clean: unknown_reference for its 3 rows)
    //  8 r5 and 9 r5 again with a different timely answer: duplicate_conflict (clean)
    // 10 r6 a quoted remark over two lines with the separator inside; fine
    let csv =
        "bølge;id;kommune;enhed;timely__job_consultants;accurate__job_consultants;srm_1;note\n\
               1;r1;Rødovre;U1;4;5;2;\n\
               1;r2;Rødovre;U1;3,5;4;7;\n\
               1;rx;Rødovre;U1;4;5;2\n\
               2;r3;Rødovre;U1;4;5;2;\n\
               1;;Rødovre;U1;4;5;2;\n\
               1;r4;Rødovre;U9;4;5;2;\n\
               1;r5;Rødovre;U2;4;;2;\n\
               1;r5;Rødovre;U2;3;;2;\n\
               1;r6;Rødovre;U2;2;2;2;\"a;b\nc\"\n";
    let tmp = study(&[("eksport.csv", csv.as_bytes())]);
    let cfg = wide_config(
        tmp.path(),
        "eksport.csv",
        "separator = \";\"\nconstants = { wave = \"1\" }",
        "",
    );
    let out = clean_ok(tmp.path(), &cfg);
    const E: &str = "employee_responses";
    assert_eq!(
        quarantine(&out, "ingest"),
        vec![
            q(
                E,
                3,
                Some("timely__job_consultants"),
                Some("3,5"),
                "not_a_number"
            ),
            q(E, 4, None, Some("7 fields; the header has 8"), "ragged_row"),
            q(E, 5, Some("wave"), Some("2"), "wave_mismatch"),
            q(E, 6, Some("respondent_id"), None, "missing_required"),
        ]
    );
    let ing = summary(&out, "ingest");
    let c = &ing["tables"][E];
    // 8 well-formed records × 3 columns = 24 cells, 2 of them empty (r5's accurate twice);
    // plus the ragged record counted once.
    assert_eq!(c["rows_in"], 25);
    assert_eq!(c["excluded"]["empty_cell"], 2);
    assert_eq!(c["quarantined"]["not_a_number"], 1);
    assert_eq!(c["quarantined"]["ragged_row"], 1);
    assert_eq!(c["quarantined"]["wave_mismatch"], 3);
    assert_eq!(c["quarantined"]["missing_required"], 3);
    assert_eq!(c["rows_out"], 25 - 2 - 1 - 1 - 3 - 3);
    let wr = &ing["tables"]["employee_responses.wide_records"];
    assert_eq!(
        (wr["rows_in"].as_u64(), wr["rows_out"].as_u64()),
        (Some(9), Some(8))
    );
    let cl = summary(&out, "clean");
    let c = &cl["tables"][E];
    assert_eq!(c["quarantined"]["out_of_range"], 1);
    assert_eq!(c["quarantined"]["unknown_reference"], 3);
    assert_eq!(c["quarantined"]["duplicate_conflict"], 2);
    let clean_q: BTreeSet<(i64, String)> = quarantine(&out, "clean")
        .into_iter()
        .map(|r| (r.1, r.4))
        .collect();
    for want in [
        (3, "out_of_range"),
        (7, "unknown_reference"),
        (8, "duplicate_conflict"),
        (9, "duplicate_conflict"),
    ] {
        assert!(
            clean_q.contains(&(want.0, want.1.to_string())),
            "{want:?} in {clean_q:?}"
        );
    }
    // Danish letters intact; r5's identical srm_1 answers collapse to the first (line 8); r6's
    // record (with the two-line remark) is at line 10.
    let e = read(&out, "clean", E);
    assert!(strs(&e, "municipality")
        .iter()
        .all(|m| m.as_deref() == Some("Rødovre")));
    let lines: BTreeSet<i64> = e
        .column("line")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(lines, BTreeSet::from([2, 3, 8, 10]));
    assert_eq!(c["duplicates_collapsed"], 1);
    assert_every_table_balances(&out);
}

#[test]
fn decimal_comma_reads_3_5_and_rejects_a_point() {
    let csv = "bølge;id;kommune;enhed;timely__job_consultants;srm_1\n\
               1;r1;Rødovre;U1;3,5;2\n1;r2;Rødovre;U1;3.5;2,0\n";
    let tmp = study(&[("eksport.csv", csv.as_bytes())]);
    let cfg = wide_config(tmp.path(), "eksport.csv", "decimal = \",\"", "");
    let out = clean_ok(tmp.path(), &cfg);
    assert_eq!(
        quarantine(&out, "ingest"),
        vec![timely_not_a_number(3, "3.5")]
    );
    let e = read(&out, "ingest", "employee_responses");
    assert_eq!(floats(&e, "value"), vec![Some(3.5), Some(2.0), Some(2.0)]);
}

#[test]
fn undecodable_bytes_under_a_forced_encoding_are_quarantined_by_line() {
    // UTF-8 forced; line 3 has a stray 0xFF byte.
    let mut bytes = "bølge;id;kommune;enhed;timely__job_consultants\n1;r1;Rødovre;U1;4\n"
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(b"1;r2;R\xFFdovre;U1;4\n1;r3;R\xC3\xB8dovre;U1;5\n");
    let tmp = study(&[("eksport.csv", &bytes)]);
    let cfg = wide_config(tmp.path(), "eksport.csv", "encoding = \"utf-8\"", "");
    let out = clean_ok(tmp.path(), &cfg);
    let qr = quarantine(&out, "ingest");
    assert_eq!(qr.len(), 1);
    assert_eq!((qr[0].1, qr[0].4.as_str()), (3, "encoding"));
    let e = read(&out, "ingest", "employee_responses");
    assert_eq!(e.height(), 2);
    assert_every_table_balances(&out);
}

#[test]
fn header_only_and_empty_files_are_errors_or_empty_tables_by_setting() {
    let header = "bølge;id;kommune;enhed;timely__job_consultants\n";
    for content in [header.as_bytes(), b"".as_slice()] {
        let tmp = study(&[("eksport.csv", content)]);
        let cfg = wide_config(tmp.path(), "eksport.csv", "", "");
        let e = fails(tmp.path(), &cfg);
        assert!(
            e.contains("eksport.csv") && e.contains("allow_empty"),
            "{e}"
        );
        let cfg = wide_config(tmp.path(), "eksport.csv", "allow_empty = true", "");
        ok(&run_clean(tmp.path(), &cfg));
        let e = read(&tmp.path().join("out"), "ingest", "employee_responses");
        assert_eq!(e.height(), 0);
    }
}

#[test]
fn a_missing_required_column_or_an_unmatched_mapping_is_an_error_naming_file_and_column() {
    let csv = "bølge;id;kommune;timely__job_consultants\n1;r1;Rødovre;4\n";
    let tmp = study(&[("eksport.csv", csv.as_bytes())]);
    let cfg = wide_config(tmp.path(), "eksport.csv", "", "");
    let e = fails(tmp.path(), &cfg);
    assert!(
        e.contains("eksport.csv") && e.contains("`unit_id`") && e.contains("`enhed`"),
        "{e}"
    );
    let csv = "bølge;id;kommune;enhed;question_7\n1;r1;Rødovre;U1;4\n";
    let tmp = study(&[("eksport.csv", csv.as_bytes())]);
    let cfg = wide_config(tmp.path(), "eksport.csv", "", "");
    let e = fails(tmp.path(), &cfg);
    assert!(
        e.contains("eksport.csv") && e.contains("no column matches the wide mapping"),
        "{e}"
    );
}

#[test]
fn one_wave_split_over_two_files_and_a_constant_municipality() {
    let a = "id;enhed;timely__job_consultants\nr1;U1;4\n";
    let b = "id;enhed;timely__job_consultants\nr2;U2;5\n";
    let tmp = study(&[("del1.csv", a.as_bytes()), ("del2.csv", b.as_bytes())]);
    let cfg = wide_config(
        tmp.path(),
        "del1.csv",
        "more_files = [\"del2.csv\"]\nconstants = { wave = \"3\", municipality = \"Rødovre\" }",
        "",
    );
    let out = clean_ok(tmp.path(), &cfg);
    let e = read(&out, "clean", "employee_responses");
    // Rows are in pseudonym order, which depends on the key.
    let mut sources = strs(&e, "source");
    sources.sort();
    assert_eq!(
        sources,
        vec![Some("del1.csv".into()), Some("del2.csv".into())]
    );
    assert_eq!(strs(&e, "wave"), vec![Some("3".into()), Some("3".into())]);
    let ing = summary(&out, "ingest");
    assert_eq!(
        ing["facts"]["input.employee_responses"]["files"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_every_table_balances(&out);
}

#[test]
fn xlsx_named_sheet_is_read_like_a_csv() {
    let xlsx = std::fs::read(repo().join("tests/fixtures/exports/wide.xlsx")).unwrap();
    let tmp = study(&[("svar.xlsx", &xlsx)]);
    let cfg = wide_config(tmp.path(), "svar.xlsx", "sheet = \"Svar\"", "");
    let out = clean_ok(tmp.path(), &cfg);
    // See make_wide_xlsx.py: r2's timely is the text "3,5"; its accurate is empty; row 4 blank.
    assert_eq!(
        quarantine(&out, "ingest"),
        vec![timely_not_a_number(3, "3,5")]
    );
    let ing = summary(&out, "ingest");
    let c = &ing["tables"]["employee_responses"];
    assert_eq!(c["rows_in"], 9);
    assert_eq!(c["rows_out"], 7);
    assert_eq!(c["excluded"]["empty_cell"], 1);
    assert_eq!(ing["counts"]["employee_responses.blank_lines"], 1);
    let e = read(&out, "ingest", "employee_responses");
    let lines: Vec<_> = e
        .column("line")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(lines, vec![2, 2, 2, 3, 5, 5, 5]);
    assert_eq!(floats(&e, "value")[..3], [Some(4.0), Some(5.0), Some(2.0)]);
    assert!(strs(&e, "municipality")
        .iter()
        .all(|m| m.as_deref() == Some("Rødovre")));
    // The first sheet is not the data: without `sheet` the mapping matches nothing.
    let cfg = wide_config(tmp.path(), "svar.xlsx", "", "");
    let e = fails(tmp.path(), &cfg);
    assert!(e.contains("svar.xlsx"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Privacy audit.

/// Splits text into the tokens an id could hide in.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|t| !t.is_empty())
}

#[test]
fn no_output_file_holds_a_raw_id_or_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    simulate(
        &data,
        "--seed 5 --municipalities 3 --employees-per-municipality 60 \
         --citizens-per-municipality 60",
    );
    // Every raw person id of the simulated study, read from its CSV files.
    let mut raw: BTreeSet<String> = BTreeSet::new();
    for (file, cols) in [
        ("employee_responses.csv", vec!["respondent_id"]),
        ("citizen_responses.csv", vec!["citizen_id", "case_id"]),
        ("case_involvement.csv", vec!["case_id"]),
        ("units.csv", vec!["manager_id"]),
    ] {
        let csv = Csv::read(&data.join(file));
        let idx: Vec<usize> = cols.iter().map(|c| csv.col(c)).collect();
        for f in &csv.rows {
            for &i in &idx {
                if !f[i].is_empty() {
                    raw.insert(f[i].clone());
                }
            }
        }
    }
    assert!(raw.len() > 300, "{} raw ids", raw.len());
    let key = "audit-secret-key-7f3a9c";
    let out = tmp.path().join("out");
    let o = relcap()
        .env("RELCAP_PSEUDONYM_KEY", key)
        .args(["run", "-q", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .current_dir(repo())
        .output()
        .unwrap();
    ok(&o);
    let (mut parquet, mut text) = (0, 0);
    for p in &files(&out) {
        let bytes = std::fs::read(p).unwrap();
        let name = p.display().to_string();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "{name} holds the key"
        );
        if name.ends_with(".parquet") {
            parquet += 1;
            let df = relcap::io::read_parquet(p).unwrap();
            for c in df.columns() {
                let Ok(s) = c.cast(&DataType::String) else {
                    continue;
                };
                for v in s.str().unwrap().iter().flatten() {
                    for t in tokens(v) {
                        assert!(!raw.contains(t), "{name}, column {}: raw id {t}", c.name());
                    }
                }
            }
        } else {
            text += 1;
            let s = String::from_utf8_lossy(&bytes);
            for t in tokens(&s) {
                assert!(!raw.contains(t), "{name}: raw id {t}");
            }
        }
    }
    assert!(
        parquet >= 20 && text >= 6,
        "{parquet} parquet, {text} other files"
    );
}
