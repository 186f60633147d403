//! A municipality's view: its network, blind spots, hubs, units and what changed most, as both
//! its feedback report and the study report show it; and, for the feedback report only, how it
//! compares with the other municipalities, which are never named.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::data::{Inputs, UnitRow};
use super::network::{blind_spots, hubs, network, Network};
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
}

pub(super) fn municipality_view(
    inp: &Inputs,
    muni: &str,
    means: &Means,
    min_cell: i64,
) -> MuniView {
    let net = network(inp, muni, min_cell);
    let (spots, spots_hidden) = blind_spots(inp, muni, &net);
    let hub_rows = hubs(inp, muni, net.last_wave, min_cell);
    let unit_waves = unit_waves(inp, muni, means, min_cell);
    let (improved, worsened) = largest_changes(&net);
    MuniView {
        value: serde_json::json!({
            "name": muni,
            "maps": net.maps,
            "blind_spots": spots,
            "blind_spots_hidden": spots_hidden,
            "hubs": hub_rows,
            "hub_wave": net.last_wave,
            "units": unit_waves,
            "improved": improved,
            "worsened": worsened,
            "first_wave": net.first_wave,
            "last_wave": net.last_wave,
        }),
        primary: net.primary,
        secondary: net.secondary,
    }
}

/// Units with the municipality's mean as their total, per wave.
fn unit_waves(inp: &Inputs, muni: &str, means: &Means, min_cell: i64) -> Vec<Value> {
    let mut unit_waves = vec![];
    let waves: BTreeSet<i64> = inp
        .units
        .iter()
        .filter(|u| u.municipality == muni)
        .map(|u| u.wave)
        .collect();
    for &w in &waves {
        let units: Vec<&UnitRow> = inp
            .units
            .iter()
            .filter(|u| u.municipality == muni && u.wave == w && u.rcap.is_some())
            .collect();
        let mut cells: Vec<Cell> = units
            .iter()
            .map(|u| Cell::new(u.rcap.unwrap_or(f64::NAN), u.n_rcap, true))
            .collect();
        let total = means.get(&(muni.to_string(), w)).copied();
        let total_hidden = privacy::suppress_line(&mut cells, total.map(|t| t.1), min_cell);
        let rows: Vec<Value> = units
            .iter()
            .zip(&cells)
            .map(|(u, c)| {
                let fig = if c.suppressed {
                    Fig::hidden(c.n)
                } else {
                    Fig::shown(fmt::fixed(c.value, 2), c.n, min_cell)
                };
                serde_json::json!({
                    "unit_id": u.unit_id,
                    "work_group": fmt::group(&u.work_group),
                    "rcap": fig,
                    "secondary": c.secondary,
                })
            })
            .collect();
        let total_fig = match total {
            Some((m, n)) if !total_hidden => Fig::shown(fmt::fixed(m, 2), n, min_cell),
            Some((_, n)) => Fig::hidden(n),
            None => Fig::hidden(0),
        };
        unit_waves.push(serde_json::json!({ "wave": w, "units": rows, "total": total_fig }));
    }
    unit_waves
}

/// What changed most from the first to the last wave, among the shown dyads: the five largest
/// improvements and the five largest falls.
fn largest_changes(net: &Network) -> (Vec<Value>, Vec<Value>) {
    let mut changes: Vec<(f64, String, String, f64, f64, i64)> = vec![];
    for ((w, g, h), &(vb, nb)) in &net.shown {
        if *w != net.last_wave || g == h || net.first_wave == net.last_wave {
            continue;
        }
        if let Some(&(va, na)) = net.shown.get(&(net.first_wave, g.clone(), h.clone())) {
            changes.push((vb - va, g.clone(), h.clone(), va, vb, na.min(nb)));
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
/// the others' range and its rank among the municipalities whose mean may be shown.
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
        let others: Vec<f64> = shown
            .iter()
            .filter(|(m, _, _)| m.as_str() != muni)
            .map(|x| x.1)
            .collect();
        let others_n: i64 = shown
            .iter()
            .filter(|(m, _, _)| m.as_str() != muni)
            .map(|x| x.2)
            .min()
            .unwrap_or(0);
        let rank = 1 + others.iter().filter(|&&v| v > own).count();
        let lo = others.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = others.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push(serde_json::json!({
            "wave": w,
            "own": Fig { text: fmt::fixed(own, 2), n: own_n, suppressed: false },
            "n_others": others.len(),
            "others_low": Fig { text: fmt::fixed(lo, 2), n: others_n, suppressed: others.is_empty() },
            "others_high": Fig { text: fmt::fixed(hi, 2), n: others_n, suppressed: others.is_empty() },
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
}
