//! Disclosure control that survives an attack: the report stage's own audit
//! (`OUT/report/disclosure_audit.parquet`) finds every hidden figure of the demo study
//! protected (interval at least `privacy.protection_width` = 1.0 wide, n not pinned), among
//! them Hedensted's wave 1 benefits office → psychiatry, which the suppression before the
//! audit left pinned to [3.44, 3.91] by four margins.

use std::path::Path;

use crate::common::{floats, ints, read, relcap, repo, strs};

/// `relcap run -q` with the demo config (on its data, or on `data`) into `out`; the reports go
/// to `out/report`.
fn run(data: Option<&Path>, out: &Path) {
    crate::report::run_with_reports(data, out, &out.join("report"));
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

// ---- An independent attacker: the published HTML and a linear program, nothing else ----

/// One heat-map cell as the HTML shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Empty,
    /// `data-suppressed="primary"` (fewer than 5 people) or `"secondary"` (`×`).
    Hidden {
        primary: bool,
    },
    /// The text's value, half its last digit, and `data-n`.
    Shown {
        v: f64,
        half: f64,
        n: i64,
    },
}

#[derive(Debug)]
struct SeenMap {
    title: String,
    labels: Vec<String>,
    /// Cells by row; `within` marks the diagonal (not part of the margins).
    cells: Vec<Vec<(Seen, bool)>>,
    out: Vec<Seen>,
    into: Vec<Seen>,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(&tag[i..i + tag[i..].find('"')?])
}

/// The `<td>` cells of one table row.
fn tds(row: &str) -> Vec<(Seen, bool)> {
    let mut out = vec![];
    let mut rest = row;
    while let Some(i) = rest.find("<td") {
        let open_end = i + rest[i..].find('>').unwrap();
        let tag = &rest[i..open_end];
        let close = open_end + rest[open_end..].find("</td>").unwrap();
        let text = rest[open_end + 1..close].trim();
        let class = attr(tag, "class").unwrap_or("");
        let seen = if class.split(' ').any(|c| c == "empty") {
            Seen::Empty
        } else if let Some(s) = attr(tag, "data-suppressed") {
            Seen::Hidden {
                primary: s != "secondary",
            }
        } else {
            // A Danish page writes a decimal comma (lang/da.toml).
            let t = text.trim_start_matches('+').replace(',', ".");
            let t = t.as_str();
            let decimals = t.split_once('.').map_or(0, |(_, d)| d.len());
            Seen::Shown {
                v: t.parse().unwrap(),
                half: 0.5 * 10f64.powi(-(decimals as i32)),
                n: attr(tag, "data-n").unwrap().parse().unwrap(),
            }
        };
        out.push((seen, class.split(' ').any(|c| c == "within")));
        rest = &rest[close..];
    }
    out
}

/// Every wave heat map of a page (change maps have no margins and only differences of shown
/// cells).
fn seen_maps(html: &str) -> Vec<SeenMap> {
    let mut maps = vec![];
    for part in html.split("<figure class=\"heatmap\">").skip(1) {
        let fig = &part[..part.find("</figure>").unwrap()];
        let title =
            &fig[fig.find("<figcaption>").unwrap() + 12..fig.find("</figcaption>").unwrap()];
        // The wave maps of English and Danish pages (lang/*.toml, common.wave_map).
        if !title.starts_with("Wave") && !title.starts_with("Måling") {
            continue;
        }
        let body = &fig[fig.find("<tbody>").unwrap()..];
        let (mut labels, mut cells, mut out, mut into) = (vec![], vec![], vec![], vec![]);
        for row in body.split("<tr").skip(1) {
            let label =
                &row[row.find("<th class=\"row\">").unwrap() + 16..row.find("</th>").unwrap()];
            let mut line = tds(row);
            if label == "in-strength" || label == "får i snit" {
                line.pop();
                into = line.into_iter().map(|c| c.0).collect();
            } else {
                out.push(line.pop().unwrap().0);
                labels.push(label.to_string());
                cells.push(line);
            }
        }
        maps.push(SeenMap {
            title: title.to_string(),
            labels,
            cells,
            out,
            into,
        });
    }
    maps
}

/// A margin, the (row, column) of its line's cells, and whether it is a column's.
type Line = (Seen, Vec<(usize, usize)>, bool);

/// What the attacker finds about one hidden cell.
#[derive(Debug)]
struct Found {
    cell: String,
    lo: f64,
    hi: f64,
    n_lo: i64,
    n_hi: i64,
}

/// Solves one map: each hidden cell's value on [1, 5] and n (`<5`: 1–4, `×`: 5 or more) under
/// the margins. A margin is taken as the mean of every defined cell of its line, unless the
/// page says margins are means of the shown cells (`stated`) and it is one (within the
/// rounding of its cells): then it tells nothing about the hidden ones. An in-strength n
/// above its shown cells' total is taken as the total of every cell's n.
fn attack(map: &SeenMap, stated: bool) -> Vec<Found> {
    use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel};
    let k = map.labels.len();
    let lines: Vec<Line> = (0..k)
        .map(|i| (map.out[i], (0..k).map(|j| (i, j)).collect(), false))
        .chain((0..k).map(|j| (map.into[j], (0..k).map(|i| (i, j)).collect(), true)))
        .collect();
    let solve = |target: (usize, usize), n_goal: bool, maximise: bool| -> f64 {
        let mut vars = ProblemVariables::new();
        let mut x = vec![vec![None; k]; k];
        let mut nv = vec![vec![None; k]; k];
        for i in 0..k {
            for j in 0..k {
                let (lo, hi, nl, nh) = match map.cells[i][j].0 {
                    Seen::Empty => continue,
                    Seen::Shown { v, half, n } => (v - half, v + half, n as f64, n as f64),
                    Seen::Hidden { primary: true } => (1.0, 5.0, 1.0, 4.0),
                    Seen::Hidden { primary: false } => (1.0, 5.0, 5.0, 1e6),
                };
                x[i][j] = Some(vars.add(variable().clamp(lo.max(1.0), hi.min(5.0))));
                nv[i][j] = Some(vars.add(variable().clamp(nl, nh)));
            }
        }
        let mut cons = vec![];
        for (margin, at, column) in &lines {
            let Seen::Shown { v, half, n } = *margin else {
                continue;
            };
            let members: Vec<(usize, usize)> = at
                .iter()
                .copied()
                .filter(|&(i, j)| map.cells[i][j].0 != Seen::Empty && !map.cells[i][j].1)
                .collect();
            let shown: Vec<(f64, i64)> = members
                .iter()
                .filter_map(|&(i, j)| match map.cells[i][j].0 {
                    Seen::Shown { v, n, .. } => Some((v, n)),
                    _ => None,
                })
                .collect();
            let explained = stated
                && !shown.is_empty()
                && ((shown.iter().map(|s| s.0).sum::<f64>() / shown.len() as f64) - v).abs()
                    <= half + 0.005 + 1e-9;
            if !explained {
                let sum: Expression = members.iter().filter_map(|&(i, j)| x[i][j]).sum();
                let m = members.len() as f64;
                cons.push(sum.clone().geq(m * (v - half)));
                cons.push(sum.leq(m * (v + half)));
            }
            if *column && n != shown.iter().map(|s| s.1).sum::<i64>() {
                let sum: Expression = members.iter().filter_map(|&(i, j)| nv[i][j]).sum();
                cons.push(sum.eq(n as f64));
            }
        }
        let (i, j) = target;
        let goal: Expression = if n_goal { nv[i][j] } else { x[i][j] }.unwrap().into();
        let p = if maximise {
            vars.maximise(goal.clone())
        } else {
            vars.minimise(goal.clone())
        };
        let mut model = p.using(microlp);
        for c in cons {
            model = model.with(c);
        }
        model
            .solve()
            .expect("the published figures are consistent")
            .eval(&goal)
    };
    let mut found = vec![];
    for i in 0..k {
        for j in 0..k {
            if let Seen::Hidden { .. } = map.cells[i][j].0 {
                found.push(Found {
                    cell: format!("{}: {} → {}", map.title, map.labels[i], map.labels[j]),
                    lo: solve((i, j), false, false),
                    hi: solve((i, j), false, true),
                    n_lo: (solve((i, j), true, false) - 1e-6).ceil() as i64,
                    n_hi: (solve((i, j), true, true) + 1e-6).floor() as i64,
                });
            }
        }
    }
    found
}

/// The attacker on every page under `reports`: how many hidden cells, and those narrower than
/// 1.0 or with a pinned n.
fn attack_reports(reports: &Path) -> (usize, Vec<(String, Found)>) {
    let (mut total, mut exposed) = (0, vec![]);
    for f in crate::common::files(reports) {
        if f.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let html = std::fs::read_to_string(&f).unwrap();
        assert!(
            !html.contains("<figure class=\"heatmap\">")
                || html.contains("Out- and in-strength are means of the shown cells")
                // The same in a Danish feedback report (lang/da.toml, common.legend_margins).
                || html.contains("er gennemsnit af de viste felter i rækken eller kolonnen"),
            "{} does not say what its margins are",
            f.display()
        );
        for map in seen_maps(&html) {
            for x in attack(&map, true) {
                total += 1;
                let n_ok = x.n_lo >= 5 || (x.n_hi > x.n_lo && x.n_hi >= 3);
                if x.hi - x.lo < 1.0 - 1e-6 || !n_ok {
                    exposed.push((f.display().to_string(), x));
                }
            }
        }
    }
    (total, exposed)
}

#[test]
fn the_attacker_solves_the_old_hedensted_map() {
    // The map as published before the audit: the attacker, from the HTML alone, pins
    // benefits office → psychiatry to [3.435, 3.905] (true value 3.76 from 3 raters).
    let html = std::fs::read_to_string(
        repo().join("tests/fixtures/disclosure/hedensted_wave1_before.html"),
    )
    .unwrap();
    let maps = seen_maps(&html);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].labels.len(), 8);
    let found = attack(&maps[0], false);
    let cell = found
        .iter()
        .find(|f| f.cell == "Wave 1: benefits office → psychiatry")
        .unwrap();
    assert!(
        (cell.lo - 3.435).abs() < 1e-3 && (cell.hi - 3.905).abs() < 1e-3,
        "{cell:?}"
    );
    assert!(found.iter().filter(|f| f.hi - f.lo < 1.0).count() >= 1);
}

#[test]
fn the_attacker_finds_nothing_narrower_than_1_in_the_demo_or_a_study_of_small_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    run(None, &out);
    let (total, exposed) = attack_reports(&out.join("report"));
    assert!(total > 100, "the demo's reports hide {total} cells");
    assert!(exposed.is_empty(), "demo: {exposed:#?}");

    // Nine work groups in municipalities of about 45 employees: most dyads have fewer than 5
    // raters.
    let data = crate::common::simulate(
        &tmp.path().join("small-data"),
        "--seed 27 --municipalities 3 --employees-per-municipality 45 --waves 2 \
         --work-groups 9 --citizens-per-municipality 60",
    );
    let out = tmp.path().join("small");
    run(Some(&data), &out);
    let (total, exposed) = attack_reports(&out.join("report"));
    assert!(total > 200, "the small groups' reports hide {total} cells");
    assert!(exposed.is_empty(), "small groups: {exposed:#?}");
    assert_all_protected(&audit_rows(&out), "small groups");
}

#[test]
fn a_protection_width_off_the_scale_is_an_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["0.0", "4.5"] {
        let config = crate::common::write_demo_config(
            tmp.path(),
            "study.toml",
            &[(
                "min_cell = 5",
                &format!("min_cell = 5\nprotection_width = {bad}"),
            )],
        );
        let out = relcap()
            .args(["run", "-q", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("privacy.protection_width"), "{err}");
    }
}
