//! The attacker's audit of the published reports: for every hidden figure, the interval of
//! values and the range of n that the published figures, with their displayed rounding, still
//! allow. This is the check statistical agencies run after cell suppression (the "protection
//! interval" of τ-ARGUS and R's sdcTable): a hidden cell is protected only when an attacker
//! holding every published figure about its municipality cannot narrow it down below
//! `privacy.protection_width` on the 1–5 scale, nor pin its n below `privacy.min_cell`.
//!
//! The published figures of one table (a heat map of one wave with its margins; a
//! municipality's units with its total) become one linear system ([`Table`]): one value
//! variable `x` and one count variable `n` per figure. A shown figure fixes `x` to its
//! rounding interval (text `3.20` → [3.195, 3.205]) and `n` to its `data-n`; a hidden figure
//! leaves `x` anywhere on the scale and `n` in what its mark says (`<min_cell`: 1 to
//! `min_cell − 1`; `×`: at least `min_cell`). Every figure computed from others adds its
//! relation ([`Relation`]). The interval of a hidden figure is the minimum and maximum of its
//! `x` by linear programming (`good_lp` with the pure-Rust `microlp` solver); its n range the
//! minimum and maximum of its `n` (the linear relaxation, rounded inwards: the n relations are
//! sums over rows and columns, whose constraint matrices are totally unimodular, so the bounds
//! are those of whole numbers). A weighted mean (a total over people) is linear in `n` and in
//! `s = n·x`; the interval of a figure in one is found by fixing its `n` at each whole number
//! of its range and bounding `s / n`.
//!
//! # Output: `OUT/report/disclosure_audit.parquet`
//!
//! One row per hidden figure and file it is audited for (each file that shows its table, and
//! `all files` for the union of everything published about the municipality), sorted by
//! municipality, table, figure, page.
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `municipality` | str | |
//! | `page` | str | the report file (`report.html`, `municipalities/<m>.html`) or `all files` |
//! | `table` | str | `network wave <w>` or `units wave <w>` |
//! | `figure` | str | `<rater group> → <rated group>`, or `unit <unit id>` |
//! | `suppression` | str | `primary` (from fewer than `min_cell` people) or `secondary` |
//! | `interval_lo`, `interval_hi` | f64 | the values on the 1–5 scale the published figures allow |
//! | `width` | f64 | `interval_hi − interval_lo` |
//! | `n_lo`, `n_hi` | i64 | the numbers of people the published figures allow |
//! | `protected` | bool | `width ≥ protection_width` and the n not pinned (see [`n_protected`]) |

use anyhow::{anyhow, bail, Result};
use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel, Variable};
use polars::prelude::*;
use serde::Serialize;

use super::network::{HeatCell, HeatMap};

/// The response scale of every figure the audit handles.
pub const SCALE: (f64, f64) = (1.0, 5.0);

/// A bound on any hidden n (no table is about more people).
const N_CAP: f64 = 1.0e6;

/// What is published about one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// Shown as `value` (rounded to ± `half`) with its n.
    Shown { value: f64, half: f64, n: i64 },
    /// Hidden as from fewer than `min_cell` people.
    Primary,
    /// Hidden to protect another figure (`×`): from at least `min_cell` people.
    Secondary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub mark: Mark,
}

/// A published figure computed from items.
#[derive(Debug, Clone, PartialEq)]
pub enum Relation {
    /// The plain mean of the items' values, shown as `value` ± `half`.
    Mean {
        items: Vec<usize>,
        value: f64,
        half: f64,
    },
    /// The mean over the people of the items (weighted by their n), shown as `value` ± `half`
    /// with its n, the sum of the items' n.
    Weighted {
        items: Vec<usize>,
        value: f64,
        half: f64,
        n: i64,
    },
    /// A published n that is the sum of the items' n.
    NSum { items: Vec<usize>, n: i64 },
    /// A published n that is at least each item's n (people who rated several cells).
    NMax { items: Vec<usize>, n: i64 },
}

/// One linear system: a table's figures and relations, and the files that publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub municipality: String,
    pub table: String,
    pub pages: Vec<String>,
    pub items: Vec<Item>,
    pub relations: Vec<Relation>,
}

/// What the attacker learns about one hidden figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub municipality: String,
    pub table: String,
    pub figure: String,
    pub suppression: String,
    pub lo: f64,
    pub hi: f64,
    pub n_lo: i64,
    pub n_hi: i64,
    pub protected: bool,
    pub pages: Vec<String>,
}

/// The value (`3.20`) and half its last digit (0.005) of a figure's text.
pub fn parse_shown(text: &str) -> Option<(f64, f64)> {
    let t = text.trim().trim_start_matches('+');
    let value: f64 = t.parse().ok()?;
    let decimals = t.split_once('.').map_or(0, |(_, d)| d.len());
    Some((value, 0.5 * 10f64.powi(-(decimals as i32))))
}

fn mark_of(c: &HeatCell) -> Option<Mark> {
    if c.empty {
        return None;
    }
    if c.suppressed {
        return Some(if c.secondary {
            Mark::Secondary
        } else {
            Mark::Primary
        });
    }
    let (value, half) = parse_shown(&c.text)?;
    Some(Mark::Shown {
        value,
        half,
        n: c.n,
    })
}

/// The linear system of one wave's heat map as published: its cells, and its margins as the
/// map says they are computed (`margins_of`: `defined` = every between-group cell of the line,
/// `shown` = its shown cells only).
pub fn heat_table(municipality: &str, map: &HeatMap, pages: &[String]) -> Table {
    let mut items = vec![];
    // (row, col, in_margin, item index)
    let mut at = vec![];
    for (i, row) in map.rows.iter().enumerate() {
        for (j, c) in row.cells.iter().enumerate() {
            if let Some(mark) = mark_of(c) {
                at.push((i, j, !c.within, items.len()));
                items.push(Item {
                    name: format!("{} → {}", row.label, map.columns[j]),
                    mark,
                });
            }
        }
    }
    let shown_only = map.margins_of == "shown";
    let line = |pick: &dyn Fn(usize, usize) -> bool| -> Vec<usize> {
        at.iter()
            .filter(|&&(i, j, m, k)| {
                m && pick(i, j) && (!shown_only || matches!(items[k].mark, Mark::Shown { .. }))
            })
            .map(|&(_, _, _, k)| k)
            .collect()
    };
    let mut relations = vec![];
    let mut margin = |cell: &HeatCell, members: Vec<usize>, sum_n: bool| {
        let Some(Mark::Shown { value, half, n }) = mark_of(cell) else {
            return;
        };
        if members.is_empty() {
            return;
        }
        relations.push(Relation::Mean {
            items: members.clone(),
            value,
            half,
        });
        // Over all defined cells, an in-strength's n is the total of its cells' n (different
        // rater groups); over the shown cells it involves no hidden one, and each cell's
        // people are among the margin's in any case.
        relations.push(if sum_n && !shown_only {
            Relation::NSum { items: members, n }
        } else {
            Relation::NMax { items: members, n }
        });
    };
    for (i, row) in map.rows.iter().enumerate() {
        if let Some(m) = &row.margin {
            margin(m, line(&|r, _| r == i), false);
        }
    }
    for (j, m) in map.col_margin.iter().enumerate() {
        margin(m, line(&|_, c| c == j), true);
    }
    Table {
        municipality: municipality.to_string(),
        table: format!("network {}", map.title.to_lowercase()),
        pages: pages.to_vec(),
        items,
        relations,
    }
}

/// What an LP is asked.
#[derive(Clone, Copy)]
enum Goal {
    X(usize),
    N(usize),
    /// `s = n·x` of an item whose n is fixed at the given value.
    S(usize, f64),
}

/// Solves one LP over `table`; `None` when the published figures allow no solution (which
/// means the audit's model of the table is wrong).
fn optimise(table: &Table, min_cell: i64, goal: Goal, maximise: bool) -> Result<Option<f64>> {
    let mut vars = ProblemVariables::new();
    let mut x: Vec<Variable> = vec![];
    let mut n: Vec<Variable> = vec![];
    let mut constraints = vec![];
    let fixed_n = match goal {
        Goal::S(k, v) => Some((k, v)),
        _ => None,
    };
    for (k, it) in table.items.iter().enumerate() {
        let (xl, xh, nl, nh) = match it.mark {
            Mark::Shown { value, half, n } => (
                (value - half).max(SCALE.0),
                (value + half).min(SCALE.1),
                n as f64,
                n as f64,
            ),
            Mark::Primary => (SCALE.0, SCALE.1, 1.0, (min_cell - 1) as f64),
            Mark::Secondary => (SCALE.0, SCALE.1, min_cell as f64, N_CAP),
        };
        let (nl, nh) = match fixed_n {
            Some((f, v)) if f == k => (v, v),
            _ => (nl, nh),
        };
        x.push(vars.add(variable().clamp(xl, xh)));
        n.push(vars.add(variable().clamp(nl, nh)));
    }
    // s = n·x for the items of weighted means, as a variable between n·lo and n·hi (exact for
    // shown items, whose n is fixed: then s = n·x).
    let mut s: Vec<Option<Variable>> = vec![None; table.items.len()];
    for r in &table.relations {
        if let Relation::Weighted { items, .. } = r {
            for &k in items {
                if s[k].is_none() {
                    let v = vars.add(variable().min(0.0));
                    let sv = Expression::from(v);
                    match table.items[k].mark {
                        Mark::Shown { n: nk, .. } => {
                            constraints.push(sv.eq(nk as f64 * x[k]));
                        }
                        _ => {
                            constraints.push((sv.clone() - SCALE.0 * n[k]).geq(0.0));
                            constraints.push((SCALE.1 * n[k] - sv).geq(0.0));
                        }
                    }
                    s[k] = Some(v);
                }
            }
        }
    }
    for r in &table.relations {
        match r {
            Relation::Mean { items, value, half } => {
                let k = items.len() as f64;
                let sum: Expression = items.iter().map(|&i| x[i]).sum();
                constraints.push(sum.clone().geq(k * (value - half)));
                constraints.push(sum.leq(k * (value + half)));
            }
            Relation::Weighted {
                items,
                value,
                half,
                n: total,
            } => {
                let t = *total as f64;
                let sum: Expression = items.iter().filter_map(|&i| s[i]).sum();
                constraints.push(sum.clone().geq(t * (value - half)));
                constraints.push(sum.leq(t * (value + half)));
                let ns: Expression = items.iter().map(|&i| n[i]).sum();
                constraints.push(ns.eq(t));
            }
            Relation::NSum { items, n: total } => {
                let ns: Expression = items.iter().map(|&i| n[i]).sum();
                constraints.push(ns.eq(*total as f64));
            }
            Relation::NMax { items, n: total } => {
                for &i in items {
                    constraints.push(Expression::from(n[i]).leq(*total as f64));
                }
            }
        }
    }
    let objective: Expression = match goal {
        Goal::X(k) => x[k].into(),
        Goal::N(k) => n[k].into(),
        Goal::S(k, _) => match s[k] {
            Some(v) => v.into(),
            None => bail!("the audit asked for n·x of an item outside any weighted mean"),
        },
    };
    let problem = if maximise {
        vars.maximise(objective.clone())
    } else {
        vars.minimise(objective.clone())
    };
    let mut model = problem.using(microlp);
    for c in constraints {
        model = model.with(c);
    }
    match model.solve() {
        Ok(sol) => Ok(Some(sol.eval(&objective))),
        Err(good_lp::ResolutionError::Infeasible) => Ok(None),
        Err(e) => Err(anyhow!("the audit's linear program failed: {e}")),
    }
}

fn bounds(table: &Table, min_cell: i64, goal: Goal) -> Result<(f64, f64)> {
    let lo = optimise(table, min_cell, goal, false)?;
    let hi = optimise(table, min_cell, goal, true)?;
    match (lo, hi) {
        (Some(lo), Some(hi)) => Ok((lo, hi)),
        _ => bail!(
            "the published figures of {} ({}) admit no solution: the audit's model of the table \
             does not match what is published",
            table.table,
            table.municipality
        ),
    }
}

/// Whether a hidden figure's n range leaves it unknown: it may be at least `min_cell`, or it
/// is not pinned to one value and reaches 3 (or `min_cell − 1` when that is less).
pub fn n_protected(n_lo: i64, n_hi: i64, min_cell: i64) -> bool {
    n_lo >= min_cell || (n_hi > n_lo && n_hi >= (min_cell - 1).min(3))
}

/// The interval and n range of hidden item `k` of `table`.
fn audit_item(table: &Table, k: usize, min_cell: i64, width: f64) -> Result<Finding> {
    const EPS: f64 = 1e-6;
    let (nl, nh) = bounds(table, min_cell, Goal::N(k))?;
    let (n_lo, n_hi) = ((nl - EPS).ceil() as i64, (nh + EPS).floor() as i64);
    let weighted = table
        .relations
        .iter()
        .any(|r| matches!(r, Relation::Weighted { items, .. } if items.contains(&k)));
    let (lo, hi) = if weighted {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in n_lo.max(1)..=n_hi {
            let goal = Goal::S(k, v as f64);
            if let (Some(a), Some(b)) = (
                optimise(table, min_cell, goal, false)?,
                optimise(table, min_cell, goal, true)?,
            ) {
                lo = lo.min(a / v as f64);
                hi = hi.max(b / v as f64);
            }
            // The whole scale is reached: no other n can widen the interval.
            if lo <= SCALE.0 + EPS && hi >= SCALE.1 - EPS {
                break;
            }
        }
        if lo > hi {
            bail!(
                "the published figures of {} ({}) admit no whole n for {}",
                table.table,
                table.municipality,
                table.items[k].name
            );
        }
        (lo, hi)
    } else {
        bounds(table, min_cell, Goal::X(k))?
    };
    let suppression = match table.items[k].mark {
        Mark::Secondary => "secondary",
        _ => "primary",
    };
    Ok(Finding {
        municipality: table.municipality.clone(),
        table: table.table.clone(),
        figure: table.items[k].name.clone(),
        suppression: suppression.into(),
        lo,
        hi,
        n_lo,
        n_hi,
        protected: hi - lo >= width - EPS && n_protected(n_lo, n_hi, min_cell),
        pages: table.pages.clone(),
    })
}

/// Audits every hidden figure of `table`.
pub fn audit_table(table: &Table, min_cell: i64, width: f64) -> Result<Vec<Finding>> {
    (0..table.items.len())
        .filter(|&k| !matches!(table.items[k].mark, Mark::Shown { .. }))
        .map(|k| audit_item(table, k, min_cell, width))
        .collect()
}

/// The audit's rows as the `disclosure_audit` frame (schema in the module documentation):
/// one row per finding and page, and one for `all files`; sorted.
pub fn frame(findings: &[Finding]) -> Result<DataFrame> {
    let mut rows: Vec<(&Finding, String)> = vec![];
    for f in findings {
        for p in &f.pages {
            rows.push((f, p.clone()));
        }
        rows.push((f, "all files".to_string()));
    }
    rows.sort_by(|a, b| {
        (&a.0.municipality, &a.0.table, &a.0.figure, &a.1).cmp(&(
            &b.0.municipality,
            &b.0.table,
            &b.0.figure,
            &b.1,
        ))
    });
    let col_s = |name: &str, f: &dyn Fn(&(&Finding, String)) -> String| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<String>>())
    };
    let col_f = |name: &str, f: &dyn Fn(&Finding) -> f64| {
        Column::new(
            name.into(),
            rows.iter().map(|r| f(r.0)).collect::<Vec<f64>>(),
        )
    };
    let col_i = |name: &str, f: &dyn Fn(&Finding) -> i64| {
        Column::new(
            name.into(),
            rows.iter().map(|r| f(r.0)).collect::<Vec<i64>>(),
        )
    };
    let df = DataFrame::new(
        rows.len(),
        vec![
            col_s("municipality", &|r| r.0.municipality.clone()),
            col_s("page", &|r| r.1.clone()),
            col_s("table", &|r| r.0.table.clone()),
            col_s("figure", &|r| r.0.figure.clone()),
            col_s("suppression", &|r| r.0.suppression.clone()),
            col_f("interval_lo", &|f| f.lo),
            col_f("interval_hi", &|f| f.hi),
            col_f("width", &|f| f.hi - f.lo),
            col_i("n_lo", &|f| f.n_lo),
            col_i("n_hi", &|f| f.n_hi),
            Column::new(
                "protected".into(),
                rows.iter().map(|r| r.0.protected).collect::<Vec<bool>>(),
            ),
        ],
    )?;
    Ok(df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::report::network::HeatRow;

    /// A heat map from rows of `value/n`, `P` (primary), `S` (secondary) or `E` (empty); the
    /// last entry of each row is the out-strength, the last row the in-strength.
    pub(crate) fn map(rows: &[&[&str]], margins_of: &str) -> HeatMap {
        let cell = |s: &str, within: bool| -> HeatCell {
            let mut c = HeatCell {
                text: String::new(),
                n: 0,
                empty: false,
                suppressed: false,
                secondary: false,
                within,
                bg: String::new(),
                fg: String::new(),
            };
            match s {
                "E" => c.empty = true,
                "P" => c.suppressed = true,
                "S" => (c.suppressed, c.secondary) = (true, true),
                _ => {
                    let (v, n) = s.split_once('/').unwrap();
                    (c.text, c.n) = (v.to_string(), n.parse().unwrap());
                }
            }
            c
        };
        let k = rows.len() - 1;
        let labels: Vec<String> = (0..k).map(|i| format!("g{i}")).collect();
        HeatMap {
            title: "Wave 1".into(),
            kind: "wave".into(),
            wave: 1,
            columns: labels.clone(),
            rows: (0..k)
                .map(|i| HeatRow {
                    label: labels[i].clone(),
                    cells: (0..k).map(|j| cell(rows[i][j], i == j)).collect(),
                    margin: Some(cell(rows[i][k], false)),
                })
                .collect(),
            col_margin: (0..k).map(|j| cell(rows[k][j], false)).collect(),
            suppressed: 0,
            margins_of: margins_of.into(),
        }
    }

    /// Hedensted, wave 1, of the demo study as the reports published it before the audit
    /// (margins over every defined cell, hidden ones included). Rows and columns: benefits
    /// office, caseworkers, family therapists, health visitors, job consultants, psychiatry,
    /// psychologists, social educators.
    const HEDENSTED_W1: [&[&str]; 9] = [
        &[
            "P", "3.34/10", "3.66/10", "P", "P", "P", "3.45/10", "2.88/8", "3.20/10",
        ],
        &[
            "3.62/10", "P", "2.98/8", "3.06/10", "3.81/12", "P", "S", "3.37/9", "3.22/12",
        ],
        &[
            "3.11/15", "2.64/18", "3.04/7", "2.52/14", "2.91/10", "4.11/12", "P", "S", "2.85/18",
        ],
        &[
            "3.37/23", "3.11/16", "3.33/15", "4.08/8", "3.53/20", "3.91/20", "3.40/21", "3.63/10",
            "3.47/23",
        ],
        &[
            "3.76/8", "3.95/12", "3.71/13", "3.30/12", "3.83/5", "3.22/8", "3.72/9", "2.60/9",
            "3.47/13",
        ],
        &[
            "E", "3.73/5", "2.68/6", "3.68/6", "2.49/5", "P", "P", "P", "3.18/6",
        ],
        &[
            "3.29/6", "2.69/6", "3.47/7", "S", "P", "3.72/10", "3.23/5", "2.85/5", "3.18/10",
        ],
        &[
            "2.98/8", "2.57/8", "2.95/6", "3.13/6", "2.21/6", "P", "P", "P", "2.78/8",
        ],
        &[
            "3.36/70", "3.15/75", "3.25/65", "3.05/57", "2.99/59", "3.39/61", "3.27/54", "2.92/51",
            "E",
        ],
    ];

    #[test]
    fn the_old_margins_pin_hedensted_benefits_office_to_psychiatry() {
        // Worked by hand in the issue: four margins give 3.67, and their rounding leaves
        // [3.44, 3.91]; the true value was 3.76 from 3 raters.
        let t = heat_table("Hedensted", &map(&HEDENSTED_W1, "defined"), &[]);
        let f = audit_table(&t, 5, 1.0).unwrap();
        let cell = f.iter().find(|f| f.figure == "g0 → g5").unwrap();
        assert!((cell.lo - 3.44).abs() < 0.01, "{cell:?}");
        assert!((cell.hi - 3.91).abs() < 0.01, "{cell:?}");
        assert!(!cell.protected);
        assert!(cell.lo <= 3.76 && 3.76 <= cell.hi);
    }

    #[test]
    fn margins_over_shown_cells_leave_hidden_cells_free() {
        let t = heat_table("Hedensted", &map(&HEDENSTED_W1, "shown"), &[]);
        // The published margins are the old ones, which are not means of the shown cells:
        // the system must then be infeasible rather than report anything.
        assert!(audit_table(&t, 5, 1.0).is_err());
        // Margins recomputed over the shown cells: every hidden cell spans the scale.
        let m = map(
            &[
                &["E", "3.00/9", "P", "3.00/9"],
                &["4.00/6", "E", "4.00/6", "4.00/6"],
                &["4.00/6", "3.00/9", "E", "3.50/9"],
                &["4.00/12", "3.00/18", "4.00/6"],
            ],
            "shown",
        );
        let f = audit_table(&heat_table("M", &m, &[]), 5, 1.0).unwrap();
        assert_eq!(f.len(), 1);
        assert!((f[0].lo - 1.0).abs() < 1e-9 && (f[0].hi - 5.0).abs() < 1e-9);
        assert_eq!((f[0].n_lo, f[0].n_hi), (1, 4));
        assert!(f[0].protected);
    }

    #[test]
    fn n_of_hidden_cells_from_margin_sums() {
        // Column 0: in-strength n 15 = 9 (shown) + a primary (<5) + a secondary (≥5): forces
        // 1 and 5 (the Rødovre pattern of the issue).
        let m = map(
            &[
                &["E", "3.00/9", "3.00/9", "3.00/9"],
                &["P", "E", "3.00/9", "3.00/9"],
                &["S", "3.00/9", "E", "3.00/9"],
                &["3.00/6", "3.00/18", "3.00/18"],
            ],
            "defined",
        );
        let f = audit_table(&heat_table("M", &m, &[]), 5, 1.0).unwrap();
        let p = f.iter().find(|f| f.figure == "g1 → g0").unwrap();
        assert_eq!((p.n_lo, p.n_hi), (1, 1));
        assert!(!p.protected);
        let s = f.iter().find(|f| f.figure == "g2 → g0").unwrap();
        assert_eq!((s.n_lo, s.n_hi), (5, 5));
    }

    #[test]
    fn a_weighted_total_pins_a_single_hidden_unit() {
        // Units 10 × 3.00 and 8 × 4.00 shown, one hidden (<5), total 3.50 over 21 people:
        // the hidden unit has 3 people, and its sum is 21·[3.495, 3.505] minus
        // 10·[2.995, 3.005] + 8·[3.995, 4.005] = [61.91, 62.09]: [11.305, 11.695] / 3.
        let shown = |v: f64, n| Mark::Shown {
            value: v,
            half: 0.005,
            n,
        };
        let t = Table {
            municipality: "M".into(),
            table: "units wave 1".into(),
            pages: vec!["p.html".into()],
            items: vec![
                Item {
                    name: "a".into(),
                    mark: shown(3.0, 10),
                },
                Item {
                    name: "b".into(),
                    mark: shown(4.0, 8),
                },
                Item {
                    name: "c".into(),
                    mark: Mark::Primary,
                },
            ],
            relations: vec![Relation::Weighted {
                items: vec![0, 1, 2],
                value: 3.5,
                half: 0.005,
                n: 21,
            }],
        };
        let f = audit_table(&t, 5, 1.0).unwrap();
        assert_eq!((f[0].n_lo, f[0].n_hi), (3, 3));
        assert!(
            (f[0].lo - (73.395 - 62.09) / 3.0).abs() < 1e-3,
            "{:?}",
            f[0]
        );
        assert!(
            (f[0].hi - (73.605 - 61.91) / 3.0).abs() < 1e-3,
            "{:?}",
            f[0]
        );
        assert!(!f[0].protected);
        let df = frame(&f).unwrap();
        assert_eq!(df.height(), 2, "p.html and all files");
    }

    #[test]
    fn shown_text_and_its_rounding() {
        assert_eq!(parse_shown("3.20"), Some((3.2, 0.005)));
        assert_eq!(parse_shown("+0.5"), Some((0.5, 0.05)));
        assert_eq!(parse_shown(""), None);
        assert!(n_protected(1, 4, 5) && !n_protected(1, 1, 5) && !n_protected(1, 2, 5));
        assert!(n_protected(5, 5, 5));
    }
}
