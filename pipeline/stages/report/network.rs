//! A municipality's collaboration network as the reports show it: a group × group heat map per
//! wave (with in- and out-strength margins) and one for the change from the first to the last
//! wave, with small cells suppressed; its blind spots and its hubs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use anyhow::{bail, Result};

use super::audit::{self, Finding};
use super::data::{Dyad, Inputs};
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
    fn margin(v: f64, n: i64) -> HeatCell {
        HeatCell::from_cell(&Cell::new(v, n, true), 2.0, 3.0, fmt::fixed(v, 2))
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
    /// Which cells a margin is the mean of: `defined` (every between-group cell of its line)
    /// or `shown` (its shown cells only); empty for a change map, which has no margins.
    pub margins_of: String,
}

/// A shown dyad value: (wave, g, h) → (value, n).
type Shown = BTreeMap<(i64, String, String), (f64, i64)>;

/// A municipality's network: heat maps for each wave and the change, the dyads shown, and
/// what the attacker's audit found about the hidden ones.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub maps: Vec<HeatMap>,
    pub shown: Shown,
    pub primary: usize,
    pub secondary: usize,
    pub first_wave: i64,
    pub last_wave: i64,
    pub findings: Vec<Finding>,
}

/// How a municipality's maps are published and audited.
#[derive(Debug, Clone)]
pub struct Rules {
    pub min_cell: i64,
    /// `privacy.protection_width`.
    pub width: f64,
    /// The files that show the maps.
    pub pages: Vec<String>,
}

/// The number of distinct people who rated at least one of `dyads` ((wave, rater group,
/// rated group)) in `municipality`.
pub fn people(inp: &Inputs, municipality: &str, dyads: &[(i64, &str, &str)]) -> i64 {
    let mut all: BTreeSet<u32> = BTreeSet::new();
    for &(w, g, h) in dyads {
        let key = (municipality.to_string(), w, g.to_string(), h.to_string());
        if let Some(r) = inp.raters.get(&key) {
            all.extend(r.iter().copied());
        }
    }
    all.len() as i64
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

/// A wave's grid after suppression: cells by (rater, rated), `None` = no figure.
type Grid = Vec<Vec<Option<Cell>>>;

impl Groups<'_> {
    /// The dyads of `wave` as cells, rater group by row, target group by column.
    fn grid(&self, wave: i64) -> Grid {
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

    /// A margin over the shown between-group cells `at` ((row, column) pairs) of `grid`: their
    /// plain mean, and the people who rated them; `None` when no cell of the line is shown.
    fn margin(&self, wave: i64, grid: &Grid, at: &[(usize, usize)]) -> Option<HeatCell> {
        let shown: Vec<(usize, usize, f64)> = at
            .iter()
            .filter_map(|&(i, j)| {
                grid[i][j]
                    .filter(|c| c.in_margin && !c.suppressed)
                    .map(|c| (i, j, c.value))
            })
            .collect();
        if shown.is_empty() {
            return None;
        }
        let mean = shown.iter().map(|x| x.2).sum::<f64>() / shown.len() as f64;
        let keys: Vec<(i64, &str, &str)> = shown
            .iter()
            .map(|&(i, j, _)| (wave, self.groups[i].as_str(), self.groups[j].as_str()))
            .collect();
        let n = people(self.inp, self.municipality, &keys);
        Some(HeatCell::margin(mean, n))
    }

    /// The map of `wave`: primary suppression, the secondary suppressions `extra` ((row,
    /// column) pairs), and margins over the shown cells only.
    fn wave_map(
        &self,
        wave: i64,
        min_cell: i64,
        extra: &BTreeSet<(usize, usize)>,
    ) -> (HeatMap, Grid) {
        let k = self.groups.len();
        let mut grid = self.grid(wave);
        privacy::suppress_grid(&mut grid, min_cell);
        for &(i, j) in extra {
            if let Some(c) = grid[i][j].as_mut().filter(|c| !c.suppressed) {
                c.suppressed = true;
                c.secondary = true;
            }
        }
        let mut suppressed = 0;
        let rows = (0..k)
            .map(|i| HeatRow {
                label: self.labels[i].clone(),
                cells: grid[i]
                    .iter()
                    .map(|c| match c {
                        None => HeatCell::empty(),
                        Some(c) => {
                            suppressed += usize::from(c.suppressed);
                            HeatCell::from_cell(c, 2.0, 3.0, fmt::fixed(c.value, 2))
                        }
                    })
                    .collect(),
                margin: self.margin(wave, &grid, &(0..k).map(|j| (i, j)).collect::<Vec<_>>()),
            })
            .collect();
        let col_margin = (0..k)
            .map(|j| {
                self.margin(wave, &grid, &(0..k).map(|i| (i, j)).collect::<Vec<_>>())
                    .unwrap_or_else(HeatCell::empty)
            })
            .collect();
        let map = HeatMap {
            title: format!("Wave {wave}"),
            kind: "wave".into(),
            wave,
            columns: self.labels.clone(),
            rows,
            col_margin,
            suppressed,
            margins_of: "shown".into(),
        };
        (map, grid)
    }

    /// The map of `wave` that passes the attacker's audit: while a hidden cell can be narrowed
    /// below the protection width (or its n pinned), the shown between-group cell with the
    /// fewest people in its row or column is hidden too (ties: the first in display order).
    /// Records the accepted map's shown dyads, counts and findings in `net`.
    fn audited_wave_map(&self, wave: i64, rules: &Rules, net: &mut Network) -> Result<HeatMap> {
        let mut extra = BTreeSet::new();
        loop {
            let (map, grid) = self.wave_map(wave, rules.min_cell, &extra);
            let table = audit::heat_table(self.municipality, &map, &rules.pages);
            let findings = audit::audit_table(&table, rules.min_cell, rules.width)?;
            let exposed: Vec<(usize, usize)> = findings
                .iter()
                .filter(|f| !f.protected)
                .filter_map(|f| self.position(&f.figure))
                .collect();
            if exposed.is_empty() {
                self.record(wave, &grid, net);
                net.findings.extend(findings);
                return Ok(map);
            }
            let candidate = exposed
                .iter()
                .flat_map(|&(r, c)| (0..self.groups.len()).flat_map(move |x| [(r, x), (x, c)]))
                .filter(|&(i, j)| grid[i][j].is_some_and(|c| c.in_margin && !c.suppressed))
                .min_by_key(|&(i, j)| (grid[i][j].map_or(i64::MAX, |c| c.n), i, j));
            match candidate {
                Some(c) => {
                    extra.insert(c);
                }
                None => bail!(
                    "the disclosure audit rejects the wave {wave} network of {}: a hidden cell \
                     can be narrowed below privacy.protection_width = {} and no shown cell is \
                     left to hide with it",
                    self.municipality,
                    rules.width
                ),
            }
        }
    }

    /// The (row, column) of a figure named `<rater> → <rated>`.
    fn position(&self, figure: &str) -> Option<(usize, usize)> {
        let (a, b) = figure.split_once(" → ")?;
        let i = self.labels.iter().position(|l| l == a)?;
        let j = self.labels.iter().position(|l| l == b)?;
        Some((i, j))
    }

    /// Records the shown dyads and the suppressed cells of an accepted wave grid.
    fn record(&self, wave: i64, grid: &Grid, net: &mut Network) {
        for (i, row) in grid.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                let Some(c) = c else { continue };
                match (c.suppressed, c.secondary) {
                    (false, _) => {
                        let key = (wave, self.groups[i].clone(), self.groups[j].clone());
                        net.shown.insert(key, (c.value, c.n));
                    }
                    (true, true) => net.secondary += 1,
                    (true, false) => net.primary += 1,
                }
            }
        }
    }

    /// The change from the first to the last wave of the dyads shown in both (its n: the
    /// people who rated the dyad in either wave); a dyad defined in both but hidden in either
    /// is a suppressed cell.
    fn change_map(&self, net: &Network, min_cell: i64) -> HeatMap {
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
                    let both = [(a, g.as_str(), h.as_str()), (b, g.as_str(), h.as_str())];
                    let n = people(self.inp, self.municipality, &both);
                    match (net.shown.get(&key(a)), net.shown.get(&key(b))) {
                        (Some(&(va, _)), Some(&(vb, _))) if n >= min_cell => {
                            let c = Cell::new(vb - va, n, g != h);
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
            margins_of: String::new(),
        }
    }
}

/// Builds the heat maps of `municipality` with suppression applied and audited.
pub fn network(inp: &Inputs, municipality: &str, rules: &Rules) -> Result<Network> {
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
        let map = frame.audited_wave_map(wave, rules, &mut net)?;
        net.maps.push(map);
    }
    if waves.len() >= 2 {
        let map = frame.change_map(&net, rules.min_cell);
        net.maps.push(map);
    }
    Ok(net)
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

/// The blind spots of a municipality whose two dyads are both shown. Nothing is said about
/// pairs with a hidden dyad: that one of them is a blind spot would tell how the small group
/// rated (at most `blind_spot_low`, or at least `blind_spot_high`).
pub fn blind_spots(inp: &Inputs, municipality: &str, net: &Network) -> Vec<BlindSpot> {
    let mut out = vec![];
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
        if let (Some(&(vf, nf)), Some(&(vb, nb))) = (fwd, back) {
            out.push(BlindSpot {
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
            });
        }
    }
    out
}

/// A work group's hub measures in one wave, over the other groups whose relevance rating of
/// it comes from at least `min_cell` people (the groups that can be shown).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hub {
    pub group: String,
    /// Those groups rating it highly relevant (mean relevance ≥ `scoring.hub_relevance`).
    pub hub_score: i64,
    /// Those groups.
    pub hub_n: i64,
    /// Their mean relevance rating of it; n: the people behind those ratings.
    pub relevance_in: Fig,
}

/// The groups of a municipality in `wave`, most relevant first. Only another group's
/// relevance rating from at least `min_cell` people counts, so no count or mean tells how a
/// small group rated; a group with no such rating is left out.
pub fn hubs(
    inp: &Inputs,
    municipality: &str,
    wave: i64,
    min_cell: i64,
    threshold: f64,
) -> Vec<Hub> {
    let targets: BTreeSet<&str> = inp
        .dyads
        .iter()
        .filter(|d| d.municipality == municipality && d.wave == wave)
        .map(|d| d.target_group.as_str())
        .collect();
    let mut out: Vec<Hub> = targets
        .into_iter()
        .filter_map(|g| {
            let ratings: Vec<(f64, i64)> = inp
                .dyads
                .iter()
                .filter(|d| {
                    d.municipality == municipality
                        && d.wave == wave
                        && d.target_group == g
                        && !d.within_group
                        && d.relevance_n >= min_cell
                })
                .filter_map(|d| d.relevance.map(|r| (r, d.relevance_n)))
                .collect();
            if ratings.is_empty() {
                return None;
            }
            let mean = ratings.iter().map(|r| r.0).sum::<f64>() / ratings.len() as f64;
            Some(Hub {
                group: fmt::group(g),
                hub_score: ratings.iter().filter(|r| r.0 >= threshold).count() as i64,
                hub_n: ratings.len() as i64,
                relevance_in: Fig {
                    text: fmt::fixed(mean, 2),
                    n: ratings.iter().map(|r| r.1).sum(),
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
            relevance: Some(mean),
        }
    }

    /// The dyads, a blind spot of (c, a), and their raters: the first n people of the rater
    /// group (people `100·k + i` of group k), the same people in every wave.
    fn inputs(dyads: Vec<Dyad>) -> Inputs {
        let mut raters = super::super::data::Raters::new();
        for d in &dyads {
            if d.within_group {
                continue;
            }
            let k = u32::from(d.work_group.as_bytes()[0]);
            let key = (
                d.municipality.clone(),
                d.wave,
                d.work_group.clone(),
                d.target_group.clone(),
            );
            raters.insert(key, (0..d.n_raters as u32).map(|i| 100 * k + i).collect());
        }
        Inputs {
            dyads,
            raters,
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

    fn rules() -> Rules {
        Rules {
            min_cell: 5,
            width: 1.0,
            pages: vec!["p.html".into()],
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
        let net = network(&inp, "M", &rules()).unwrap();
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
        // Out-strength of a: (4.5 + 2.5) / 2 from a's 9 raters (the same people rate b and
        // c); in-strength of a: (3.0 + 4.2) / 2 from b's 8 and c's 7 raters.
        let out = m.rows[0].margin.as_ref().unwrap();
        assert_eq!((out.text.as_str(), out.n), ("3.50", 9));
        assert_eq!(
            (m.col_margin[0].text.as_str(), m.col_margin[0].n),
            ("3.60", 15)
        );
        assert_eq!(m.rows[0].cells[1].text, "4.50");
        // The blind spot (c rates a 4.2, a rates c 2.5) is shown with both ratings.
        let spots = blind_spots(&inp, "M", &net);
        assert_eq!(spots.len(), 1);
        assert_eq!(spots[0].high_rating.text, "4.20");
        assert_eq!(spots[0].low_rating.n, 9);
        assert!(net.findings.is_empty(), "nothing hidden, nothing audited");
    }

    #[test]
    fn a_small_dyad_is_hidden_and_left_out_of_its_margins() {
        // a→b has 2 raters: hidden; the margins are over the shown cells only, so nothing
        // else has to go: row a's out-strength is a→c alone (2.50, a's 9 raters), column b's
        // in-strength c→b alone (3.00, 12). The within-group a→a (3 raters) is hidden too.
        let mut dyads = between_groups();
        dyads[0].n_raters = 2;
        dyads.push(dyad("a", "a", 3, 4.0));
        let inp = inputs(dyads);
        let net = network(&inp, "M", &rules()).unwrap();
        let m = &net.maps[0];
        assert_eq!(
            shown_ns(m),
            vec![
                vec![None, None, Some(9)],
                vec![Some(8), None, Some(6)],
                vec![Some(7), Some(12), None]
            ]
        );
        assert_eq!((net.primary, net.secondary), (2, 0));
        let out = m.rows[0].margin.as_ref().unwrap();
        assert_eq!((out.text.as_str(), out.n), ("2.50", 9));
        assert_eq!(
            (m.col_margin[1].text.as_str(), m.col_margin[1].n),
            ("3.00", 12)
        );
        assert_eq!(m.margins_of, "shown");
        // The audit: both hidden cells span the whole scale, n anywhere from 1 to 4.
        assert_eq!(net.findings.len(), 2);
        for f in &net.findings {
            assert!(f.protected && f.lo == 1.0 && f.hi == 5.0, "{f:?}");
            assert_eq!((f.n_lo, f.n_hi), (1, 4));
            assert_eq!(f.pages, vec!["p.html".to_string()]);
        }
        assert_eq!(blind_spots(&inp, "M", &net).len(), 1);
    }

    #[test]
    fn change_map_needs_both_waves_shown() {
        let mut d = vec![dyad("a", "b", 9, 3.0), dyad("b", "a", 9, 3.0)];
        let mut later = vec![dyad("a", "b", 9, 3.5), dyad("b", "a", 4, 2.0)];
        for x in &mut later {
            x.wave = 2;
        }
        d.extend(later);
        let inp = inputs(d);
        let net = network(&inp, "M", &rules()).unwrap();
        let change = &net.maps[2];
        assert_eq!(change.kind, "change");
        assert_eq!(change.rows[0].cells[1].text, "+0.50");
        // The same 9 people rated a→b in both waves.
        assert_eq!(change.rows[0].cells[1].n, 9);
        assert!(
            change.rows[1].cells[0].suppressed,
            "b→a has 4 raters in wave 2"
        );
    }

    #[test]
    fn hubs_count_only_ratings_that_could_be_shown() {
        let mut inp = inputs(vec![
            dyad("a", "b", 6, 4.5),
            dyad("c", "b", 3, 4.5),
            dyad("d", "b", 7, 3.0),
            dyad("b", "a", 2, 4.0),
            dyad("c", "a", 2, 4.0),
        ]);
        inp.dyads[2].relevance_n = 5;
        let h = hubs(&inp, "M", 1, 5, 4.0);
        // b: a (6 people, 4.5) and d (5 people, 3.0) count, c (3 people) does not: 1 of 2
        // groups, mean 3.75 from 11 people. a: no rating from 5 or more people, left out.
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].group.as_str(), h[0].hub_score, h[0].hub_n),
            ("b", 1, 2)
        );
        assert_eq!(
            (h[0].relevance_in.text.as_str(), h[0].relevance_in.n),
            ("3.75", 11)
        );
    }
}
