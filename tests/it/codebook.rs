//! The item statistics that catch a mis-coded item, and the codebook: `relcap check` on the
//! demo study flags the frequency item in every wave when the study is run with the wrong
//! frequency scale, and flags nothing with the right one.

use crate::common::{relcap, repo, write_demo_config};

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
