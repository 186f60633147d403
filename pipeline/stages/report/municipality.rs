//! A municipality's view: its network, blind spots, hubs, units and what changed most, as both
//! its feedback report and the study report show it; and, for the feedback report only, how it
//! compares with the other municipalities, which are never named.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use serde_json::Value;

use super::audit::{self, Finding, Item, Mark, Relation, Table};
use super::data::{Inputs, UnitRow};
use super::network::{blind_spots, hubs, network, people, Network, Rules};
use super::privacy::{self, Cell};
use super::{fmt, Fig};

/// By (municipality, wave): the mean respondent RCap and its n.
pub type Means = BTreeMap<(String, i64), (f64, i64)>;

/// Mean respondent RCap and its n, by (municipality, wave).
pub fn municipality_means(inp: &Inputs) -> Means {
    let mut acc: Means = BTreeMap::new();
    for r in &inp.respondents {
        if let Some(y) = r.rcap {
            let e = acc.entry((r.municipality.clone(), r.wave)).or_default();
            e.0 += y;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, (s / n as f64, n)))
        .collect()
}

/// Everything both kinds of report share about a municipality.
pub(super) struct MuniView {
    pub(super) value: Value,
    pub(super) primary: usize,
    pub(super) secondary: usize,
    /// What the attacker's audit found about every hidden figure published about it.
    pub(super) findings: Vec<Finding>,
    /// The waves whose municipality mean may not be published anywhere (its hidden units
    /// could otherwise be worked out from it).
    pub(super) withheld: Vec<(String, i64)>,
}

/// How the views are published and audited.
pub(super) struct ViewRules {
    pub(super) min_cell: i64,
    /// `privacy.protection_width`.
    pub(super) width: f64,
    /// `scoring.hub_relevance`.
    pub(super) hub_relevance: f64,
}

/// The files that show a municipality's heat maps, and those that show its units.
fn pages(muni: &str) -> (Vec<String>, Vec<String>) {
    let feedback = format!("municipalities/{}.html", super::file_stem(muni));
    (
        vec!["report.html".to_string(), feedback.clone()],
        vec![feedback],
    )
}

pub(super) fn municipality_view(
    inp: &Inputs,
    muni: &str,
    means: &Means,
    rules: &ViewRules,
) -> Result<MuniView> {
    let (map_pages, unit_pages) = pages(muni);
    let net_rules = Rules {
        min_cell: rules.min_cell,
        width: rules.width,
        pages: map_pages,
    };
    let mut net = network(inp, muni, &net_rules)?;
    let spots = blind_spots(inp, muni, &net);
    let hub_rows = hubs(
        inp,
        muni,
        net.last_wave,
        rules.min_cell,
        rules.hub_relevance,
    );
    let units_rules = Rules {
        pages: unit_pages,
        ..net_rules
    };
    let mut findings = std::mem::take(&mut net.findings);
    let mut withheld = vec![];
    let mut unit_waves = vec![];
    let mut unit_secondary = 0;
    for w in unit_wave_numbers(inp, muni) {
        let u = units_of_wave(inp, muni, w, means, &units_rules)?;
        findings.extend(u.findings);
        if u.total_withheld {
            withheld.push((muni.to_string(), w));
        }
        unit_secondary += u.secondary;
        unit_waves.push(u.value);
    }
    let (improved, worsened) = largest_changes(inp, muni, &net);
    Ok(MuniView {
        value: serde_json::json!({
            "name": muni,
            "maps": net.maps,
            "blind_spots": spots,
            "hubs": hub_rows,
            "hub_wave": net.last_wave,
            "units": unit_waves,
            "improved": improved,
            "worsened": worsened,
            "first_wave": net.first_wave,
            "last_wave": net.last_wave,
        }),
        primary: net.primary,
        secondary: net.secondary + unit_secondary,
        findings,
        withheld,
    })
}

/// The units of one wave and their total as the audit sees them: each unit's mean and n, and
/// the municipality's mean over all its respondents (the people of all its units), which the
/// feedback report shows twice (its units' total and "how you compare"). An attacker is taken
/// to know every unit of the municipality, listed or not.
fn units_table(
    muni: &str,
    wave: i64,
    units: &[&UnitRow],
    cells: &[Cell],
    total: Option<(f64, i64)>,
    pages: &[String],
) -> Table {
    let items: Vec<Item> = units
        .iter()
        .zip(cells)
        .map(|(u, c)| Item {
            name: format!("unit {}", u.unit_id),
            mark: if !c.suppressed {
                let text = fmt::fixed(c.value, 2);
                let (value, half) = audit::parse_shown(&text).unwrap_or((c.value, 0.0));
                Mark::Shown {
                    value,
                    half,
                    n: c.n,
                }
            } else if c.secondary {
                Mark::Secondary
            } else {
                Mark::Primary
            },
        })
        .collect();
    let mut relations = vec![];
    if let Some((m, n)) = total {
        let (value, half) = audit::parse_shown(&fmt::fixed(m, 2)).unwrap_or((m, 0.0));
        relations.push(Relation::Weighted {
            items: (0..items.len()).collect(),
            value,
            half,
            n,
        });
    }
    Table {
        municipality: muni.to_string(),
        table: format!("units wave {wave}"),
        pages: pages.to_vec(),
        items,
        relations,
    }
}

fn unit_wave_numbers(inp: &Inputs, muni: &str) -> BTreeSet<i64> {
    inp.units
        .iter()
        .filter(|u| u.municipality == muni)
        .map(|u| u.wave)
        .collect()
}

/// One wave of a municipality's units as published.
struct UnitWave {
    value: Value,
    findings: Vec<Finding>,
    secondary: usize,
    total_withheld: bool,
}

/// The units of wave `w` with the municipality's mean as their total. Primary suppression,
/// then secondary suppression chosen by the audit: while a hidden unit can be narrowed below
/// the protection width (or its n pinned), the shown unit with the fewest people is hidden too
/// (ties: the first in order); with no unit left to hide, the total is withheld (here and in
/// every comparison). Only shown units are listed (a suppressed unit is not named).
fn units_of_wave(
    inp: &Inputs,
    muni: &str,
    w: i64,
    means: &Means,
    rules: &Rules,
) -> Result<UnitWave> {
    let min_cell = rules.min_cell;
    let units: Vec<&UnitRow> = inp
        .units
        .iter()
        .filter(|u| u.municipality == muni && u.wave == w && u.rcap.is_some())
        .collect();
    let mut cells: Vec<Cell> = units
        .iter()
        .map(|u| Cell::new(u.rcap.unwrap_or(f64::NAN), u.n_rcap, true))
        .collect();
    privacy::suppress_line(&mut cells, min_cell);
    let mut total = means
        .get(&(muni.to_string(), w))
        .copied()
        .filter(|t| t.1 >= min_cell);
    let mut total_withheld = false;
    let findings = loop {
        let table = units_table(muni, w, &units, &cells, total, &rules.pages);
        let findings = audit::audit_table(&table, min_cell, rules.width)?;
        if findings.iter().all(|f| f.protected) {
            break findings;
        }
        let next = (0..cells.len())
            .filter(|&i| !cells[i].suppressed)
            .min_by_key(|&i| (cells[i].n, i));
        match (next, total) {
            (Some(i), _) => (cells[i].suppressed, cells[i].secondary) = (true, true),
            (None, Some(_)) => (total, total_withheld) = (None, true),
            (None, None) => bail!(
                "the disclosure audit rejects the wave {w} units of {muni} with every unit hidden"
            ),
        }
    };
    let rows: Vec<Value> = units
        .iter()
        .zip(&cells)
        .filter(|(_, c)| !c.suppressed)
        .map(|(u, c)| {
            serde_json::json!({
                "unit_id": u.unit_id,
                "work_group": fmt::group(&u.work_group),
                "rcap": Fig::shown(fmt::fixed(c.value, 2), c.n, min_cell),
            })
        })
        .collect();
    let total_fig = match total {
        Some((m, n)) => Fig::shown(fmt::fixed(m, 2), n, min_cell),
        None => Fig::hidden(0),
    };
    Ok(UnitWave {
        value: serde_json::json!({
            "wave": w,
            "units": rows,
            "any_hidden": cells.iter().any(|c| c.suppressed),
            "total": total_fig,
        }),
        findings,
        secondary: cells.iter().filter(|c| c.secondary).count(),
        total_withheld,
    })
}

/// What changed most from the first to the last wave, among the shown dyads: the five largest
/// improvements and the five largest falls; a change's n is the people who rated the dyad in
/// either wave.
fn largest_changes(inp: &Inputs, muni: &str, net: &Network) -> (Vec<Value>, Vec<Value>) {
    let mut changes: Vec<(f64, String, String, f64, f64, i64)> = vec![];
    for ((w, g, h), &(vb, _)) in &net.shown {
        if *w != net.last_wave || g == h || net.first_wave == net.last_wave {
            continue;
        }
        if let Some(&(va, _)) = net.shown.get(&(net.first_wave, g.clone(), h.clone())) {
            let n = people(
                inp,
                muni,
                &[
                    (net.first_wave, g.as_str(), h.as_str()),
                    (*w, g.as_str(), h.as_str()),
                ],
            );
            changes.push((vb - va, g.clone(), h.clone(), va, vb, n));
        }
    }
    changes.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let change_view = |c: &(f64, String, String, f64, f64, i64)| {
        serde_json::json!({
            "from_group": fmt::group(&c.1),
            "to_group": fmt::group(&c.2),
            "before": fmt::fixed(c.3, 2),
            "after": fmt::fixed(c.4, 2),
            "change": Fig { text: format!("{}{}", if c.0 > 0.0 { "+" } else { "" }, fmt::fixed(c.0, 2)), n: c.5, suppressed: false },
        })
    };
    let improved: Vec<Value> = changes
        .iter()
        .filter(|c| c.0 > 0.0)
        .take(5)
        .map(change_view)
        .collect();
    let worsened: Vec<Value> = changes
        .iter()
        .rev()
        .filter(|c| c.0 < 0.0)
        .take(5)
        .map(change_view)
        .collect();
    (improved, worsened)
}

fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

/// The comparison of one municipality with the others (never named): per wave its mean RCap,
/// the others' range (each end with the n of the municipality it is) and its rank among the
/// municipalities whose mean may be shown (`means` holds only those that may be published).
pub(super) fn comparison(muni: &str, means: &Means, min_cell: i64) -> Vec<Value> {
    let waves: BTreeSet<i64> = means.keys().map(|k| k.1).collect();
    let mut out = vec![];
    for w in waves {
        let shown: Vec<(&String, f64, i64)> = means
            .iter()
            .filter(|((_, ww), (_, n))| *ww == w && *n >= min_cell)
            .map(|((m, _), (v, n))| (m, *v, *n))
            .collect();
        let Some(&(_, own, own_n)) = shown.iter().find(|(m, _, _)| m.as_str() == muni) else {
            continue;
        };
        let others: Vec<(f64, i64)> = shown
            .iter()
            .filter(|(m, _, _)| m.as_str() != muni)
            .map(|x| (x.1, x.2))
            .collect();
        let rank = 1 + others.iter().filter(|o| o.0 > own).count();
        // The lowest and the highest of the others, each with its own n.
        let lo = others.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0));
        let hi = others.iter().copied().max_by(|a, b| a.0.total_cmp(&b.0));
        let end = |x: Option<(f64, i64)>| match x {
            Some((v, n)) => Fig {
                text: fmt::fixed(v, 2),
                n,
                suppressed: false,
            },
            None => Fig::hidden(0),
        };
        out.push(serde_json::json!({
            "wave": w,
            "own": Fig { text: fmt::fixed(own, 2), n: own_n, suppressed: false },
            "n_others": others.len(),
            "others_low": end(lo),
            "others_high": end(hi),
            "rank": ordinal(rank),
            "rank_n": rank,
            "of": shown.len(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::data::Respondent;
    use super::*;

    #[test]
    fn municipality_means_and_anonymous_comparison() {
        let r = |m: &str, y: Option<f64>| Respondent {
            wave: 1,
            municipality: m.into(),
            rcap: y,
        };
        let mut resp = vec![];
        for y in [3.0, 3.5, 4.0, 3.5, 3.0] {
            resp.push(r("Own", Some(y)));
        }
        resp.push(r("Own", None));
        for y in [2.0, 2.5, 3.0, 2.5, 2.0, 3.0] {
            resp.push(r("Other A", Some(y)));
        }
        for y in [4.0, 4.0, 4.0, 4.0, 4.5] {
            resp.push(r("Other B", Some(y)));
        }
        resp.push(r("Tiny", Some(5.0)));
        let inp = Inputs {
            respondents: resp,
            ..Default::default()
        };
        let means = municipality_means(&inp);
        assert_eq!(means[&("Own".to_string(), 1)], (3.4, 5));
        let c = comparison("Own", &means, 5);
        assert_eq!(c.len(), 1);
        let text = c[0].to_string();
        assert!(!text.contains("Other") && !text.contains("Tiny"), "{text}");
        assert_eq!(c[0]["own"]["text"], "3.40");
        // Others shown: A 2.5 (n 6), B 4.1 (n 5); Tiny (n 1) is left out.
        assert_eq!(c[0]["others_low"]["text"], "2.50");
        assert_eq!(c[0]["others_high"]["text"], "4.10");
        assert_eq!(c[0]["rank"], "2nd");
        assert_eq!(c[0]["of"], 3);
    }

    /// Municipality M in wave 1: units (id, n, mean) and respondents to match.
    fn units_inputs(units: &[(&str, i64, f64)]) -> Inputs {
        let mut inp = Inputs::default();
        for &(id, n, mean) in units {
            inp.units.push(UnitRow {
                wave: 1,
                municipality: "M".into(),
                unit_id: id.into(),
                work_group: "g".into(),
                rcap: Some(mean),
                n_rcap: n,
                srm: None,
                n_srm: 0,
            });
            for _ in 0..n {
                inp.respondents.push(Respondent {
                    wave: 1,
                    municipality: "M".into(),
                    rcap: Some(mean),
                });
            }
        }
        inp
    }

    fn rules() -> ViewRules {
        ViewRules {
            min_cell: 5,
            width: 1.0,
            hub_relevance: 4.0,
        }
    }

    #[test]
    fn small_units_take_others_along_until_every_hidden_one_is_protected() {
        // A has 3 people: hidden; the total (53 people, 3.51) and B, C would pin it, so B (the
        // smallest shown, 20) is hidden too. Then A is free, but B is not: its n is 19 to 22
        // and s_A + s_B = 53·3.51 − 30·4.00 (± rounding) with s_A at most 5·n_A, which by hand
        // leaves B about [2.42, 3.26], under 1.0 wide; so C goes too, and with all three
        // hidden every one is protected and the total stays.
        let inp = units_inputs(&[("A", 3, 2.0), ("B", 20, 3.0), ("C", 30, 4.0)]);
        let means = municipality_means(&inp);
        let v = municipality_view(&inp, "M", &means, &rules()).unwrap();
        assert!(v.value["units"][0]["units"].as_array().unwrap().is_empty());
        assert_eq!(v.value["units"][0]["any_hidden"], true);
        assert_eq!(v.value["units"][0]["total"]["n"], 53);
        assert_eq!(v.secondary, 2);
        assert!(v.withheld.is_empty());
        assert_eq!(v.findings.len(), 3);
        assert!(v.findings.iter().all(|f| f.protected), "{:?}", v.findings);
    }

    #[test]
    fn a_total_that_gives_hidden_units_away_is_withheld() {
        // Two small units whose every member answered 1: the mean 1.00 over 7 people tells
        // both; with no unit left to hide, the municipality's mean is withheld.
        let inp = units_inputs(&[("A", 3, 1.0), ("B", 4, 1.0)]);
        let mut means = municipality_means(&inp);
        let v = municipality_view(&inp, "M", &means, &rules()).unwrap();
        assert_eq!(v.withheld, vec![("M".to_string(), 1)]);
        assert_eq!(v.value["units"][0]["total"]["suppressed"], true);
        assert!(v.findings.iter().all(|f| f.protected && f.hi - f.lo >= 1.0));
        // Withheld in the comparison too (the report stage removes it from the means).
        means.remove(&("M".to_string(), 1));
        assert!(comparison("M", &means, 5).is_empty());
    }
}
