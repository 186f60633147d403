//! The report's inputs, read from the Parquet files and `summary.json` files of the earlier
//! stages into plain rows. Nothing is computed here; a missing file or column is an error naming
//! the file and the column (through `frame::read`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::stages::frame::{bools, f64s, i64s, opt, read, req, strs, Kind, Spec};
use crate::stages::StageContext;

/// One row of `model/results.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub primary: bool,
    pub term: String,
    pub estimate: f64,
    pub std_error: Option<f64>,
    pub p_value: Option<f64>,
    pub p_holm: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub supported: Option<bool>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub std_estimate: Option<f64>,
    pub n_obs: i64,
    pub n_groups: Option<i64>,
}

/// One row of `model/fit.parquet`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FitRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub primary: bool,
    pub status: String,
    pub formula: String,
    pub method: Option<String>,
    pub vcov: Option<String>,
    /// Set on a CR2 twin: another reading of that model's fit.
    pub same_fit_as: Option<String>,
    pub n_obs: Option<i64>,
    pub n_groups: Option<i64>,
    pub n_clusters: Option<i64>,
    pub r_squared: Option<f64>,
    pub singular: Option<bool>,
    pub converged: Option<bool>,
}

/// One row of `model/variance_components.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct VarianceRow {
    pub hypothesis: String,
    pub scope: String,
    pub model: String,
    pub group: String,
    pub variance: Option<f64>,
}

/// One row of `model/heterogeneity.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeterogeneityRow {
    pub hypothesis: String,
    pub method: String,
    /// `knha`, `adhoc` or `z` (None in tables written before the column existed: z).
    pub test: Option<String>,
    pub k: i64,
    pub estimate: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    pub tau2: Option<f64>,
    pub i2: Option<f64>,
    pub q_p: Option<f64>,
}

/// One row of `score/dyads.parquet` (what the heat maps need).
#[derive(Debug, Clone, PartialEq)]
pub struct Dyad {
    pub wave: i64,
    pub municipality: String,
    pub work_group: String,
    pub target_group: String,
    pub within_group: bool,
    pub n_raters: i64,
    pub mean: Option<f64>,
    /// Raters with a relevance answer about the target group.
    pub relevance_n: i64,
    /// Their mean relevance rating of the target group.
    pub relevance: Option<f64>,
}

/// The raters behind each dyad with a tie score (within-group dyads included), by (municipality, wave, rater group, rated
/// group): each rater as a number that stands for one person across the dyads and waves of
/// a municipality (pseudonyms are turned into these numbers as they are read and not kept),
/// sorted. What the report counts people with when a figure rests on several dyads.
pub type Raters = BTreeMap<(String, i64, String, String), Vec<u32>>;

/// A `group` row of `score/network.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetGroup {
    pub wave: i64,
    pub municipality: String,
    pub work_group: String,
    pub in_strength: Option<f64>,
    pub out_strength: Option<f64>,
    pub hub_score: Option<i64>,
    pub hub_n: Option<i64>,
    pub relevance_in: Option<f64>,
}

/// A `pair` row of `score/network.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetPair {
    pub wave: i64,
    pub municipality: String,
    pub work_group: String,
    pub partner_group: String,
    pub blind_spot: bool,
    pub high_group: Option<String>,
    pub low_group: Option<String>,
}

/// One row of `score/units.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub wave: i64,
    pub municipality: String,
    pub unit_id: String,
    pub work_group: String,
    pub rcap: Option<f64>,
    pub n_rcap: i64,
    pub srm: Option<f64>,
    pub n_srm: i64,
}

/// One row of `score/respondents.parquet` (no id: the report never needs it).
#[derive(Debug, Clone, PartialEq)]
pub struct Respondent {
    pub wave: i64,
    pub municipality: String,
    pub rcap: Option<f64>,
}

/// A row of `score/reliability.parquet` that is not a per-unit or per-dyad rwg(j).
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    pub measure: String,
    pub scale: String,
    pub scope: String,
    pub wave: i64,
    pub value: Option<f64>,
    pub n: i64,
    /// Set for the rwg(j) rows (a unit or a dyad).
    pub per_group: bool,
}

/// A model-sample row of `link/h3_panel.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct H3Row {
    pub municipality: String,
    pub arm: String,
    pub post: i64,
    pub rcap: f64,
}

/// Everything the report reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    pub results: Vec<ResultRow>,
    pub results_json: Value,
    pub fits: Vec<FitRow>,
    pub variances: Vec<VarianceRow>,
    pub heterogeneity: Vec<HeterogeneityRow>,
    pub dyads: Vec<Dyad>,
    pub groups: Vec<NetGroup>,
    pub pairs: Vec<NetPair>,
    pub units: Vec<UnitRow>,
    pub respondents: Vec<Respondent>,
    pub reliability: Vec<Reliability>,
    pub h3: Vec<H3Row>,
    pub raters: Raters,
    /// `summary.json` of each earlier stage, in pipeline order (stage name, content).
    pub summaries: Vec<(String, Value)>,
}

fn s(v: Option<&str>) -> String {
    v.unwrap_or("").to_string()
}

fn json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (has the stage that writes it run?)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

const STR: Kind = Kind::Str;
const I64: Kind = Kind::I64;
const F64: Kind = Kind::F64;
const BOOL: Kind = Kind::Bool;

fn results(path: &Path) -> Result<Vec<ResultRow>> {
    let specs: [Spec; 16] = [
        req("hypothesis", STR),
        req("scope", STR),
        req("model", STR),
        req("primary", BOOL),
        req("term", STR),
        req("estimate", F64),
        opt("std_error", F64),
        opt("p_value", F64),
        opt("p_holm", F64),
        opt("p_adjusted", F64),
        opt("supported", BOOL),
        opt("conf_low", F64),
        opt("conf_high", F64),
        opt("std_estimate", F64),
        req("n_obs", I64),
        opt("n_groups", I64),
    ];
    let df = read(path, &specs)?;
    let h: Vec<_> = strs(&df, "hypothesis")?.map(s).collect();
    let sc: Vec<_> = strs(&df, "scope")?.map(s).collect();
    let m: Vec<_> = strs(&df, "model")?.map(s).collect();
    let pr: Vec<_> = bools(&df, "primary")?.collect();
    let t: Vec<_> = strs(&df, "term")?.map(s).collect();
    let e: Vec<_> = f64s(&df, "estimate")?.collect();
    let se: Vec<_> = f64s(&df, "std_error")?.collect();
    let p: Vec<_> = f64s(&df, "p_value")?.collect();
    let ph: Vec<_> = f64s(&df, "p_holm")?.collect();
    let pa: Vec<_> = f64s(&df, "p_adjusted")?.collect();
    let su: Vec<_> = bools(&df, "supported")?.collect();
    let lo: Vec<_> = f64s(&df, "conf_low")?.collect();
    let hi: Vec<_> = f64s(&df, "conf_high")?.collect();
    let std: Vec<_> = f64s(&df, "std_estimate")?.collect();
    let no: Vec<_> = i64s(&df, "n_obs")?.collect();
    let ng: Vec<_> = i64s(&df, "n_groups")?.collect();
    Ok((0..df.height())
        .map(|i| ResultRow {
            hypothesis: h[i].clone(),
            scope: sc[i].clone(),
            model: m[i].clone(),
            primary: pr[i].unwrap_or(false),
            term: t[i].clone(),
            estimate: e[i].unwrap_or(f64::NAN),
            std_error: se[i],
            p_value: p[i],
            p_holm: ph[i],
            p_adjusted: pa[i],
            supported: su[i],
            conf_low: lo[i],
            conf_high: hi[i],
            std_estimate: std[i],
            n_obs: no[i].unwrap_or(0),
            n_groups: ng[i],
        })
        .collect())
}

fn fits(path: &Path) -> Result<Vec<FitRow>> {
    let specs = [
        req("hypothesis", STR),
        req("scope", STR),
        req("model", STR),
        req("primary", BOOL),
        req("status", STR),
        req("formula", STR),
        opt("method", STR),
        opt("vcov", STR),
        opt("same_fit_as", STR),
        opt("n_obs", I64),
        opt("n_groups", I64),
        opt("n_clusters", I64),
        opt("r_squared", F64),
        opt("singular", BOOL),
        opt("converged", BOOL),
    ];
    let df = read(path, &specs)?;
    let n = df.height();
    let h: Vec<_> = strs(&df, "hypothesis")?.map(s).collect();
    let sc: Vec<_> = strs(&df, "scope")?.map(s).collect();
    let m: Vec<_> = strs(&df, "model")?.map(s).collect();
    let pr: Vec<_> = bools(&df, "primary")?.collect();
    let st: Vec<_> = strs(&df, "status")?.map(s).collect();
    let f: Vec<_> = strs(&df, "formula")?.map(s).collect();
    let me: Vec<_> = strs(&df, "method")?
        .map(|x| x.map(str::to_string))
        .collect();
    let vc: Vec<_> = strs(&df, "vcov")?.map(|x| x.map(str::to_string)).collect();
    let sf: Vec<_> = strs(&df, "same_fit_as")?
        .map(|x| x.map(str::to_string))
        .collect();
    let no: Vec<_> = i64s(&df, "n_obs")?.collect();
    let ng: Vec<_> = i64s(&df, "n_groups")?.collect();
    let nc: Vec<_> = i64s(&df, "n_clusters")?.collect();
    let r2: Vec<_> = f64s(&df, "r_squared")?.collect();
    let sg: Vec<_> = bools(&df, "singular")?.collect();
    let cv: Vec<_> = bools(&df, "converged")?.collect();
    Ok((0..n)
        .map(|i| FitRow {
            hypothesis: h[i].clone(),
            scope: sc[i].clone(),
            model: m[i].clone(),
            primary: pr[i].unwrap_or(false),
            status: st[i].clone(),
            formula: f[i].clone(),
            method: me[i].clone(),
            vcov: vc[i].clone(),
            same_fit_as: sf[i].clone(),
            n_obs: no[i],
            n_groups: ng[i],
            n_clusters: nc[i],
            r_squared: r2[i],
            singular: sg[i],
            converged: cv[i],
        })
        .collect())
}

fn variances(path: &Path) -> Result<Vec<VarianceRow>> {
    let specs = [
        req("hypothesis", STR),
        req("scope", STR),
        req("model", STR),
        req("group", STR),
        opt("variance", F64),
    ];
    let df = read(path, &specs)?;
    let h: Vec<_> = strs(&df, "hypothesis")?.map(s).collect();
    let sc: Vec<_> = strs(&df, "scope")?.map(s).collect();
    let m: Vec<_> = strs(&df, "model")?.map(s).collect();
    let g: Vec<_> = strs(&df, "group")?.map(s).collect();
    let v: Vec<_> = f64s(&df, "variance")?.collect();
    Ok((0..df.height())
        .map(|i| VarianceRow {
            hypothesis: h[i].clone(),
            scope: sc[i].clone(),
            model: m[i].clone(),
            group: g[i].clone(),
            variance: v[i],
        })
        .collect())
}

fn heterogeneity(path: &Path) -> Result<Vec<HeterogeneityRow>> {
    let specs = [
        req("hypothesis", STR),
        req("method", STR),
        opt("test", STR),
        req("k", I64),
        opt("estimate", F64),
        opt("conf_low", F64),
        opt("conf_high", F64),
        opt("tau2", F64),
        opt("i2", F64),
        opt("q_p", F64),
    ];
    let df = read(path, &specs)?;
    let h: Vec<_> = strs(&df, "hypothesis")?.map(s).collect();
    let me: Vec<_> = strs(&df, "method")?.map(s).collect();
    let te: Vec<Option<String>> = strs(&df, "test")?.map(|v| v.map(String::from)).collect();
    let k: Vec<_> = i64s(&df, "k")?.collect();
    let e: Vec<_> = f64s(&df, "estimate")?.collect();
    let lo: Vec<_> = f64s(&df, "conf_low")?.collect();
    let hi: Vec<_> = f64s(&df, "conf_high")?.collect();
    let t2: Vec<_> = f64s(&df, "tau2")?.collect();
    let i2: Vec<_> = f64s(&df, "i2")?.collect();
    let qp: Vec<_> = f64s(&df, "q_p")?.collect();
    Ok((0..df.height())
        .map(|i| HeterogeneityRow {
            hypothesis: h[i].clone(),
            method: me[i].clone(),
            test: te[i].clone(),
            k: k[i].unwrap_or(0),
            estimate: e[i],
            conf_low: lo[i],
            conf_high: hi[i],
            tau2: t2[i],
            i2: i2[i],
            q_p: qp[i],
        })
        .collect())
}

fn dyads(path: &Path) -> Result<Vec<Dyad>> {
    let specs = [
        req("wave", I64),
        req("municipality", STR),
        req("work_group", STR),
        req("target_group", STR),
        req("within_group", BOOL),
        req("n_raters", I64),
        opt("mean", F64),
        req("relevance_n", I64),
        opt("relevance_mean", F64),
    ];
    let df = read(path, &specs)?;
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let mu: Vec<_> = strs(&df, "municipality")?.map(s).collect();
    let g: Vec<_> = strs(&df, "work_group")?.map(s).collect();
    let h: Vec<_> = strs(&df, "target_group")?.map(s).collect();
    let wi: Vec<_> = bools(&df, "within_group")?.collect();
    let n: Vec<_> = i64s(&df, "n_raters")?.collect();
    let m: Vec<_> = f64s(&df, "mean")?.collect();
    let rn: Vec<_> = i64s(&df, "relevance_n")?.collect();
    let rm: Vec<_> = f64s(&df, "relevance_mean")?.collect();
    Ok((0..df.height())
        .map(|i| Dyad {
            wave: w[i].unwrap_or(0),
            municipality: mu[i].clone(),
            work_group: g[i].clone(),
            target_group: h[i].clone(),
            within_group: wi[i].unwrap_or(false),
            n_raters: n[i].unwrap_or(0),
            mean: m[i],
            relevance_n: rn[i].unwrap_or(0),
            relevance: rm[i],
        })
        .collect())
}

/// `score/ties.parquet`: who stands behind each dyad (within-group ones included) with a tie
/// score.
fn raters(path: &Path) -> Result<Raters> {
    let specs = [
        req("wave", I64),
        req("municipality", STR),
        req("work_group", STR),
        req("respondent_id", STR),
        req("target_group", STR),
        req("within_group", BOOL),
        opt("rc", F64),
    ];
    let df = read(path, &specs)?;
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let mu: Vec<_> = strs(&df, "municipality")?.collect();
    let g: Vec<_> = strs(&df, "work_group")?.collect();
    let id: Vec<_> = strs(&df, "respondent_id")?.collect();
    let h: Vec<_> = strs(&df, "target_group")?.collect();
    let wi: Vec<_> = bools(&df, "within_group")?.collect();
    let rc: Vec<_> = f64s(&df, "rc")?.collect();
    let mut numbers: HashMap<&str, u32> = HashMap::new();
    let mut out: Raters = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(m), Some(g), Some(id), Some(h), Some(w)) = (mu[i], g[i], id[i], h[i], w[i])
        else {
            continue;
        };
        if wi[i].is_none() || rc[i].is_none() {
            continue;
        }
        let next = numbers.len() as u32;
        let k = *numbers.entry(id).or_insert(next);
        out.entry((m.to_string(), w, g.to_string(), h.to_string()))
            .or_default()
            .push(k);
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    Ok(out)
}

fn network(path: &Path) -> Result<(Vec<NetGroup>, Vec<NetPair>)> {
    let specs = [
        req("wave", I64),
        req("municipality", STR),
        req("kind", STR),
        req("work_group", STR),
        opt("partner_group", STR),
        opt("in_strength", F64),
        opt("out_strength", F64),
        opt("hub_score", I64),
        opt("hub_n", I64),
        opt("relevance_in", F64),
        opt("blind_spot", BOOL),
        opt("blind_spot_high_group", STR),
        opt("blind_spot_low_group", STR),
    ];
    let df = read(path, &specs)?;
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let mu: Vec<_> = strs(&df, "municipality")?.map(s).collect();
    let kind: Vec<_> = strs(&df, "kind")?.map(s).collect();
    let g: Vec<_> = strs(&df, "work_group")?.map(s).collect();
    let p: Vec<_> = strs(&df, "partner_group")?.map(s).collect();
    let ins: Vec<_> = f64s(&df, "in_strength")?.collect();
    let outs: Vec<_> = f64s(&df, "out_strength")?.collect();
    let hub: Vec<_> = i64s(&df, "hub_score")?.collect();
    let hub_n: Vec<_> = i64s(&df, "hub_n")?.collect();
    let rel: Vec<_> = f64s(&df, "relevance_in")?.collect();
    let bs: Vec<_> = bools(&df, "blind_spot")?.collect();
    let hi: Vec<_> = strs(&df, "blind_spot_high_group")?
        .map(|x| x.map(str::to_string))
        .collect();
    let lo: Vec<_> = strs(&df, "blind_spot_low_group")?
        .map(|x| x.map(str::to_string))
        .collect();
    let (mut groups, mut pairs) = (vec![], vec![]);
    for i in 0..df.height() {
        let wave = w[i].unwrap_or(0);
        if kind[i] == "group" {
            groups.push(NetGroup {
                wave,
                municipality: mu[i].clone(),
                work_group: g[i].clone(),
                in_strength: ins[i],
                out_strength: outs[i],
                hub_score: hub[i],
                hub_n: hub_n[i],
                relevance_in: rel[i],
            });
        } else if kind[i] == "pair" {
            pairs.push(NetPair {
                wave,
                municipality: mu[i].clone(),
                work_group: g[i].clone(),
                partner_group: p[i].clone(),
                blind_spot: bs[i].unwrap_or(false),
                high_group: hi[i].clone(),
                low_group: lo[i].clone(),
            });
        }
    }
    Ok((groups, pairs))
}

fn units(path: &Path) -> Result<Vec<UnitRow>> {
    let specs = [
        req("wave", I64),
        req("municipality", STR),
        req("unit_id", STR),
        req("work_group", STR),
        opt("rcap", F64),
        req("n_rcap", I64),
        opt("srm", F64),
        req("n_srm", I64),
    ];
    let df = read(path, &specs)?;
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let mu: Vec<_> = strs(&df, "municipality")?.map(s).collect();
    let u: Vec<_> = strs(&df, "unit_id")?.map(s).collect();
    let g: Vec<_> = strs(&df, "work_group")?.map(s).collect();
    let r: Vec<_> = f64s(&df, "rcap")?.collect();
    let nr: Vec<_> = i64s(&df, "n_rcap")?.collect();
    let sr: Vec<_> = f64s(&df, "srm")?.collect();
    let ns: Vec<_> = i64s(&df, "n_srm")?.collect();
    Ok((0..df.height())
        .map(|i| UnitRow {
            wave: w[i].unwrap_or(0),
            municipality: mu[i].clone(),
            unit_id: u[i].clone(),
            work_group: g[i].clone(),
            rcap: r[i],
            n_rcap: nr[i].unwrap_or(0),
            srm: sr[i],
            n_srm: ns[i].unwrap_or(0),
        })
        .collect())
}

fn respondents(path: &Path) -> Result<Vec<Respondent>> {
    let specs = [req("wave", I64), req("municipality", STR), opt("rcap", F64)];
    let df = read(path, &specs)?;
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let mu: Vec<_> = strs(&df, "municipality")?.map(s).collect();
    let r: Vec<_> = f64s(&df, "rcap")?.collect();
    Ok((0..df.height())
        .map(|i| Respondent {
            wave: w[i].unwrap_or(0),
            municipality: mu[i].clone(),
            rcap: r[i],
        })
        .collect())
}

fn reliability(path: &Path) -> Result<Vec<Reliability>> {
    let specs = [
        req("measure", STR),
        req("scale", STR),
        req("scope", STR),
        req("wave", I64),
        opt("unit_id", STR),
        opt("work_group", STR),
        opt("value", F64),
        req("n", I64),
    ];
    let df = read(path, &specs)?;
    let me: Vec<_> = strs(&df, "measure")?.map(s).collect();
    let sc: Vec<_> = strs(&df, "scale")?.map(s).collect();
    let scope: Vec<_> = strs(&df, "scope")?.map(s).collect();
    let w: Vec<_> = i64s(&df, "wave")?.collect();
    let u: Vec<_> = strs(&df, "unit_id")?.map(|x| x.is_some()).collect();
    let g: Vec<_> = strs(&df, "work_group")?.map(|x| x.is_some()).collect();
    let v: Vec<_> = f64s(&df, "value")?.collect();
    let n: Vec<_> = i64s(&df, "n")?.collect();
    Ok((0..df.height())
        .map(|i| Reliability {
            measure: me[i].clone(),
            scale: sc[i].clone(),
            scope: scope[i].clone(),
            wave: w[i].unwrap_or(0),
            value: v[i],
            n: n[i].unwrap_or(0),
            per_group: u[i] || g[i],
        })
        .collect())
}

fn h3(path: &Path) -> Result<Vec<H3Row>> {
    let specs = [
        req("municipality", STR),
        opt("arm", STR),
        opt("post", I64),
        opt("rcap", F64),
        opt("exclusion", STR),
    ];
    let df = read(path, &specs)?;
    let mu: Vec<_> = strs(&df, "municipality")?.map(s).collect();
    let arm: Vec<_> = strs(&df, "arm")?.map(|x| x.map(str::to_string)).collect();
    let post: Vec<_> = i64s(&df, "post")?.collect();
    let r: Vec<_> = f64s(&df, "rcap")?.collect();
    let ex: Vec<_> = strs(&df, "exclusion")?.map(|x| x.is_some()).collect();
    let mut out = vec![];
    for i in 0..df.height() {
        if let (false, Some(a), Some(p), Some(y)) = (ex[i], &arm[i], post[i], r[i]) {
            out.push(H3Row {
                municipality: mu[i].clone(),
                arm: a.clone(),
                post: p,
                rcap: y,
            });
        }
    }
    Ok(out)
}

/// One file the report reads. [`load`] reads them in [`FILES`]'s order.
#[derive(Debug, Clone, Copy)]
enum File {
    Network,
    Summary(&'static str),
    Results,
    ResultsJson,
    Fits,
    Variances,
    Heterogeneity,
    Dyads,
    Units,
    Respondents,
    Reliability,
    H3,
    Ties,
}

/// The files in the order their errors are reported.
const FILES: [File; 17] = [
    File::Network,
    File::Summary("ingest"),
    File::Summary("clean"),
    File::Summary("score"),
    File::Summary("link"),
    File::Summary("model"),
    File::Results,
    File::ResultsJson,
    File::Fits,
    File::Variances,
    File::Heterogeneity,
    File::Dyads,
    File::Units,
    File::Respondents,
    File::Reliability,
    File::H3,
    File::Ties,
];

/// What one file holds.
enum Read {
    Network(Vec<NetGroup>, Vec<NetPair>),
    Summary(&'static str, Value),
    Results(Vec<ResultRow>),
    ResultsJson(Value),
    Fits(Vec<FitRow>),
    Variances(Vec<VarianceRow>),
    Heterogeneity(Vec<HeterogeneityRow>),
    Dyads(Vec<Dyad>),
    Units(Vec<UnitRow>),
    Respondents(Vec<Respondent>),
    Reliability(Vec<Reliability>),
    H3(Vec<H3Row>),
    Ties(Raters),
}

fn read_file(ctx: &StageContext, file: File) -> Result<Read> {
    let score = |name| ctx.table_path("score", name);
    let model = |name| ctx.table_path("model", name);
    Ok(match file {
        File::Network => {
            let (groups, pairs) = network(&score("network"))?;
            Read::Network(groups, pairs)
        }
        File::Summary(stage) => {
            Read::Summary(stage, json(&ctx.stage_dir(stage).join("summary.json"))?)
        }
        File::Results => Read::Results(results(&model("results"))?),
        File::ResultsJson => Read::ResultsJson(json(&ctx.stage_dir("model").join("results.json"))?),
        File::Fits => Read::Fits(fits(&model("fit"))?),
        File::Variances => Read::Variances(variances(&model("variance_components"))?),
        File::Heterogeneity => Read::Heterogeneity(heterogeneity(&model("heterogeneity"))?),
        File::Dyads => Read::Dyads(dyads(&score("dyads"))?),
        File::Units => Read::Units(units(&score("units"))?),
        File::Respondents => Read::Respondents(respondents(&score("respondents"))?),
        File::Reliability => Read::Reliability(reliability(&score("reliability"))?),
        File::H3 => Read::H3(h3(&ctx.table_path("link", "h3_panel"))?),
        File::Ties => Read::Ties(raters(&score("ties"))?),
    })
}

/// Reads everything the report shows from the earlier stages' outputs, on two threads; the
/// error reported is the first in [`FILES`]'s order, as if the files were read one after
/// another.
pub fn load(ctx: &StageContext) -> Result<Inputs> {
    let mut inp = Inputs::default();
    for read in crate::stages::map_on_two_threads(&FILES, |&f| read_file(ctx, f)) {
        match read? {
            Read::Network(groups, pairs) => (inp.groups, inp.pairs) = (groups, pairs),
            Read::Summary(stage, j) => inp.summaries.push((stage.to_string(), j)),
            Read::Results(x) => inp.results = x,
            Read::ResultsJson(x) => inp.results_json = x,
            Read::Fits(x) => inp.fits = x,
            Read::Variances(x) => inp.variances = x,
            Read::Heterogeneity(x) => inp.heterogeneity = x,
            Read::Dyads(x) => inp.dyads = x,
            Read::Units(x) => inp.units = x,
            Read::Respondents(x) => inp.respondents = x,
            Read::Reliability(x) => inp.reliability = x,
            Read::H3(x) => inp.h3 = x,
            Read::Ties(x) => inp.raters = x,
        }
    }
    Ok(inp)
}
