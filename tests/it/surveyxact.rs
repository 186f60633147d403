//! SurveyXact exports through the `relcap` binary: a simulated study exported as SurveyXact
//! would export it (one survey per wave; employees wave 1 as semicolon CSV in Windows-1252,
//! wave 2 as tab-separated UTF-16 with a byte-order mark, citizens as workbooks, the second
//! split over two Dataset sheets; "Ved ikke" coded 9 in wave 1 and 6 in wave 2) gives the same
//! clean tables, scores and results as the study's canonical tables; and each fault of an
//! export has its reason and line, or its error.
//!
//! The exporter is test code (below), not a `relcap simulate` option: an export is an input
//! format relcap reads, and writing it with code independent of the reader (its own CSV
//! quoting, encodings and a workbook written from the Office Open XML parts) tests the reader
//! against the format rather than against itself; users never need to write one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{
    assert_same_analysis, quarantine, read, repo, simulate, strs, summary, Csv, QRow,
};

const KEY: &str = "surveyxact-test-key-0123456789";

fn relcap() -> assert_cmd::Command {
    let mut c = crate::common::relcap();
    c.env("RELCAP_PSEUDONYM_KEY", KEY);
    c
}

const PERSON: [&str; 8] = [
    "srm_1",
    "srm_2",
    "srm_3",
    "srm_4",
    "srm_5",
    "srm_6",
    "wellbeing",
    "manager_satisfaction",
];
const TIE: [&str; 8] = [
    "frequent",
    "timely",
    "accurate",
    "problem_solving",
    "shared_goals",
    "shared_knowledge",
    "mutual_respect",
    "relevance",
];
const CITIZEN: [&str; 5] = ["cq_1", "cq_2", "cq_3", "cq_4", "cq_5"];

/// How one survey's export is written.
#[derive(Clone, Copy)]
enum Shape {
    /// `;`-separated, Windows-1252.
    SemicolonAnsi,
    /// Tab-separated UTF-16LE with a byte-order mark, structure with an empty trailing column.
    TabUtf16,
    /// A workbook; `split`: the dataset over two sheets.
    Workbook { split: bool },
}

/// One survey: header and rows of the dataset, structure rows, label rows.
struct Survey {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    structure: Vec<[String; 7]>,
    labels: Vec<[String; 3]>,
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The survey of one wave of `table` from the canonical long rows, with "Ved ikke" coded
/// `dont_know`. Canonical 9 (don't know) becomes that code.
fn survey(canon: &Csv, table: &str, wave: &str, groups: &[String], dont_know: &str) -> Survey {
    let employee = table == "employee_responses";
    let (id, extra) = if employee {
        ("respondent_id", "unit_id")
    } else {
        ("citizen_id", "case_id")
    };
    let background: [(&str, &str); 4] = if employee {
        [
            ("respondent", id),
            ("unit", extra),
            ("municipality", "municipality"),
            ("wave", "wave"),
        ]
    } else {
        [
            ("citizen", id),
            ("case", extra),
            ("municipality", "municipality"),
            ("wave", "wave"),
        ]
    };
    let mut variables: Vec<(String, String, Option<String>)> = vec![];
    if employee {
        for p in PERSON {
            variables.push((s(p), s(p), None));
        }
        for g in groups {
            for t in TIE {
                variables.push((format!("{t}__{g}"), s(t), Some(g.clone())));
            }
        }
    } else {
        for c in CITIZEN {
            variables.push((s(c), s(c), None));
        }
    }
    let col: BTreeMap<String, usize> = variables
        .iter()
        .enumerate()
        .map(|(i, v)| (v.0.clone(), i))
        .collect();
    let (wc, ic, tc, vc) = (
        canon.col("wave"),
        canon.col("item"),
        canon.header.iter().position(|h| h == "target_group"),
        canon.col("value"),
    );
    let mut records: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for r in canon.rows.iter().filter(|r| r[wc] == wave) {
        let rec = records.entry(r[canon.col(id)].clone()).or_insert_with(|| {
            let bg = background
                .iter()
                .map(|(_, c)| r[canon.col(c)].clone())
                .collect();
            (bg, vec![String::new(); variables.len()])
        });
        let name = match tc.map(|t| r[t].as_str()) {
            Some(g) if !g.is_empty() => format!("{}__{g}", r[ic]),
            _ => r[ic].clone(),
        };
        let v = if r[vc] == "9" {
            s(dont_know)
        } else {
            r[vc].clone()
        };
        rec.1[col[&name]] = v;
    }
    let mut header: Vec<String> = background.iter().map(|(n, _)| s(n)).collect();
    header.extend(variables.iter().map(|v| v.0.clone()));
    let rows = records
        .into_values()
        .map(|(mut bg, vals)| {
            bg.extend(vals);
            bg
        })
        .collect();
    let mut structure = vec![];
    for (n, _) in background {
        structure.push([
            s(n),
            s(n),
            s("Background"),
            s(""),
            format!("Baggrund: {n}"),
            s(""),
            s(""),
        ]);
    }
    let mut labels = vec![];
    for (name, item, group) in &variables {
        let text = match group {
            Some(g) => format!("Hvor ofte og hvor præcist samarbejder du med {g}? ({item})"),
            None => format!("Spørgsmål om din arbejdsplads ({item}); æ ø å"),
        };
        structure.push([
            name.clone(),
            name.clone(),
            s("Closed"),
            s("Single"),
            text,
            s(""),
            s(""),
        ]);
        let scale = [
            "Meget uenig",
            "Uenig",
            "Hverken/eller",
            "Enig",
            "Meget enig",
        ];
        for (k, l) in scale.iter().enumerate() {
            labels.push([name.clone(), (k + 1).to_string(), s(l)]);
        }
        labels.push([name.clone(), s(dont_know), s("Ved ikke")]);
    }
    Survey {
        header,
        rows,
        structure,
        labels,
    }
}

/// A CSV field quoted when it holds the separator, a quote or a line break.
fn field(v: &str, sep: char) -> String {
    if v.contains(sep) || v.contains('"') || v.contains('\n') {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn csv_text(header: Option<&[String]>, rows: &[Vec<String>], sep: char) -> String {
    let mut out = String::new();
    let line = |r: &[String]| {
        r.iter()
            .map(|v| field(v, sep))
            .collect::<Vec<_>>()
            .join(&sep.to_string())
    };
    if let Some(h) = header {
        out += &line(h);
        out += "\r\n";
    }
    for r in rows {
        out += &line(r);
        out += "\r\n";
    }
    out
}

fn encode(text: &str, shape: Shape) -> Vec<u8> {
    match shape {
        Shape::SemicolonAnsi => {
            let (b, _, bad) = encoding_rs::WINDOWS_1252.encode(text);
            assert!(!bad);
            b.into_owned()
        }
        _ => {
            let mut b = vec![0xFF, 0xFE];
            for u in text.encode_utf16() {
                b.extend(u.to_le_bytes());
            }
            b
        }
    }
}

const STRUCTURE_HEADER: [&str; 7] = [
    "questionName",
    "variableName",
    "questionType",
    "subType",
    "questionText",
    "choiceValue",
    "choiceText",
];

/// Writes `sv` as an export named `name` in `dir` (a folder, or `name.xlsx`).
fn write_export(dir: &Path, name: &str, sv: &Survey, shape: Shape) -> PathBuf {
    let structure: Vec<Vec<String>> = sv.structure.iter().map(|r| r.to_vec()).collect();
    let labels: Vec<Vec<String>> = sv.labels.iter().map(|r| r.to_vec()).collect();
    let sh: Vec<String> = STRUCTURE_HEADER.iter().map(|h| s(h)).collect();
    match shape {
        Shape::Workbook { split } => {
            let path = dir.join(format!("{name}.xlsx"));
            let mut sheets = vec![];
            let mut data: Vec<Vec<String>> = vec![sv.header.clone()];
            data.extend(sv.rows.iter().cloned());
            if split {
                // Respondent id on both sheets, the rest divided.
                let cut = sv.header.len() / 2;
                let second: Vec<Vec<String>> = data
                    .iter()
                    .map(|r| {
                        std::iter::once(r[0].clone())
                            .chain(r[cut..].iter().cloned())
                            .collect()
                    })
                    .collect();
                let first: Vec<Vec<String>> = data.iter().map(|r| r[..cut].to_vec()).collect();
                sheets.push(("Dataset".to_string(), first));
                sheets.push(("Dataset (2)".to_string(), second));
            } else {
                sheets.push(("Dataset".to_string(), data));
            }
            let mut st = vec![sh];
            st.extend(structure);
            sheets.push(("Structure".to_string(), st));
            sheets.push(("Labels".to_string(), labels));
            write_xlsx(&path, &sheets);
            path
        }
        _ => {
            let (sep, trailing) = match shape {
                Shape::SemicolonAnsi => (';', false),
                _ => ('\t', true),
            };
            let folder = dir.join(name);
            std::fs::create_dir_all(&folder).unwrap();
            let write = |f: &str, text: String| {
                std::fs::write(folder.join(f), encode(&text, shape)).unwrap();
            };
            write("dataset.csv", csv_text(Some(&sv.header), &sv.rows, sep));
            let mut sh = sh;
            let mut structure = structure;
            if trailing {
                // SurveyXact's UTF-16 export leaves an empty column at the end.
                sh.push(String::new());
                structure.iter_mut().for_each(|r| r.push(String::new()));
            }
            write("structure.csv", csv_text(Some(&sh), &structure, sep));
            write("labels.csv", csv_text(None, &labels, sep));
            folder
        }
    }
}

fn xml_escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A column letter (0 = A).
fn col_name(mut i: usize) -> String {
    let mut out = vec![];
    loop {
        out.push((b'A' + (i % 26) as u8) as char);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.iter().rev().collect()
}

/// A minimal Office Open XML workbook: integers as numbers, other cells as inline strings,
/// empty cells left out.
fn write_xlsx(path: &Path, sheets: &[(String, Vec<Vec<String>>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = ::zip::ZipWriter::new(f);
    let opt = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Stored);
    let mut put = |name: &str, text: String| {
        z.start_file(name, opt).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    };
    let n = sheets.len();
    let overrides: String = (1..=n)
        .map(|i| format!("<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"))
        .collect();
    put("[Content_Types].xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>{overrides}</Types>"));
    put("_rels/.rels", s("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"));
    let sheet_list: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "<sheet name=\"{}\" sheetId=\"{}\" r:id=\"rId{}\"/>",
                xml_escape(name),
                i + 1,
                i + 1
            )
        })
        .collect();
    put("xl/workbook.xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets>{sheet_list}</sheets></workbook>"));
    let rels: String = (1..=n)
        .map(|i| format!("<Relationship Id=\"rId{i}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"))
        .collect();
    put("xl/_rels/workbook.xml.rels", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">{rels}</Relationships>"));
    for (i, (_, rows)) in sheets.iter().enumerate() {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>");
        for (r, row) in rows.iter().enumerate() {
            x += &format!("<row r=\"{}\">", r + 1);
            for (c, v) in row.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let at = format!("{}{}", col_name(c), r + 1);
                if v.parse::<i64>().is_ok() {
                    x += &format!("<c r=\"{at}\"><v>{v}</v></c>");
                } else {
                    x += &format!(
                        "<c r=\"{at}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                        xml_escape(v)
                    );
                }
            }
            x += "</row>";
        }
        x += "</sheetData></worksheet>";
        put(&format!("xl/worksheets/sheet{}.xml", i + 1), x);
    }
    z.finish().unwrap();
}

/// The partner groups of a canonical study (its units' work groups), sorted.
fn groups(canonical: &Path) -> Vec<String> {
    let units = Csv::read(&canonical.join("units.csv"));
    let g = units.col("work_group");
    let mut v: Vec<String> = units.rows.iter().map(|r| r[g].clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// Writes the SurveyXact-shaped export of the two-wave canonical study in `canonical` into
/// `out` (see the module doc).
pub fn export_study(canonical: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for t in ["units.csv", "intervention.csv", "case_involvement.csv"] {
        std::fs::copy(canonical.join(t), out.join(t)).unwrap();
    }
    let g = groups(canonical);
    let e = Csv::read(&canonical.join("employee_responses.csv"));
    let c = Csv::read(&canonical.join("citizen_responses.csv"));
    let sv = |t: &Csv, table, wave, dk| survey(t, table, wave, &g, dk);
    write_export(
        out,
        "employees_wave1",
        &sv(&e, "employee_responses", "1", "9"),
        Shape::SemicolonAnsi,
    );
    write_export(
        out,
        "employees_wave2",
        &sv(&e, "employee_responses", "2", "6"),
        Shape::TabUtf16,
    );
    write_export(
        out,
        "citizens_wave1",
        &sv(&c, "citizen_responses", "1", "9"),
        Shape::Workbook { split: false },
    );
    write_export(
        out,
        "citizens_wave2",
        &sv(&c, "citizen_responses", "2", "6"),
        Shape::Workbook { split: true },
    );
}

/// A two-wave simulated study in `dir/canonical` and its export in `dir/export`.
fn study(dir: &Path) -> (PathBuf, PathBuf) {
    let canonical = simulate(
        &dir.join("canonical"),
        "--seed 22 --municipalities 2 --waves 2 --employees-per-municipality 40 \
         --citizens-per-municipality 20",
    );
    // Not simulated as far as the key is concerned: the export has no truth.json.
    std::fs::remove_file(canonical.join("truth.json")).unwrap();
    let export = dir.join("export");
    export_study(&canonical, &export);
    (canonical, export)
}

fn example_config() -> PathBuf {
    repo().join("config/examples/surveyxact.toml")
}

fn run(config: &Path, data: &Path, out: &Path) -> String {
    let o = relcap()
        .args(["run", "-q", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "relcap run failed:\n{err}");
    err
}

#[test]
fn an_export_gives_the_same_tables_scores_and_results_as_the_canonical_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let (canonical, export) = study(tmp.path());
    let plain = tmp.path().join("plain.toml");
    std::fs::write(&plain, "[study]\ndata_dir = \"data\"\nout_dir = \"out\"\n").unwrap();
    let (a, b) = (
        tmp.path().join("out_canonical"),
        tmp.path().join("out_export"),
    );
    run(&plain, &canonical, &a);
    let log = run(&example_config(), &export, &b);
    assert!(!log.contains("map to nothing"), "{log}");
    // Every export file was read as SurveyXact, with its encoding.
    let facts = &summary(&b, "ingest")["facts"];
    let files = facts["input.employee_responses"]["files"]
        .as_array()
        .unwrap();
    let enc: Vec<&str> = files
        .iter()
        .map(|f| f["encoding"].as_str().unwrap())
        .collect();
    assert_eq!(enc, ["windows-1252", "utf-16le"]);
    assert_eq!(files[0]["format"], "surveyxact");
    let ingest = summary(&b, "ingest");
    // "Ved ikke" coded 6 in wave 2 was read as don't know: clean counts the same missing.
    for t in ["employee_responses", "citizen_responses"] {
        let (x, y) = (summary(&a, "clean"), summary(&b, "clean"));
        assert_eq!(x["counts"], y["counts"], "{t}");
        assert_eq!(
            ingest["tables"][t]["quarantined"],
            serde_json::json!({}),
            "{t}"
        );
    }
    // The codebook: question texts decoded (Windows-1252 and UTF-16), the wave's own missing
    // code named with its label and reason, background and answer variables told apart.
    let book = read(&b, "ingest", "codebook");
    let find = |src: &str, var: &str| -> usize {
        let (s, v) = (strs(&book, "source"), strs(&book, "variable"));
        (0..book.height())
            .find(|&i| s[i].as_deref() == Some(src) && v[i].as_deref() == Some(var))
            .unwrap_or_else(|| panic!("{src} {var} not in the codebook"))
    };
    let (q, m, k) = (
        strs(&book, "question"),
        strs(&book, "missing_codes"),
        strs(&book, "kind"),
    );
    let i = find("employees_wave1/dataset.csv", "srm_1");
    assert_eq!(
        q[i].as_deref(),
        Some("Spørgsmål om din arbejdsplads (srm_1); æ ø å")
    );
    assert!(
        m[i].as_deref()
            .unwrap()
            .starts_with("9 = Ved ikke (dont_know): "),
        "{:?}",
        m[i]
    );
    let i = find("employees_wave2/dataset.csv", "srm_1");
    assert!(
        m[i].as_deref()
            .unwrap()
            .starts_with("6 = Ved ikke (dont_know): "),
        "{:?}",
        m[i]
    );
    assert!(q[i].as_deref().unwrap().contains("æ ø å"));
    let i = find("citizens_wave2.xlsx", "cq_5");
    assert_eq!(k[i].as_deref(), Some("item"));
    let i = find("employees_wave2/dataset.csv", "respondent");
    assert_eq!(k[i].as_deref(), Some("background"));
    assert_eq!(strs(&book, "distribution")[i], None);
    assert_same_analysis(&a, &b);
}

/// A one-wave employee export in `dir` (units and the other tables from a simulated study),
/// changed by `edit` (survey), written as `shape`; returns the study folder.
fn faulty(dir: &Path, edit: impl Fn(&mut Survey)) -> PathBuf {
    let (canonical, export) = study(dir);
    let e = Csv::read(&canonical.join("employee_responses.csv"));
    let mut sv = survey(&e, "employee_responses", "2", &groups(&canonical), "6");
    edit(&mut sv);
    std::fs::remove_dir_all(export.join("employees_wave2")).unwrap();
    write_export(&export, "employees_wave2", &sv, Shape::SemicolonAnsi);
    export
}

fn check(data: &Path) -> (i32, String) {
    let o = relcap()
        .args(["run", "-q", "--until", "ingest", "--config"])
        .arg(example_config())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(data.join("../out"))
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn each_fault_of_an_export_has_its_reason_and_line_or_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let col = |sv: &Survey, n: &str| sv.header.iter().position(|h| h == n).unwrap();
    // A code without a label (7 on srm_1, line 2), a respondent twice (lines 3 and 4 share the
    // id), a variable that maps to nothing (a warning).
    let data = faulty(&tmp.path().join("a"), |sv| {
        let (srm, id) = (col(sv, "srm_1"), col(sv, "respondent"));
        sv.rows[0][srm] = s("7");
        let dup = sv.rows[1][id].clone();
        sv.rows[2][id] = dup;
        // A missing label (case and spaces aside) whose reason has no missing code.
        let srm2 = col(sv, "srm_2");
        sv.rows[0][srm2] = s("8");
        sv.labels.push([s("srm_2"), s("8"), s(" ikke RELEVANT ")]);
        sv.header.push(s("comment"));
        sv.rows.iter_mut().for_each(|r| r.push(s("fri tekst")));
        sv.structure.push([
            s("comment"),
            s("comment"),
            s("Open"),
            s("String"),
            s("Andet?"),
            s(""),
            s(""),
        ]);
    });
    let (code, log) = check(&data);
    assert_eq!(code, 0, "exit {code}: {log}");
    let out = data.join("../out");
    let warnings = summary(&out, "ingest")["warnings"].to_string();
    assert!(
        warnings.contains("employees_wave2/dataset.csv: variables that map to nothing")
            && warnings.contains("comment"),
        "{warnings}"
    );
    let q: Vec<QRow> = quarantine(&out, "ingest");
    let want = [
        (
            "employee_responses",
            2,
            Some("srm_1"),
            Some("7"),
            "unlabelled_code",
        ),
        ("employee_responses", 3, None, None, "duplicate_respondent"),
        ("employee_responses", 4, None, None, "duplicate_respondent"),
    ];
    for (t, line, c, v, r) in want {
        assert!(
            q.iter().any(|x| x.0 == t
                && x.1 == line
                && x.2.as_deref() == c
                && (v.is_none() || x.3.as_deref() == v)
                && x.4 == r),
            "no quarantine row {t}:{line} {c:?} {r}: {q:?}"
        );
    }
    let counts = &summary(&out, "ingest")["tables"]["employee_responses"]["quarantined"];
    assert_eq!(counts["unlabelled_code"], 1);
    assert_eq!(counts["duplicate_respondent"], 2);
    let t = &summary(&out, "ingest")["tables"]["employee_responses"];
    assert_eq!(t["excluded"]["not_relevant"], 1, "{t}");

    // Labels that contradict the scale (a 7-point item): an error naming the variable.
    let data = faulty(&tmp.path().join("b"), |sv| {
        for (k, l) in [(7, "Helt enig"), (8, "Fuldstændig enig")] {
            sv.labels.push([s("srm_3"), k.to_string(), s(l)]);
        }
    });
    let (code, log) = check(&data);
    assert_ne!(code, 0);
    assert!(
        log.contains("`srm_3`") && log.contains("contradict") && log.contains("code 7"),
        "{log}"
    );

    // A background variable missing: an error naming it.
    let data = faulty(&tmp.path().join("c"), |sv| {
        let u = col(sv, "unit");
        sv.header.remove(u);
        sv.rows.iter_mut().for_each(|r| {
            r.remove(u);
        });
        sv.structure.retain(|r| r[1] != "unit");
    });
    let (code, log) = check(&data);
    assert_ne!(code, 0);
    assert!(
        log.contains("`unit_id`") && log.contains("employees_wave2"),
        "{log}"
    );

    // A structure that does not match the dataset's columns.
    let data = faulty(&tmp.path().join("d"), |sv| {
        sv.structure.retain(|r| r[1] != "wellbeing");
    });
    let (code, log) = check(&data);
    assert_ne!(code, 0);
    assert!(
        log.contains("does not match") && log.contains("wellbeing"),
        "{log}"
    );
}
