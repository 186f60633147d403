//! The sampling error of the dyad means: `dyad_errors.parquet`, what the link stage needs to
//! give each case RCap its sampling variance (`docs/methods.md`, "H1 corrected for measurement
//! error"). Per municipality and wave, over the between-group ties with a tie score, the
//! statistics engine (`relcap::stats::measurement::dyad_errors`) gives each dyad mean's sampling
//! variance (its raters' variance s² / n, or the pooled within-dyad variance / n for a dyad with
//! fewer than `scoring.dyad_min_raters` raters) and the covariance of two dyad means of one
//! rating group that share raters (n_common σ_a / (n n'), σ_a the covariance of one rater's
//! deviations about two partner groups, pooled over the municipality and wave).
//!
//! # `dyad_errors.parquet`
//!
//! One row per between-group dyad with a tie score (`other_group` empty) and one per pair of
//! such dyads of the same rating group with at least one common rater (`other_group` set,
//! `target_group < other_group`); sorted by (wave, municipality, work_group, target_group,
//! other_group, empty first).
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | wave, municipality | i64, str | |
//! | work_group | str | the rating group g |
//! | target_group | str | the rated group h |
//! | other_group | str? | pair rows: the other rated group h' |
//! | n_raters | i64 | dyad rows: raters with a tie score (the n of the dyad mean); pair rows: raters of both |
//! | var_within | f64? | dyad rows: the raters' sample variance s² (n − 1); empty below 2 raters |
//! | variance | f64? | dyad rows: the sampling variance of D(g→h); pair rows: the covariance of D(g→h) and D(g→h'); empty when it cannot be estimated |
//! | pooled | bool? | dyad rows: `variance` is the pooled variance / n (fewer than `scoring.dyad_min_raters` raters) |
//! | pooled_var | f64? | the municipality and wave's pooled within-dyad variance Σ(n − 1)s² / Σ(n − 1) |
//! | pooled_df | i64 | its degrees of freedom Σ(n − 1) |
//! | shared_cov | f64? | σ_a, the covariance of one rater's scores about two groups (moment estimate, kept within [0, pooled_var]) |
//! | shared_pairs | i64 | rater × pair-of-groups products behind `shared_cov` |

use std::collections::BTreeSet;

use super::*;
use crate::stats::measurement::{dyad_errors, DyadErrors, Rating};

/// The dyad errors of one municipality and wave, with the names of its groups.
pub(super) struct MuniErrors {
    wave: i64,
    municipality: Rc<str>,
    groups: Vec<Rc<str>>,
    errors: DyadErrors,
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
        out.push(MuniErrors {
            wave: ties[i].wave,
            municipality: muni,
            groups,
            errors,
        });
        i = j;
    }
    Ok(out)
}

/// One row of `dyad_errors.parquet`.
struct Row<'a> {
    m: &'a MuniErrors,
    group: u32,
    target: u32,
    other: Option<u32>,
    n_raters: usize,
    var_within: Option<f64>,
    variance: Option<f64>,
    pooled: Option<bool>,
}

pub(super) fn dyad_errors_frame(all: &[MuniErrors]) -> Result<DataFrame> {
    let mut rows: Vec<Row> = Vec::new();
    for m in all {
        let e = &m.errors;
        // Dyads and pairs are each sorted by (group, target[, other]); merge them so that a
        // dyad row comes before the pairs that start with it.
        let mut pairs = e.covs.iter().peekable();
        for d in &e.dyads {
            rows.push(Row {
                m,
                group: d.group,
                target: d.target,
                other: None,
                n_raters: d.n,
                var_within: d.var_within,
                variance: d.var_mean,
                pooled: Some(d.pooled),
            });
            while let Some(c) = pairs.next_if(|c| (c.group, c.target) == (d.group, d.target)) {
                rows.push(Row {
                    m,
                    group: c.group,
                    target: c.target,
                    other: Some(c.other),
                    n_raters: c.n_common,
                    var_within: None,
                    variance: c.cov,
                    pooled: None,
                });
            }
        }
    }
    let name = |r: &Row, g: u32| r.m.groups[g as usize].to_string();
    let mut b = FrameBuilder::new();
    b.i64("wave", rows.iter().map(|r| r.m.wave))
        .str("municipality", rows.iter().map(|r| &*r.m.municipality))
        .str("work_group", rows.iter().map(|r| name(r, r.group)))
        .str("target_group", rows.iter().map(|r| name(r, r.target)))
        .opt_str(
            "other_group",
            rows.iter().map(|r| r.other.map(|o| name(r, o))),
        )
        .i64("n_raters", rows.iter().map(|r| n(r.n_raters)))
        .f64("var_within", rows.iter().map(|r| r.var_within))
        .f64("variance", rows.iter().map(|r| r.variance))
        .opt_bool("pooled", rows.iter().map(|r| r.pooled))
        .f64("pooled_var", rows.iter().map(|r| r.m.errors.pooled_var))
        .i64("pooled_df", rows.iter().map(|r| n(r.m.errors.pooled_df)))
        .f64("shared_cov", rows.iter().map(|r| r.m.errors.shared_cov))
        .i64(
            "shared_pairs",
            rows.iter().map(|r| n(r.m.errors.shared_pairs)),
        );
    b.finish()
}
