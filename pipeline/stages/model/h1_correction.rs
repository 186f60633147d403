//! H1 corrected for measurement error: the model `h1_corrected` (`docs/methods.md`, "H1
//! corrected for measurement error").
//!
//! Case RCap is measured with sampling error from its raters; the link stage gives each case
//! that error's variance (`case_rcap_error_var`). In each scope (pooled, each municipality) the
//! slope of `quality` on `case_rcap` with the H1 model's fixed effects (municipality and wave,
//! a factor with one level left out) is corrected by regression calibration
//! (`relcap::stats::measurement::calibrate`): λ = 1 − tr(MΣ_u) / x'Mx, corrected slope =
//! naive slope / λ, M the residual maker of the fixed effects and Σ_u the covariance of the
//! case RCaps' errors. Cases of one municipality and wave share dyads (and dyads of one rating
//! group share raters), cases of two waves of a municipality share raters (the same employees
//! answering in both), so their errors correlate and the fixed effects absorb part of them:
//! tr(MΣ_u) = Σ_c σ²_c − Σ_a h_aa Var(S_a) − 2 Σ_{a<b} h_ab Cov(S_a, S_b) over the cells a
//! (municipality × wave), S_a a cell's error sum and h_ab = z_a'(Z'Z)⁻¹z_b of the additive
//! fixed effects; Var(S_a) is a quadratic form in the weights the cell's cases give each dyad
//! (dyad variances and covariances of `link/h1_dyad_errors.parquet`), Cov(S_a, S_b) a bilinear
//! form in two cells' weights (its cross-wave rows).
//! Its standard error comes from a cluster bootstrap over lead units (the H1
//! cluster column): `model.h1_bootstrap` replications, lead units drawn with replacement within
//! each municipality (the strata), every case of a drawn lead unit with it, λ and the slope
//! recomputed in each replicate; seeded with `model.h1_bootstrap_seed` plus the scope's index
//! (0 pooled, then the municipalities in sorted order). The bootstrap SD is scaled by
//! √(G / (G − S)) (G lead units, S strata: the resampling variance of a stratum's mean is
//! (G_s − 1) / G_s of the unbiased one) and the test and interval use t with G − S degrees of
//! freedom. A scope is not corrected (results has no `h1_corrected` row for it; `fit` and
//! `h1_reliability` say why) when λ is below `model.h1_reliability_floor`, when a case has no
//! error variance (a dyad with too few raters and no pooled variance), or, per municipality,
//! with fewer than `model.min_clusters` lead units. A scope's bootstrap replicates are kept in
//! the run's fit store (`OUT/.cache/model/`) and reused when its rows, cluster column, dyad
//! table, replications and seed are unchanged (a rerun after `model.alpha` changed).
//!
//! In `results`: hypothesis `H1`, model `h1_corrected`, term `case_rcap`, primary false, p_holm,
//! p_adjusted, supported and std_estimate empty, n_groups the lead units. In `fit`: status
//! `fitted` or `not_corrected` with the reason, method `regression_calibration`, vcov
//! `cluster_bootstrap`.
//!
//! # `h1_reliability.parquet`: one row per scope (pooled, then the municipalities)
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | scope | str | `pooled` or a municipality |
//! | status | str | `corrected`, `not_corrected` |
//! | reason | str? | why not corrected |
//! | n_obs | i64 | cases used (the H1 model's rows) |
//! | n_clusters | i64 | lead units |
//! | n_strata | i64 | municipalities the bootstrap draws within |
//! | n_fixed | i64? | columns of the fixed effects (intercept and dummies) |
//! | var_case_rcap | f64? | variance of case RCap net of the fixed effects, x'Mx / (n − p − 1) |
//! | var_error | f64? | its sampling-error part, tr(MΣ_u) / (n − p − 1) |
//! | var_true | f64? | the rest: the variance of the true case RCap |
//! | lambda | f64? | reliability of case RCap: var_true / var_case_rcap |
//! | case_reliability_mean, case_reliability_min | f64? | per case, var_true / (var_true + σ²_c): mean and minimum over the cases |
//! | naive | f64? | the OLS slope (the `case_rcap` row of the H1 model) |
//! | corrected | f64? | naive / λ |
//! | std_error | f64? | bootstrap SD × √(G / (G − S)) |
//! | df | f64? | G − S |
//! | conf_low, conf_high | f64? | corrected ± t(1 − alpha/2, G − S) × std_error |
//! | boot_low, boot_high | f64? | percentile interval of the bootstrap replicates (alpha/2, 1 − alpha/2) |
//! | bootstrap | i64 | replications asked |
//! | bootstrap_failed | i64 | replicates in which λ ≤ 0 or the fit failed (left out of the SD) |
//! | seed | i64 | the seed of this scope's bootstrap |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::{DataFrame, DataType};

use super::fitting::MEMO_STAGE;
use super::frame::Table;
use super::tables::{fin, FitRow, ResultRow};
use super::POOLED;
use crate::config::ModelSection;
use crate::memo::Memo;
use crate::stages::frame::FrameBuilder;
use crate::stats::dist::{t_quantile, t_two_sided_p};
use crate::stats::measurement::{
    bilinear_form, calibrate_cross, cluster_bootstrap, quadratic_form, Bootstrap, Calibration, Cell,
};

pub const MODEL: &str = "h1_corrected";
/// The formula of the fit rows (a municipality's scope has no municipality term).
fn formula(scope: &str) -> String {
    format!(
        "quality ~ case_rcap + {}C(wave); case_rcap corrected by regression calibration with case_rcap_error_var",
        if scope == POOLED { "C(municipality) + " } else { "" }
    )
}

/// One scope's correction.
#[derive(Debug, Clone, Default)]
pub struct ScopeRow {
    pub scope: String,
    pub status: String,
    pub reason: Option<String>,
    pub n_obs: usize,
    pub n_clusters: usize,
    pub n_strata: usize,
    pub cal: Option<Calibration>,
    pub case_rel: Option<(f64, f64)>,
    pub std_error: Option<f64>,
    pub df: Option<f64>,
    pub p_value: Option<f64>,
    pub conf: Option<(f64, f64)>,
    pub boot: Option<(f64, f64)>,
    pub bootstrap: u32,
    pub failed: usize,
    pub seed: u64,
    pub rows_in: usize,
}

impl ScopeRow {
    pub fn corrected(&self) -> Option<f64> {
        (self.status == "corrected")
            .then(|| self.cal.as_ref()?.corrected)
            .flatten()
    }
}

/// The dyad variances and covariances of `link/h1_dyad_errors.parquet`, per municipality and
/// wave (by their labels), each dyad indexed within its municipality and wave.
#[derive(Debug, Default)]
pub struct DyadTable {
    /// (wave, municipality) → dyad (g, h) → index; variances; covariances (a, b, cov).
    cells: HashMap<(String, String), DyadCell>,
    /// The covariances (a, b, cov) of a dyad of one cell and one of a later wave's cell of the
    /// municipality (raters in both waves), one list per pair of cells.
    cross: Vec<Vec<Covariance>>,
    /// Per cell id, its pairs: (the later cell's id, index into `cross`).
    partners: Vec<Vec<(usize, usize)>>,
    /// blake3 of the file's bytes (zero without a file): part of the key of a kept bootstrap.
    hash: [u8; 32],
}

/// A covariance (a, b, cov) of two dyads by their indices.
type Covariance = (usize, usize, f64);

#[derive(Debug, Default)]
struct DyadCell {
    /// The cell's number, in order of first appearance in the file.
    id: usize,
    index: HashMap<(String, String), usize>,
    var: Vec<f64>,
    covs: Vec<Covariance>,
}

impl DyadTable {
    /// The table at `path`; an empty one when there is no file (every scope is then not
    /// corrected: its cases have no dyads).
    pub fn read(path: &Path) -> Result<DyadTable> {
        if !path.exists() {
            return Ok(DyadTable::default());
        }
        // Read once: the bytes are both hashed (the kept bootstrap's key) and parsed.
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let hash = *blake3::hash(&bytes).as_bytes();
        let df = crate::io::parquet_from_bytes(bytes, path)?;
        let s = |c: &str| -> Result<Vec<Option<String>>> {
            let col = df.column(c)?.cast(&DataType::String)?;
            Ok(col.str()?.iter().map(|v| v.map(String::from)).collect())
        };
        let (w, m, g, h, ow, o) = (
            s("wave")?,
            s("municipality")?,
            s("work_group")?,
            s("target_group")?,
            s("other_wave")?,
            s("other_group")?,
        );
        let v: Vec<Option<f64>> = df
            .column("variance")?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect();
        let mut t = DyadTable {
            hash,
            ..DyadTable::default()
        };
        let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
        // Dyad rows first (a pair row names two dyads of its cell).
        for pass in [false, true] {
            for i in 0..df.height() {
                let (Some(w), Some(m), Some(g), Some(h)) = (&w[i], &m[i], &g[i], &h[i]) else {
                    continue;
                };
                let next = t.cells.len();
                let cell = t
                    .cells
                    .entry((w.clone(), m.clone()))
                    .or_insert_with(|| DyadCell {
                        id: next,
                        ..DyadCell::default()
                    });
                match (&o[i], pass) {
                    (None, false) => {
                        let k = cell.var.len();
                        cell.index.insert((g.clone(), h.clone()), k);
                        cell.var.push(v[i].unwrap_or(f64::NAN));
                    }
                    (Some(o), true) if ow[i].is_some() => {
                        let (id, a) = (cell.id, cell.index.get(&(g.clone(), h.clone())).copied());
                        let other = t.cells.get(&(ow[i].clone().unwrap_or_default(), m.clone()));
                        let b = other
                            .and_then(|c| Some((c.id, *c.index.get(&(g.clone(), o.clone()))?)));
                        let (Some(a), Some((oid, b))) = (a, b) else {
                            bail!(
                                "{}: the cross-wave pair {g}→{h} (wave {w}), {g}→{o} (wave {}) in {m} names a dyad without a row",
                                path.display(),
                                ow[i].as_deref().unwrap_or("")
                            );
                        };
                        let pairs = &mut pairs;
                        let next = pairs.len();
                        let k = *pairs.entry((id, oid)).or_insert(next);
                        if k == t.cross.len() {
                            t.cross.push(Vec::new());
                        }
                        t.cross[k].push((a, b, v[i].unwrap_or(f64::NAN)));
                    }
                    (Some(o), true) => {
                        let a = cell.index.get(&(g.clone(), h.clone()));
                        let b = cell.index.get(&(g.clone(), o.clone()));
                        if let (Some(&a), Some(&b)) = (a, b) {
                            cell.covs.push((a, b, v[i].unwrap_or(f64::NAN)));
                        } else {
                            bail!(
                                "{}: the pair {g}→{h}, {g}→{o} (wave {w}, {m}) names a dyad without a row",
                                path.display()
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        t.partners = vec![Vec::new(); t.cells.len()];
        for (&(a, b), &k) in &pairs {
            t.partners[a].push((b, k));
        }
        Ok(t)
    }
}

/// One case as the correction uses it.
struct Case {
    cluster: String,
    levels: [u32; 2],
    /// (wave, municipality) labels: the dyad cell.
    key: (String, String),
    x: f64,
    y: f64,
    var: Option<f64>,
    /// Its defined dyads (indices in its dyad cell).
    dyads: Vec<usize>,
}

/// The rows of `sample` in the scope with every column the H1 model uses.
fn cases(table: &Table, rows: &[usize], cluster: &str, dyads: &DyadTable) -> (Vec<Case>, usize) {
    let level = |v: &mut BTreeMap<String, u32>, s: String| {
        let k = v.len() as u32;
        *v.entry(s).or_insert(k)
    };
    let (mut munis, mut waves) = (BTreeMap::new(), BTreeMap::new());
    let mut out = Vec::new();
    let mut dropped = 0;
    for &i in rows {
        let (Some(m), Some(w), Some(c), Some(x), Some(y)) = (
            table.label_at("municipality", i),
            table.label_at("wave", i),
            table.label_at(cluster, i),
            table.num_at("case_rcap", i),
            table.num_at("quality", i),
        ) else {
            dropped += 1;
            continue;
        };
        let groups: Vec<&str> = table
            .str_at("work_groups", i)
            .unwrap_or("")
            .split(';')
            .filter(|g| !g.is_empty())
            .collect();
        let key = (w.clone(), m.clone());
        let mut ds = Vec::new();
        if let Some(cell) = dyads.cells.get(&key) {
            for a in &groups {
                for b in &groups {
                    if let Some(&d) = cell.index.get(&(a.to_string(), b.to_string())) {
                        ds.push(d);
                    }
                }
            }
        }
        out.push(Case {
            cluster: c,
            levels: [level(&mut munis, m), level(&mut waves, w)],
            key,
            x,
            y,
            var: table.num_at("case_rcap_error_var", i),
            dyads: ds,
        });
    }
    (out, dropped)
}

/// One cluster's part of a cell: its sums, its dyad cell (none when the file has no such cell),
/// and the weight its cases give each dyad of the cell (1/k for each of a case's k dyads), in
/// order of the dyad's index: a flat list, since every bootstrap replicate adds it up again.
#[derive(Debug, Clone)]
struct Part<'a> {
    cell: Cell,
    dyads: Option<&'a DyadCell>,
    weights: Vec<(usize, f64)>,
}

/// The cells of each cluster (cases centred on `center` for accuracy), strata of clusters.
type Clusters<'a> = (Vec<BTreeMap<[u32; 2], Part<'a>>>, Vec<Vec<usize>>);

fn clusters<'a>(cases: &[Case], center: (f64, f64), dyads: &'a DyadTable) -> Clusters<'a> {
    let mut index: BTreeMap<(u32, &str), usize> = BTreeMap::new();
    for c in cases {
        let k = index.len();
        index.entry((c.levels[0], &c.cluster)).or_insert(k);
    }
    type Building<'a> = (Cell, Option<&'a DyadCell>, BTreeMap<usize, f64>);
    let mut cells: Vec<BTreeMap<[u32; 2], Building>> = vec![BTreeMap::new(); index.len()];
    let mut strata: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for ((m, _), &k) in &index {
        strata.entry(*m).or_default().push(k);
    }
    for c in cases {
        let k = index[&(c.levels[0], c.cluster.as_str())];
        let (cell, _, weights) = cells[k].entry(c.levels).or_insert_with(|| {
            let cell = Cell {
                levels: c.levels.to_vec(),
                ..Cell::default()
            };
            (cell, dyads.cells.get(&c.key), BTreeMap::new())
        });
        cell.add(c.x - center.0, c.y - center.1, c.var.unwrap_or(0.0));
        let w = 1.0 / c.dyads.len().max(1) as f64;
        for &d in &c.dyads {
            *weights.entry(d).or_insert(0.0) += w;
        }
    }
    let cells = (cells.into_iter())
        .map(|parts| {
            (parts.into_iter())
                .map(|(l, (cell, dyads, weights))| {
                    let weights = weights.into_iter().collect();
                    (
                        l,
                        Part {
                            cell,
                            dyads,
                            weights,
                        },
                    )
                })
                .collect()
        })
        .collect();
    (cells, strata.into_values().collect())
}

/// Calibration of the merged cells of the drawn clusters, each cell's error sum from the
/// dyads' variances and covariances, and the covariance of two cells' error sums (two waves of
/// a municipality) from the cross-wave covariances of their dyads.
fn calibrate_drawn(
    cells: &[BTreeMap<[u32; 2], Part>],
    drawn: &[usize],
    dyads: &DyadTable,
) -> Option<Calibration> {
    let mut merged: BTreeMap<[u32; 2], (Cell, Vec<f64>, &DyadCell)> = BTreeMap::new();
    for &k in drawn {
        for (l, part) in &cells[k] {
            let dc = part.dyads?;
            let (cell, w, _) = merged.entry(*l).or_insert_with(|| {
                (
                    Cell {
                        levels: l.to_vec(),
                        ..Cell::default()
                    },
                    vec![0.0; dc.var.len()],
                    dc,
                )
            });
            cell.merge(&part.cell);
            for &(d, x) in &part.weights {
                w[d] += x;
            }
        }
    }
    let merged: Vec<(Cell, Vec<f64>, &DyadCell)> = merged
        .into_values()
        .map(|(mut cell, w, dc)| {
            cell.sum_var = quadratic_form(&dc.var, &dc.covs, &w);
            (cell, w, dc)
        })
        .collect();
    // Each merged cell's cells of later waves, in merged order (pairs (a, b) in the order of a,
    // then b).
    let mut at = vec![None; dyads.partners.len()];
    for (b, (_, _, db)) in merged.iter().enumerate() {
        at[db.id] = Some(b);
    }
    let mut cross = Vec::new();
    let mut pairs = Vec::new();
    for (a, (_, wa, da)) in merged.iter().enumerate() {
        pairs.clear();
        pairs
            .extend((dyads.partners[da.id].iter()).filter_map(|&(id, covs)| Some((at[id]?, covs))));
        pairs.sort_unstable_by_key(|&(b, _)| b);
        for &(b, covs) in &pairs {
            let c = bilinear_form(&dyads.cross[covs], wa, &merged[b].1);
            if !c.is_finite() {
                return None;
            }
            cross.push((a, b, c));
        }
    }
    let v: Vec<Cell> = merged.into_iter().map(|(c, _, _)| c).collect();
    calibrate_cross(&v, &cross).ok()
}

/// The columns of the H1 table that a scope's cases are made of (besides the cluster's).
const CASE_COLUMNS: [&str; 6] = [
    "municipality",
    "wave",
    "case_rcap",
    "quality",
    "work_groups",
    "case_rcap_error_var",
];

/// Version of the kept bootstrap's key and bytes; raise it when what they hold changes.
const BOOTSTRAP_CACHE_VERSION: u32 = 1;

/// One scope of the correction: its name, its sample rows and its index (which offsets the
/// bootstrap's seed).
pub struct Scope<'a> {
    table: &'a Table,
    name: String,
    rows: Vec<usize>,
    index: u64,
    min_clusters: Option<usize>,
}

impl Scope<'_> {
    /// The correction in this scope; the same whatever else runs, and in whatever order. Its
    /// bootstrap is kept in `memo` (see [`Scope::bootstrap`]).
    pub fn correct(&self, dyads: &DyadTable, cfg: &ModelSection, memo: &Memo) -> Result<ScopeRow> {
        let (table, rows, name) = (self.table, &self.rows[..], self.name.as_str());
        let (index, min_clusters) = (self.index, self.min_clusters);
        let cluster = cfg.h1.cluster.as_deref().unwrap_or("lead_unit_id");
        let (cases, _) = cases(table, rows, cluster, dyads);
        let seed = cfg.h1_bootstrap_seed.wrapping_add(index);
        let mut row = ScopeRow {
            scope: name.into(),
            status: "not_corrected".into(),
            n_obs: cases.len(),
            bootstrap: cfg.h1_bootstrap,
            seed,
            rows_in: rows.len(),
            ..ScopeRow::default()
        };
        let n = cases.len() as f64;
        if n == 0.0 {
            row.reason = Some("no rows".into());
            return Ok(row);
        }
        let center = (
            cases.iter().map(|c| c.x).sum::<f64>() / n,
            cases.iter().map(|c| c.y).sum::<f64>() / n,
        );
        let (cells, strata) = clusters(&cases, center, dyads);
        row.n_clusters = cells.len();
        row.n_strata = strata.len();
        let all: Vec<usize> = (0..cells.len()).collect();
        row.cal = calibrate_drawn(&cells, &all, dyads);
        let missing = cases
            .iter()
            .filter(|c| c.var.is_none() || c.dyads.is_empty())
            .count();
        if let Some(c) = &row.cal {
            let rel: Vec<f64> = cases
                .iter()
                .filter_map(|k| c.reliability_of(k.var?))
                .collect();
            if !rel.is_empty() {
                let mean = rel.iter().sum::<f64>() / rel.len() as f64;
                row.case_rel = Some((mean, rel.iter().copied().fold(f64::INFINITY, f64::min)));
            }
        }
        let g = row.n_clusters;
        row.reason = if dyads.cells.is_empty() {
            Some("no link/h1_dyad_errors.parquet: rerun the link stage".into())
        } else if missing > 0 {
            Some(format!(
                "too few raters: {missing} case(s) have no sampling variance of case RCap (a dyad with too few raters and no pooled variance)"
            ))
        } else if min_clusters.is_some_and(|need| g < need) || g <= row.n_strata {
            Some(format!(
                "{g} lead units, too few for the bootstrap (model.min_clusters = {})",
                cfg.min_clusters
            ))
        } else {
            match &row.cal {
                None => Some("the naive regression could not be computed".into()),
                Some(c) if c.lambda < cfg.h1_reliability_floor => Some(format!(
                    "reliability of case RCap λ = {:.3} is below model.h1_reliability_floor = {}",
                    c.lambda, cfg.h1_reliability_floor
                )),
                Some(_) => None,
            }
        };
        if row.reason.is_some() {
            return Ok(row);
        }
        let reps = cfg.h1_bootstrap as usize;
        let boot = self.bootstrap(cluster, dyads, reps, seed, memo, || {
            cluster_bootstrap(&strata, reps, seed, |d| {
                calibrate_drawn(&cells, d, dyads)?.corrected
            })
        })?;
        row.failed = boot.failed;
        let (Some(sd), Some(est)) = (boot.sd(), row.cal.as_ref().and_then(|c| c.corrected)) else {
            row.reason = Some("fewer than 2 bootstrap replicates could be computed".into());
            return Ok(row);
        };
        let df = (g - row.n_strata) as f64;
        let se = sd * (g as f64 / df).sqrt();
        let alpha = cfg.alpha;
        let t = t_quantile(1.0 - alpha / 2.0, df);
        row.status = "corrected".into();
        row.std_error = Some(se);
        row.df = Some(df);
        row.p_value = Some(t_two_sided_p(est / se, df));
        row.conf = Some((est - t * se, est + t * se));
        row.boot = boot
            .quantile(alpha / 2.0)
            .zip(boot.quantile(1.0 - alpha / 2.0));
        Ok(row)
    }

    /// The scope's cluster bootstrap of the corrected estimate, or the one a run before kept in
    /// `memo` (`OUT/.cache/model/`) for the same rows, cluster column, dyad table, number of
    /// replicates and seed: the replicates do not depend on `model.alpha`, so a rerun after a
    /// change of level takes them instead of drawing them again.
    fn bootstrap(
        &self,
        cluster: &str,
        dyads: &DyadTable,
        replications: usize,
        seed: u64,
        memo: &Memo,
        draw: impl FnOnce() -> Bootstrap,
    ) -> Result<Bootstrap> {
        let mut h = blake3::Hasher::new();
        let head = format!(
            "relcap {} h1 bootstrap cache {BOOTSTRAP_CACHE_VERSION}\n{cluster}\n{replications}\n{seed}\n",
            env!("CARGO_PKG_VERSION"),
        );
        h.update(&(head.len() as u64).to_le_bytes());
        h.update(head.as_bytes());
        h.update(&dyads.hash);
        let columns: Vec<String> = (CASE_COLUMNS.iter().copied())
            .chain([cluster])
            .map(String::from)
            .collect();
        if self.table.hash_rows(&columns, &self.rows, &mut h).is_err() {
            // A column the cases can do without is missing: nothing to key a kept result by.
            return Ok(draw());
        }
        let key = h.finalize();
        let kept = memo.get(MEMO_STAGE, &key, |bytes| {
            let (estimates, failed) = rmp_serde::from_slice::<(Vec<f64>, usize)>(&bytes).ok()?;
            Some(Bootstrap { estimates, failed })
        });
        if let Some(b) = kept {
            return Ok(b);
        }
        let b = draw();
        memo.put(
            MEMO_STAGE,
            &key,
            &rmp_serde::to_vec(&(&b.estimates, b.failed))?,
        )?;
        Ok(b)
    }
}

/// The scopes of the correction: pooled, then each municipality of the sample in sorted order.
pub fn scopes<'a>(table: &'a Table, sample: &[usize], cfg: &ModelSection) -> Vec<Scope<'a>> {
    let mut by_muni: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in sample {
        if let Some(m) = table.label_at("municipality", i) {
            by_muni.entry(m).or_default().push(i);
        }
    }
    let pooled = Scope {
        table,
        name: POOLED.into(),
        rows: sample.to_vec(),
        index: 0,
        min_clusters: None,
    };
    let munis = by_muni.into_iter().enumerate().map(|(k, (m, rows))| Scope {
        table,
        name: m,
        rows,
        index: k as u64 + 1,
        min_clusters: Some(cfg.min_clusters as usize),
    });
    std::iter::once(pooled).chain(munis).collect()
}

/// The `results` rows of the corrected scopes.
pub fn result_rows(rows: &[ScopeRow]) -> Vec<ResultRow> {
    rows.iter()
        .filter_map(|r| {
            let est = r.corrected()?;
            Some(ResultRow {
                hypothesis: "H1".into(),
                scope: r.scope.clone(),
                model: MODEL.into(),
                primary: false,
                term: "case_rcap".into(),
                estimate: fin(est),
                std_error: r.std_error.and_then(fin),
                statistic: r.std_error.map(|s| est / s).and_then(fin),
                df: r.df,
                p_value: r.p_value.and_then(fin),
                p_holm: None,
                p_adjusted: None,
                supported: None,
                conf_low: r.conf.map(|c| c.0).and_then(fin),
                conf_high: r.conf.map(|c| c.1).and_then(fin),
                std_estimate: None,
                n_obs: r.n_obs as i64,
                n_groups: Some(r.n_clusters as i64),
                singular: None,
            })
        })
        .collect()
}

/// The `fit` rows, one per scope.
pub fn fit_rows(rows: &[ScopeRow]) -> Vec<FitRow> {
    rows.iter()
        .map(|r| FitRow {
            hypothesis: "H1".into(),
            scope: r.scope.clone(),
            model: MODEL.into(),
            primary: false,
            status: if r.status == "corrected" {
                "fitted".into()
            } else {
                "not_corrected".into()
            },
            message: r.reason.clone(),
            formula: formula(&r.scope),
            method: Some("regression_calibration".into()),
            vcov: Some("cluster_bootstrap".into()),
            rows_in: r.rows_in as i64,
            n_dropped: (r.rows_in - r.n_obs) as i64,
            n_obs: Some(r.n_obs as i64),
            n_groups: Some(r.n_clusters as i64),
            n_clusters: Some(r.n_clusters as i64),
            df_residual: r.df,
            ..FitRow::default()
        })
        .collect()
}

/// `h1_reliability.parquet` (schema in the module doc).
pub fn reliability_frame(rows: &[ScopeRow]) -> Result<DataFrame> {
    let cal = |f: fn(&Calibration) -> f64| {
        rows.iter()
            .map(move |r| r.cal.as_ref().map(f).and_then(fin))
            .collect::<Vec<_>>()
    };
    let n = |v: usize| v as i64;
    let mut b = FrameBuilder::new();
    b.str("scope", rows.iter().map(|r| &r.scope))
        .str("status", rows.iter().map(|r| &r.status))
        .opt_str("reason", rows.iter().map(|r| r.reason.as_ref()))
        .i64("n_obs", rows.iter().map(|r| n(r.n_obs)))
        .i64("n_clusters", rows.iter().map(|r| n(r.n_clusters)))
        .i64("n_strata", rows.iter().map(|r| n(r.n_strata)))
        .opt_i64(
            "n_fixed",
            rows.iter().map(|r| r.cal.as_ref().map(|c| n(c.p))),
        )
        .f64("var_case_rcap", cal(|c| c.var_x))
        .f64("var_error", cal(|c| c.var_error))
        .f64("var_true", cal(|c| c.var_true))
        .f64("lambda", cal(|c| c.lambda))
        .f64(
            "case_reliability_mean",
            rows.iter().map(|r| r.case_rel.map(|c| c.0)),
        )
        .f64(
            "case_reliability_min",
            rows.iter().map(|r| r.case_rel.map(|c| c.1)),
        )
        .f64("naive", cal(|c| c.naive))
        .f64(
            "corrected",
            rows.iter()
                .map(|r| r.cal.as_ref().and_then(|c| c.corrected)),
        )
        .f64("std_error", rows.iter().map(|r| r.std_error))
        .f64("df", rows.iter().map(|r| r.df))
        .f64("conf_low", rows.iter().map(|r| r.conf.map(|c| c.0)))
        .f64("conf_high", rows.iter().map(|r| r.conf.map(|c| c.1)))
        .f64("boot_low", rows.iter().map(|r| r.boot.map(|c| c.0)))
        .f64("boot_high", rows.iter().map(|r| r.boot.map(|c| c.1)))
        .i64("bootstrap", rows.iter().map(|r| i64::from(r.bootstrap)))
        .i64("bootstrap_failed", rows.iter().map(|r| n(r.failed)))
        .i64("seed", rows.iter().map(|r| r.seed as i64));
    b.finish()
}
