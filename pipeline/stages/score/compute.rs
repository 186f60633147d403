//! The scores of the study as pure functions on plain slices: no files, no polars, no config.
//!
//! The `score` stage reshapes the clean answers into one slice per tie, respondent, unit or
//! citizen and calls these functions; the tests (including the check against the published
//! German RC survey in `tests/it/rc_survey_germany.rs`) call the very same functions, so what is
//! tested is what runs.
//!
//! Conventions that decide the last digit (`docs/methods.md` gives the reasons):
//! - a score is the plain mean of the *answered* items (a `None` is not answered, whatever its
//!   reason), summed left to right in the order given and divided by the number answered;
//! - "at least half of the items" is ceil(k/2), resolved by the caller
//!   (`config::ScoringSection::srm_min`); these functions take the resolved minimum;
//! - a standard deviation is the sample SD (n − 1 in the denominator), undefined below n = 2.

/// A mean with the number of values it is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scored {
    /// The mean, or `None` when the rule for computing it is not met.
    pub value: Option<f64>,
    /// How many values were available (answered items, other raters, ...), met or not.
    pub n: usize,
}

/// Plain mean (left-to-right sum divided by n); `None` for an empty slice.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sum = 0.0;
    for v in values {
        sum += v;
    }
    Some(sum / values.len() as f64)
}

/// Sample standard deviation (n − 1 denominator, two-pass around the mean); `None` when n < 2.
pub fn sd(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let mut ss = 0.0;
    for v in values {
        ss += (v - m) * (v - m);
    }
    Some((ss / (values.len() - 1) as f64).sqrt())
}

/// Mean of the answered items when at least `min_answered` of them are answered (a minimum of 0
/// is treated as 1: a mean of nothing is not a score). `n` is the number answered.
pub fn mean_of_answered(items: &[Option<f64>], min_answered: usize) -> Scored {
    // The same left-to-right sum as `mean` over the answered items, without collecting them
    // (this runs three times for each of millions of ties).
    let (sum, n) = sum_present(items.iter().copied());
    let value = (n >= min_answered.max(1)).then(|| sum / n as f64);
    Scored { value, n }
}

/// Left-to-right sum (from 0.0) and count of the present values.
fn sum_present(values: impl Iterator<Item = Option<f64>>) -> (f64, usize) {
    let mut sum = 0.0;
    let mut n = 0;
    for v in values.flatten() {
        sum += v;
        n += 1;
    }
    (sum, n)
}

/// How a tie is scored from its dimension items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TieRule {
    /// The first `n_communication` dimensions are the communication sub-scale, the rest the
    /// relationship sub-scale (the order of `InstrumentSection::dimensions`).
    pub n_communication: usize,
    /// The tie score needs at least this many dimensions answered (`scoring.tie_min_items`).
    pub min_items: usize,
    /// A sub-score needs at least this many of its items answered; 0 means all of them
    /// (`scoring.subscale_min_items`; the published German RC scoring uses "all").
    pub subscale_min_items: usize,
}

impl TieRule {
    fn subscale_min(&self, k: usize) -> usize {
        if self.subscale_min_items == 0 {
            k
        } else {
            self.subscale_min_items.min(k)
        }
    }
}

/// The scores of one tie (one respondent's answers about one partner group in one wave).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TieScore {
    /// Mean of the answered dimensions when at least `min_items` are answered.
    pub rc: Scored,
    /// Mean of the answered communication items under the sub-scale rule.
    pub communication: Scored,
    /// Mean of the answered relationship items under the sub-scale rule.
    pub relationship: Scored,
}

/// Scores one tie. `dims` holds the dimension items in instrument order (communication first);
/// a `None` is an unanswered item (missing, "don't know", or not asked).
pub fn tie_score(dims: &[Option<f64>], rule: &TieRule) -> TieScore {
    let split = rule.n_communication.min(dims.len());
    let (com, rel) = dims.split_at(split);
    TieScore {
        rc: mean_of_answered(dims, rule.min_items),
        communication: mean_of_answered(com, rule.subscale_min(com.len())),
        relationship: mean_of_answered(rel, rule.subscale_min(rel.len())),
    }
}

/// Leave-one-out means within one group (the respondents of one unit in one wave): for each
/// position i, the mean of the *other* values that are present; when value i is itself absent,
/// the mean of all present values. `n` is the number of values averaged; `value` is `None`
/// when that is 0 (a unit of one, or nobody else with a score).
///
/// Each mean is summed directly over the others in the given order (not as (S − x_i)/(n − 1)),
/// so it equals what a reviewer gets by averaging the others' values.
pub fn leave_one_out(values: &[Option<f64>]) -> Vec<Scored> {
    (0..values.len())
        .map(|i| {
            let (sum, n) = sum_present(
                values
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i || values[i].is_none())
                    .map(|(_, v)| *v),
            );
            Scored {
                value: (n > 0).then(|| sum / n as f64),
                n,
            }
        })
        .collect()
}

/// Mean, sample SD and n of a set of scores (a dyad, a unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub n: usize,
}

pub fn summarize(values: &[f64]) -> Summary {
    Summary {
        mean: mean(values),
        sd: sd(values),
        n: values.len(),
    }
}

/// One directed dyad of a municipality's network in one wave: how raters of group `from` rate
/// group `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct DyadInput {
    pub from: String,
    pub to: String,
    /// D(from → to): mean tie score over the raters with a tie score; `None` if there are none.
    pub mean: Option<f64>,
    pub n_raters: usize,
    /// Mean relevance rating of `to` by the raters of `from` who answered it.
    pub relevance: Option<f64>,
    pub relevance_n: usize,
}

/// Thresholds of the network measures (`scoring.blind_spot_high`, `blind_spot_low`,
/// `hub_relevance`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkRule {
    pub blind_spot_high: f64,
    pub blind_spot_low: f64,
    pub hub_relevance: f64,
}

/// Network measures of one work group (within-group dyads never count).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMeasures {
    pub group: String,
    /// Mean of D(h → group) over the other groups h whose dyad to the group is defined.
    pub in_strength: Option<f64>,
    pub in_n: usize,
    /// Mean of D(group → h) over the other groups h with a defined dyad.
    pub out_strength: Option<f64>,
    pub out_n: usize,
    /// Number of other groups whose mean relevance rating of the group is ≥ `hub_relevance`.
    pub hub_score: usize,
    /// Number of other groups with a mean relevance rating of the group (the hub denominator).
    pub hub_n: usize,
    /// Mean over those groups of their mean relevance rating of the group.
    pub relevance_in: Option<f64>,
}

/// Measures of one unordered pair of distinct groups `a` < `b` whose dyads are defined both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct PairMeasures {
    pub a: String,
    pub b: String,
    pub d_ab: f64,
    pub n_ab: usize,
    pub d_ba: f64,
    pub n_ba: usize,
    /// D(a → b) − D(b → a).
    pub asymmetry: f64,
    /// One group rates the other ≥ `blind_spot_high` while being rated ≤ `blind_spot_low` back.
    /// With low < high at most one direction can qualify.
    pub blind_spot: bool,
    /// The group that rates the collaboration well (the one with the blind spot).
    pub blind_spot_high_group: Option<String>,
    /// The group that rates it poorly.
    pub blind_spot_low_group: Option<String>,
}

/// Network measures of one municipality in one wave from its directed dyads. Groups are every
/// group that rates or is rated (sorted); pairs are the unordered pairs of distinct groups with
/// a defined dyad in both directions (sorted by `a`, then `b`). Dyads listed twice are an error
/// of the caller; the first one wins.
pub fn network(dyads: &[DyadInput], rule: &NetworkRule) -> (Vec<GroupMeasures>, Vec<PairMeasures>) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_pair: BTreeMap<(&str, &str), &DyadInput> = BTreeMap::new();
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    for d in dyads {
        groups.insert(&d.from);
        groups.insert(&d.to);
        by_pair.entry((&d.from, &d.to)).or_insert(d);
    }
    let mut out_groups = Vec::with_capacity(groups.len());
    for &g in &groups {
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        let mut relevance = Vec::new();
        for &h in &groups {
            if h == g {
                continue;
            }
            if let Some(d) = by_pair.get(&(h, g)) {
                if let Some(m) = d.mean {
                    ins.push(m);
                }
                if let Some(r) = d.relevance {
                    relevance.push(r);
                }
            }
            if let Some(m) = by_pair.get(&(g, h)).and_then(|d| d.mean) {
                outs.push(m);
            }
        }
        out_groups.push(GroupMeasures {
            group: g.to_string(),
            in_strength: mean(&ins),
            in_n: ins.len(),
            out_strength: mean(&outs),
            out_n: outs.len(),
            hub_score: relevance
                .iter()
                .filter(|&&r| r >= rule.hub_relevance)
                .count(),
            hub_n: relevance.len(),
            relevance_in: mean(&relevance),
        });
    }
    let mut pairs = Vec::new();
    for &a in &groups {
        for &b in
            groups.range::<&str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
        {
            let ab = by_pair
                .get(&(a, b))
                .and_then(|d| d.mean.map(|m| (m, d.n_raters)));
            let ba = by_pair
                .get(&(b, a))
                .and_then(|d| d.mean.map(|m| (m, d.n_raters)));
            let (Some((d_ab, n_ab)), Some((d_ba, n_ba))) = (ab, ba) else {
                continue;
            };
            let (high, low) = if d_ab >= rule.blind_spot_high && d_ba <= rule.blind_spot_low {
                (Some(a), Some(b))
            } else if d_ba >= rule.blind_spot_high && d_ab <= rule.blind_spot_low {
                (Some(b), Some(a))
            } else {
                (None, None)
            };
            pairs.push(PairMeasures {
                a: a.to_string(),
                b: b.to_string(),
                d_ab,
                n_ab,
                d_ba,
                n_ba,
                asymmetry: d_ab - d_ba,
                blind_spot: high.is_some(),
                blind_spot_high_group: high.map(str::to_string),
                blind_spot_low_group: low.map(str::to_string),
            });
        }
    }
    (out_groups, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: TieRule = TieRule {
        n_communication: 4,
        min_items: 5,
        subscale_min_items: 0,
    };

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    proptest::proptest! {
        /// The sums without a collected vector give the bits of the plain definition: collect
        /// the answered values (the others' values), then `mean`.
        #[test]
        fn means_without_allocation_match_collect_then_mean(
            values in proptest::collection::vec(
                proptest::option::of(-1e6f64..1e6), 0..12),
            min in 0usize..8,
        ) {
            let answered: Vec<f64> = values.iter().flatten().copied().collect();
            let plain = if answered.len() >= min.max(1) { mean(&answered) } else { None };
            let got = mean_of_answered(&values, min);
            proptest::prop_assert_eq!(got.value.map(f64::to_bits), plain.map(f64::to_bits));
            proptest::prop_assert_eq!(got.n, answered.len());
            let loo = leave_one_out(&values);
            for (i, s) in loo.iter().enumerate() {
                let others: Vec<f64> = values
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i || values[i].is_none())
                    .filter_map(|(_, v)| *v)
                    .collect();
                proptest::prop_assert_eq!(s.value.map(f64::to_bits), mean(&others).map(f64::to_bits));
                proptest::prop_assert_eq!(s.n, others.len());
            }
        }
    }

    #[test]
    fn five_of_seven_rule() {
        // 5 answered: (4 + 3 + 5 + 4 + 2) / 5 = 18 / 5 = 3.6.
        let five = [
            Some(4.0),
            Some(3.0),
            None,
            Some(5.0),
            Some(4.0),
            None,
            Some(2.0),
        ];
        let s = tie_score(&five, &RULE);
        assert!(close(s.rc.value, 3.6));
        assert_eq!(s.rc.n, 5);
        // 4 answered: no tie score, n still 4.
        let four = [Some(4.0), None, None, Some(5.0), Some(4.0), None, Some(2.0)];
        let s = tie_score(&four, &RULE);
        assert_eq!(s.rc.value, None);
        assert_eq!(s.rc.n, 4);
    }

    #[test]
    fn subscales_need_all_items_by_default() {
        // Communication 4, 3, –, 5: one missing → no sub-score under "all items".
        // Relationship 4, 4, 2: (4 + 4 + 2) / 3 = 10/3.
        let dims = [
            Some(4.0),
            Some(3.0),
            None,
            Some(5.0),
            Some(4.0),
            Some(4.0),
            Some(2.0),
        ];
        let s = tie_score(&dims, &RULE);
        assert_eq!(s.communication.value, None);
        assert_eq!(s.communication.n, 3);
        assert!(close(s.relationship.value, 10.0 / 3.0));
        // With a minimum of 3 per sub-scale: communication (4 + 3 + 5) / 3 = 4.
        let lax = TieRule {
            subscale_min_items: 3,
            ..RULE
        };
        assert!(close(tie_score(&dims, &lax).communication.value, 4.0));
    }

    #[test]
    fn at_least_half_is_ceil_k_over_2() {
        // SRM, k = 6, ceil(6/2) = 3: 3 answered → (2 + 3 + 4) / 3 = 3; 2 answered → none.
        let three = [Some(2.0), None, Some(3.0), None, Some(4.0), None];
        assert!(close(mean_of_answered(&three, 3).value, 3.0));
        let two = [Some(2.0), None, None, None, Some(4.0), None];
        assert_eq!(mean_of_answered(&two, 3).value, None);
        // Citizens, k = 5, ceil(5/2) = 3: 3 answered → (5 + 4 + 4) / 3 = 13/3; 2 → none.
        let c3 = [Some(5.0), None, Some(4.0), Some(4.0), None];
        assert!(close(mean_of_answered(&c3, 3).value, 13.0 / 3.0));
        let c2 = [Some(5.0), None, Some(4.0), None, None];
        assert_eq!(mean_of_answered(&c2, 3), Scored { value: None, n: 2 });
    }

    #[test]
    fn leave_one_out_by_hand() {
        // Unit of four: SRM 2, 4, none, 3.
        // r0: others with a score 4, 3 → 3.5 (n 2); r1: 2, 3 → 2.5; r2 (none): all 2, 4, 3 → 3
        // (n 3); r3: 2, 4 → 3.
        let v = [Some(2.0), Some(4.0), None, Some(3.0)];
        let l = leave_one_out(&v);
        assert!(close(l[0].value, 3.5) && l[0].n == 2);
        assert!(close(l[1].value, 2.5) && l[1].n == 2);
        assert!(close(l[2].value, 3.0) && l[2].n == 3);
        assert!(close(l[3].value, 3.0) && l[3].n == 2);
        // A unit of one: nobody else.
        assert_eq!(leave_one_out(&[Some(4.0)])[0], Scored { value: None, n: 0 });
        // Nobody with a score.
        assert_eq!(
            leave_one_out(&[None, None])[1],
            Scored { value: None, n: 0 }
        );
    }

    #[test]
    fn sd_is_sample_sd() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squares sum 32, 32/7.
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!(close(s.mean, 5.0));
        assert!(close(s.sd, (32.0f64 / 7.0).sqrt()));
        assert_eq!(summarize(&[3.0]).sd, None);
    }

    fn d(from: &str, to: &str, mean: Option<f64>, rel: Option<f64>) -> DyadInput {
        DyadInput {
            from: from.into(),
            to: to.into(),
            mean,
            n_raters: usize::from(mean.is_some()) * 2,
            relevance: rel,
            relevance_n: usize::from(rel.is_some()),
        }
    }

    #[test]
    fn network_by_hand() {
        let rule = NetworkRule {
            blind_spot_high: 4.0,
            blind_spot_low: 3.0,
            hub_relevance: 4.0,
        };
        // a→b 4.5, b→a 2.5: blind spot held by a; asymmetry 2.
        // a→c 3.0, c→a 3.5: no blind spot; asymmetry −0.5.
        // b→c 4.0 only one way: no pair row.  a→a 5 (within): ignored everywhere.
        // Relevance of a: by b 4.5, by c 4.0 → hub 2 of 2; of b: by a 3.0 → hub 0 of 1;
        // of c: by a 5, by b 4 → hub 2 of 2.
        let dyads = vec![
            d("a", "a", Some(5.0), Some(5.0)),
            d("a", "b", Some(4.5), Some(3.0)),
            d("b", "a", Some(2.5), Some(4.5)),
            d("a", "c", Some(3.0), Some(5.0)),
            d("c", "a", Some(3.5), Some(4.0)),
            d("b", "c", Some(4.0), Some(4.0)),
            d("c", "b", None, None),
        ];
        let (groups, pairs) = network(&dyads, &rule);
        let g: Vec<_> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(g, ["a", "b", "c"]);
        let a = &groups[0];
        // in(a) = (2.5 + 3.5) / 2 = 3; out(a) = (4.5 + 3.0) / 2 = 3.75.
        assert!(close(a.in_strength, 3.0) && a.in_n == 2);
        assert!(close(a.out_strength, 3.75) && a.out_n == 2);
        assert_eq!((a.hub_score, a.hub_n), (2, 2));
        assert!(close(a.relevance_in, 4.25));
        let b = &groups[1];
        // in(b) = 4.5 (c→b undefined); out(b) = (2.5 + 4.0) / 2 = 3.25.
        assert!(close(b.in_strength, 4.5) && b.in_n == 1);
        assert!(close(b.out_strength, 3.25) && b.out_n == 2);
        assert_eq!((b.hub_score, b.hub_n), (0, 1));
        let c = &groups[2];
        assert_eq!((c.hub_score, c.hub_n), (2, 2));
        assert_eq!(pairs.len(), 2);
        let ab = &pairs[0];
        assert_eq!((ab.a.as_str(), ab.b.as_str()), ("a", "b"));
        assert!((ab.asymmetry - 2.0).abs() < 1e-12);
        assert!(ab.blind_spot);
        assert_eq!(ab.blind_spot_high_group.as_deref(), Some("a"));
        assert_eq!(ab.blind_spot_low_group.as_deref(), Some("b"));
        let ac = &pairs[1];
        assert!((ac.asymmetry + 0.5).abs() < 1e-12);
        assert!(!ac.blind_spot && ac.blind_spot_high_group.is_none());
    }

    #[test]
    fn blind_spot_is_found_in_either_direction_at_the_thresholds() {
        let rule = NetworkRule {
            blind_spot_high: 4.0,
            blind_spot_low: 3.0,
            hub_relevance: 4.0,
        };
        // b rates a exactly 4 (≥ high), a rates b exactly 3 (≤ low): b holds the blind spot.
        let dyads = vec![d("a", "b", Some(3.0), None), d("b", "a", Some(4.0), None)];
        let (_, pairs) = network(&dyads, &rule);
        assert!(pairs[0].blind_spot);
        assert_eq!(pairs[0].blind_spot_high_group.as_deref(), Some("b"));
        assert!((pairs[0].asymmetry + 1.0).abs() < 1e-12);
    }
}
