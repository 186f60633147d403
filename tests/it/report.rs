//! The report stage end to end, through the binary: the demo study's reports are written, open
//! in headless Chromium without console errors and are not blank; a study with a deliberately
//! tiny unit and work group shows no figure from fewer than `privacy.min_cell` people, hides the
//! complementary cells, names no other municipality in a feedback report, and shows no
//! pseudonymised id anywhere.
//!
//! Chromium: `/usr/bin/chromium` (Debian package `chromium`). Without it the browser checks are
//! skipped with a message, unless `RELCAP_REQUIRE_CHROMIUM=1` (CI sets it), which makes its
//! absence a failure. `RELCAP_REPORT_SHOTS=DIR` keeps the screenshots in DIR.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{files, instrument, ok, output_within, read_json, relcap, repo, simulate, Csv};

/// How long Chromium may take to load and screenshot one page before it is killed.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(120);

/// `relcap run` with the demo config into `out` and `reports`, on the config's data or `data`.
pub(crate) fn run_with_reports(data: Option<&Path>, out: &Path, reports: &Path) {
    let mut cmd = relcap();
    cmd.args(["run", "-q", "--config"])
        .arg(repo().join("config/study.toml"));
    if let Some(data) = data {
        // An edited study is no longer the simulated one: the demo key's bytes come from the
        // environment (the demo key may pseudonymise only what `relcap simulate` wrote).
        cmd.env("RELCAP_PSEUDONYM_KEY", "relcap-demo-study-public-key")
            .arg("--data")
            .arg(data);
    }
    ok(&cmd
        .arg("--out")
        .arg(out)
        .arg("--reports")
        .arg(reports)
        .output()
        .unwrap());
}

/// The values of every `data-n="…"` attribute.
fn data_ns(html: &str) -> Vec<i64> {
    html.match_indices("data-n=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            let end = rest.find('"').unwrap();
            rest[..end].parse::<i64>().unwrap()
        })
        .collect()
}

/// The longest run of hexadecimal digits in `text`.
fn longest_hex_run(text: &str) -> usize {
    let (mut best, mut cur) = (0, 0);
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// Share of pixels that are not (nearly) white.
fn ink_share(png: &Path) -> f64 {
    let file = std::io::BufReader::new(std::fs::File::open(png).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut px = vec![0u8; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut px).unwrap();
    let ch = frame.color_type.samples();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut ink = 0usize;
    for p in px[..frame.buffer_size()].chunks(ch) {
        if p.iter().take(3.min(ch)).any(|&v| v < 235) {
            ink += 1;
        }
    }
    ink as f64 / (w * h) as f64
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium_available() -> bool {
    if Path::new(CHROMIUM).is_file() {
        return true;
    }
    assert!(
        std::env::var("RELCAP_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "RELCAP_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing (apt-get install chromium)"
    );
    eprintln!("SKIPPED: {CHROMIUM} is not installed; the browser checks did not run");
    false
}

/// Opens `page` in headless Chromium, takes a screenshot into `png`, and returns the console
/// errors Chromium logged.
fn screenshot(page: &Path, png: &Path, height: u32) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = output_within(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--enable-logging=stderr", "--v=0"])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("--window-size=1280,{height}"))
            .arg(format!("file://{}", page.display())),
        CHROMIUM_LIMIT,
    )
    .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        png.is_file(),
        "chromium wrote no screenshot of {}:\n{stderr}",
        page.display()
    );
    stderr
        .lines()
        .filter(|l| {
            (l.contains("CONSOLE") && (l.contains("ERROR") || l.to_lowercase().contains("error")))
                || l.contains("Uncaught")
                || l.contains("net::ERR_")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_reports_are_written_and_open_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let reports = tmp.path().join("reports");
    run_with_reports(None, &out, &reports);
    let report = reports.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    for section in [
        "The three hypotheses at a glance",
        "Forest plots",
        "before and after the intervention",
        "Collaboration networks",
        "Blind spots and hubs",
        "Reliability and aggregation",
        "Sample flow",
        "Methods",
    ] {
        assert!(html.contains(section), "report.html lacks {section:?}");
    }
    // Self-contained: nothing loaded from elsewhere (the SVG namespace URI is not a load).
    for loader in [
        "<script",
        "<link",
        "src=\"",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(
            !html.contains(loader),
            "report.html loads something: {loader}"
        );
    }
    assert!(
        html.matches("<svg").count() >= 4,
        "3 forest plots and the H3 plot"
    );
    for m in ["Haderslev", "Hedensted", "Randers", "Rødovre", "Stevns"] {
        assert!(reports.join(format!("municipalities/{m}.html")).is_file());
    }
    for h in ["H1", "H2", "H3"] {
        for ext in ["md", "tex", "csv"] {
            assert!(reports.join(format!("tables/{h}.{ext}")).is_file());
        }
    }
    // The pooled H1 estimate in the report is the one in results.json (the same as
    // results.parquet), to three decimals.
    let results = read_json(&out.join("model/results.json"));
    let h1 = results["hypotheses"][0]["estimate"].as_f64().unwrap();
    assert!(
        html.contains(&format!(">{h1:.3}</span>")),
        "H1 estimate {h1:.3} not in the report"
    );
    let summary = read_json(&out.join("report/summary.json"));
    // report.html, codebook.html, 9 tables, 5 municipalities.
    assert_eq!(summary["counts"]["files_written"], 16);

    if !chromium_available() {
        return;
    }
    let shots = std::env::var_os("RELCAP_REPORT_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    for (page, png, height) in [
        (report.clone(), shots.join("report.png"), 9000),
        (
            reports.join("municipalities/Randers.html"),
            shots.join("municipality-Randers.png"),
            5000,
        ),
    ] {
        let errors = screenshot(&page, &png, height);
        assert!(
            errors.is_empty(),
            "console errors in {}: {errors:#?}",
            page.display()
        );
        let ink = ink_share(&png);
        assert!(
            ink > 0.03,
            "{} looks blank: {:.1}% of its pixels are not white",
            png.display(),
            ink * 100.0
        );
    }
}

/// Appends `lines` to a CSV file.
fn append(path: &Path, lines: &[String]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn no_report_shows_a_small_cell_or_a_pseudonym() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    simulate(
        &data,
        "--seed 11 --municipalities 3 --employees-per-municipality 60 --waves 2 --work-groups 5 \
         --citizens-per-municipality 150",
    );
    // A tiny unit of a work group of its own: two respondents in both waves, rating every
    // other group and their manager.
    let units = Csv::read(&data.join("units.csv"));
    let (header, rows) = (&units.header, &units.rows);
    let col = |name: &str| units.col(name);
    let muni = rows[0][col("municipality")].to_string();
    let mut groups: Vec<String> = rows
        .iter()
        .filter(|r| r[col("municipality")] == muni)
        .map(|r| r[col("work_group")].to_string())
        .collect();
    groups.sort();
    groups.dedup();
    let unit_row: Vec<String> = header
        .iter()
        .map(|h| match h.as_str() {
            "municipality" => muni.clone(),
            "unit_id" => "TINY-U1".into(),
            "work_group" => "tiny_group".into(),
            "manager_id" => "MTINY".into(),
            "headcount" => "2".into(),
            _ => String::new(),
        })
        .collect();
    append(&data.join("units.csv"), &[unit_row.join(",")]);
    append(
        &data.join("intervention.csv"),
        &["TINY-U1,control,1".to_string()],
    );
    let eh = Csv::read(&data.join("employee_responses.csv")).header;
    let mut new = vec![];
    // The tie items: the seven dimensions and relevance.
    let ins = instrument();
    let mut items = ins.dimensions();
    items.push(ins.relevance_item.clone());
    for wave in 1..=2 {
        for (k, resp) in ["TINYRESP1", "TINYRESP2"].iter().enumerate() {
            let mut push = |target: &str, item: &str, value: usize| {
                let row: Vec<String> = eh
                    .iter()
                    .map(|h| match h.as_str() {
                        "wave" => wave.to_string(),
                        "respondent_id" => resp.to_string(),
                        "municipality" => muni.clone(),
                        "unit_id" => "TINY-U1".into(),
                        "target_group" => target.to_string(),
                        "item" => item.to_string(),
                        "value" => value.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                new.push(row.join(","));
            };
            for g in &groups {
                for (i, item) in items.iter().enumerate() {
                    push(g, item, 1 + (i + k + wave) % 5);
                }
            }
            for s in 1..=6 {
                push("", &format!("srm_{s}"), 1 + (s + k) % 5);
            }
        }
    }
    append(&data.join("employee_responses.csv"), &new);

    let out = tmp.path().join("out");
    let reports = tmp.path().join("reports");
    run_with_reports(Some(&data), &out, &reports);
    let min_cell = 5;
    let all = files(&reports);
    assert!(all.len() >= 1 + 9 + 3, "files: {all:?}");
    let munis: Vec<String> = rows
        .iter()
        .map(|r| r[col("municipality")].to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        // No pseudonym (32 hex digits) and no raw respondent id.
        assert!(
            longest_hex_run(&text) < 32,
            "{} has a run of {} hex digits",
            f.display(),
            longest_hex_run(&text)
        );
        assert!(
            !text.contains("TINYRESP"),
            "{} shows a person id",
            f.display()
        );
        // Every figure shown rests on at least min_cell people.
        for n in data_ns(&text) {
            assert!(n >= min_cell, "{}: a figure from {n} people", f.display());
        }
    }
    // Secondary suppression happened (the tiny unit takes another unit with it; neither is
    // named, see below), and the report's own audit passed.
    let counts = &read_json(&out.join("report/summary.json"))["counts"];
    assert!(
        counts["cells_suppressed_secondary"].as_u64().unwrap() > 0,
        "{counts}"
    );
    assert_eq!(counts["audit_unprotected"], 0, "{counts}");
    // The tiny group's ratings are suppressed in its municipality's feedback report, the tiny
    // unit is not named (a suppressed unit is not listed), nor the unit hidden with it.
    let page =
        std::fs::read_to_string(reports.join(format!("municipalities/{muni}.html"))).unwrap();
    let row_start = page
        .find("<th class=\"row\">tiny group</th>")
        .expect("tiny group row");
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(
        !row.contains("data-n="),
        "tiny group's ratings shown: {row}"
    );
    assert!(row.contains("data-suppressed"), "{row}");
    assert!(!page.contains("TINY-U1"), "a suppressed unit is named");
    assert!(
        page.contains("data-suppressed=\"units\""),
        "the note on units not listed"
    );
    // A feedback report names no other municipality.
    for m in &munis {
        let text =
            std::fs::read_to_string(reports.join(format!("municipalities/{m}.html"))).unwrap();
        for other in munis.iter().filter(|o| *o != m) {
            assert!(!text.contains(other.as_str()), "{m}.html names {other}");
        }
    }
}
