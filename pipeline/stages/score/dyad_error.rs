//! The sampling error of the dyad means: `dyad_errors.parquet`, what the link stage needs to
//! give each case RCap its sampling variance, and the model stage the full covariance of the
//! case RCaps' errors (`docs/methods.md`, "H1 corrected for measurement error"). Per
//! municipality and wave, over the between-group ties with a tie score, the statistics engine
//! (`relcap::stats::measurement::dyad_errors`) gives each dyad mean's sampling variance (its
//! raters' variance s² / n, or the pooled within-dyad variance / n for a dyad with fewer than
//! `scoring.dyad_min_raters` raters) and the covariance of two dyad means of one rating group
//! that share raters (n_common σ_a / (n n'), σ_a the covariance of one rater's deviations about
//! two partner groups, pooled over the municipality and wave). Per municipality and pair of
//! waves, `cross_wave_errors` gives the covariance of two dyad means of one rating group in
//! different waves that share raters (the same employee, by unit and respondent id, answering in
//! both): n_common σ / (n n'), σ the cross-wave covariance of one rater's deviations, estimated
//! separately for the same target and for two targets.
//!
//! # `dyad_errors.parquet`
//!
//! One row per between-group dyad with a tie score (`other_group` empty), one per pair of such
//! dyads of the same rating group and wave with at least one common rater (`other_group` set,
//! `target_group < other_group`, `other_wave` empty), and one per pair of dyads of the same
//! rating group in two waves with at least one common rater (`other_wave` > `wave` set,
//! `other_group` the second wave's target, which may equal `target_group`); sorted by (wave,
//! municipality, work_group, target_group, other_wave, other_group, empty first).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality | i64, str | |
//! | work_group | str | the rating group g |
//! | target_group | str | the rated group h |
//! | other_wave | i64? | cross-wave pair rows: the wave of the second dyad |
//! | other_group | str? | pair rows: the other rated group h' |
//! | n_raters | i64 | dyad rows: raters with a tie score (the n of the dyad mean); pair rows: raters of both |
//! | var_within | f64? | dyad rows: the raters' sample variance s² (n − 1); empty below 2 raters |
//! | variance | f64? | dyad rows: the sampling variance of D(g→h); pair rows: the covariance of D(g→h) and D(g→h') (of `other_wave` for cross-wave rows); empty when it cannot be estimated |
//! | pooled | bool? | dyad rows: `variance` is the pooled variance / n (fewer than `scoring.dyad_min_raters` raters) |
//! | pooled_var | f64? | the municipality and wave's pooled within-dyad variance Σ(n − 1)s² / Σ(n − 1) |
//! | pooled_df | i64 | its degrees of freedom Σ(n − 1) |
//! | shared_cov | f64? | dyad and pair rows: σ_a, the covariance of one rater's scores about two groups (moment estimate, kept within [0, pooled_var]); cross-wave rows: σ, the cross-wave covariance of one rater's deviations for the row's kind (same target or two targets; kept within [0, √(pooled_var pooled_var')]) |
//! | shared_pairs | i64 | rater × pair-of-groups products behind `shared_cov` |

use std::collections::BTreeSet;

use super::*;
use crate::stats::measurement::{
    cross_wave_errors, dyad_errors, CrossWaveErrors, DyadErrors, Rating,
};

/// The dyad errors of one municipality and wave, with the names of its groups, and its ratings
/// (ids into `groups` and `raters`) for the cross-wave covariances.
pub(super) struct MuniErrors {
    wave: i64,
    municipality: Rc<str>,
    groups: Vec<Rc<str>>,
    errors: DyadErrors,
    ratings: Vec<Rating>,
    /// (unit_id, respondent_id) of each rater id.
    raters: Vec<(Rc<str>, Rc<str>)>,
}

/// Dyad errors per municipality of one wave's ties (sorted by municipality first).
pub(super) fn build_dyad_errors(ties: &[Tie], min_raters: usize) -> Result<Vec<MuniErrors>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ties.len() {
        let muni = ties[i].municipality.clone();
        let j = i + ties[i..]
            .iter()
            .take_while(|t| t.municipality == muni)
            .count();
        let scored: Vec<&Tie> = ties[i..j]
            .iter()
            .filter(|t| !t.within() && t.score.rc.value.is_some())
            .collect();
        let groups: Vec<Rc<str>> = scored
            .iter()
            .flat_map(|t| [t.work_group.clone(), t.target_group.clone()])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let gid = |g: &Rc<str>| groups.binary_search(g).unwrap_or(0) as u32;
        let mut raters: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        let mut ratings = Vec::with_capacity(scored.len());
        for t in &scored {
            let next = raters.len() as u32;
            let rater = *raters
                .entry((&*t.unit_id, &*t.respondent_id))
                .or_insert(next);
            ratings.push(Rating {
                group: gid(&t.work_group),
                rater,
                target: gid(&t.target_group),
                value: t.score.rc.value.unwrap_or(f64::NAN),
            });
        }
        let errors = dyad_errors(&ratings, min_raters).map_err(|e| {
            anyhow::anyhow!(
                "dyad sampling variances of {muni} in wave {}: {e}",
                ties[i].wave
            )
        })?;
        let mut keys = vec![(Rc::<str>::from(""), Rc::<str>::from("")); raters.len()];
        for t in &scored {
            let id = raters[&(&*t.unit_id, &*t.respondent_id)] as usize;
            keys[id] = (t.unit_id.clone(), t.respondent_id.clone());
        }
        out.push(MuniErrors {
            wave: ties[i].wave,
            municipality: muni,
            groups,
            errors,
            ratings,
            raters: keys,
        });
        i = j;
    }
    Ok(out)
}

/// The cross-wave covariances of one municipality's two waves (`first`, `second`: indices into
/// the dyad errors), their ids into `groups`.
pub(super) struct CrossErrors {
    first: usize,
    second: usize,
    groups: Vec<Rc<str>>,
    errors: CrossWaveErrors,
}

/// The cross-wave covariances of every municipality and pair of its waves: each wave's ratings
/// carried into one id space (groups by name, raters by unit and respondent id).
pub(super) fn build_cross_wave_errors(all: &[MuniErrors]) -> Result<Vec<CrossErrors>> {
    let mut out = Vec::new();
    for (a, x) in all.iter().enumerate() {
        for (b, y) in all.iter().enumerate() {
            if x.municipality != y.municipality || x.wave >= y.wave {
                continue;
            }
            let groups: Vec<Rc<str>> = x
                .groups
                .iter()
                .chain(&y.groups)
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut raters: BTreeMap<(&str, &str), u32> = BTreeMap::new();
            let [r1, r2] = [x, y].map(|m| {
                let gid = |g: u32| groups.binary_search(&m.groups[g as usize]).unwrap_or(0) as u32;
                m.ratings
                    .iter()
                    .map(|r| {
                        let (u, p) = &m.raters[r.rater as usize];
                        let next = raters.len() as u32;
                        Rating {
                            group: gid(r.group),
                            rater: *raters.entry((&**u, &**p)).or_insert(next),
                            target: gid(r.target),
                            value: r.value,
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let bound = x
                .errors
                .pooled_var
                .zip(y.errors.pooled_var)
                .map(|(p, q)| (p * q).sqrt());
            let errors = cross_wave_errors(&r1, &r2, bound).map_err(|e| {
                anyhow::anyhow!(
                    "cross-wave covariances of {} in waves {} and {}: {e}",
                    x.municipality,
                    x.wave,
                    y.wave
                )
            })?;
            out.push(CrossErrors {
                first: a,
                second: b,
                groups,
                errors,
            });
        }
    }
    Ok(out)
}

/// One row of `dyad_errors.parquet`.
struct Row<'a> {
    m: &'a MuniErrors,
    group: &'a str,
    target: &'a str,
    other_wave: Option<i64>,
    other: Option<&'a str>,
    n_raters: usize,
    var_within: Option<f64>,
    variance: Option<f64>,
    pooled: Option<bool>,
    shared: (Option<f64>, usize),
}

pub(super) fn dyad_errors_frame(all: &[MuniErrors], cross: &[CrossErrors]) -> Result<DataFrame> {
    let mut rows: Vec<Row> = Vec::new();
    for m in all {
        let e = &m.errors;
        let name = |g: u32| &*m.groups[g as usize];
        let shared = (e.shared_cov, e.shared_pairs);
        for d in &e.dyads {
            rows.push(Row {
                m,
                group: name(d.group),
                target: name(d.target),
                other_wave: None,
                other: None,
                n_raters: d.n,
                var_within: d.var_within,
                variance: d.var_mean,
                pooled: Some(d.pooled),
                shared,
            });
        }
        for c in &e.covs {
            rows.push(Row {
                m,
                group: name(c.group),
                target: name(c.target),
                other_wave: None,
                other: Some(name(c.other)),
                n_raters: c.n_common,
                var_within: None,
                variance: c.cov,
                pooled: None,
                shared,
            });
        }
    }
    for x in cross {
        let (m, e) = (&all[x.first], &x.errors);
        let name = |g: u32| &*x.groups[g as usize];
        for c in &e.covs {
            let shared = if c.target == c.other {
                (e.same_target, e.same_pairs)
            } else {
                (e.other_target, e.other_pairs)
            };
            rows.push(Row {
                m,
                group: name(c.group),
                target: name(c.target),
                other_wave: Some(all[x.second].wave),
                other: Some(name(c.other)),
                n_raters: c.n_common,
                var_within: None,
                variance: c.cov,
                pooled: None,
                shared,
            });
        }
    }
    rows.sort_by(|a, b| {
        (a.m.wave, &a.m.municipality, a.group, a.target)
            .cmp(&(b.m.wave, &b.m.municipality, b.group, b.target))
            .then_with(|| (a.other_wave, a.other).cmp(&(b.other_wave, b.other)))
    });
    let mut b = FrameBuilder::new();
    b.i64("wave", rows.iter().map(|r| r.m.wave))
        .str("municipality", rows.iter().map(|r| &*r.m.municipality))
        .str("work_group", rows.iter().map(|r| r.group))
        .str("target_group", rows.iter().map(|r| r.target))
        .opt_i64("other_wave", rows.iter().map(|r| r.other_wave))
        .opt_str("other_group", rows.iter().map(|r| r.other))
        .i64("n_raters", rows.iter().map(|r| n(r.n_raters)))
        .f64("var_within", rows.iter().map(|r| r.var_within))
        .f64("variance", rows.iter().map(|r| r.variance))
        .opt_bool("pooled", rows.iter().map(|r| r.pooled))
        .f64("pooled_var", rows.iter().map(|r| r.m.errors.pooled_var))
        .i64("pooled_df", rows.iter().map(|r| n(r.m.errors.pooled_df)))
        .f64("shared_cov", rows.iter().map(|r| r.shared.0))
        .i64("shared_pairs", rows.iter().map(|r| n(r.shared.1)));
    b.finish()
}
