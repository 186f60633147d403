//! Disclosure control that survives an attack: the report stage's own audit
//! (`OUT/report/disclosure_audit.parquet`) finds every hidden figure of the demo study
//! protected (interval at least `privacy.protection_width` = 1.0 wide, n not pinned), among
//! them Hedensted's wave 1 benefits office → psychiatry, which the suppression before the
//! audit left pinned to [3.44, 3.91] by four margins.

use std::path::Path;

use crate::common::{floats, ints, ok, read, relcap, repo, strs};

/// `relcap run -q` with the demo config (on its data, or on `data`) into `out`; the reports go
/// to `out/report`.
fn run(data: Option<&Path>, out: &Path) {
    let mut cmd = relcap();
    cmd.args(["run", "-q", "--config"])
        .arg(repo().join("config/study.toml"));
    if let Some(data) = data {
        cmd.env("RELCAP_PSEUDONYM_KEY", "relcap-demo-study-public-key")
            .arg("--data")
            .arg(data);
    }
    ok(&cmd
        .arg("--out")
        .arg(out)
        .arg("--reports")
        .arg(out.join("report"))
        .output()
        .unwrap());
}

/// One row of the audit.
#[derive(Debug)]
struct Row {
    municipality: String,
    page: String,
    table: String,
    figure: String,
    lo: f64,
    hi: f64,
    n_lo: i64,
    n_hi: i64,
    protected: bool,
}

fn audit_rows(out: &Path) -> Vec<Row> {
    let df = read(out, "report", "disclosure_audit");
    let s = |c| strs(&df, c);
    let (m, p, t, f) = (s("municipality"), s("page"), s("table"), s("figure"));
    let (lo, hi) = (floats(&df, "interval_lo"), floats(&df, "interval_hi"));
    let (nl, nh) = (ints(&df, "n_lo"), ints(&df, "n_hi"));
    let prot: Vec<Option<bool>> = df
        .column("protected")
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .collect();
    (0..df.height())
        .map(|i| Row {
            municipality: m[i].clone().unwrap(),
            page: p[i].clone().unwrap(),
            table: t[i].clone().unwrap(),
            figure: f[i].clone().unwrap(),
            lo: lo[i].unwrap(),
            hi: hi[i].unwrap(),
            n_lo: nl[i].unwrap(),
            n_hi: nh[i].unwrap(),
            protected: prot[i].unwrap(),
        })
        .collect()
}

/// Every hidden figure is protected: at least 1.0 wide, its n range not pinned and reaching
/// at least 3 (or at least `min_cell` = 5).
fn assert_all_protected(rows: &[Row], what: &str) {
    let bad: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            !r.protected
                || r.hi - r.lo < 1.0 - 1e-9
                || !(r.n_lo >= 5 || (r.n_hi > r.n_lo && r.n_hi >= 3))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} audited figures are not protected, e.g. {:#?}",
        bad.len(),
        rows.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn the_demo_reports_pass_the_attackers_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run(None, &out);
    let rows = audit_rows(&out);
    assert!(!rows.is_empty(), "the demo study hides some figures");
    // The cell of the issue is audited, on both files that show it and across all files.
    let cell: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.municipality == "Hedensted"
                && r.table == "network wave 1"
                && r.figure == "benefits office → psychiatry"
        })
        .collect();
    let pages: Vec<&str> = cell.iter().map(|r| r.page.as_str()).collect();
    assert_eq!(
        pages,
        vec!["all files", "municipalities/Hedensted.html", "report.html"]
    );
    for r in &cell {
        assert!(
            r.protected && r.hi - r.lo >= 1.0,
            "Hedensted wave 1 benefits office → psychiatry is pinned to [{:.2}, {:.2}]",
            r.lo,
            r.hi
        );
    }
    assert_all_protected(&rows, "demo");
}
