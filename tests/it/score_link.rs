//! The `score` and `link` stages end to end through the `relcap` binary, on a tiny study written
//! by this test as clean-stage Parquet (the exact schema the clean stage writes). Every expected
//! value is computed by hand in the comments.
//!
//! The study: municipality M; units u1 (group A: respondents r1, r2, r3), u2 (group B: r4, r5),
//! u3 (group C: r6, a unit of one) and u4 (group D: nobody answered). Dimensions in instrument
//! order: frequent, timely, accurate, problem_solving | shared_goals, shared_knowledge,
//! mutual_respect. `-` is an unanswered item (a row with an empty value).
//!
//! Wave 1 ties (rc = mean of answered dimensions when ≥ 5 of 7):
//!   r1→A  5 5 5 5 5 5 5            rc 5     within-group
//!   r1→B  4 4 4 4 5 5 5  rel 5     rc 31/7, com 4, rel 5
//!   r1→C  3 3 3 3 3 - -  rel 4     rc 3 (5 answered), com 3, rel sub-score none (1 of 3)
//!   r2→B  2 2 2 2 - - -  rel 3     4 answered → rc none (tie_too_few_items), com 2
//!   r2→C  4 4 4 4 4 4 4  rel 5     rc 4
//!   r3→A  3 3 3 3 3 3 3            rc 3     within-group (r3 has no between-group tie)
//!   r4→A  2 ×7           rel 5     rc 2
//!   r4→C  5 ×7           rel 4     rc 5
//!   r5→A  3 ×7           rel 4     rc 3
//!   r6→A  1 ×7           rel 2     rc 1
//!   r6→B  4 ×7           rel 4     rc 4
//! Respondent RCap: r1 (31/7 + 3)/2 = 26/7; r2 4; r3 none; r4 (2 + 5)/2 = 3.5; r5 3;
//! r6 (1 + 4)/2 = 2.5.
//! SRM (ceil(6/2) = 3 items needed): r1 4 4 4 4 - - → 4; r2 2 2 - - - - → none (2 of 6);
//! r3 3 3 3 - - - → 3 (3 of 6); r4 5 ×6 → 5; r5 no SRM rows → none; r6 4 ×6 → 4.
//! Leave-one-out SRM: u1 r1 → r3's 3 (n 1); r2 (no SRM) → (4 + 3)/2 = 3.5 (n 2); r3 → 4 (n 1);
//! u2 r4 → nobody else has one → none (n 0); r5 (none) → r4's 5 (n 1); u3 r6 → none (unit of 1).
//! Wave 2: r1→B 5 ×7 (rcap 5), r4→A 3 ×7 (rcap 3). Wave 3: r1→B 4 ×7 (rcap 4).
//!
//! Dyads, wave 1: A→A (4, n 2, sd √2, within); A→B 31/7 (n_ties 2, n_raters 1, relevance
//! (5 + 3)/2 = 4); A→C (3 + 4)/2 = 3.5 (relevance 4.5); B→A (2 + 3)/2 = 2.5 (relevance 4.5);
//! B→C 5 (relevance 4); C→A 1 (relevance 2); C→B 4 (relevance 4).
//!
//! Citizens (cq_1..cq_5, quality when ≥ ceil(5/2) = 3 answered): c1/k1 5 4 4 - - → 13/3;
//! c2/k2 5 4 - - - → none; c3/k3 3 ×5 → 3; c4/k4 4 ×5 → 4; c5/k5 2 ×5 → 2; c7/k7 3 3 3 → 3;
//! c8/k8 4 4 4 - - → 4.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use relcap::io::{hash_file, read_parquet, write_parquet, ParquetMeta};

use crate::common::{instrument, ok, read_json, relcap, repo, simulate, summary};

#[derive(Default)]
struct Answers {
    wave: Vec<i64>,
    municipality: Vec<String>,
    unit_id: Vec<String>,
    work_group: Vec<String>,
    respondent_id: Vec<String>,
    target_group: Vec<Option<String>>,
    item: Vec<String>,
    item_kind: Vec<String>,
    value: Vec<Option<f64>>,
}

impl Answers {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        wave: i64,
        unit: &str,
        group: &str,
        resp: &str,
        target: Option<&str>,
        item: &str,
        kind: &str,
        value: Option<f64>,
    ) {
        self.wave.push(wave);
        self.municipality.push("M".into());
        self.unit_id.push(unit.into());
        self.work_group.push(group.into());
        self.respondent_id.push(resp.into());
        self.target_group.push(target.map(String::from));
        self.item.push(item.into());
        self.item_kind.push(kind.into());
        self.value.push(value);
    }

    #[allow(clippy::too_many_arguments)]
    fn tie(
        &mut self,
        wave: i64,
        unit: &str,
        group: &str,
        resp: &str,
        target: &str,
        dims: [Option<f64>; 7],
        relevance: Option<f64>,
    ) {
        for (d, v) in instrument().dimensions().iter().zip(dims) {
            self.row(wave, unit, group, resp, Some(target), d, "tie", v);
        }
        if relevance.is_some() {
            self.row(
                wave,
                unit,
                group,
                resp,
                Some(target),
                "relevance",
                "tie",
                relevance,
            );
        }
    }

    fn srm(&mut self, wave: i64, unit: &str, group: &str, resp: &str, v: [Option<f64>; 6]) {
        for (j, v) in v.into_iter().enumerate() {
            self.row(
                wave,
                unit,
                group,
                resp,
                None,
                &format!("srm_{}", j + 1),
                "person",
                v,
            );
        }
    }

    fn frame(self) -> DataFrame {
        let n = self.wave.len();
        let reason: Vec<Option<&str>> = self
            .value
            .iter()
            .map(|v| v.is_none().then_some("empty"))
            .collect();
        df!(
            "wave" => self.wave,
            "municipality" => self.municipality,
            "unit_id" => self.unit_id,
            "work_group" => self.work_group,
            "respondent_id" => self.respondent_id,
            "target_group" => self.target_group,
            "item" => self.item,
            "item_kind" => self.item_kind,
            "value" => self.value,
            "missing_reason" => reason,
            "source" => vec!["employee_responses.csv"; n],
            "line" => (2..n as i64 + 2).collect::<Vec<_>>(),
        )
        .unwrap()
    }
}

fn all(v: f64) -> [Option<f64>; 7] {
    [Some(v); 7]
}

fn employee_answers() -> Answers {
    let s = Some;
    let mut a = Answers::default();
    a.tie(1, "u1", "A", "r1", "A", all(5.0), None);
    a.tie(
        1,
        "u1",
        "A",
        "r1",
        "B",
        [s(4.), s(4.), s(4.), s(4.), s(5.), s(5.), s(5.)],
        s(5.),
    );
    a.tie(
        1,
        "u1",
        "A",
        "r1",
        "C",
        [s(3.), s(3.), s(3.), s(3.), s(3.), None, None],
        s(4.),
    );
    a.srm(1, "u1", "A", "r1", [s(4.), s(4.), s(4.), s(4.), None, None]);
    a.row(1, "u1", "A", "r1", None, "wellbeing", "person", s(3.));
    a.row(
        1,
        "u1",
        "A",
        "r1",
        None,
        "manager_satisfaction",
        "person",
        None,
    );
    a.tie(
        1,
        "u1",
        "A",
        "r2",
        "B",
        [s(2.), s(2.), s(2.), s(2.), None, None, None],
        s(3.),
    );
    a.tie(1, "u1", "A", "r2", "C", all(4.0), s(5.));
    a.srm(1, "u1", "A", "r2", [s(2.), s(2.), None, None, None, None]);
    a.tie(1, "u1", "A", "r3", "A", all(3.0), None);
    a.srm(1, "u1", "A", "r3", [s(3.), s(3.), s(3.), None, None, None]);
    a.tie(1, "u2", "B", "r4", "A", all(2.0), s(5.));
    a.tie(1, "u2", "B", "r4", "C", all(5.0), s(4.));
    a.srm(1, "u2", "B", "r4", [s(5.); 6]);
    a.tie(1, "u2", "B", "r5", "A", all(3.0), s(4.));
    a.row(1, "u2", "B", "r5", None, "wellbeing", "person", s(4.));
    a.tie(1, "u3", "C", "r6", "A", all(1.0), s(2.));
    a.tie(1, "u3", "C", "r6", "B", all(4.0), s(4.));
    a.srm(1, "u3", "C", "r6", [s(4.); 6]);
    a.tie(2, "u1", "A", "r1", "B", all(5.0), None);
    a.tie(2, "u2", "B", "r4", "A", all(3.0), None);
    a.tie(3, "u1", "A", "r1", "B", all(4.0), None);
    // Two rows the score stage cannot use (clean would normally have quarantined them):
    // a tie item without a partner group and an item the instrument does not declare.
    a.row(1, "u2", "B", "r5", None, "timely", "tie", s(3.));
    a.row(1, "u2", "B", "r5", None, "foo", "person", s(3.));
    a
}

fn citizens() -> DataFrame {
    let mut wave = vec![];
    let mut citizen = vec![];
    let mut case = vec![];
    let mut item = vec![];
    let mut value: Vec<Option<f64>> = vec![];
    let mut add = |c: &str, k: &str, v: [Option<f64>; 5]| {
        for (j, v) in v.into_iter().enumerate() {
            wave.push(1i64);
            citizen.push(c.to_string());
            case.push(k.to_string());
            item.push(format!("cq_{}", j + 1));
            value.push(v);
        }
    };
    let s = Some;
    add("c1", "k1", [s(5.), s(4.), s(4.), None, None]);
    add("c2", "k2", [s(5.), s(4.), None, None, None]);
    add("c3", "k3", [s(3.); 5]);
    add("c4", "k4", [s(4.); 5]);
    add("c5", "k5", [s(2.); 5]);
    add("c7", "k7", [s(3.), s(3.), s(3.), None, None]);
    add("c8", "k8", [s(4.), s(4.), s(4.), None, None]);
    let n = wave.len();
    let reason: Vec<Option<&str>> = value
        .iter()
        .map(|v| v.is_none().then_some("empty"))
        .collect();
    df!(
        "wave" => wave,
        "municipality" => vec!["M"; n],
        "citizen_id" => citizen,
        "case_id" => case,
        "item" => item,
        "value" => value,
        "missing_reason" => reason,
        "source" => vec!["citizen_responses.csv"; n],
        "line" => (2..n as i64 + 2).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn involvement() -> DataFrame {
    // k1: u1 (A, lead) + u2 (B)            → included
    // k2: u1 (lead) + u3 (C)               → no_citizen_quality (c2 has too few items)
    // k3: u1 (lead) only                   → fewer_than_two_groups
    // k4: u3 (C, lead) + u4 (D)            → no_defined_dyad (C→D, D→C undefined)
    // k5: u2 + u3, no lead                 → no_lead_unit
    // k6: u1 (lead) + u2 (lead)            → several_lead_units
    // k8: u1 (lead) + u2 + u4              → included, 2 of 6 pairs defined
    // (k7 has a citizen but no involvement → not_in_case_involvement)
    let rows = [
        ("k1", "u1", true, "A"),
        ("k1", "u2", false, "B"),
        ("k2", "u1", true, "A"),
        ("k2", "u3", false, "C"),
        ("k3", "u1", true, "A"),
        ("k4", "u3", true, "C"),
        ("k4", "u4", false, "D"),
        ("k5", "u2", false, "B"),
        ("k5", "u3", false, "C"),
        ("k6", "u1", true, "A"),
        ("k6", "u2", true, "B"),
        ("k8", "u1", true, "A"),
        ("k8", "u2", false, "B"),
        ("k8", "u4", false, "D"),
    ];
    let n = rows.len();
    df!(
        "wave" => vec![1i64; n],
        "case_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "unit_id" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "lead" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "municipality" => vec!["M"; n],
        "work_group" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "source" => vec!["case_involvement.csv"; n],
        "line" => (2..n as i64 + 2).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn write_clean(out: &Path, employee: DataFrame) {
    let meta = ParquetMeta::stage("clean");
    let clean = out.join("clean");
    let mut units = df!(
        "municipality" => ["M", "M", "M", "M"],
        "unit_id" => ["u1", "u2", "u3", "u4"],
        "work_group" => ["A", "B", "C", "D"],
        "manager_id" => [Some("m1"), Some("m2"), Some("m3"), None],
        "headcount" => [Some(4i64), Some(3), None, Some(2)],
    )
    .unwrap();
    write_parquet(&mut units, &clean.join("units.parquet"), &meta).unwrap();
    let mut intervention = df!(
        "unit_id" => ["u1", "u2"],
        "arm" => ["intervention", "control"],
        "after_wave" => [1i64, 1],
    )
    .unwrap();
    write_parquet(
        &mut intervention,
        &clean.join("intervention.parquet"),
        &meta,
    )
    .unwrap();
    let mut employee = employee;
    write_parquet(
        &mut employee,
        &clean.join("employee_responses.parquet"),
        &meta,
    )
    .unwrap();
    write_parquet(
        &mut citizens(),
        &clean.join("citizen_responses.parquet"),
        &meta,
    )
    .unwrap();
    write_parquet(
        &mut involvement(),
        &clean.join("case_involvement.parquet"),
        &meta,
    )
    .unwrap();
}

fn config(dir: &Path, out: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.join("study.toml");
    std::fs::write(
        &cfg,
        format!(
            "[study]\nname = \"tiny\"\ndata_dir = {:?}\nout_dir = {:?}\n\
             [privacy]\ndemo_key = \"test-only-key\"\n",
            data.display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

fn run_score_link(cfg: &Path) -> std::process::Output {
    relcap()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--from", "score", "--until", "link", "-q"])
        .output()
        .unwrap()
}

/// A study folder with clean outputs written, scored and linked.
fn study() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write_clean(&out, employee_answers().frame());
    let cfg = config(dir.path(), &out);
    ok(&run_score_link(&cfg));
    (dir, out)
}

/// The row of `df` whose columns equal the given values (as text), which must be unique.
fn row(df: &DataFrame, key: &[(&str, &str)]) -> usize {
    let hits: Vec<usize> = (0..df.height())
        .filter(|&i| {
            key.iter().all(|(c, v)| {
                df.column(c)
                    .unwrap()
                    .as_materialized_series()
                    .str_value(i)
                    .unwrap()
                    == *v
            })
        })
        .collect();
    assert_eq!(hits.len(), 1, "key {key:?} matches rows {hits:?}");
    hits[0]
}

fn f(df: &DataFrame, key: &[(&str, &str)], col: &str) -> Option<f64> {
    let i = row(df, key);
    df.column(col).unwrap().f64().unwrap().get(i)
}

fn int(df: &DataFrame, key: &[(&str, &str)], col: &str) -> Option<i64> {
    let i = row(df, key);
    df.column(col).unwrap().i64().unwrap().get(i)
}

fn text(df: &DataFrame, key: &[(&str, &str)], col: &str) -> Option<String> {
    let i = row(df, key);
    df.column(col)
        .unwrap()
        .str()
        .unwrap()
        .get(i)
        .map(String::from)
}

fn flag(df: &DataFrame, key: &[(&str, &str)], col: &str) -> Option<bool> {
    let i = row(df, key);
    df.column(col).unwrap().bool().unwrap().get(i)
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("expected {b}, got none"));
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn ties_by_hand() {
    let (_dir, out) = study();
    let t = read_parquet(&out.join("score/ties.parquet")).unwrap();
    let k = |r: &'static str, g: &'static str| {
        vec![("wave", "1"), ("respondent_id", r), ("target_group", g)]
    };
    close(f(&t, &k("r1", "B"), "rc"), 31.0 / 7.0);
    close(f(&t, &k("r1", "B"), "rc_communication"), 4.0);
    close(f(&t, &k("r1", "B"), "rc_relationship"), 5.0);
    close(f(&t, &k("r1", "B"), "relevance"), 5.0);
    // 5 of 7 answered: scored; relationship sub-score needs all 3 of its items.
    close(f(&t, &k("r1", "C"), "rc"), 3.0);
    assert_eq!(int(&t, &k("r1", "C"), "n_items"), Some(5));
    close(f(&t, &k("r1", "C"), "rc_communication"), 3.0);
    assert_eq!(f(&t, &k("r1", "C"), "rc_relationship"), None);
    assert_eq!(int(&t, &k("r1", "C"), "rc_relationship_n"), Some(1));
    // 4 of 7 answered: no tie score (the 5-of-7 rule), communication sub-score still 2.
    assert_eq!(f(&t, &k("r2", "B"), "rc"), None);
    assert_eq!(int(&t, &k("r2", "B"), "n_items"), Some(4));
    close(f(&t, &k("r2", "B"), "rc_communication"), 2.0);
    assert_eq!(f(&t, &k("r2", "B"), "shared_goals"), None);
    close(f(&t, &k("r2", "B"), "timely"), 2.0);
    // Within-group ties are kept and flagged.
    assert_eq!(flag(&t, &k("r1", "A"), "within_group"), Some(true));
    assert_eq!(flag(&t, &k("r1", "B"), "within_group"), Some(false));
    // 11 ties in wave 1, 2 in wave 2, 1 in wave 3.
    assert_eq!(t.height(), 14);
}

#[test]
fn respondents_by_hand() {
    let (_dir, out) = study();
    let r = read_parquet(&out.join("score/respondents.parquet")).unwrap();
    let k = |id: &'static str| vec![("wave", "1"), ("respondent_id", id)];
    // Within-group ties are left out of RCap: r1 = (31/7 + 3)/2 = 26/7, not (5 + 31/7 + 3)/3.
    close(f(&r, &k("r1"), "rcap"), 26.0 / 7.0);
    assert_eq!(int(&r, &k("r1"), "n_ties"), Some(2));
    assert_eq!(int(&r, &k("r1"), "n_ties_within"), Some(1));
    // r2's tie to B has no score (4 of 7): RCap from the tie to C alone.
    close(f(&r, &k("r2"), "rcap"), 4.0);
    assert_eq!(int(&r, &k("r2"), "n_ties"), Some(1));
    assert_eq!(int(&r, &k("r2"), "n_ties_unscored"), Some(1));
    // r3 has only a within-group tie.
    assert_eq!(f(&r, &k("r3"), "rcap"), None);
    assert_eq!(int(&r, &k("r3"), "n_ties_within"), Some(1));
    // SRM: 4 of 6 → 4; 2 of 6 → none; 3 of 6 → 3 (ceil(6/2) = 3).
    close(f(&r, &k("r1"), "srm"), 4.0);
    assert_eq!(f(&r, &k("r2"), "srm"), None);
    assert_eq!(int(&r, &k("r2"), "srm_n_items"), Some(2));
    close(f(&r, &k("r3"), "srm"), 3.0);
    // Leave-one-out.
    close(f(&r, &k("r1"), "srm_others"), 3.0);
    assert_eq!(int(&r, &k("r1"), "srm_others_n"), Some(1));
    close(f(&r, &k("r2"), "srm_others"), 3.5);
    assert_eq!(int(&r, &k("r2"), "srm_others_n"), Some(2));
    close(f(&r, &k("r3"), "srm_others"), 4.0);
    assert_eq!(f(&r, &k("r4"), "srm_others"), None);
    close(f(&r, &k("r5"), "srm_others"), 5.0);
    assert_eq!(f(&r, &k("r6"), "srm_others"), None);
    assert_eq!(int(&r, &k("r6"), "srm_others_n"), Some(0));
    // Person items as columns.
    close(f(&r, &k("r1"), "wellbeing"), 3.0);
    assert_eq!(f(&r, &k("r1"), "manager_satisfaction"), None);
    close(f(&r, &k("r5"), "wellbeing"), 4.0);
    close(f(&r, &k("r1"), "srm_2"), 4.0);
    // 6 respondents in wave 1, r1 and r4 in wave 2, r1 in wave 3.
    assert_eq!(r.height(), 9);
}

#[test]
fn dyads_units_citizens_by_hand() {
    let (_dir, out) = study();
    let d = read_parquet(&out.join("score/dyads.parquet")).unwrap();
    let k = |g: &'static str, h: &'static str| {
        vec![("wave", "1"), ("work_group", g), ("target_group", h)]
    };
    close(f(&d, &k("A", "A"), "mean"), 4.0);
    close(f(&d, &k("A", "A"), "sd"), 2f64.sqrt());
    assert_eq!(flag(&d, &k("A", "A"), "within_group"), Some(true));
    close(f(&d, &k("A", "B"), "mean"), 31.0 / 7.0);
    assert_eq!(int(&d, &k("A", "B"), "n_ties"), Some(2));
    assert_eq!(int(&d, &k("A", "B"), "n_raters"), Some(1));
    assert_eq!(f(&d, &k("A", "B"), "sd"), None);
    close(f(&d, &k("A", "B"), "relevance_mean"), 4.0);
    close(f(&d, &k("A", "B"), "mean_frequent"), 4.0);
    close(f(&d, &k("A", "B"), "mean_mutual_respect"), 5.0);
    close(f(&d, &k("A", "C"), "mean"), 3.5);
    close(f(&d, &k("A", "C"), "sd"), 0.5f64.sqrt());
    // mean_shared_knowledge of A→C: r1 did not answer it, r2 gave 4 → 4 over 1 rater.
    close(f(&d, &k("A", "C"), "mean_shared_knowledge"), 4.0);
    assert_eq!(int(&d, &k("A", "C"), "n_shared_knowledge"), Some(1));
    close(f(&d, &k("B", "A"), "mean"), 2.5);
    close(f(&d, &k("C", "A"), "mean"), 1.0);

    let u = read_parquet(&out.join("score/units.parquet")).unwrap();
    let k = |id: &'static str| vec![("wave", "1"), ("unit_id", id)];
    // u1: RCap (26/7 + 4)/2 = 27/7 over 2 of 3 respondents; SRM (4 + 3)/2 = 3.5.
    close(f(&u, &k("u1"), "rcap"), 27.0 / 7.0);
    assert_eq!(int(&u, &k("u1"), "n_rcap"), Some(2));
    assert_eq!(int(&u, &k("u1"), "n_respondents"), Some(3));
    close(f(&u, &k("u1"), "srm"), 3.5);
    close(f(&u, &k("u1"), "srm_sd"), 0.5f64.sqrt());
    assert_eq!(int(&u, &k("u1"), "headcount"), Some(4));
    close(f(&u, &k("u2"), "rcap"), 3.25);
    close(f(&u, &k("u2"), "srm"), 5.0);
    assert_eq!(f(&u, &k("u2"), "srm_sd"), None);

    let c = read_parquet(&out.join("score/citizens.parquet")).unwrap();
    close(f(&c, &[("citizen_id", "c1")], "quality"), 13.0 / 3.0);
    assert_eq!(f(&c, &[("citizen_id", "c2")], "quality"), None);
    assert_eq!(int(&c, &[("citizen_id", "c2")], "n_items"), Some(2));
    close(f(&c, &[("citizen_id", "c8")], "quality"), 4.0);
}

#[test]
fn network_by_hand() {
    let (_dir, out) = study();
    let n = read_parquet(&out.join("score/network.parquet")).unwrap();
    let g = |grp: &'static str| vec![("wave", "1"), ("kind", "group"), ("work_group", grp)];
    // A: in = (D(B→A) 2.5 + D(C→A) 1)/2 = 1.75; out = (31/7 + 3.5)/2 = 111/28.
    close(f(&n, &g("A"), "in_strength"), 1.75);
    assert_eq!(int(&n, &g("A"), "in_n"), Some(2));
    close(f(&n, &g("A"), "out_strength"), 111.0 / 28.0);
    // Hub: relevance of A by B (5 + 4)/2 = 4.5 ≥ 4, by C 2 < 4 → 1 of 2.
    assert_eq!(int(&n, &g("A"), "hub_score"), Some(1));
    assert_eq!(int(&n, &g("A"), "hub_n"), Some(2));
    // B: in = (31/7 + 4)/2 = 59/14; relevance of B by A 4, by C 4 → hub 2 of 2.
    close(f(&n, &g("B"), "in_strength"), 59.0 / 14.0);
    assert_eq!(int(&n, &g("B"), "hub_score"), Some(2));
    // C: in = (3.5 + 5)/2 = 4.25; out = (1 + 4)/2 = 2.5.
    close(f(&n, &g("C"), "in_strength"), 4.25);
    close(f(&n, &g("C"), "out_strength"), 2.5);
    let p = |a: &'static str, b: &'static str| {
        vec![
            ("wave", "1"),
            ("kind", "pair"),
            ("work_group", a),
            ("partner_group", b),
        ]
    };
    // A,B: asymmetry 31/7 − 2.5; A rates B ≥ 4, B rates A ≤ 3 → blind spot held by A.
    close(f(&n, &p("A", "B"), "asymmetry"), 31.0 / 7.0 - 2.5);
    assert_eq!(flag(&n, &p("A", "B"), "blind_spot"), Some(true));
    assert_eq!(
        text(&n, &p("A", "B"), "blind_spot_high_group").as_deref(),
        Some("A")
    );
    assert_eq!(
        text(&n, &p("A", "B"), "blind_spot_low_group").as_deref(),
        Some("B")
    );
    // A,C: 3.5 − 1 = 2.5 but A's 3.5 is below 4: no blind spot. B,C: 5 − 4 = 1, none.
    close(f(&n, &p("A", "C"), "asymmetry"), 2.5);
    assert_eq!(flag(&n, &p("A", "C"), "blind_spot"), Some(false));
    close(f(&n, &p("B", "C"), "asymmetry"), 1.0);
    assert_eq!(flag(&n, &p("B", "C"), "blind_spot"), Some(false));
}

#[test]
fn reliability_by_hand() {
    let (_dir, out) = study();
    let r = read_parquet(&out.join("score/reliability.parquet")).unwrap();
    // Citizen alpha, wave 1, complete cases c3 (3 ×5), c4 (4 ×5), c5 (2 ×5): every item has
    // variance 1, the sum (15, 20, 10) variance 25 → 5/4 · (1 − 5/25) = 1.
    let k = [
        ("measure", "alpha_raw"),
        ("scale", "citizen_quality"),
        ("scope", "all"),
        ("wave", "1"),
    ];
    close(f(&r, &k, "value"), 1.0);
    assert_eq!(int(&r, &k, "n"), Some(3));
    // ICC of respondent RCap by unit, wave 1: u1 {26/7, 4}, u2 {3.5, 3}, u3 {2.5}.
    // Grand mean 117/35; group means 27/7 = 135/35, 3.25, 2.5.
    // SSB = 2(18/35)² + 2(3.25/35)² + (29.5/35)² = 1539.375/1225, MSB = SSB/2;
    // SSW = 2(1/7)² + 2(0.25)² = 65/392, MSW = SSW/2; k0 = (5 − 9/5)/2 = 1.6.
    let msb = 1539.375 / 1225.0 / 2.0;
    let msw = 65.0 / 392.0 / 2.0;
    let k = [
        ("measure", "icc1"),
        ("scale", "rcap"),
        ("scope", "all"),
        ("wave", "1"),
    ];
    let icc1 = f(&r, &k, "value").unwrap();
    assert!(
        (icc1 - (msb - msw) / (msb + 0.6 * msw)).abs() < 1e-12,
        "{icc1}"
    );
    assert_eq!(int(&r, &k, "n"), Some(5));
    assert_eq!(int(&r, &k, "n_groups"), Some(3));
    let k = [
        ("measure", "icc2"),
        ("scale", "rcap"),
        ("scope", "all"),
        ("wave", "1"),
    ];
    let icc2 = f(&r, &k, "value").unwrap();
    assert!((icc2 - (msb - msw) / msb).abs() < 1e-12, "{icc2}");
    // rwg(j) of SRM in u1, wave 1, over r1 (4 4 4 4 - -) and r3 (3 3 3 - - -): items 1-3 have
    // two answers, each variance 0.5 → s̄² = 0.5, ratio 0.25 → 3·0.75 / (3·0.75 + 0.25) = 0.9.
    let k = [
        ("measure", "rwg_j"),
        ("scale", "srm"),
        ("wave", "1"),
        ("unit_id", "u1"),
    ];
    close(f(&r, &k, "value"), 0.9);
    assert_eq!(int(&r, &k, "n"), Some(2));
    // Wave 2 has two respondents in two units: ICC not computable, kept as an empty value.
    let k = [
        ("measure", "icc1"),
        ("scale", "rcap"),
        ("scope", "all"),
        ("wave", "2"),
    ];
    assert_eq!(f(&r, &k, "value"), None);
}

#[test]
fn links_by_hand() {
    let (_dir, out) = study();
    let h1 = read_parquet(&out.join("link/h1_cases.parquet")).unwrap();
    let k = |c: &'static str| vec![("case_id", c)];
    // k1: A, B → (D(A→B) 31/7 + D(B→A) 2.5)/2 = 97/28; unit RCap (27/7 + 3.25)/2 = 199/56.
    close(f(&h1, &k("k1"), "case_rcap"), 97.0 / 28.0);
    assert_eq!(int(&h1, &k("k1"), "n_pairs"), Some(2));
    close(f(&h1, &k("k1"), "unit_rcap_mean"), 199.0 / 56.0);
    close(f(&h1, &k("k1"), "quality"), 13.0 / 3.0);
    assert_eq!(text(&h1, &k("k1"), "lead_unit_id").as_deref(), Some("u1"));
    assert_eq!(text(&h1, &k("k1"), "municipality").as_deref(), Some("M"));
    assert_eq!(text(&h1, &k("k1"), "exclusion"), None);
    // k8: A, B, D → 6 ordered pairs, only A→B and B→A defined → the same 97/28.
    close(f(&h1, &k("k8"), "case_rcap"), 97.0 / 28.0);
    assert_eq!(int(&h1, &k("k8"), "n_pairs"), Some(6));
    assert_eq!(int(&h1, &k("k8"), "n_pairs_defined"), Some(2));
    assert_eq!(text(&h1, &k("k8"), "exclusion"), None);
    // k2: A, C → (3.5 + 1)/2 = 2.25, but its citizen has too few items.
    close(f(&h1, &k("k2"), "case_rcap"), 2.25);
    let reason = |c| text(&h1, &k(c), "exclusion");
    assert_eq!(reason("k2").as_deref(), Some("no_citizen_quality"));
    assert_eq!(reason("k3").as_deref(), Some("fewer_than_two_groups"));
    assert_eq!(f(&h1, &k("k3"), "case_rcap"), None);
    assert_eq!(reason("k4").as_deref(), Some("no_defined_dyad"));
    assert_eq!(int(&h1, &k("k4"), "n_pairs"), Some(2));
    assert_eq!(int(&h1, &k("k4"), "n_pairs_defined"), Some(0));
    assert_eq!(reason("k5").as_deref(), Some("no_lead_unit"));
    assert_eq!(reason("k6").as_deref(), Some("several_lead_units"));
    assert_eq!(reason("k7").as_deref(), Some("not_in_case_involvement"));
    assert_eq!(h1.height(), 8);

    let h2 = read_parquet(&out.join("link/h2_respondents.parquet")).unwrap();
    let k = |r: &'static str| vec![("wave", "1"), ("respondent_id", r)];
    // u1 sample: r1 (srm_others 3), r2 (3.5) → between 3.25; within −0.25 and +0.25.
    close(f(&h2, &k("r1"), "srm_between"), 3.25);
    close(f(&h2, &k("r1"), "srm_within"), -0.25);
    close(f(&h2, &k("r2"), "srm_within"), 0.25);
    assert_eq!(int(&h2, &k("r1"), "srm_between_n"), Some(2));
    assert_eq!(text(&h2, &k("r3"), "exclusion").as_deref(), Some("no_rcap"));
    assert_eq!(
        text(&h2, &k("r4"), "exclusion").as_deref(),
        Some("no_srm_others")
    );
    close(f(&h2, &k("r5"), "srm_between"), 5.0);
    close(f(&h2, &k("r5"), "srm_within"), 0.0);
    assert_eq!(
        text(&h2, &k("r6"), "exclusion").as_deref(),
        Some("no_srm_others")
    );

    let h3 = read_parquet(&out.join("link/h3_panel.parquet")).unwrap();
    let k = |w: &'static str, r: &'static str| vec![("wave", w), ("respondent_id", r)];
    assert_eq!(int(&h3, &k("1", "r1"), "post"), Some(0));
    assert_eq!(int(&h3, &k("2", "r1"), "post"), Some(1));
    assert_eq!(int(&h3, &k("1", "r1"), "intervention"), Some(1));
    assert_eq!(int(&h3, &k("1", "r4"), "intervention"), Some(0));
    assert_eq!(flag(&h3, &k("1", "r1"), "in_both_waves"), Some(true));
    assert_eq!(flag(&h3, &k("1", "r2"), "in_both_waves"), Some(false));
    assert_eq!(flag(&h3, &k("2", "r4"), "in_both_waves"), Some(true));
    let reason = |w, r| text(&h3, &k(w, r), "exclusion");
    assert_eq!(reason("1", "r3").as_deref(), Some("no_rcap"));
    assert_eq!(reason("1", "r6").as_deref(), Some("unit_not_in_design"));
    assert_eq!(reason("3", "r1").as_deref(), Some("wave_outside_window"));
    assert_eq!(reason("1", "r5"), None);

    let s = summary(&out, "link");
    assert_eq!(s["tables"]["h1_cases"]["rows_in"], 8);
    assert_eq!(s["tables"]["h1_cases"]["rows_out"], 2);
    assert_eq!(s["tables"]["h3_panel"]["rows_in"], 9);
    assert_eq!(s["tables"]["h3_panel"]["rows_out"], 6);
    assert_eq!(s["tables"]["h3_panel"]["excluded"]["no_rcap"], 1);
    assert_eq!(s["counts"]["h3_respondents_in_both_waves"], 2);
    assert_eq!(s["counts"]["h3_respondents_pre_only"], 2);
}

#[test]
fn every_row_is_accounted_for() {
    let (_dir, out) = study();
    let s = summary(&out, "score");
    let e = &s["tables"]["employee_responses"];
    let rows_in = employee_answers().wave.len() as u64;
    assert_eq!(e["rows_in"], rows_in);
    assert_eq!(e["rows_out"], rows_in - 2);
    assert_eq!(e["excluded"]["tie_item_without_target_group"], 1);
    assert_eq!(e["excluded"]["item_not_in_instrument"], 1);
    assert_eq!(s["counts"]["tie_too_few_items"], 1);
    // r3 (only within) in wave 1; nobody else lacks a between-group tie.
    assert_eq!(s["counts"]["respondents_without_between_ties"], 1);
    // r2 (2 of 6 answered) too few; r5 none answered; wave 2/3 respondents answered none.
    assert_eq!(s["counts"]["srm_too_few_items"], 1);
    assert_eq!(s["counts"]["srm_not_answered"], 4);
    assert_eq!(s["counts"]["citizen_too_few_items"], 1);
    // Wave 1 A↔B (31/7 vs 2.5) and wave 2 A↔B (A→B 5 vs B→A 3).
    assert_eq!(s["counts"]["blind_spots"], 2);
    let c = &s["tables"]["citizen_responses"];
    assert_eq!(c["rows_in"], 35);
    assert_eq!(c["rows_out"], 35);
}

#[test]
fn outputs_are_sorted_and_deterministic() {
    let (_a, out_a) = study();
    let (_b, out_b) = study();
    for (stage, tables) in [
        (
            "score",
            &[
                "ties",
                "respondents",
                "dyads",
                "units",
                "citizens",
                "reliability",
                "network",
            ][..],
        ),
        ("link", &["h1_cases", "h2_respondents", "h3_panel"][..]),
    ] {
        for t in tables {
            let a = out_a.join(stage).join(format!("{t}.parquet"));
            let b = out_b.join(stage).join(format!("{t}.parquet"));
            assert_eq!(hash_file(&a).unwrap(), hash_file(&b).unwrap(), "{t}");
        }
    }
    let sorted = |table: &str, keys: &[&str]| {
        let df = read_parquet(&out_a.join(table)).unwrap();
        let again = df
            .sort(
                keys.to_vec(),
                SortMultipleOptions::default().with_nulls_last(false),
            )
            .unwrap();
        assert!(
            df.equals_missing(&again),
            "{table} is not sorted by {keys:?}"
        );
    };
    sorted(
        "score/ties.parquet",
        &[
            "wave",
            "municipality",
            "unit_id",
            "respondent_id",
            "target_group",
        ],
    );
    sorted(
        "score/respondents.parquet",
        &["wave", "municipality", "unit_id", "respondent_id"],
    );
    sorted(
        "score/dyads.parquet",
        &["wave", "municipality", "work_group", "target_group"],
    );
    sorted("score/units.parquet", &["wave", "municipality", "unit_id"]);
    sorted(
        "score/citizens.parquet",
        &["wave", "municipality", "citizen_id", "case_id"],
    );
    sorted(
        "score/network.parquet",
        &[
            "wave",
            "municipality",
            "kind",
            "work_group",
            "partner_group",
        ],
    );
    sorted("link/h1_cases.parquet", &["wave", "case_id"]);
    sorted(
        "link/h3_panel.parquet",
        &["wave", "municipality", "unit_id", "respondent_id"],
    );
}

#[test]
fn an_item_answered_twice_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut a = employee_answers();
    a.row(1, "u1", "A", "r1", Some("B"), "timely", "tie", Some(1.0));
    write_clean(&out, a.frame());
    let cfg = config(dir.path(), &out);
    let o = run_score_link(&cfg);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("employee_responses.parquet"), "{err}");
    assert!(err.contains("same item twice"), "{err}");
    assert!(err.contains("line"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let emp = employee_answers().frame().drop("work_group").unwrap();
    write_clean(&out, emp);
    let cfg = config(dir.path(), &out);
    let o = run_score_link(&cfg);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("employee_responses.parquet") && err.contains("`work_group`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_empty_wave_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let emp = employee_answers().frame();
    let mut wave: Vec<Option<i64>> = emp.column("wave").unwrap().i64().unwrap().iter().collect();
    wave[3] = None;
    let mut emp = emp;
    emp.with_column(Column::new("wave".into(), wave)).unwrap();
    write_clean(&out, emp);
    let o = run_score_link(&config(dir.path(), &out));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // The fourth row is line 5 (lines start at 2).
    assert!(
        err.contains("`wave`") && err.contains("line 5") && err.contains("employee_responses"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_subscale_minimum_above_the_smaller_subscale_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write_clean(&out, employee_answers().frame());
    let cfg = config(dir.path(), &out);
    let text = std::fs::read_to_string(&cfg).unwrap() + "[scoring]\nsubscale_min_items = 4\n";
    std::fs::write(&cfg, text).unwrap();
    let o = run_score_link(&cfg);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("scoring.subscale_min_items"), "{err}");
}

#[test]
fn a_lax_subscale_rule_scores_partial_subscales() {
    // With subscale_min_items = 1, r1→C's relationship sub-score is its one answered item (3),
    // and r2→B's communication sub-score is unchanged (all 4 answered → 2).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write_clean(&out, employee_answers().frame());
    let cfg = config(dir.path(), &out);
    let text = std::fs::read_to_string(&cfg).unwrap() + "[scoring]\nsubscale_min_items = 1\n";
    std::fs::write(&cfg, text).unwrap();
    let o = run_score_link(&cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_parquet(&out.join("score/ties.parquet")).unwrap();
    let k = |r: &'static str, g: &'static str| {
        vec![("wave", "1"), ("respondent_id", r), ("target_group", g)]
    };
    close(f(&t, &k("r1", "C"), "rc_relationship"), 3.0);
    close(f(&t, &k("r2", "B"), "rc_communication"), 2.0);
}

/// How far an estimate may be from the simulator's expectation (about two sampling SEs).
struct Tolerance {
    icc1_rcap: f64,
    icc1_srm: f64,
    icc2_srm: f64,
    alpha_srm: f64,
    alpha_citizen: f64,
}

/// Runs a simulated study in `data` (with its `truth.json` and `truth_units.csv`) through
/// ingest, clean, score and link, and checks that reliability, agreement and the network land
/// where the truth says.
fn lands_on_truth(data: &Path, tol: &Tolerance) {
    let truth = read_json(&data.join("truth.json"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = relcap()
        .args(["run", "--config"])
        .arg(repo().join("config/study.toml"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(&out)
        .args(["--until", "link", "-q"])
        .output()
        .unwrap();
    ok(&o);

    // Every employee and citizen answer row reaches the score stage and is used.
    let s = summary(&out, "score");
    for t in ["employee_responses", "citizen_responses"] {
        let n = &truth["row_counts"][t];
        assert_eq!(&s["tables"][t]["rows_in"], n, "{t}");
        assert_eq!(&s["tables"][t]["rows_out"], n, "{t}");
    }

    let r = read_parquet(&out.join("score/reliability.parquet")).unwrap();
    let value = |measure: &str, scale: &str, wave: i64| {
        let w = wave.to_string();
        f(
            &r,
            &[
                ("measure", measure),
                ("scale", scale),
                ("scope", "all"),
                ("wave", w.as_str()),
            ],
            "value",
        )
        .unwrap()
    };
    let expected = &truth["expected"];
    let vc = &truth["variance_components"];
    let num = |v: &serde_json::Value| v.as_f64().unwrap();

    // ICC(1) of respondent RCap by unit, per wave: the simulator's expected value given its
    // realised design.
    let waves = expected["icc1_observed_given_design_by_wave"]
        .as_array()
        .unwrap()
        .len() as i64;
    for (t, exp) in expected["icc1_observed_given_design_by_wave"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let got = value("icc1", "rcap", t as i64 + 1);
        assert!(
            (got - num(exp)).abs() < tol.icc1_rcap,
            "wave {}: ICC(1) rcap {got} vs {exp}",
            t + 1
        );
    }

    // SRM by unit. Given the realised managers' true SRM (truth_units.csv, variance v_S) and
    // the rater variance of one SRM score (v_R = srm_rater_variance): ICC(1) = v_S / (v_S + v_R),
    // ICC(2) = v_S / (v_S + v_R / k) with k = srm_raters_per_unit (Spearman-Brown).
    let units = std::fs::read_to_string(data.join("truth_units.csv")).unwrap();
    let mut lines = units.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "manager_srm").unwrap();
    let srm: Vec<f64> = lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    let m = srm.iter().sum::<f64>() / srm.len() as f64;
    let v_s = srm.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (srm.len() - 1) as f64;
    let v_r = num(&expected["srm_rater_variance"]);
    let k = num(&expected["srm_raters_per_unit"]);
    for wave in 1..=waves {
        let icc1 = value("icc1", "srm", wave);
        let icc2 = value("icc2", "srm", wave);
        let (e1, e2) = (v_s / (v_s + v_r), v_s / (v_s + v_r / k));
        assert!(
            (icc1 - e1).abs() < tol.icc1_srm,
            "wave {wave}: {icc1} vs {e1}"
        );
        assert!(
            (icc2 - e2).abs() < tol.icc2_srm,
            "wave {wave}: {icc2} vs {e2}"
        );
    }

    // Alpha of the six SRM items: parallel items sharing v_S + rater + common-method variance
    // (c), each adding item noise and rounding variance: alpha = 6c / (6c + item + rounding).
    let c = v_s + num(&vc["srm_rater"]) + num(&vc["common_method"]);
    let unique = num(&vc["srm_item"]) + num(&vc["rounding_mean"]);
    let alpha_srm = 6.0 * c / (6.0 * c + unique);
    // Citizen items: shared citizen variance (ignoring the small case-RCap part), unique item
    // noise and rounding: alpha = 5c / (5c + unique).
    let c = num(&vc["citizen"]);
    let unique = num(&vc["citizen_item"]) + num(&vc["rounding_mean"]);
    let alpha_cit = 5.0 * c / (5.0 * c + unique);
    for wave in 1..=waves {
        let a = value("alpha_raw", "srm", wave);
        assert!(
            (a - alpha_srm).abs() < tol.alpha_srm,
            "wave {wave}: SRM alpha {a} vs {alpha_srm}"
        );
        let a = value("alpha_raw", "citizen_quality", wave);
        assert!(
            (a - alpha_cit).abs() < tol.alpha_citizen,
            "wave {wave}: citizen alpha {a} vs {alpha_cit}"
        );
    }

    // The designed blind spots are found, in the designed direction, in at least a third of the
    // municipality-wave networks; the designed hubs have the highest mean hub scores.
    let n = read_parquet(&out.join("score/network.parquet")).unwrap();
    let kind: Vec<Option<&str>> = n.column("kind").unwrap().str().unwrap().iter().collect();
    let g: Vec<Option<&str>> = n
        .column("work_group")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    let h: Vec<Option<&str>> = n
        .column("partner_group")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    let high: Vec<Option<&str>> = n
        .column("blind_spot_high_group")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    let hub: Vec<Option<i64>> = n
        .column("hub_score")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    let networks = (0..n.height())
        .filter(|&i| kind[i] == Some("group"))
        .map(|i| {
            let wave = n.column("wave").unwrap().i64().unwrap().get(i);
            let muni = n.column("municipality").unwrap().str().unwrap().get(i);
            (wave, muni.map(String::from))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    for pair in truth["blind_spot_pairs"].as_array().unwrap() {
        let (hi, lo) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let found = (0..n.height())
            .filter(|&i| {
                kind[i] == Some("pair")
                    && high[i] == Some(hi)
                    && (g[i] == Some(lo) || h[i] == Some(lo))
            })
            .count();
        assert!(
            3 * found >= networks,
            "blind spot {hi} → {lo} found in {found} of {networks} networks"
        );
    }
    let mut mean_hub: Vec<(f64, String)> = truth["work_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let w = w.as_str().unwrap();
            let v: Vec<f64> = (0..n.height())
                .filter(|&i| kind[i] == Some("group") && g[i] == Some(w))
                .filter_map(|i| hub[i].map(|x| x as f64))
                .collect();
            (v.iter().sum::<f64>() / v.len() as f64, w.to_string())
        })
        .collect();
    mean_hub.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut hubs: Vec<String> = truth["hub_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    hubs.sort();
    let mut top: Vec<String> = mean_hub[..hubs.len()].iter().map(|x| x.1.clone()).collect();
    top.sort();
    assert_eq!(top, hubs);

    // H1: every single-group case the simulator made is counted as such.
    let l = summary(&out, "link");
    assert_eq!(
        l["tables"]["h1_cases"]["excluded"]["fewer_than_two_groups"],
        truth["counts"]["cases_single_group"]
    );
    assert_eq!(l["tables"]["h1_cases"]["rows_in"], truth["counts"]["cases"]);
}

/// The committed demo study (`data/demo/`): 51 units of about 11.5 respondents, so the SE of
/// ICC(1) is about 0.03 (RCap) and 0.05 (SRM), of ICC(2) of SRM about 0.03; alpha on a few
/// hundred complete cases has an SE below 0.01.
#[test]
fn simulated_demo_study_lands_on_its_truth() {
    let data = repo().join("data/demo");
    if !data.join("truth.json").is_file() {
        eprintln!("note: {} is absent; skipped", data.display());
        return;
    }
    lands_on_truth(
        &data,
        &Tolerance {
            icc1_rcap: 0.06,
            icc1_srm: 0.1,
            icc2_srm: 0.06,
            alpha_srm: 0.02,
            alpha_citizen: 0.03,
        },
    );
}

/// A larger simulated study (20 municipalities of the national preset, about 1,400 units and
/// 2.8 million answers): the same checks with tolerances about 4 times tighter. Slow in a debug
/// build, so run on request: `cargo test --release --test it score_link -- --ignored`.
#[test]
#[ignore]
fn simulated_national_sample_lands_on_its_truth_tightly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    simulate(&data, "--preset national --municipalities 20 --seed 11");
    lands_on_truth(
        &data,
        &Tolerance {
            icc1_rcap: 0.015,
            icc1_srm: 0.025,
            icc2_srm: 0.015,
            alpha_srm: 0.005,
            alpha_citizen: 0.01,
        },
    );
}
