//! A municipality's collaboration network as the reports show it: a group × group heat map per
//! wave (with in- and out-strength margins) and one for the change from the first to the last
//! wave, with small cells suppressed; its blind spots and its hubs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::data::{Dyad, Inputs, NetGroup};
use super::privacy::{self, Cell};
use super::{fmt, plots, Fig};

/// One heat-map cell for the templates.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeatCell {
    pub text: String,
    pub n: i64,
    /// No figure at all (no dyad).
    pub empty: bool,
    pub suppressed: bool,
    pub secondary: bool,
    pub within: bool,
    pub bg: String,
    pub fg: String,
}

impl HeatCell {
    fn empty() -> HeatCell {
        HeatCell {
            text: String::new(),
            n: 0,
            empty: true,
            suppressed: false,
            secondary: false,
            within: false,
            bg: "#ffffff".into(),
            fg: "#000000".into(),
        }
    }
    fn from_cell(c: &Cell, scale: f64, centre: f64, text: String) -> HeatCell {
        if c.suppressed {
            return HeatCell {
                text: String::new(),
                n: 0,
                empty: false,
                suppressed: true,
                secondary: c.secondary,
                within: !c.in_margin,
                bg: "#eeeeee".into(),
                fg: "#000000".into(),
            };
        }
        let (bg, fg) = plots::diverging((c.value - centre) / scale);
        HeatCell {
            text,
            n: c.n,
            empty: false,
            suppressed: false,
            secondary: false,
            within: !c.in_margin,
            bg,
            fg: fg.into(),
        }
    }
    /// A margin (in- or out-strength) cell of a wave map: its value on the scale of the dyads.
    fn margin(v: f64, n: i64, hidden: bool) -> HeatCell {
        let mut c = Cell::new(v, n, true);
        c.suppressed = hidden;
        HeatCell::from_cell(&c, 2.0, 3.0, fmt::fixed(v, 2))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeatRow {
    pub label: String,
    pub cells: Vec<HeatCell>,
    pub margin: Option<HeatCell>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeatMap {
    pub title: String,
    /// `wave` or `change`.
    pub kind: String,
    /// The wave of a wave map (0 for the change map).
    pub wave: i64,
    pub columns: Vec<String>,
    pub rows: Vec<HeatRow>,
    /// In-strength per column (wave maps).
    pub col_margin: Vec<HeatCell>,
    pub suppressed: usize,
}

/// A shown dyad value: (wave, g, h) → (value, n).
type Shown = BTreeMap<(i64, String, String), (f64, i64)>;

/// A municipality's network: heat maps for each wave and the change, and the dyads shown.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub maps: Vec<HeatMap>,
    pub shown: Shown,
    pub primary: usize,
    pub secondary: usize,
    pub first_wave: i64,
    pub last_wave: i64,
}

/// What every map of one municipality rests on: its dyads and its work groups (sorted, with
/// their labels).
struct Groups<'a> {
    inp: &'a Inputs,
    municipality: &'a str,
    dyads: Vec<&'a Dyad>,
    groups: Vec<String>,
    labels: Vec<String>,
}

impl Groups<'_> {
    /// The network row of group `g` in `wave`.
    fn net_group(&self, wave: i64, g: &str) -> Option<&NetGroup> {
        self.inp
            .groups
            .iter()
            .find(|x| x.municipality == self.municipality && x.wave == wave && x.work_group == g)
    }

    /// The dyads of `wave` as cells, rater group by row, target group by column.
    fn grid(&self, wave: i64) -> Vec<Vec<Option<Cell>>> {
        self.groups
            .iter()
            .map(|g| {
                self.groups
                    .iter()
                    .map(|h| {
                        self.dyads
                            .iter()
                            .find(|d| d.wave == wave && &d.work_group == g && &d.target_group == h)
                            .and_then(|d| d.mean.map(|m| Cell::new(m, d.n_raters, !d.within_group)))
                    })
                    .collect()
            })
            .collect()
    }

    /// The people behind each out-strength (row) and in-strength (column) margin.
    fn margin_ns(&self, wave: i64, grid: &[Vec<Option<Cell>>]) -> (Vec<i64>, Vec<i64>) {
        // Out-strength rests on the raters of g (the same people rate every partner group,
        // so their number is at least the largest dyad's); in-strength on the raters of every
        // other group (different people, so the dyads' n add up).
        let row_n: Vec<i64> = grid
            .iter()
            .zip(&self.groups)
            .map(|(row, g)| {
                if self
                    .net_group(wave, g)
                    .and_then(|x| x.out_strength)
                    .is_none()
                {
                    return 0;
                }
                row.iter()
                    .flatten()
                    .filter(|c| c.in_margin)
                    .map(|c| c.n)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let col_n: Vec<i64> = self
            .groups
            .iter()
            .enumerate()
            .map(|(j, h)| {
                if self
                    .net_group(wave, h)
                    .and_then(|x| x.in_strength)
                    .is_none()
                {
                    return 0;
                }
                grid.iter()
                    .filter_map(|row| row[j].as_ref())
                    .filter(|c| c.in_margin)
                    .map(|c| c.n)
                    .sum()
            })
            .collect();
        (row_n, col_n)
    }

    /// The map of `wave` with suppression applied; its shown dyads and suppressed cells are
    /// recorded in `net`.
    fn wave_map(&self, wave: i64, min_cell: i64, net: &mut Network) -> HeatMap {
        let groups = &self.groups;
        let mut grid = self.grid(wave);
        let (row_n, col_n) = self.margin_ns(wave, &grid);
        let (row_hidden, col_hidden) =
            privacy::suppress_grid(&mut grid, Some(&row_n), Some(&col_n), min_cell);
        let mut rows = vec![];
        let mut suppressed = 0;
        for (i, g) in groups.iter().enumerate() {
            let cells: Vec<HeatCell> = grid[i]
                .iter()
                .enumerate()
                .map(|(j, c)| match c {
                    None => HeatCell::empty(),
                    Some(c) => {
                        if c.suppressed {
                            suppressed += 1;
                            if c.secondary {
                                net.secondary += 1;
                            } else {
                                net.primary += 1;
                            }
                        } else {
                            net.shown
                                .insert((wave, g.clone(), groups[j].clone()), (c.value, c.n));
                        }
                        HeatCell::from_cell(c, 2.0, 3.0, fmt::fixed(c.value, 2))
                    }
                })
                .collect();
            let margin = self
                .net_group(wave, g)
                .and_then(|x| x.out_strength)
                .map(|v| HeatCell::margin(v, row_n[i], row_hidden[i]));
            rows.push(HeatRow {
                label: self.labels[i].clone(),
                cells,
                margin,
            });
        }
        let col_margin = groups
            .iter()
            .enumerate()
            .map(
                |(j, h)| match self.net_group(wave, h).and_then(|x| x.in_strength) {
                    None => HeatCell::empty(),
                    Some(v) => HeatCell::margin(v, col_n[j], col_hidden[j]),
                },
            )
            .collect();
        HeatMap {
            title: format!("Wave {wave}"),
            kind: "wave".into(),
            wave,
            columns: self.labels.clone(),
            rows,
            col_margin,
            suppressed,
        }
    }

    /// The change from the first to the last wave of the dyads shown in both; a dyad defined
    /// in both but hidden in either is a suppressed cell.
    fn change_map(&self, net: &Network) -> HeatMap {
        let (a, b) = (net.first_wave, net.last_wave);
        let mut rows = vec![];
        let mut suppressed = 0;
        for (i, g) in self.groups.iter().enumerate() {
            let cells = self
                .groups
                .iter()
                .map(|h| {
                    let key = |w: i64| (w, g.clone(), h.clone());
                    let defined = |w: i64| {
                        self.dyads.iter().any(|d| {
                            d.wave == w
                                && &d.work_group == g
                                && &d.target_group == h
                                && d.mean.is_some()
                        })
                    };
                    match (net.shown.get(&key(a)), net.shown.get(&key(b))) {
                        (Some(&(va, na)), Some(&(vb, nb))) => {
                            let c = Cell::new(vb - va, na.min(nb), g != h);
                            let sign = if vb - va > 0.0 { "+" } else { "" };
                            HeatCell::from_cell(
                                &c,
                                0.5,
                                0.0,
                                format!("{sign}{}", fmt::fixed(vb - va, 2)),
                            )
                        }
                        _ if defined(a) && defined(b) => {
                            suppressed += 1;
                            let mut c = Cell::new(0.0, 0, g != h);
                            c.suppressed = true;
                            HeatCell::from_cell(&c, 0.5, 0.0, String::new())
                        }
                        _ => HeatCell::empty(),
                    }
                })
                .collect();
            rows.push(HeatRow {
                label: self.labels[i].clone(),
                cells,
                margin: None,
            });
        }
        HeatMap {
            title: format!("Change from wave {a} to wave {b}"),
            kind: "change".into(),
            wave: 0,
            columns: self.labels.clone(),
            rows,
            col_margin: vec![],
            suppressed,
        }
    }
}

/// Builds the heat maps of `municipality` with suppression applied.
pub fn network(inp: &Inputs, municipality: &str, min_cell: i64) -> Network {
    let dyads: Vec<&Dyad> = inp
        .dyads
        .iter()
        .filter(|d| d.municipality == municipality)
        .collect();
    let groups: Vec<String> = dyads
        .iter()
        .flat_map(|d| [d.work_group.clone(), d.target_group.clone()])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let waves: Vec<i64> = dyads
        .iter()
        .map(|d| d.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut net = Network {
        first_wave: waves.first().copied().unwrap_or(0),
        last_wave: waves.last().copied().unwrap_or(0),
        ..Default::default()
    };
    let labels: Vec<String> = groups.iter().map(|g| fmt::group(g)).collect();
    let frame = Groups {
        inp,
        municipality,
        dyads,
        groups,
        labels,
    };
    for &wave in &waves {
        let map = frame.wave_map(wave, min_cell, &mut net);
        net.maps.push(map);
    }
    if waves.len() >= 2 {
        let map = frame.change_map(&net);
        net.maps.push(map);
    }
    net
}
/// A blind spot as shown: `high` rates `low` well, `low` rates `high` poorly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlindSpot {
    pub wave: i64,
    pub high_group: String,
    pub low_group: String,
    /// D(high → low) and its n.
    pub high_rating: Fig,
    /// D(low → high) and its n.
    pub low_rating: Fig,
}

/// The blind spots of a municipality whose two dyads are both shown; and whether any was left
/// out because one of its dyads is suppressed.
pub fn blind_spots(inp: &Inputs, municipality: &str, net: &Network) -> (Vec<BlindSpot>, bool) {
    let mut out = vec![];
    let mut hidden = false;
    for p in inp
        .pairs
        .iter()
        .filter(|p| p.municipality == municipality && p.blind_spot)
    {
        let (Some(hi), Some(lo)) = (&p.high_group, &p.low_group) else {
            continue;
        };
        let fwd = net.shown.get(&(p.wave, hi.clone(), lo.clone()));
        let back = net.shown.get(&(p.wave, lo.clone(), hi.clone()));
        match (fwd, back) {
            (Some(&(vf, nf)), Some(&(vb, nb))) => out.push(BlindSpot {
                wave: p.wave,
                high_group: fmt::group(hi),
                low_group: fmt::group(lo),
                high_rating: Fig {
                    text: fmt::fixed(vf, 2),
                    n: nf,
                    suppressed: false,
                },
                low_rating: Fig {
                    text: fmt::fixed(vb, 2),
                    n: nb,
                    suppressed: false,
                },
            }),
            _ => hidden = true,
        }
    }
    (out, hidden)
}

/// A work group's hub measures in one wave.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hub {
    pub group: String,
    /// Other groups rating it highly relevant, of those with a relevance rating.
    pub hub_score: i64,
    pub hub_n: i64,
    pub relevance_in: Fig,
}

/// The groups of a municipality in `wave`, most relevant first. A hub score rests on the
/// relevance answers of every other group's raters (their sum is its n); a group rated by fewer
/// than `min_cell` people in all is left out.
pub fn hubs(inp: &Inputs, municipality: &str, wave: i64, min_cell: i64) -> Vec<Hub> {
    let mut out: Vec<Hub> = inp
        .groups
        .iter()
        .filter(|g| g.municipality == municipality && g.wave == wave)
        .filter_map(|g| {
            let n: i64 = inp
                .dyads
                .iter()
                .filter(|d| {
                    d.municipality == municipality
                        && d.wave == wave
                        && d.target_group == g.work_group
                        && !d.within_group
                })
                .map(|d| d.relevance_n)
                .sum();
            let (score, of, rel) = (g.hub_score?, g.hub_n?, g.relevance_in?);
            (n >= min_cell).then(|| Hub {
                group: fmt::group(&g.work_group),
                hub_score: score,
                hub_n: of,
                relevance_in: Fig {
                    text: fmt::fixed(rel, 2),
                    n,
                    suppressed: false,
                },
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.hub_score
            .cmp(&a.hub_score)
            .then(b.relevance_in.text.cmp(&a.relevance_in.text))
            .then(a.group.cmp(&b.group))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::super::data::NetPair;
    use super::*;

    fn dyad(g: &str, h: &str, n: i64, mean: f64) -> Dyad {
        Dyad {
            wave: 1,
            municipality: "M".into(),
            work_group: g.into(),
            target_group: h.into(),
            within_group: g == h,
            n_raters: n,
            mean: Some(mean),
            relevance_n: n,
        }
    }

    fn group(g: &str) -> NetGroup {
        NetGroup {
            wave: 1,
            municipality: "M".into(),
            work_group: g.into(),
            in_strength: Some(3.0),
            out_strength: Some(3.0),
            hub_score: Some(1),
            hub_n: Some(2),
            relevance_in: Some(3.5),
        }
    }

    fn inputs(dyads: Vec<Dyad>) -> Inputs {
        Inputs {
            dyads,
            groups: vec![group("a"), group("b"), group("c")],
            pairs: vec![NetPair {
                wave: 1,
                municipality: "M".into(),
                work_group: "a".into(),
                partner_group: "c".into(),
                blind_spot: true,
                high_group: Some("c".into()),
                low_group: Some("a".into()),
            }],
            ..Default::default()
        }
    }

    /// The six between-group dyads of groups a, b and c, each rated by at least 6 people; c
    /// rates a well (4.2) and a rates c poorly (2.5): a blind spot.
    fn between_groups() -> Vec<Dyad> {
        vec![
            dyad("a", "b", 9, 4.5),
            dyad("a", "c", 9, 2.5),
            dyad("b", "a", 8, 3.0),
            dyad("b", "c", 6, 3.0),
            dyad("c", "a", 7, 4.2),
            dyad("c", "b", 12, 3.0),
        ]
    }

    fn shown_ns(map: &HeatMap) -> Vec<Vec<Option<i64>>> {
        map.rows
            .iter()
            .map(|r| {
                r.cells
                    .iter()
                    .map(|c| (!c.empty && !c.suppressed).then_some(c.n))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn large_cells_are_all_shown_with_margins() {
        let inp = inputs(between_groups());
        let net = network(&inp, "M", 5);
        assert_eq!(net.maps.len(), 1, "one wave, no change map");
        let m = &net.maps[0];
        assert_eq!(m.columns, vec!["a", "b", "c"]);
        assert_eq!(
            shown_ns(m),
            vec![
                vec![None, Some(9), Some(9)],
                vec![Some(8), None, Some(6)],
                vec![Some(7), Some(12), None]
            ]
        );
        // Out-strength of a rests on a's raters: at least the largest dyad's 9 people;
        // in-strength of a on b's and c's raters: 8 + 7.
        assert_eq!(m.rows[0].margin.as_ref().unwrap().n, 9);
        assert_eq!(m.col_margin[0].n, 15);
        assert_eq!(m.rows[0].cells[1].text, "4.50");
        // The blind spot (c rates a 4.2, a rates c 2.5) is shown with both ratings.
        let (spots, hidden) = blind_spots(&inp, "M", &net);
        assert!(!hidden);
        assert_eq!(spots.len(), 1);
        assert_eq!(spots[0].high_rating.text, "4.20");
        assert_eq!(spots[0].low_rating.n, 9);
    }

    #[test]
    fn one_small_dyad_takes_its_row_and_column_partners_along() {
        // a→b has 2 raters: hidden. Row a then has one hidden cell: a→c (9) goes too; column
        // b: c→b (12) goes; column c: b→c (6); row c: c→a (7); row b: b→a (8). Worked by hand:
        // in a 3 × 3 network every between-group cell ends up hidden. The within-group a→a
        // (3 raters) is hidden for itself.
        let mut dyads = between_groups();
        dyads[0].n_raters = 2;
        dyads.push(dyad("a", "a", 3, 4.0));
        let inp = inputs(dyads);
        let net = network(&inp, "M", 5);
        let m = &net.maps[0];
        assert!(shown_ns(m).iter().flatten().all(Option::is_none));
        assert_eq!((net.primary, net.secondary), (2, 5));
        let (spots, hidden) = blind_spots(&inp, "M", &net);
        assert!(spots.is_empty() && hidden);
    }

    #[test]
    fn change_map_needs_both_waves_shown() {
        let mut d = vec![dyad("a", "b", 9, 3.0), dyad("b", "a", 9, 3.0)];
        let mut later = vec![dyad("a", "b", 9, 3.5), dyad("b", "a", 4, 2.0)];
        for x in &mut later {
            x.wave = 2;
        }
        d.extend(later);
        let mut inp = inputs(d);
        inp.groups.retain(|g| g.work_group != "c");
        for g in &mut inp.groups {
            g.in_strength = None;
            g.out_strength = None;
        }
        let net = network(&inp, "M", 5);
        let change = &net.maps[2];
        assert_eq!(change.kind, "change");
        assert_eq!(change.rows[0].cells[1].text, "+0.50");
        assert_eq!(change.rows[0].cells[1].n, 9);
        assert!(
            change.rows[1].cells[0].suppressed,
            "b→a has 4 raters in wave 2"
        );
    }

    #[test]
    fn hubs_need_enough_raters_and_sort_by_score() {
        let mut inp = inputs(vec![
            dyad("a", "b", 3, 4.0),
            dyad("c", "b", 3, 4.0),
            dyad("b", "a", 2, 4.0),
            dyad("c", "a", 2, 4.0),
        ]);
        inp.groups[1].hub_score = Some(2);
        let h = hubs(&inp, "M", 1, 5);
        // b: 3 + 3 = 6 raters; a: 2 + 2 = 4 (< 5, left out); c: no dyad into it.
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].group, "b");
        assert_eq!(h[0].relevance_in.n, 6);
    }
}
