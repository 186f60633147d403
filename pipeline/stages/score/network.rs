//! Dyads and the collaboration network of one wave: each directed dyad D(g→h) summarised from
//! its ties, and the group and pair measures of each municipality's network (see the stage's
//! module comment for the columns).

use super::*;

/// A directed dyad, summarised from its ties.
#[derive(Debug, Clone)]
pub(super) struct Dyad {
    pub(super) n_ties: usize,
    /// Tie scores of its raters (ties with an `rc`).
    pub(super) summary: compute::Summary,
    /// Per dimension: mean over those raters who answered it, and their number.
    pub(super) dims: Vec<Scored>,
    pub(super) relevance: Scored,
    pub(super) rwg: Option<f64>,
}

/// Key: (wave, municipality, work_group, target_group).
pub(super) type DyadKey = (i64, Rc<str>, Rc<str>, Rc<str>);

pub(super) fn build_dyads(ties: &[Tie], config: &Config) -> BTreeMap<DyadKey, Dyad> {
    // Per dyad: number of ties, indices of the ties with an `rc`, relevance answers.
    let mut acc: BTreeMap<DyadKey, (usize, Vec<usize>, Vec<f64>)> = BTreeMap::new();
    for (i, t) in ties.iter().enumerate() {
        let e = acc
            .entry((
                t.wave,
                t.municipality.clone(),
                t.work_group.clone(),
                t.target_group.clone(),
            ))
            .or_default();
        e.0 += 1;
        if t.score.rc.value.is_some() {
            e.1.push(i);
        }
        if let Some(r) = t.relevance {
            e.2.push(r);
        }
    }
    let k = ties.first().map_or(0, |t| t.dims.len());
    acc.into_iter()
        .map(|(key, (n_ties, scored, relevance))| {
            let rcs: Vec<f64> = scored
                .iter()
                .filter_map(|&i| ties[i].score.rc.value)
                .collect();
            let rows: Vec<Vec<Option<f64>>> =
                scored.iter().map(|&i| ties[i].dims.clone()).collect();
            let rwg = if rows.is_empty() {
                None
            } else {
                rwg_j(&rows, config.scoring.rwg_null_variance)
            };
            let dims = (0..k)
                .map(|j| {
                    let v: Vec<f64> = rows.iter().filter_map(|r| r[j]).collect();
                    Scored {
                        value: compute::mean(&v),
                        n: v.len(),
                    }
                })
                .collect();
            let dyad = Dyad {
                n_ties,
                summary: compute::summarize(&rcs),
                dims,
                relevance: Scored {
                    value: compute::mean(&relevance),
                    n: relevance.len(),
                },
                rwg,
            };
            (key, dyad)
        })
        .collect()
}

pub(super) fn build_network(
    dyads: &BTreeMap<DyadKey, Dyad>,
    rule: &NetworkRule,
    summary: &mut StageSummary,
) -> Result<DataFrame> {
    let mut per_network: BTreeMap<(i64, Rc<str>), Vec<DyadInput>> = BTreeMap::new();
    for ((wave, muni, g, h), d) in dyads {
        if g == h {
            continue;
        }
        per_network
            .entry((*wave, muni.clone()))
            .or_default()
            .push(DyadInput {
                from: g.to_string(),
                to: h.to_string(),
                mean: d.summary.mean,
                n_raters: d.summary.n,
                relevance: d.relevance.value,
                relevance_n: d.relevance.n,
            });
    }
    let mut b = NetworkRows::default();
    let mut blind = 0u64;
    let mut one_way = 0u64;
    for ((wave, muni), inputs) in &per_network {
        let (groups, pairs) = compute::network(inputs, rule);
        // Pairs with a defined dyad in exactly one direction, for the summary.
        let defined: std::collections::BTreeSet<(&str, &str)> = inputs
            .iter()
            .filter(|d| d.mean.is_some())
            .map(|d| (d.from.as_str(), d.to.as_str()))
            .collect();
        one_way += defined
            .iter()
            .filter(|(f, t)| !defined.contains(&(*t, *f)))
            .count() as u64;
        for g in groups {
            b.group(*wave, muni, g);
        }
        for p in pairs {
            blind += u64::from(p.blind_spot);
            b.pair(*wave, muni, p);
        }
    }
    add(&mut summary.counts, "blind_spots", blind);
    add(&mut summary.counts, "pairs_one_direction_only", one_way);
    b.finish()
}

/// Columns of `network.parquet`, filled row by row (groups of a network first, then its pairs,
/// which is the (kind, work_group, partner_group) order within a network).
#[derive(Default)]
pub(super) struct NetworkRows {
    pub(super) wave: Vec<i64>,
    pub(super) municipality: Vec<String>,
    pub(super) kind: Vec<&'static str>,
    pub(super) work_group: Vec<String>,
    pub(super) partner_group: Vec<Option<String>>,
    pub(super) in_strength: Vec<Option<f64>>,
    pub(super) in_n: Vec<Option<i64>>,
    pub(super) out_strength: Vec<Option<f64>>,
    pub(super) out_n: Vec<Option<i64>>,
    pub(super) hub_score: Vec<Option<i64>>,
    pub(super) hub_n: Vec<Option<i64>>,
    pub(super) relevance_in: Vec<Option<f64>>,
    pub(super) d_forward: Vec<Option<f64>>,
    pub(super) n_forward: Vec<Option<i64>>,
    pub(super) d_backward: Vec<Option<f64>>,
    pub(super) n_backward: Vec<Option<i64>>,
    pub(super) asymmetry: Vec<Option<f64>>,
    pub(super) blind_spot: Vec<Option<bool>>,
    pub(super) high: Vec<Option<String>>,
    pub(super) low: Vec<Option<String>>,
}

impl NetworkRows {
    fn group(&mut self, wave: i64, muni: &str, g: compute::GroupMeasures) {
        self.wave.push(wave);
        self.municipality.push(muni.to_string());
        self.kind.push("group");
        self.work_group.push(g.group);
        self.partner_group.push(None);
        self.in_strength.push(g.in_strength);
        self.in_n.push(Some(n(g.in_n)));
        self.out_strength.push(g.out_strength);
        self.out_n.push(Some(n(g.out_n)));
        self.hub_score.push(Some(n(g.hub_score)));
        self.hub_n.push(Some(n(g.hub_n)));
        self.relevance_in.push(g.relevance_in);
        self.d_forward.push(None);
        self.n_forward.push(None);
        self.d_backward.push(None);
        self.n_backward.push(None);
        self.asymmetry.push(None);
        self.blind_spot.push(None);
        self.high.push(None);
        self.low.push(None);
    }

    fn pair(&mut self, wave: i64, muni: &str, p: compute::PairMeasures) {
        self.wave.push(wave);
        self.municipality.push(muni.to_string());
        self.kind.push("pair");
        self.work_group.push(p.a);
        self.partner_group.push(Some(p.b));
        self.in_strength.push(None);
        self.in_n.push(None);
        self.out_strength.push(None);
        self.out_n.push(None);
        self.hub_score.push(None);
        self.hub_n.push(None);
        self.relevance_in.push(None);
        self.d_forward.push(Some(p.d_ab));
        self.n_forward.push(Some(n(p.n_ab)));
        self.d_backward.push(Some(p.d_ba));
        self.n_backward.push(Some(n(p.n_ba)));
        self.asymmetry.push(Some(p.asymmetry));
        self.blind_spot.push(Some(p.blind_spot));
        self.high.push(p.blind_spot_high_group);
        self.low.push(p.blind_spot_low_group);
    }

    pub(super) fn finish(self) -> Result<DataFrame> {
        let mut b = FrameBuilder::new();
        b.i64("wave", self.wave)
            .str("municipality", self.municipality)
            .str("kind", self.kind)
            .str("work_group", self.work_group)
            .opt_str("partner_group", self.partner_group)
            .f64("in_strength", self.in_strength)
            .opt_i64("in_n", self.in_n)
            .f64("out_strength", self.out_strength)
            .opt_i64("out_n", self.out_n)
            .opt_i64("hub_score", self.hub_score)
            .opt_i64("hub_n", self.hub_n)
            .f64("relevance_in", self.relevance_in)
            .f64("d_forward", self.d_forward)
            .opt_i64("n_forward", self.n_forward)
            .f64("d_backward", self.d_backward)
            .opt_i64("n_backward", self.n_backward)
            .f64("asymmetry", self.asymmetry)
            .opt_bool("blind_spot", self.blind_spot)
            .opt_str("blind_spot_high_group", self.high)
            .opt_str("blind_spot_low_group", self.low);
        b.finish()
    }
}
