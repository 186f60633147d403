//! `relcap bench` on the demo study only (the national study and power are skipped: a test must
//! not take minutes, and speed targets are measured by the benchmark itself, never asserted in
//! a test). Checks that every stage is measured in its own process, that the measurements are
//! plausible, and that the rerun after a model setting ran only `model` and `report`.

use std::time::Duration;

use crate::common::{read_json, relcap, repo};

#[test]
fn bench_measures_every_stage_of_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let out = relcap()
        // Seven runs of the demo study, one after the other.
        .timeout(Duration::from_secs(900))
        .current_dir(repo())
        .args([
            "bench",
            "--skip-national",
            "--power-replications",
            "0",
            "--dir",
        ])
        .arg(tmp.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("| clean |"), "{text}");
    let report = read_json(&tmp.path().join("bench.json"));
    let studies = report["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 1);
    let demo = &studies[0];
    assert_eq!(demo["study"], "demo");
    let stages: Vec<&str> = demo["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "demo_ingest",
            "demo_clean",
            "demo_score",
            "demo_link",
            "demo_model",
            "demo_report"
        ]
    );
    for m in demo["stages"].as_array().unwrap() {
        let wall = m["wall_s"].as_f64().unwrap();
        let peak = m["peak_rss_mib"].as_f64().unwrap();
        // Any process running polars holds more than a MiB and takes some time.
        assert!(wall > 0.0 && peak > 1.0, "{m}");
    }
    // The per-stage runs and the end-to-end run wrote the same study.
    let e2e = demo["end_to_end"]["wall_s"].as_f64().unwrap();
    assert!(e2e > 0.0);
    // The manifest after the rerun: only model and report ran.
    let manifest = read_json(&tmp.path().join("demo/out/manifest.json"));
    assert_eq!(manifest["ran"], serde_json::json!(["model", "report"]));
    assert!(demo["input_bytes"].as_u64().unwrap() > 1_000_000);
    // relcap check of the study, measured and compared with ingest and clean.
    assert_eq!(demo["check"]["step"], "demo_check");
    assert!(demo["check"]["wall_s"].as_f64().unwrap() > 0.0);
    assert!(demo["check_share"].as_f64().unwrap() > 0.0);
    assert!(text.contains("| check ("), "{text}");
    assert!(report["power"].is_null() && report["h3_lmm"].is_null());
}
