//! Reliability and agreement: Cronbach's alpha (raw and standardized, as `psych::alpha` on
//! complete cases), one-way ANOVA intraclass correlations ICC(1) and ICC(2) for unbalanced groups,
//! and the multi-item within-group agreement index rwg(j).
//!
//! - alpha: rows with any missing item are dropped (complete cases, as docs/methods.md says);
//!   raw alpha = k/(k − 1) · (1 − Σ sᵢ² / s²_total), standardized alpha = k r̄ / (1 + (k − 1) r̄) from the mean
//!   inter-item correlation r̄.
//! - ICC: MSB and MSW of the one-way ANOVA, k0 = (N − Σ n_j² / N) / (J − 1),
//!   ICC(1) = (MSB − MSW) / (MSB + (k0 − 1) MSW), ICC(2) = (MSB − MSW) / MSB, F = MSB/MSW on
//!   (J − 1, N − J) df. ICCs are not truncated (they can be negative, as in R). Group means use a
//!   correction pass; on NIST's one-way ANOVA problems MSB, MSW and F have LRE ≥ 11.6 (SmLs07–09
//!   read with their constant 1e12 subtracted exactly: as plain f64 those values carry input
//!   rounding of 6e-5 and no algorithm gets more than ~3 digits from them).
//! - rwg(j) = J(1 − s̄²/σ²_E) / (J(1 − s̄²/σ²_E) + s̄²/σ²_E) with s̄² the mean of the item variances
//!   (n − 1 denominator, each over the members who answered that item) and σ²_E the null variance
//!   (2 for a uniform 5-point null). Truncated at 0, and set to 0 when s̄² ≥ σ²_E (the usual
//!   convention: more disagreement than the null means no agreement, and the formula would
//!   otherwise give values above 1 or negative denominators).
//!
//! - corrected item-total correlation (`r.drop` of `psych::alpha`): each item against the sum of
//!   the other items, Pearson's r on complete cases.
//!
//! Limits: inputs must be finite; no confidence intervals for the ICCs.

// `!(x > 0.0)` is deliberate: it is also true for NaN; index loops mirror the matrix formulas.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

use crate::dist::f_sf;
use crate::types::StatsError;
use serde::Serialize;

/// Cronbach's alpha.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alpha {
    /// psych's `raw_alpha`.
    pub raw_alpha: f64,
    /// psych's `std.alpha`.
    pub std_alpha: f64,
    /// Complete rows used.
    pub n_complete: usize,
    /// Rows dropped for a missing item.
    pub n_dropped: usize,
    /// Number of items.
    pub k: usize,
}

/// One-way ANOVA intraclass correlations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Icc {
    pub icc1: f64,
    pub icc2: f64,
    pub msb: f64,
    pub msw: f64,
    pub k0: f64,
    pub n_groups: usize,
    pub n_obs: usize,
    pub f: f64,
    pub df_between: f64,
    pub df_within: f64,
    pub f_p_value: f64,
}

/// Mean with one correction pass.
fn mean(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    m + x.iter().map(|v| v - m).sum::<f64>() / n
}

/// Corrected item-total correlations of a scale, on complete cases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemTotal {
    /// Per item, Pearson's r between the item and the sum of the other items (`psych::alpha`'s
    /// `r.drop`); None when the item or the sum of the others has no variance.
    pub r_drop: Vec<Option<f64>>,
    pub n_complete: usize,
}

/// Corrected item-total correlations (`r.drop` of `psych::alpha`) on the rows with every item
/// present: cov(xⱼ, T − xⱼ) / √(var xⱼ · var(T − xⱼ)), T the sum of the items. An item that
/// correlates negatively with the rest of its scale is typically reverse-coded or mis-mapped.
pub fn corrected_item_total(rows: &[Vec<Option<f64>>]) -> Result<ItemTotal, StatsError> {
    let (n, cov) = complete_covariance(rows, "corrected item-total correlation", 3)?;
    let k = cov.len();
    let total: f64 = cov.iter().flatten().sum();
    let r_drop = (0..k)
        .map(|j| {
            let row: f64 = cov[j].iter().sum();
            let c = row - cov[j][j];
            let var_rest = total - 2.0 * row + cov[j][j];
            (cov[j][j] > 0.0 && var_rest > 0.0).then(|| c / (cov[j][j] * var_rest).sqrt())
        })
        .collect();
    Ok(ItemTotal {
        r_drop,
        n_complete: n,
    })
}

/// The number of complete rows and the items' covariance matrix (n − 1 denominator) over them;
/// an error with fewer than 2 items or fewer than `min_rows` complete rows.
fn complete_covariance(
    rows: &[Vec<Option<f64>>],
    what: &'static str,
    min_rows: usize,
) -> Result<(usize, Vec<Vec<f64>>), StatsError> {
    let k = rows.first().map(|r| r.len()).unwrap_or(0);
    if rows.iter().any(|r| r.len() != k) {
        return Err(StatsError::DimensionMismatch(format!(
            "{what}: rows have different numbers of items"
        )));
    }
    if k < 2 {
        return Err(StatsError::TooFewObservations {
            what,
            needed: 2,
            got: k,
        });
    }
    let complete: Vec<Vec<f64>> = rows
        .iter()
        .filter(|r| r.iter().all(|v| v.is_some()))
        .map(|r| r.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect();
    if complete.iter().flatten().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite(format!("{what}: item values")));
    }
    let n = complete.len();
    if n < min_rows {
        return Err(StatsError::TooFewObservations {
            what,
            needed: min_rows,
            got: n,
        });
    }
    let means: Vec<f64> = (0..k)
        .map(|j| mean(&complete.iter().map(|r| r[j]).collect::<Vec<_>>()))
        .collect();
    let mut cov = vec![vec![0.0; k]; k];
    for r in &complete {
        for a in 0..k {
            let da = r[a] - means[a];
            for b in 0..=a {
                cov[a][b] += da * (r[b] - means[b]);
            }
        }
    }
    let nm1 = (n - 1) as f64;
    for a in 0..k {
        for b in 0..=a {
            cov[a][b] /= nm1;
            cov[b][a] = cov[a][b];
        }
    }
    Ok((n, cov))
}

/// Cronbach's alpha on complete cases. `rows[i][j]` is item j of respondent i.
pub fn cronbach_alpha(rows: &[Vec<Option<f64>>]) -> Result<Alpha, StatsError> {
    let (n, cov) = complete_covariance(rows, "Cronbach's alpha", 2)?;
    let k = cov.len();
    let kf = k as f64;
    let trace: f64 = (0..k).map(|j| cov[j][j]).sum();
    let total: f64 = cov.iter().flatten().sum();
    if !(total > 0.0) || (0..k).any(|j| !(cov[j][j] > 0.0)) {
        return Err(StatsError::Numerical(
            "alpha: an item or the total score has zero variance".into(),
        ));
    }
    let raw = kf / (kf - 1.0) * (1.0 - trace / total);
    let mut sum_r = 0.0;
    for a in 0..k {
        for b in 0..k {
            sum_r += cov[a][b] / (cov[a][a] * cov[b][b]).sqrt();
        }
    }
    let std = kf / (kf - 1.0) * (1.0 - kf / sum_r);
    Ok(Alpha {
        raw_alpha: raw,
        std_alpha: std,
        n_complete: n,
        n_dropped: rows.len() - n,
        k,
    })
}

/// One-way ANOVA ICC(1), ICC(2) of `values` grouped by `groups` (any u32 ids).
pub fn icc_oneway(values: &[f64], groups: &[u32]) -> Result<Icc, StatsError> {
    if values.len() != groups.len() {
        return Err(StatsError::DimensionMismatch(format!(
            "{} values but {} group ids",
            values.len(),
            groups.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite("ICC values".into()));
    }
    let mut index = std::collections::HashMap::new();
    let mut members: Vec<Vec<f64>> = Vec::new();
    for (&v, &g) in values.iter().zip(groups) {
        let i = *index.entry(g).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[i].push(v);
    }
    let j = members.len();
    let n = values.len();
    if j < 2 {
        return Err(StatsError::TooFewObservations {
            what: "ICC (groups)",
            needed: 2,
            got: j,
        });
    }
    if n <= j {
        return Err(StatsError::TooFewObservations {
            what: "ICC (observations, more than groups)",
            needed: j + 1,
            got: n,
        });
    }
    let grand = mean(values);
    let mut ssb = 0.0;
    let mut ssw = 0.0;
    let mut sum_n2 = 0.0;
    for m in &members {
        let gm = mean(m);
        let nj = m.len() as f64;
        ssb += nj * (gm - grand) * (gm - grand);
        ssw += m.iter().map(|v| (v - gm) * (v - gm)).sum::<f64>();
        sum_n2 += nj * nj;
    }
    let (jf, nf) = (j as f64, n as f64);
    let dfb = jf - 1.0;
    let dfw = nf - jf;
    let msb = ssb / dfb;
    let msw = ssw / dfw;
    let k0 = (nf - sum_n2 / nf) / dfb;
    let f = msb / msw;
    Ok(Icc {
        icc1: (msb - msw) / (msb + (k0 - 1.0) * msw),
        icc2: (msb - msw) / msb,
        msb,
        msw,
        k0,
        n_groups: j,
        n_obs: n,
        f,
        df_between: dfb,
        df_within: dfw,
        f_p_value: f_sf(f, dfb, dfw),
    })
}

/// rwg(j) of one group: `group_rows[i][j]` is member i's answer to item j. None when no item has
/// two or more answers, when rows are ragged, or when the null variance is not positive.
pub fn rwg_j(group_rows: &[Vec<Option<f64>>], null_variance: f64) -> Option<f64> {
    if !(null_variance > 0.0 && null_variance.is_finite()) {
        return None;
    }
    let k = group_rows.first()?.len();
    if group_rows.iter().any(|r| r.len() != k) {
        return None;
    }
    let mut vars = Vec::new();
    for item in 0..k {
        let vals: Vec<f64> = group_rows.iter().filter_map(|r| r[item]).collect();
        if vals.len() < 2 || vals.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let m = mean(&vals);
        let ss: f64 = vals.iter().map(|v| (v - m) * (v - m)).sum();
        vars.push(ss / (vals.len() as f64 - 1.0));
    }
    if vars.is_empty() {
        return None;
    }
    let jf = vars.len() as f64;
    let ratio = vars.iter().sum::<f64>() / jf / null_variance;
    if ratio >= 1.0 {
        return Some(0.0);
    }
    let a = jf * (1.0 - ratio);
    Some((a / (a + ratio)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwg_perfect_agreement_and_truncation() {
        let same = vec![vec![Some(4.0), Some(3.0)]; 3];
        assert_eq!(rwg_j(&same, 2.0), Some(1.0));
        // Item variances 8 (1 vs 5): more than the null → 0.
        let split = vec![vec![Some(1.0), Some(1.0)], vec![Some(5.0), Some(5.0)]];
        assert_eq!(rwg_j(&split, 2.0), Some(0.0));
        assert_eq!(rwg_j(&[vec![Some(1.0)]], 2.0), None);
        assert_eq!(rwg_j(&same, 0.0), None);
    }

    #[test]
    fn rwg_worked_example() {
        // Two items, three raters: item variances 1 and 1/3 → s̄² = 2/3, ratio 1/3,
        // rwg = 2·(2/3) / (2·(2/3) + 1/3) = 0.8.
        let rows = vec![
            vec![Some(3.0), Some(4.0)],
            vec![Some(4.0), Some(4.0)],
            vec![Some(5.0), Some(5.0)],
        ];
        assert!((rwg_j(&rows, 2.0).unwrap() - 0.8).abs() < 1e-15);
    }

    #[test]
    fn alpha_errors() {
        assert!(cronbach_alpha(&[]).is_err());
        assert!(cronbach_alpha(&[vec![Some(1.0)], vec![Some(2.0)]]).is_err());
        assert!(icc_oneway(&[1.0, 2.0], &[1, 1]).is_err());
    }
}
