//! Measurement error of an aggregated covariate, and its correction in a linear model.
//!
//! Case RCap is a mean of dyad scores, each dyad score D(g→h) a mean of the tie scores of the
//! raters of group g about group h. Its sampling error comes from the raters:
//!
//! - **Dyad variances** ([`dyad_errors`]): the sampling variance of a dyad mean is s²/n, s² the
//!   between-rater variance within the dyad (n − 1) and n its raters. A dyad with fewer than
//!   `min_raters` raters takes the pooled within-dyad variance Σ(n − 1)s² / Σ(n − 1) of all the
//!   dyads given (one municipality and wave) instead of its own s².
//! - **Shared raters**: a rater of g rates several groups, so D(g→h) and D(g→h') share raters and
//!   their errors correlate. With rater deviations ε_ih = a_i + b_ih (a rater part shared by all
//!   of i's ratings, a tie part; raters independent and exchangeable), Cov(D(g→h), D(g→h')) =
//!   n_c σ_a / (n_h n_h'), n_c the raters of both. σ_a is the moment estimate Σ e_ih e_ih' / Σ f
//!   over every rater's pairs of targets, e the deviations from the dyad means and
//!   f = 1 − 1/n_h − 1/n_h' + n_c/(n_h n_h') their exact expectation factor
//!   (E[e_ih e_ih'] = σ_a f), kept within [0, pooled variance].
//! - **Cross-wave covariances** ([`cross_wave_errors`]): the same employee answering in two
//!   waves carries a stable part of their deviation (their own level, their view of a group)
//!   into both, so a dyad mean of one wave and one of another that share raters covary:
//!   Cov(D₁(g→h), D₂(g→h')) = n_c σ / (n₁ n₂), σ the cross-wave covariance of one rater's
//!   deviations, one moment estimate for the same target and one for two targets (the same
//!   expectation factor f as σ_a's).
//! - **Case error variance** ([`case_error_variance`]): the variance of the mean of k dyad means,
//!   (Σ var + 2 Σ cov) / k².
//! - **Regression calibration** ([`calibrate`]): for y = β T + fixed effects + e and the
//!   observed x = T + u with known error covariance Σ_u, independent of T and e: with M = I − P
//!   the residual maker of the fixed effects, E[x'Mx] = T'MT + tr(MΣ_u), so
//!   λ = 1 − tr(MΣ_u) / x'Mx is the share of the variance of x net of the fixed effects that is
//!   not sampling error, the naive slope x'My / x'Mx estimates β λ and the corrected slope
//!   x'My / (x'Mx − tr(MΣ_u)) = naive / λ estimates β. The fixed effects are categorical, so P
//!   is constant within a cell of rows with the same levels (P_cc' = h_ab for c in cell a, c' in
//!   cell b) and tr(MΣ_u) = Σ_c σ²_c − Σ_a h_aa Var(S_a) − 2 Σ_{a<b} h_ab Cov(S_a, S_b), S_a
//!   = Σ_{c∈a} u_c: a cell's rows may share errors (case RCaps built from the same dyads), cells
//!   may share errors with other cells (two waves of a municipality, through raters in both;
//!   [`calibrate_cross`]), and the fixed effects absorb part of them. With additive factors
//!   (municipality + wave) h_ab ≠ 0 for cells that share a level. Every sum is taken over cells.
//! - **Quadratic forms** ([`quadratic_form`]): Var(Σ w_d D_d) from the dyad variances and
//!   covariances, for a cell's error sum.
//! - **Cluster bootstrap** ([`cluster_bootstrap`]): whole clusters resampled with replacement
//!   within strata, from a seeded generator (xoshiro256**, seeded by SplitMix64): the same seed
//!   gives the same draws on every machine.

use crate::types::StatsError;

/// One tie score: rater `rater` of group `group` about target group `target`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub group: u32,
    pub rater: u32,
    pub target: u32,
    pub value: f64,
}

/// The sampling error of one dyad mean D(group→target).
#[derive(Debug, Clone, PartialEq)]
pub struct DyadError {
    pub group: u32,
    pub target: u32,
    /// Raters (the n of the mean).
    pub n: usize,
    pub mean: f64,
    /// Sample variance of the raters' scores (n − 1); None below 2 raters.
    pub var_within: Option<f64>,
    /// Sampling variance of the mean: s²/n, or the pooled variance / n (`pooled`); None when
    /// neither can be estimated.
    pub var_mean: Option<f64>,
    /// `var_mean` uses the pooled within-dyad variance (fewer than `min_raters` raters).
    pub pooled: bool,
}

/// The covariance of two dyad means of one rating group that share raters.
#[derive(Debug, Clone, PartialEq)]
pub struct DyadCov {
    pub group: u32,
    /// The two targets, `target < other`.
    pub target: u32,
    pub other: u32,
    /// Raters who rated both.
    pub n_common: usize,
    /// n_common σ_a / (n_target n_other); None when σ_a cannot be estimated.
    pub cov: Option<f64>,
}

/// Dyad variances and covariances of one set of ratings (one municipality and wave).
#[derive(Debug, Clone, PartialEq)]
pub struct DyadErrors {
    /// Sorted by (group, target).
    pub dyads: Vec<DyadError>,
    /// Sorted by (group, target, other); pairs with no common rater are left out (covariance 0).
    pub covs: Vec<DyadCov>,
    /// Pooled within-dyad variance Σ(n − 1)s² / Σ(n − 1), and its degrees of freedom.
    pub pooled_var: Option<f64>,
    pub pooled_df: usize,
    /// σ_a, the covariance of one rater's deviations about two targets.
    pub shared_cov: Option<f64>,
    /// Rater × pair-of-targets products behind `shared_cov`.
    pub shared_pairs: usize,
}

/// Dyad variances and the shared-rater covariances of `ratings` (see the module doc). A rater
/// who rates the same target twice, or belongs to two groups, is an error.
pub fn dyad_errors(ratings: &[Rating], min_raters: usize) -> Result<DyadErrors, StatsError> {
    if let Some(r) = ratings.iter().find(|r| !r.value.is_finite()) {
        return Err(StatsError::NonFinite(format!(
            "the rating of group {} by rater {}",
            r.target, r.rater
        )));
    }
    let mut by_dyad: Vec<usize> = (0..ratings.len()).collect();
    by_dyad.sort_by_key(|&i| (ratings[i].group, ratings[i].target, ratings[i].rater));
    // Dyads: runs of (group, target).
    let mut dyads: Vec<DyadError> = Vec::new();
    let mut dyad_of = vec![0usize; ratings.len()];
    let mut start = 0;
    while start < by_dyad.len() {
        let first = ratings[by_dyad[start]];
        let mut end = start;
        while end < by_dyad.len()
            && (ratings[by_dyad[end]].group, ratings[by_dyad[end]].target)
                == (first.group, first.target)
        {
            if end > start && ratings[by_dyad[end]].rater == ratings[by_dyad[end - 1]].rater {
                return Err(StatsError::InvalidArgument(format!(
                    "rater {} rates group {} twice",
                    first.rater, first.target
                )));
            }
            dyad_of[by_dyad[end]] = dyads.len();
            end += 1;
        }
        let v: Vec<f64> = by_dyad[start..end]
            .iter()
            .map(|&i| ratings[i].value)
            .collect();
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var_within = (n >= 2)
            .then(|| v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64);
        dyads.push(DyadError {
            group: first.group,
            target: first.target,
            n,
            mean,
            var_within,
            var_mean: None,
            pooled: false,
        });
        start = end;
    }
    let (ss, df) = dyads
        .iter()
        .fold((0.0, 0usize), |(s, d), x| match x.var_within {
            Some(v) => (s + v * (x.n - 1) as f64, d + x.n - 1),
            None => (s, d),
        });
    let pooled_var = (df > 0).then(|| ss / df as f64);
    for d in &mut dyads {
        match d.var_within {
            Some(v) if d.n >= min_raters.max(2) => d.var_mean = Some(v / d.n as f64),
            _ => {
                d.pooled = true;
                d.var_mean = pooled_var.map(|p| p / d.n as f64);
            }
        }
    }
    let (covs, shared_cov, shared_pairs) = shared_rater_covariance(ratings, &dyads, &dyad_of)?;
    Ok(DyadErrors {
        dyads,
        covs,
        pooled_var,
        pooled_df: df,
        shared_cov: match (shared_cov, pooled_var) {
            (Some(c), Some(p)) => Some(c.clamp(0.0, p)),
            _ => None,
        },
        shared_pairs,
    }
    .with_covariances())
}

impl DyadErrors {
    /// Fills each pair's covariance from `shared_cov`.
    fn with_covariances(mut self) -> Self {
        let n_of = |g: u32, h: u32| {
            self.dyads
                .binary_search_by_key(&(g, h), |d| (d.group, d.target))
                .map(|i| self.dyads[i].n)
                .unwrap_or(0)
        };
        let covs: Vec<Option<f64>> = self
            .covs
            .iter()
            .map(|c| {
                let (a, b) = (n_of(c.group, c.target), n_of(c.group, c.other));
                self.shared_cov
                    .map(|s| c.n_common as f64 * s / (a as f64 * b as f64))
            })
            .collect();
        for (c, v) in self.covs.iter_mut().zip(covs) {
            c.cov = v;
        }
        self
    }
}

/// Pairs of dyads with common raters (covariances still empty), the raw σ_a and its count.
fn shared_rater_covariance(
    ratings: &[Rating],
    dyads: &[DyadError],
    dyad_of: &[usize],
) -> Result<(Vec<DyadCov>, Option<f64>, usize), StatsError> {
    let mut by_rater: Vec<usize> = (0..ratings.len()).collect();
    by_rater.sort_by_key(|&i| (ratings[i].rater, ratings[i].target));
    // Each rater's ratings as a run; its pairs of targets.
    let mut runs: Vec<&[usize]> = Vec::new();
    let mut start = 0;
    while start < by_rater.len() {
        let rater = ratings[by_rater[start]].rater;
        let group = ratings[by_rater[start]].group;
        let mut end = start;
        while end < by_rater.len() && ratings[by_rater[end]].rater == rater {
            if ratings[by_rater[end]].group != group {
                return Err(StatsError::InvalidArgument(format!(
                    "rater {rater} belongs to two groups"
                )));
            }
            end += 1;
        }
        runs.push(&by_rater[start..end]);
        start = end;
    }
    // Common raters per pair of dyads (indices into `dyads`, a < b).
    let mut common: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    for run in &runs {
        for (x, &i) in run.iter().enumerate() {
            for &j in &run[x + 1..] {
                *common.entry((dyad_of[i], dyad_of[j])).or_insert(0) += 1;
            }
        }
    }
    let (mut cross, mut factor, mut count) = (0.0, 0.0, 0usize);
    for run in &runs {
        for (x, &i) in run.iter().enumerate() {
            for &j in &run[x + 1..] {
                let (a, b) = (&dyads[dyad_of[i]], &dyads[dyad_of[j]]);
                let nc = common[&(dyad_of[i], dyad_of[j])] as f64;
                let (na, nb) = (a.n as f64, b.n as f64);
                cross += (ratings[i].value - a.mean) * (ratings[j].value - b.mean);
                factor += 1.0 - 1.0 / na - 1.0 / nb + nc / (na * nb);
                count += 1;
            }
        }
    }
    let covs = common
        .iter()
        .map(|(&(a, b), &n)| DyadCov {
            group: dyads[a].group,
            target: dyads[a].target,
            other: dyads[b].target,
            n_common: n,
            cov: None,
        })
        .collect();
    let shared = (factor > 0.0).then(|| cross / factor);
    Ok((covs, shared, count))
}

/// The covariance of a dyad mean of one wave, D₁(g→h), and one of another wave, D₂(g→h'), that
/// share raters (the same employees answering in both waves).
#[derive(Debug, Clone, PartialEq)]
pub struct CrossWaveCov {
    pub group: u32,
    /// The target of the first wave's dyad.
    pub target: u32,
    /// The target of the second wave's dyad (may equal `target`).
    pub other: u32,
    /// Raters of both dyads.
    pub n_common: usize,
    /// n_common σ / (n₁ n₂), σ the cross-wave covariance of one rater's deviations for the same
    /// target (h = h') or for two targets; None when it cannot be estimated.
    pub cov: Option<f64>,
}

/// The cross-wave covariances of the dyad means of two waves of one municipality.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrossWaveErrors {
    /// Sorted by (group, target, other); pairs with no common rater are left out (covariance 0).
    pub covs: Vec<CrossWaveCov>,
    /// σ for the same target in both waves (moment estimate, kept within [0, bound]; the other
    /// kind's when no pair informs it), and the rater products behind it.
    pub same_target: Option<f64>,
    pub same_pairs: usize,
    /// σ for different targets, and its products.
    pub other_target: Option<f64>,
    pub other_pairs: usize,
}

/// The cross-wave covariances of the dyad means of `first` and `second`, the ratings of two
/// waves with rater, group and target ids in one id space (a rater is the same employee in both
/// waves). A rater's deviation from a dyad mean, e = x − D, has cross-wave covariance σ with the
/// same rater's deviation in the other wave: σ_same when both are about the same target (a
/// rater's stable view of that group), σ_other for two targets (the rater's stable level).
/// Each is the moment estimate Σ e₁ e₂ / Σ f over every rater's pairs (a rating in the first
/// wave, one in the second, of the same rating group), f = 1 − 1/n₁ − 1/n₂ + n_c/(n₁ n₂) as
/// within a wave (E[e₁ e₂] = σ f: raters independent and exchangeable within a dyad), kept
/// within [0, `bound`] (the geometric mean of the two waves' pooled within-dyad variances; None
/// gives no covariances); a kind that no pair informs (Σ f = 0) takes the other's estimate. Cov(D₁(g→h), D₂(g→h')) = n_c σ / (n₁ n₂). Pairs of a rater whose
/// group differs between the waves are left out. Each wave's ratings must pass [`dyad_errors`].
pub fn cross_wave_errors(
    first: &[Rating],
    second: &[Rating],
    bound: Option<f64>,
) -> Result<CrossWaveErrors, StatsError> {
    use std::collections::BTreeMap;
    if let Some(r) = first.iter().chain(second).find(|r| !r.value.is_finite()) {
        return Err(StatsError::NonFinite(format!(
            "the rating of group {} by rater {}",
            r.target, r.rater
        )));
    }
    // Dyad means and sizes, and each wave's ratings by rater.
    type Means = BTreeMap<(u32, u32), (usize, f64)>;
    let wave = |rs: &[Rating]| -> (Means, BTreeMap<u32, Vec<usize>>) {
        let mut sums: BTreeMap<(u32, u32), (usize, f64)> = BTreeMap::new();
        let mut by_rater: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in rs.iter().enumerate() {
            let e = sums.entry((r.group, r.target)).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += r.value;
            by_rater.entry(r.rater).or_default().push(i);
        }
        for v in sums.values_mut() {
            v.1 /= v.0 as f64;
        }
        (sums, by_rater)
    };
    let (means1, raters1) = wave(first);
    let (means2, raters2) = wave(second);
    // The pairs of ratings of each rater in both waves (same group), in rater order.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (rater, r1) in &raters1 {
        let Some(r2) = raters2.get(rater) else {
            continue;
        };
        for &i in r1 {
            for &j in r2 {
                if first[i].group == second[j].group {
                    pairs.push((i, j));
                }
            }
        }
    }
    let key = |i: usize, j: usize| (first[i].group, first[i].target, second[j].target);
    let mut common: BTreeMap<(u32, u32, u32), usize> = BTreeMap::new();
    for &(i, j) in &pairs {
        *common.entry(key(i, j)).or_insert(0) += 1;
    }
    // [same target, other target]: Σ e₁ e₂, Σ f, products.
    let mut acc = [(0.0, 0.0, 0usize); 2];
    for &(i, j) in &pairs {
        let (a, b) = (&first[i], &second[j]);
        let (n1, m1) = means1[&(a.group, a.target)];
        let (n2, m2) = means2[&(b.group, b.target)];
        let (n1, n2) = (n1 as f64, n2 as f64);
        let nc = common[&key(i, j)] as f64;
        let s = &mut acc[usize::from(a.target != b.target)];
        s.0 += (a.value - m1) * (b.value - m2);
        s.1 += 1.0 - 1.0 / n1 - 1.0 / n2 + nc / (n1 * n2);
        s.2 += 1;
    }
    let sigma = |(cross, factor, _): (f64, f64, usize)| match bound {
        Some(b) if factor > 0.0 => Some((cross / factor).clamp(0.0, b.max(0.0))),
        _ => None,
    };
    // A kind without information (no pair, or only single-rater dyads) takes the other's.
    let (same, other) = (sigma(acc[0]), sigma(acc[1]));
    let (same, other) = (same.or(other), other.or(same));
    let covs = common
        .into_iter()
        .map(|((group, target, o), n_common)| {
            let (n1, n2) = (means1[&(group, target)].0, means2[&(group, o)].0);
            let s = if target == o { same } else { other };
            CrossWaveCov {
                group,
                target,
                other: o,
                n_common,
                cov: s.map(|s| n_common as f64 * s / (n1 as f64 * n2 as f64)),
            }
        })
        .collect();
    Ok(CrossWaveErrors {
        covs,
        same_target: same,
        same_pairs: acc[0].2,
        other_target: other,
        other_pairs: acc[1].2,
    })
}

/// The sampling variance of the mean of k dyad means: (Σ var + 2 Σ cov) / k², over the k dyads
/// (group, target) given (distinct), `var` of each and `cov` of each pair (0 for pairs that
/// share no rater). None when a dyad has no variance or `dyads` is empty.
pub fn case_error_variance(
    dyads: &[(u32, u32)],
    var: impl Fn(u32, u32) -> Option<f64>,
    cov: impl Fn((u32, u32), (u32, u32)) -> Option<f64>,
) -> Option<f64> {
    if dyads.is_empty() {
        return None;
    }
    let mut s = 0.0;
    for (x, &a) in dyads.iter().enumerate() {
        s += var(a.0, a.1)?;
        for &b in &dyads[x + 1..] {
            s += 2.0 * cov(a, b)?;
        }
    }
    let k = dyads.len() as f64;
    Some(s / (k * k))
}

/// Var(Σ w_d D_d) = Σ w_d² var_d + 2 Σ w_a w_b cov_ab, `covs` listing each pair (a, b) once by
/// index into `var` and `w`.
pub fn quadratic_form(var: &[f64], covs: &[(usize, usize, f64)], w: &[f64]) -> f64 {
    let mut s = 0.0;
    for (d, v) in var.iter().enumerate() {
        s += w[d] * w[d] * v;
    }
    for &(a, b, c) in covs {
        s += 2.0 * w[a] * w[b] * c;
    }
    s
}

/// Cov(Σ w_d D_d, Σ w'_e D'_e) = Σ w_a w'_b cov_ab over `covs` listing (a, b, cov_ab), a an
/// index into `w` and b into `w2`: the covariance of two cells' error sums.
pub fn bilinear_form(covs: &[(usize, usize, f64)], w: &[f64], w2: &[f64]) -> f64 {
    covs.iter().map(|&(a, b, c)| w[a] * w2[b] * c).sum()
}

/// Sums of one cell of rows that share their fixed-effect levels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    /// The level of each factor (the same factors, in the same order, in every cell).
    pub levels: Vec<u32>,
    pub n: f64,
    pub sx: f64,
    pub sy: f64,
    pub sxx: f64,
    pub sxy: f64,
    /// Σ σ²_c, the sampling variances of x.
    pub se: f64,
    /// Var(Σ u_c) over the cell's rows: `se` plus the covariances of their errors (rows whose
    /// x share dyads share errors). [`Cell::add`] adds σ²_c (errors independent); a caller
    /// that knows the covariances sets it.
    pub sum_var: f64,
}

impl Cell {
    /// Adds one row (weights add up: a row drawn twice counts twice).
    pub fn add(&mut self, x: f64, y: f64, error_var: f64) {
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.se += error_var;
        self.sum_var += error_var;
    }

    /// Adds another cell's sums (`sum_var` as if the two were independent).
    pub fn merge(&mut self, o: &Cell) {
        self.n += o.n;
        self.sx += o.sx;
        self.sy += o.sy;
        self.sxx += o.sxx;
        self.sxy += o.sxy;
        self.se += o.se;
        self.sum_var += o.sum_var;
    }
}

/// A regression-calibration fit (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub n: f64,
    /// Columns of the fixed effects (intercept and dummies), aliased ones left out.
    pub p: usize,
    /// x'Mx, x'My and the error part of x'Mx, E[u'Mu] = Σ σ²_c − Σ_cells h_cell Var(Σ_cell u_c).
    pub sxx: f64,
    pub sxy: f64,
    pub error: f64,
    /// The OLS slope of y on x with the fixed effects.
    pub naive: f64,
    pub lambda: f64,
    /// naive / λ; None when λ ≤ 0.
    pub corrected: Option<f64>,
    /// x'Mx / (n − p − 1): the variance of x net of the fixed effects (the slope's df taken off
    /// too, so that var_true / var_x = λ).
    pub var_x: f64,
    /// The error part of `var_x`, and the rest (the variance of the true values).
    pub var_error: f64,
    pub var_true: f64,
}

impl Calibration {
    /// The reliability of one row with sampling variance `error_var`: σ²_T / (σ²_T + σ²_c).
    pub fn reliability_of(&self, error_var: f64) -> Option<f64> {
        (self.var_true > 0.0).then(|| self.var_true / (self.var_true + error_var))
    }
}

/// Regression calibration of the slope of y on x with categorical fixed effects given by the
/// cells' levels (treatment-coded: an intercept and one dummy per level but the smallest of each
/// factor; a factor with one level adds nothing, aliased dummies are left out).
pub fn calibrate(cells: &[Cell]) -> Result<Calibration, StatsError> {
    calibrate_cross(cells, &[])
}

/// [`calibrate`] with errors that correlate between cells: `cross` lists (a, b, Cov(Σ_{c∈a} u_c,
/// Σ_{c∈b} u_c)) for pairs of cells a ≠ b (indices into `cells`, each pair once), e.g. the cells
/// of two waves of one municipality whose case RCaps share raters. The fixed effects are
/// additive, so P couples different cells too (h_ab = z_a'(Z'Z)⁻¹z_b), and tr(MΣ_u) =
/// Σ_c σ²_c − Σ_a h_aa Var(S_a) − 2 Σ_{a<b} h_ab Cov(S_a, S_b), S_a a cell's error sum.
pub fn calibrate_cross(
    cells: &[Cell],
    cross: &[(usize, usize, f64)],
) -> Result<Calibration, StatsError> {
    if let Some(&(a, b, _)) = cross
        .iter()
        .find(|&&(a, b, _)| a >= cells.len() || b >= cells.len() || a == b)
    {
        return Err(StatsError::InvalidArgument(format!(
            "a covariance between cells {a} and {b} of {}",
            cells.len()
        )));
    }
    let all = cells;
    let cells: Vec<&Cell> = cells.iter().filter(|c| c.n > 0.0).collect();
    let n: f64 = cells.iter().map(|c| c.n).sum();
    let k = cells.first().map_or(0, |c| c.levels.len());
    if cells.iter().any(|c| c.levels.len() != k) {
        return Err(StatsError::DimensionMismatch(
            "cells with different numbers of factors".into(),
        ));
    }
    // Columns: intercept, then (factor, level) for each non-reference level present.
    let mut columns: Vec<(usize, u32)> = Vec::new();
    for f in 0..k {
        let mut levels: Vec<u32> = cells.iter().map(|c| c.levels[f]).collect();
        levels.sort_unstable();
        levels.dedup();
        columns.extend(levels.iter().skip(1).map(|&l| (f, l)));
    }
    let row = |c: &Cell| -> Vec<f64> {
        std::iter::once(1.0)
            .chain(
                columns
                    .iter()
                    .map(|&(f, l)| if c.levels[f] == l { 1.0 } else { 0.0 }),
            )
            .collect()
    };
    let q = columns.len() + 1;
    let mut g = vec![0.0; q * q];
    let (mut zx, mut zy) = (vec![0.0; q], vec![0.0; q]);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for c in &cells {
        let z = row(c);
        for a in 0..q {
            zx[a] += c.sx * z[a];
            zy[a] += c.sy * z[a];
            for b in 0..q {
                g[a * q + b] += c.n * z[a] * z[b];
            }
        }
        sxx += c.sxx;
        sxy += c.sxy;
    }
    let chol = Cholesky::new(&g, q);
    let p = chol.rank();
    if n < (p + 2) as f64 {
        return Err(StatsError::TooFewObservations {
            what: "regression calibration",
            needed: p + 2,
            got: n as usize,
        });
    }
    let bx = chol.solve(&zx);
    let by = chol.solve(&zy);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let sxx_m = sxx - dot(&zx, &bx);
    let sxy_m = sxy - dot(&zx, &by);
    let mut error = 0.0;
    for c in &cells {
        let z = row(c);
        error += c.se - c.sum_var * dot(&z, &chol.solve(&z));
    }
    for &(a, b, v) in cross {
        if all[a].n > 0.0 && all[b].n > 0.0 {
            let (za, zb) = (row(&all[a]), row(&all[b]));
            error -= 2.0 * v * dot(&za, &chol.solve(&zb));
        }
    }
    if sxx_m.is_nan() || sxx_m <= 0.0 {
        return Err(StatsError::InvalidArgument(
            "x does not vary net of the fixed effects".into(),
        ));
    }
    let naive = sxy_m / sxx_m;
    let lambda = 1.0 - error / sxx_m;
    let df = n - p as f64 - 1.0;
    Ok(Calibration {
        n,
        p,
        sxx: sxx_m,
        sxy: sxy_m,
        error,
        naive,
        lambda,
        corrected: (lambda > 0.0).then(|| naive / lambda),
        var_x: sxx_m / df,
        var_error: error / df,
        var_true: (sxx_m - error) / df,
    })
}

/// Cholesky factor of a symmetric positive semi-definite q × q matrix (row-major), columns whose
/// pivot falls below 1e-10 of their diagonal left out (a generalized inverse).
struct Cholesky {
    q: usize,
    l: Vec<f64>,
    kept: Vec<bool>,
}

impl Cholesky {
    fn new(a: &[f64], q: usize) -> Self {
        let mut l = vec![0.0; q * q];
        let mut kept = vec![false; q];
        for j in 0..q {
            let mut d = a[j * q + j];
            for k in 0..j {
                d -= l[j * q + k] * l[j * q + k];
            }
            if d <= 1e-10 * a[j * q + j].abs().max(f64::MIN_POSITIVE) {
                continue;
            }
            kept[j] = true;
            let d = d.sqrt();
            l[j * q + j] = d;
            for i in j + 1..q {
                let mut s = a[i * q + j];
                for k in 0..j {
                    s -= l[i * q + k] * l[j * q + k];
                }
                l[i * q + j] = s / d;
            }
        }
        Cholesky { q, l, kept }
    }

    fn rank(&self) -> usize {
        self.kept.iter().filter(|&&k| k).count()
    }

    /// The solution on the kept columns (0 on the others).
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let (q, l) = (self.q, &self.l);
        let mut y = vec![0.0; q];
        for i in 0..q {
            if !self.kept[i] {
                continue;
            }
            let mut s = b[i];
            for k in 0..i {
                s -= l[i * q + k] * y[k];
            }
            y[i] = s / l[i * q + i];
        }
        let mut x = vec![0.0; q];
        for i in (0..q).rev() {
            if !self.kept[i] {
                continue;
            }
            let mut s = y[i];
            for k in i + 1..q {
                s -= l[k * q + i] * x[k];
            }
            x[i] = s / l[i * q + i];
        }
        x
    }
}

/// A seeded xoshiro256** generator (seeded through SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform on 0..n (n > 0), without modulo bias (Lemire's method with rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// The replicates of a stratified cluster bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The statistic of each replicate in which it could be computed, in replicate order.
    pub estimates: Vec<f64>,
    /// Replicates in which it could not.
    pub failed: usize,
}

impl Bootstrap {
    /// Sample SD of the estimates (None below 2).
    pub fn sd(&self) -> Option<f64> {
        let n = self.estimates.len();
        if n < 2 {
            return None;
        }
        let m = self.estimates.iter().sum::<f64>() / n as f64;
        let ss: f64 = self.estimates.iter().map(|x| (x - m) * (x - m)).sum();
        Some((ss / (n - 1) as f64).sqrt())
    }

    /// The p quantile of the estimates (R's type 7); None without estimates.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let mut v = self.estimates.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let h = (v.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
    }
}

/// `replications` draws of a stratified cluster bootstrap: in each, every stratum's clusters
/// (given by index, `strata[s]` the clusters of stratum s) are drawn with replacement as many
/// times as the stratum has, and `stat` gets the drawn clusters (stratum by stratum, in draw
/// order). Seeded: the same seed gives the same replicates.
pub fn cluster_bootstrap(
    strata: &[Vec<usize>],
    replications: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> Option<f64>,
) -> Bootstrap {
    let mut rng = Rng::new(seed);
    let mut estimates = Vec::with_capacity(replications);
    let mut failed = 0;
    let mut drawn = Vec::new();
    for _ in 0..replications {
        drawn.clear();
        for s in strata {
            for _ in 0..s.len() {
                drawn.push(s[rng.below(s.len() as u64) as usize]);
            }
        }
        match stat(&drawn).filter(|v| v.is_finite()) {
            Some(v) => estimates.push(v),
            None => failed += 1,
        }
    }
    Bootstrap { estimates, failed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: u32, rater: u32, target: u32, value: f64) -> Rating {
        Rating {
            group,
            rater,
            target,
            value,
        }
    }

    /// Group 0 has raters 1, 2, 3 rating groups 1 and 2 (rater 3 only group 1); group 1 has
    /// rater 4 rating group 0 once.
    ///
    /// D(0→1): 2, 3, 4 → mean 3, s² = (1 + 0 + 1)/2 = 1.
    /// D(0→2): 4, 2 (raters 1, 2) → mean 3, s² = (1 + 1)/1 = 2.
    /// D(1→0): 5 (rater 4) → mean 5, no s².
    /// Pooled: (2·1 + 1·2) / 3 = 4/3 on 3 df.
    /// With min_raters 3: var D(0→1) = 1/3 (own), D(0→2) = (4/3)/2 = 2/3 (pooled, 2 raters),
    /// D(1→0) = 4/3 (pooled).
    /// Shared covariance: raters 1 and 2 rate both 1 and 2 (n_c = 2, n_h = 3, n_h' = 2).
    /// Deviations: rater 1: (2 − 3, 4 − 3) = (−1, 1); rater 2: (3 − 3, 2 − 3) = (0, −1).
    /// Σ e e' = −1 + 0 = −1; f = 1 − 1/3 − 1/2 + 2/6 = 1/2 per rater, Σ f = 1: σ_a = −1,
    /// kept at 0, so the covariance of D(0→1) and D(0→2) is 0.
    #[test]
    fn dyad_variances_by_hand() {
        let ratings = [
            r(0, 1, 1, 2.0),
            r(0, 2, 1, 3.0),
            r(0, 3, 1, 4.0),
            r(0, 1, 2, 4.0),
            r(0, 2, 2, 2.0),
            r(1, 4, 0, 5.0),
        ];
        let e = dyad_errors(&ratings, 3).unwrap();
        assert_eq!(e.dyads.len(), 3);
        let d = &e.dyads;
        assert_eq!((d[0].group, d[0].target, d[0].n), (0, 1, 3));
        assert_eq!((d[0].mean, d[0].var_within), (3.0, Some(1.0)));
        assert!((d[0].var_mean.unwrap() - 1.0 / 3.0).abs() < 1e-15);
        assert!(!d[0].pooled);
        assert_eq!((d[1].mean, d[1].var_within), (3.0, Some(2.0)));
        assert!((d[1].var_mean.unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!(d[1].pooled);
        assert_eq!((d[2].n, d[2].var_within), (1, None));
        assert!((d[2].var_mean.unwrap() - 4.0 / 3.0).abs() < 1e-15);
        assert!((e.pooled_var.unwrap() - 4.0 / 3.0).abs() < 1e-15);
        assert_eq!((e.pooled_df, e.shared_pairs), (3, 2));
        assert_eq!(e.shared_cov, Some(0.0));
        assert_eq!(e.covs.len(), 1);
        assert_eq!(
            (e.covs[0].target, e.covs[0].other, e.covs[0].n_common),
            (1, 2, 2)
        );
        assert_eq!(e.covs[0].cov, Some(0.0));
        // With min_raters 2 the two-rater dyad keeps its own s²: 2/2 = 1.
        let e2 = dyad_errors(&ratings, 2).unwrap();
        assert!((e2.dyads[1].var_mean.unwrap() - 1.0).abs() < 1e-15);
    }

    /// Three raters of group 0 about groups 1 and 2, all rating both:
    /// D(0→1): 1, 2, 3 → mean 2, s² 1. D(0→2): 2, 3, 5 → mean 10/3, s² = (16/9 + 1/9 + 25/9)/2 = 7/3.
    /// Deviations: (−1, −4/3), (0, −1/3), (1, 5/3); Σ products = 4/3 + 0 + 5/3 = 3.
    /// f = 1 − 1/3 − 1/3 + 3/9 = 2/3 per rater, Σ f = 2: σ_a = 3/2 (≤ pooled (2 + 14/3)/4 = 5/3).
    /// Cov(D(0→1), D(0→2)) = 3 · 1.5 / 9 = 1/2. Variances 1/3 and 7/9 (min_raters 2).
    /// Mean of the two dyads: (1/3 + 7/9 + 2 · 1/2) / 4 = (19/9) / 4 = 19/36.
    #[test]
    fn shared_rater_covariance_and_case_variance_by_hand() {
        let ratings = [
            r(0, 1, 1, 1.0),
            r(0, 2, 1, 2.0),
            r(0, 3, 1, 3.0),
            r(0, 1, 2, 2.0),
            r(0, 2, 2, 3.0),
            r(0, 3, 2, 5.0),
        ];
        let e = dyad_errors(&ratings, 2).unwrap();
        assert!((e.shared_cov.unwrap() - 1.5).abs() < 1e-14);
        assert!((e.pooled_var.unwrap() - 5.0 / 3.0).abs() < 1e-14);
        assert!((e.covs[0].cov.unwrap() - 0.5).abs() < 1e-14);
        let var = |g: u32, h: u32| {
            e.dyads
                .iter()
                .find(|d| (d.group, d.target) == (g, h))
                .and_then(|d| d.var_mean)
        };
        let cov = |a: (u32, u32), b: (u32, u32)| {
            Some(
                e.covs
                    .iter()
                    .find(|c| {
                        c.group == a.0
                            && a.0 == b.0
                            && (c.target, c.other) == (a.1.min(b.1), a.1.max(b.1))
                    })
                    .and_then(|c| c.cov)
                    .unwrap_or(0.0),
            )
        };
        let v = case_error_variance(&[(0, 1), (0, 2)], var, cov).unwrap();
        assert!((v - 19.0 / 36.0).abs() < 1e-14);
        assert_eq!(case_error_variance(&[], var, cov), None);
        assert_eq!(case_error_variance(&[(0, 1), (5, 5)], var, cov), None);
    }

    /// Two waves of group 0 sharing raters 1 and 2.
    /// Wave 1: D₁(0→1) from raters 1, 2, 3: 2, 4, 3 → mean 3, n 3, deviations −1, 1, 0.
    /// Wave 2: D₂(0→1) from raters 1, 2, 4: 1, 3, 5 → mean 3, n 3, deviations −2, 0, 2;
    /// D₂(0→2) from raters 1, 2: 3, 5 → mean 4, n 2, deviations −1, 1. Rater 3 answers in wave
    /// 2 for group 1: a different group, left out.
    /// Same target (0→1, 0→1): n_c 2; Σ e₁e₂ = (−1)(−2) + (1)(0) = 2; f = 1 − 1/3 − 1/3 + 2/9
    /// = 5/9 per rater, Σ f = 10/9: σ_same = 1.8. Two targets (0→1, 0→2): n_c 2; Σ e₁e₂ =
    /// (−1)(−1) + (1)(1) = 2; f = 1 − 1/3 − 1/2 + 2/6 = 1/2, Σ f = 1: σ_other = 2, kept at the
    /// bound 1.9. Cov(D₁(0→1), D₂(0→1)) = 2 · 1.8 / 9 = 0.4; Cov(D₁(0→1), D₂(0→2)) =
    /// 2 · 1.9 / 6 = 19/30.
    #[test]
    fn cross_wave_covariance_by_hand() {
        let first = [r(0, 1, 1, 2.0), r(0, 2, 1, 4.0), r(0, 3, 1, 3.0)];
        let second = [
            r(0, 1, 1, 1.0),
            r(0, 2, 1, 3.0),
            r(0, 4, 1, 5.0),
            r(0, 1, 2, 3.0),
            r(0, 2, 2, 5.0),
            r(1, 3, 0, 4.0),
        ];
        let e = cross_wave_errors(&first, &second, Some(1.9)).unwrap();
        assert!((e.same_target.unwrap() - 1.8).abs() < 1e-14);
        assert_eq!(e.other_target, Some(1.9));
        assert_eq!((e.same_pairs, e.other_pairs), (2, 2));
        assert_eq!(e.covs.len(), 2);
        let c = &e.covs;
        assert_eq!(
            (c[0].group, c[0].target, c[0].other, c[0].n_common),
            (0, 1, 1, 2)
        );
        assert!((c[0].cov.unwrap() - 0.4).abs() < 1e-14);
        assert_eq!((c[1].target, c[1].other, c[1].n_common), (1, 2, 2));
        assert!((c[1].cov.unwrap() - 19.0 / 30.0).abs() < 1e-14);
        // Unbounded (no pooled variance): no covariances.
        let none = cross_wave_errors(&first, &second, None).unwrap();
        assert!(none.covs.iter().all(|c| c.cov.is_none()));
        // Without a same-target pair, that kind takes the two-target estimate (2 within 9).
        let other_only = cross_wave_errors(&first, &second[3..5], Some(9.0)).unwrap();
        assert_eq!(other_only.same_pairs, 0);
        assert_eq!(other_only.same_target, other_only.other_target);
        assert!((other_only.other_target.unwrap() - 2.0).abs() < 1e-14);
        assert!(cross_wave_errors(&first, &[r(0, 1, 1, f64::NAN)], Some(1.0)).is_err());
    }

    /// Two additive factors (municipality, wave), 2 × 2 cells of two rows, x and y with additive
    /// cell means: x (1, 3), (2, 4), (4, 6), (5, 7) in cells (0,0), (0,1), (1,0), (1,1); y (1, 2),
    /// (0, 2), (3, 3), (2, 3). x'Mx = the within-cell sum of squares = 4 · 2 = 8; x'My =
    /// 1 + 2 + 0 + 1 = 4; naive 0.5. Balanced, so P couples rows of the same cell by
    /// 1/4 + 1/4 − 1/8 = 3/8, of the same municipality in the other wave by 1/4 − 1/8 = 1/8.
    /// Every row has error variance 0.1, the two of a cell covariance 0.05: Var(S) = 0.3 per
    /// cell; the cells of municipality 0 in the two waves have Cov(S, S') = 0.08 (rows sharing
    /// raters), of municipality 1 0.04. tr(MΣ) = 0.8 − 4 · 3/8 · 0.3 − 2 · 1/8 · (0.08 + 0.04)
    /// = 0.8 − 0.45 − 0.03 = 0.32: λ = 1 − 0.32/8 = 0.96, corrected 4 / 7.68. Without the
    /// cross-wave terms tr(MΣ) = 0.35. With one factor (wave only) P does not couple two waves
    /// and the cross terms change nothing.
    #[test]
    fn cross_wave_errors_with_additive_fixed_effects_by_hand() {
        let mut cells = [
            cell(&[0, 0], &[(1.0, 1.0, 0.1), (3.0, 2.0, 0.1)]),
            cell(&[0, 1], &[(2.0, 0.0, 0.1), (4.0, 2.0, 0.1)]),
            cell(&[1, 0], &[(4.0, 3.0, 0.1), (6.0, 3.0, 0.1)]),
            cell(&[1, 1], &[(5.0, 2.0, 0.1), (7.0, 3.0, 0.1)]),
        ];
        for c in &mut cells {
            c.sum_var = quadratic_form(&[0.1, 0.1], &[(0, 1, 0.05)], &[1.0, 1.0]);
        }
        let cross = [(0, 1, 0.08), (2, 3, 0.04)];
        let c = calibrate_cross(&cells, &cross).unwrap();
        assert_eq!((c.n, c.p), (8.0, 3));
        assert!((c.sxx - 8.0).abs() < 1e-12 && (c.sxy - 4.0).abs() < 1e-12);
        assert!((c.error - 0.32).abs() < 1e-12);
        assert!((c.lambda - 0.96).abs() < 1e-12);
        assert!((c.corrected.unwrap() - 4.0 / 7.68).abs() < 1e-12);
        assert!((calibrate(&cells).unwrap().error - 0.35).abs() < 1e-12);
        // The order of a pair does not matter.
        let swapped = calibrate_cross(&cells, &[(1, 0, 0.08), (3, 2, 0.04)]).unwrap();
        assert!((swapped.error - 0.32).abs() < 1e-12);
        // One municipality: wave effects only, no coupling of the two waves.
        let one = [cells[0].clone(), cells[1].clone()];
        let a = calibrate_cross(&one, &[(0, 1, 0.08)]).unwrap();
        assert!((a.error - calibrate(&one).unwrap().error).abs() < 1e-12);
        // The covariance of two cells' error sums from their dyads' weights.
        assert!(
            (bilinear_form(&[(0, 1, 0.5), (1, 1, 0.25)], &[2.0, 1.0], &[0.0, 4.0]) - 5.0).abs()
                < 1e-15
        );
        assert!(calibrate_cross(&cells, &[(0, 0, 0.1)]).is_err());
        assert!(calibrate_cross(&cells, &[(0, 9, 0.1)]).is_err());
    }

    #[test]
    fn a_rater_twice_or_in_two_groups_is_an_error() {
        assert!(dyad_errors(&[r(0, 1, 1, 2.0), r(0, 1, 1, 3.0)], 2).is_err());
        assert!(dyad_errors(&[r(0, 1, 1, 2.0), r(1, 1, 2, 3.0)], 2).is_err());
        assert!(dyad_errors(&[r(0, 1, 1, f64::NAN)], 2).is_err());
    }

    fn cell(levels: &[u32], rows: &[(f64, f64, f64)]) -> Cell {
        let mut c = Cell {
            levels: levels.to_vec(),
            ..Cell::default()
        };
        for &(x, y, v) in rows {
            c.add(x, y, v);
        }
        c
    }

    /// One factor with two levels (a within-level regression). Level 0: x = 1, 2, 3, y = 1, 3, 2;
    /// level 1: x = 2, 4, y = 5, 7. Error variance 0.1 for every row.
    /// Level means: x̄ = 2, ȳ = 2; x̄ = 3, ȳ = 6. Deviations: x (−1, 0, 1), y (−1, 1, 0);
    /// x (−1, 1), y (−1, 1). x'Mx = 2 + 2 = 4; x'My = (1 + 0 + 0) + (1 + 1) = 3; naive = 3/4.
    /// Leverages 1/3 (level 0) and 1/2 (level 1): Σ (1 − h) σ² = 0.1 (3 · 2/3 + 2 · 1/2) = 0.3.
    /// λ = 1 − 0.3/4 = 0.925; corrected = 3 / 3.7 = 0.8108...; n − p − 1 = 5 − 2 − 1 = 2:
    /// var_x = 2, var_error = 0.15, var_true = 1.85; a row with σ² = 0.1 has reliability
    /// 1.85 / 1.95.
    #[test]
    fn calibration_by_hand() {
        let cells = [
            cell(&[0], &[(1.0, 1.0, 0.1), (2.0, 3.0, 0.1), (3.0, 2.0, 0.1)]),
            cell(&[1], &[(2.0, 5.0, 0.1), (4.0, 7.0, 0.1)]),
        ];
        let c = calibrate(&cells).unwrap();
        assert_eq!((c.n, c.p), (5.0, 2));
        assert!((c.sxx - 4.0).abs() < 1e-12);
        assert!((c.sxy - 3.0).abs() < 1e-12);
        assert!((c.error - 0.3).abs() < 1e-12);
        assert!((c.naive - 0.75).abs() < 1e-12);
        assert!((c.lambda - 0.925).abs() < 1e-12);
        assert!((c.corrected.unwrap() - 3.0 / 3.7).abs() < 1e-12);
        assert!((c.var_x - 2.0).abs() < 1e-12);
        assert!((c.var_true - 1.85).abs() < 1e-12);
        assert!((c.reliability_of(0.1).unwrap() - 1.85 / 1.95).abs() < 1e-12);
        // A factor with one level adds nothing; an empty cell is ignored.
        let one = [cell(
            &[7],
            &[(1.0, 1.0, 0.0), (2.0, 3.0, 0.0), (3.0, 2.0, 0.0)],
        )];
        let c1 = calibrate(&one).unwrap();
        assert_eq!(c1.p, 1);
        assert!((c1.naive - 0.5).abs() < 1e-12);
        assert_eq!(c1.lambda, 1.0);
        assert!(calibrate(&[cell(&[0], &[(1.0, 1.0, 0.0), (1.0, 2.0, 0.0)])]).is_err());
    }

    /// Correlated errors within a cell: the fixed effects absorb their shared part. The cells of
    /// `calibration_by_hand`, with Var(Σ u) of level 0 set to 0.6 (its three errors have
    /// variance 0.1 and pairwise covariance 0.05: 0.3 + 6 · 0.05) and of level 1 to 0.3 (two
    /// errors, covariance 0.05: 0.2 + 2 · 0.05).
    /// tr(MΣ) = 0.5 − (0.6/3 + 0.3/2) = 0.15; λ = 1 − 0.15/4 = 0.9625; corrected = 3 / 3.85.
    /// By the quadratic form: level 0's sum is Σ u over three rows, w = (1, 1, 1), 0.6.
    #[test]
    fn shared_errors_within_a_cell_by_hand() {
        let mut cells = [
            cell(&[0], &[(1.0, 1.0, 0.1), (2.0, 3.0, 0.1), (3.0, 2.0, 0.1)]),
            cell(&[1], &[(2.0, 5.0, 0.1), (4.0, 7.0, 0.1)]),
        ];
        let covs = [(0, 1, 0.05), (0, 2, 0.05), (1, 2, 0.05)];
        cells[0].sum_var = quadratic_form(&[0.1, 0.1, 0.1], &covs, &[1.0, 1.0, 1.0]);
        assert!((cells[0].sum_var - 0.6).abs() < 1e-15);
        cells[1].sum_var = 0.3;
        let c = calibrate(&cells).unwrap();
        assert!((c.error - 0.15).abs() < 1e-12);
        assert!((c.lambda - 0.9625).abs() < 1e-12);
        assert!((c.corrected.unwrap() - 3.0 / 3.85).abs() < 1e-12);
    }

    /// Two additive factors whose dummies are aliased (every row of level 1 of the first factor
    /// is level 1 of the second): the aliased column is left out.
    #[test]
    fn aliased_fixed_effects_are_left_out() {
        let cells = [
            cell(
                &[0, 0],
                &[(1.0, 1.0, 0.0), (2.0, 3.0, 0.0), (3.0, 2.0, 0.0)],
            ),
            cell(&[1, 1], &[(2.0, 5.0, 0.0), (4.0, 7.0, 0.0)]),
        ];
        let c = calibrate(&cells).unwrap();
        assert_eq!(c.p, 2);
        assert!((c.naive - 0.75).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_draws_within_strata() {
        let strata = vec![vec![0, 1, 2], vec![3, 4]];
        let mut seen = Vec::new();
        let b = cluster_bootstrap(&strata, 200, 7, |d| {
            assert_eq!(d.len(), 5);
            assert!(d[..3].iter().all(|&c| c < 3) && d[3..].iter().all(|&c| c >= 3));
            seen.extend_from_slice(d);
            Some(d.iter().sum::<usize>() as f64)
        });
        assert_eq!(b.estimates.len(), 200);
        assert_eq!(
            b,
            cluster_bootstrap(&strata, 200, 7, |d| Some(d.iter().sum::<usize>() as f64))
        );
        assert_ne!(
            b,
            cluster_bootstrap(&strata, 200, 8, |d| Some(d.iter().sum::<usize>() as f64))
        );
        // Every cluster is drawn, about equally often within its stratum.
        for c in 0..5 {
            let k = seen.iter().filter(|&&x| x == c).count() as f64;
            assert!((k - 200.0).abs() < 60.0, "cluster {c}: {k}");
        }
        let failing = cluster_bootstrap(&strata, 10, 7, |_| None);
        assert_eq!((failing.estimates.len(), failing.failed), (0, 10));
        let q = Bootstrap {
            estimates: vec![3.0, 1.0, 2.0, 4.0],
            failed: 0,
        };
        // Type 7: h = 3 · 0.25 = 0.75 → 1 + 0.75 · 1.
        assert_eq!(q.quantile(0.25), Some(1.75));
        assert!((q.sd().unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn below_is_in_range() {
        let mut rng = Rng::new(1);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
    }
}
