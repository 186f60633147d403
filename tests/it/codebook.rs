//! The item statistics that catch a mis-coded item, and the codebook: `relcap check` on the
//! demo study flags the frequency item in every wave when the study is run with the wrong
//! frequency scale, and flags nothing with the right one; the demo run's codebook holds every
//! source variable, no count below `privacy.min_cell`, and opens in headless Chromium with
//! every variable in its page and no console error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{output_within, read, relcap, repo, strs, write_demo_config};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The DOM of `page` after Chromium loaded it, and the console errors it logged; None without
/// Chromium (skipped with a message, as the report tests do).
fn chromium_dom(page: &Path) -> Option<(String, Vec<String>)> {
    if !Path::new(CHROMIUM).is_file() {
        assert!(
            std::env::var("RELCAP_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "RELCAP_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing"
        );
        eprintln!("SKIPPED: {CHROMIUM} is not installed; the browser check did not run");
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    let out = output_within(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("file://{}", page.display())),
        Duration::from_secs(120),
    )
    .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr
        .lines()
        .filter(|l| {
            (l.contains("CONSOLE") && l.to_lowercase().contains("error"))
                || l.contains("Uncaught")
                || l.contains("net::ERR_")
        })
        .map(str::to_string)
        .collect();
    Some((String::from_utf8_lossy(&out.stdout).into_owned(), errors))
}

/// The text for an HTML attribute value.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn the_demo_codebook_has_every_variable_and_opens_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = relcap()
        .current_dir(repo())
        .args(["run", "-q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let book = read(&out, "ingest", "codebook");
    let (table, source, variable) = (
        strs(&book, "table"),
        strs(&book, "source"),
        strs(&book, "variable"),
    );
    // The demo's long tables: one variable per item of each answer table.
    let ins = crate::common::instrument();
    let employee_items = ins.items().len() - ins.citizen_items.len();
    let n = |t: &str| table.iter().filter(|x| x.as_deref() == Some(t)).count();
    assert_eq!(n("employee_responses"), employee_items);
    assert_eq!(n("citizen_responses"), ins.citizen_items.len());
    // No figure from fewer than min_cell answers: every count is 0, >= 5, or written "<5".
    for c in ["distribution", "missing_codes"] {
        for text in strs(&book, c).into_iter().flatten() {
            for part in text.split("; ") {
                let count = part.rsplit(": ").next().unwrap();
                let ok = count == "<5" || count.parse::<u64>().is_ok_and(|k| k == 0 || k >= 5);
                assert!(ok, "{c}: {part}");
            }
        }
    }
    let page = out.join("report/codebook.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let Some((dom, errors)) = chromium_dom(&page) else {
        return;
    };
    assert!(errors.is_empty(), "console errors: {errors:?}");
    for i in 0..book.height() {
        let (s, v) = (
            source[i].as_deref().unwrap(),
            variable[i].as_deref().unwrap(),
        );
        let row = format!("data-source=\"{}\" data-variable=\"{}\"", attr(s), attr(v));
        assert!(dom.contains(&row), "{row} not in the page's DOM");
        assert!(html.contains(&row));
    }
    assert!(dom.contains("corrected item-total r"), "no item statistics");
}

/// `relcap check` of the demo data with the demo config changed by `replace`: (exit, stdout).
fn check_demo(replace: &[(&str, &str)]) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_demo_config(tmp.path(), "study.toml", replace);
    let o = relcap()
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(repo().join("data/demo"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code().unwrap_or(-1), text)
}

#[test]
fn the_wrong_frequency_scale_is_flagged_and_the_right_one_is_not() {
    let (code, text) = check_demo(&[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("rc wave 1 (n "), "{text}");
    assert!(!text.contains("FLAG"), "{text}");
    // The demo's frequency item was answered on the sufficiency scale; scoring it as a
    // frequency scale scrambles it: its correlation with the other dimensions falls to ~0.
    let wrong = [(
        "[instrument]\n",
        "[instrument]\nfrequency_scale = \"frequency\"\n",
    )];
    let (code, text) = check_demo(&wrong);
    assert_eq!(code, 0, "{text}");
    let flags: Vec<&str> = text.lines().filter(|l| l.contains("FLAG")).collect();
    assert_eq!(flags.len(), 3, "{text}");
    assert!(flags.iter().all(|l| l.contains("FLAG frequent")), "{text}");
    for wave in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("  rc wave {wave} ")))
            .unwrap();
        let r: f64 = line
            .split("frequent ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap();
        assert!(r.abs() < 0.1, "{line}");
    }
}
