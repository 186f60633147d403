//! The `report` stage: what people read, rendered only from the Parquet files and `summary.json`
//! files of the earlier stages, so a number in a report is always the number in the stage
//! outputs (`model/results.parquet` for every estimate).
//!
//! Reads `OUT/model/{results,fit,variance_components,heterogeneity}.parquet` and
//! `results.json`, `OUT/score/{dyads,network,units,respondents,reliability}.parquet`,
//! `OUT/link/h3_panel.parquet` and the `summary.json` of ingest, clean, score, link and model.
//! Settings: `study.name`, `privacy.min_cell`, `model.alpha`, `model.h1` (the cluster column
//! named in the table notes), `report.stars`, `report.templates_dir`.
//!
//! # What it writes (under the reports folder, `reports/<study>/` by default)
//!
//! | file | for | content |
//! | --- | --- | --- |
//! | `report.html` | the research team | one self-contained page (inline SVG and CSS, no network): the three hypotheses at a glance (estimate, CI, p, Holm p, supported or not in plain words); a forest plot per hypothesis (municipalities, pooled, meta-analytic diamond, I²); the H3 means before and after by arm with CIs; each municipality's collaboration network as a group × group heat map per wave and for the change from the first to the last wave, with in- and out-strength margins; blind spots and hubs; reliability and aggregation; sample flow (rows per stage, quarantined by reason, exclusions); a methods paragraph; software version, config hash and the report's fingerprint |
//! | `tables/<H>.md`, `.tex`, `.csv` | publications | one regression table per hypothesis (see `report/tables.rs`) |
//! | `municipalities/<municipality>.html` | the municipality's managers | their network, what changed between the first and the last wave, blind spots, hubs, their units, and how they compare with the other municipalities, which are never named |
//!
//! `OUT/report/summary.json` counts the files written and the suppressed cells
//! (`cells_suppressed_primary`, `cells_suppressed_secondary`) and lists the report files in
//! `facts.files`.
//!
//! # Privacy
//!
//! No figure computed from fewer than `privacy.min_cell` people is shown, and the complementary
//! cell that would reveal it by subtraction is suppressed too (rules in `report/privacy.rs`).
//! Every figure about people is rendered with its n in a `data-n` attribute, suppressed ones
//! with `data-suppressed`, so the rule can be checked on the rendered files. No person
//! identifier is read: respondents are used only as counts and means by municipality and wave.
//! Counts of rows in the sample flow are not figures about anyone and are shown as they are.
//! Model estimates carry the number of observations they rest on.
//!
//! # Config hash and fingerprint
//!
//! The config hash is the blake3 hash of the canonical JSON of every stage's config section
//! (what the results depend on; the same sections the stage fingerprints cover, so the report's
//! fingerprint changes whenever it does), shown as its first 16 hex digits. The report's
//! fingerprint (`stages.report.fingerprint` in `OUT/manifest.json` and in
//! `OUT/report/summary.json`) identifies the run's inputs and settings; shown as its first 16
//! hex digits, so that no 32-digit hex string (the form of a pseudonym) appears in a report.
//!
//! # Templates
//!
//! The pages come from minijinja templates embedded from `pipeline/stages/report/templates/`
//! (`study.html.j2`, `municipality.html.j2`, `macros.html.j2`, `style.css`); a file of the same
//! name in `report.templates_dir` replaces the built-in one, so the wording can change without
//! Rust. Every figure is formatted here (`report/fmt.rs`) and handed to the templates as text
//! with its n.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use serde_json::Value;

use super::{StageContext, StageSummary};
use crate::io;

pub mod data;
pub mod fmt;
pub mod plots;
pub mod privacy;
pub mod tables;

use data::{Dyad, Inputs};
use privacy::Cell;

/// The built-in templates, by file name.
const BUILTIN_TEMPLATES: [(&str, &str); 4] = [
    (
        "study.html.j2",
        include_str!("report/templates/study.html.j2"),
    ),
    (
        "municipality.html.j2",
        include_str!("report/templates/municipality.html.j2"),
    ),
    (
        "macros.html.j2",
        include_str!("report/templates/macros.html.j2"),
    ),
    ("style.css", include_str!("report/templates/style.css")),
];

/// The stages whose config sections make up the config hash.
const STAGE_NAMES: [&str; 6] = ["ingest", "clean", "score", "link", "model", "report"];

/// A figure as shown: its text and the number of people behind it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fig {
    pub text: String,
    pub n: i64,
    pub suppressed: bool,
}

impl Fig {
    fn shown(text: String, n: i64, min_cell: i64) -> Fig {
        if n < min_cell {
            Fig::hidden(n)
        } else {
            Fig {
                text,
                n,
                suppressed: false,
            }
        }
    }
    fn hidden(n: i64) -> Fig {
        Fig {
            text: String::new(),
            n,
            suppressed: true,
        }
    }
}

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
    for &wave in &waves {
        let mut grid: Vec<Vec<Option<Cell>>> = groups
            .iter()
            .map(|g| {
                groups
                    .iter()
                    .map(|h| {
                        dyads
                            .iter()
                            .find(|d| d.wave == wave && &d.work_group == g && &d.target_group == h)
                            .and_then(|d| d.mean.map(|m| Cell::new(m, d.n_raters, !d.within_group)))
                    })
                    .collect()
            })
            .collect();
        let net_group = |g: &str| {
            inp.groups
                .iter()
                .find(|x| x.municipality == municipality && x.wave == wave && x.work_group == g)
        };
        // Out-strength rests on the raters of g (the same people rate every partner group,
        // so their number is at least the largest dyad's); in-strength on the raters of every
        // other group (different people, so the dyads' n add up).
        let row_n: Vec<i64> = grid
            .iter()
            .zip(&groups)
            .map(|(row, g)| {
                if net_group(g).and_then(|x| x.out_strength).is_none() {
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
        let col_n: Vec<i64> = groups
            .iter()
            .enumerate()
            .map(|(j, h)| {
                if net_group(h).and_then(|x| x.in_strength).is_none() {
                    return 0;
                }
                grid.iter()
                    .filter_map(|row| row[j].as_ref())
                    .filter(|c| c.in_margin)
                    .map(|c| c.n)
                    .sum()
            })
            .collect();
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
            let margin = net_group(g).and_then(|x| x.out_strength).map(|v| {
                let mut c = Cell::new(v, row_n[i], true);
                c.suppressed = row_hidden[i];
                HeatCell::from_cell(&c, 2.0, 3.0, fmt::fixed(v, 2))
            });
            rows.push(HeatRow {
                label: labels[i].clone(),
                cells,
                margin,
            });
        }
        let col_margin = groups
            .iter()
            .enumerate()
            .map(|(j, h)| match net_group(h).and_then(|x| x.in_strength) {
                None => HeatCell::empty(),
                Some(v) => {
                    let mut c = Cell::new(v, col_n[j], true);
                    c.suppressed = col_hidden[j];
                    HeatCell::from_cell(&c, 2.0, 3.0, fmt::fixed(v, 2))
                }
            })
            .collect();
        net.maps.push(HeatMap {
            title: format!("Wave {wave}"),
            kind: "wave".into(),
            columns: labels.clone(),
            rows,
            col_margin,
            suppressed,
        });
    }
    if waves.len() >= 2 {
        let (a, b) = (net.first_wave, net.last_wave);
        let mut rows = vec![];
        let mut suppressed = 0;
        for (i, g) in groups.iter().enumerate() {
            let cells = groups
                .iter()
                .map(|h| {
                    let key = |w: i64| (w, g.clone(), h.clone());
                    let defined = |w: i64| {
                        dyads.iter().any(|d| {
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
                label: labels[i].clone(),
                cells,
                margin: None,
            });
        }
        net.maps.push(HeatMap {
            title: format!("Change from wave {a} to wave {b}"),
            kind: "change".into(),
            columns: labels.clone(),
            rows,
            col_margin: vec![],
            suppressed,
        });
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

/// Mean respondent RCap and its n, by (municipality, wave).
pub fn municipality_means(inp: &Inputs) -> BTreeMap<(String, i64), (f64, i64)> {
    let mut acc: BTreeMap<(String, i64), (f64, i64)> = BTreeMap::new();
    for r in &inp.respondents {
        if let Some(y) = r.rcap {
            let e = acc.entry((r.municipality.clone(), r.wave)).or_default();
            e.0 += y;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, (s / n as f64, n)))
        .collect()
}

/// Per period of one arm: (post, mean, interval low, interval high, n).
pub type ArmPoints = Vec<(i64, f64, f64, f64, i64)>;

/// One row of the H3 before/after table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArmMean {
    pub arm: String,
    pub period: String,
    pub mean: Fig,
    pub low: String,
    pub high: String,
}

/// Mean RCap before (post = 0) and after (post = 1) by arm over the H3 sample, with t-based
/// intervals at `conf_level`: mean ± t(1 − (1 − level)/2, n − 1) · sd / √n.
pub fn arm_means(inp: &Inputs, conf_level: f64, min_cell: i64) -> Vec<(String, ArmPoints)> {
    let mut by: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for r in &inp.h3 {
        by.entry((r.arm.clone(), r.post)).or_default().push(r.rcap);
    }
    let mut out: BTreeMap<String, ArmPoints> = BTreeMap::new();
    for ((arm, post), ys) in by {
        let n = ys.len();
        if (n as i64) < min_cell || n < 2 {
            continue;
        }
        let mean = ys.iter().sum::<f64>() / n as f64;
        let var = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = crate::stats::dist::t_quantile(1.0 - (1.0 - conf_level) / 2.0, (n - 1) as f64);
        let half = t * (var / n as f64).sqrt();
        out.entry(arm)
            .or_default()
            .push((post, mean, mean - half, mean + half, n as i64));
    }
    out.into_iter().collect()
}

fn template_env(dir: Option<&Path>) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".css") {
            AutoEscape::None
        } else {
            AutoEscape::Html
        }
    });
    for (name, builtin) in BUILTIN_TEMPLATES {
        let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
            Some(p) => std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read template {}", p.display()))?,
            None => builtin.to_string(),
        };
        env.add_template_owned(name.to_string(), source)
            .map_err(|e| anyhow!("template {name}: {e:#}"))?;
    }
    Ok(env)
}

fn render(env: &Environment, name: &str, ctx: &Value) -> Result<String> {
    let t = env
        .get_template(name)
        .map_err(|e| anyhow!("template {name}: {e:#}"))?;
    t.render(ctx).map_err(|e| anyhow!("template {name}: {e:#}"))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    io::write_atomic(path, |w| {
        w.write_all(text.as_bytes())?;
        Ok(())
    })
}

/// A file name for a municipality: its name with path separators and control characters
/// replaced.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn short(h: &str) -> String {
    h.chars().take(16).collect()
}

fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

/// Everything both kinds of report share about a municipality.
struct MuniView {
    value: Value,
    primary: usize,
    secondary: usize,
}

fn municipality_view(
    inp: &Inputs,
    muni: &str,
    means: &BTreeMap<(String, i64), (f64, i64)>,
    min_cell: i64,
) -> MuniView {
    let net = network(inp, muni, min_cell);
    let (spots, spots_hidden) = blind_spots(inp, muni, &net);
    let hub_rows = hubs(inp, muni, net.last_wave, min_cell);
    // Units with the municipality's mean as their total, per wave.
    let mut unit_waves = vec![];
    let waves: BTreeSet<i64> = inp
        .units
        .iter()
        .filter(|u| u.municipality == muni)
        .map(|u| u.wave)
        .collect();
    for &w in &waves {
        let units: Vec<&data::UnitRow> = inp
            .units
            .iter()
            .filter(|u| u.municipality == muni && u.wave == w && u.rcap.is_some())
            .collect();
        let mut cells: Vec<Cell> = units
            .iter()
            .map(|u| Cell::new(u.rcap.unwrap_or(f64::NAN), u.n_rcap, true))
            .collect();
        let total = means.get(&(muni.to_string(), w)).copied();
        let total_hidden = privacy::suppress_line(&mut cells, total.map(|t| t.1), min_cell);
        let rows: Vec<Value> = units
            .iter()
            .zip(&cells)
            .map(|(u, c)| {
                let fig = if c.suppressed {
                    Fig::hidden(c.n)
                } else {
                    Fig::shown(fmt::fixed(c.value, 2), c.n, min_cell)
                };
                serde_json::json!({
                    "unit_id": u.unit_id,
                    "work_group": fmt::group(&u.work_group),
                    "rcap": fig,
                    "secondary": c.secondary,
                })
            })
            .collect();
        let total_fig = match total {
            Some((m, n)) if !total_hidden => Fig::shown(fmt::fixed(m, 2), n, min_cell),
            Some((_, n)) => Fig::hidden(n),
            None => Fig::hidden(0),
        };
        unit_waves.push(serde_json::json!({ "wave": w, "units": rows, "total": total_fig }));
    }
    // What changed most from the first to the last wave, among the shown dyads.
    let mut changes: Vec<(f64, String, String, f64, f64, i64)> = vec![];
    for ((w, g, h), &(vb, nb)) in &net.shown {
        if *w != net.last_wave || g == h || net.first_wave == net.last_wave {
            continue;
        }
        if let Some(&(va, na)) = net.shown.get(&(net.first_wave, g.clone(), h.clone())) {
            changes.push((vb - va, g.clone(), h.clone(), va, vb, na.min(nb)));
        }
    }
    changes.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let change_view = |c: &(f64, String, String, f64, f64, i64)| {
        serde_json::json!({
            "from_group": fmt::group(&c.1),
            "to_group": fmt::group(&c.2),
            "before": fmt::fixed(c.3, 2),
            "after": fmt::fixed(c.4, 2),
            "change": Fig { text: format!("{}{}", if c.0 > 0.0 { "+" } else { "" }, fmt::fixed(c.0, 2)), n: c.5, suppressed: false },
        })
    };
    let improved: Vec<Value> = changes
        .iter()
        .filter(|c| c.0 > 0.0)
        .take(5)
        .map(change_view)
        .collect();
    let worsened: Vec<Value> = changes
        .iter()
        .rev()
        .filter(|c| c.0 < 0.0)
        .take(5)
        .map(change_view)
        .collect();
    MuniView {
        value: serde_json::json!({
            "name": muni,
            "maps": net.maps,
            "blind_spots": spots,
            "blind_spots_hidden": spots_hidden,
            "hubs": hub_rows,
            "hub_wave": net.last_wave,
            "units": unit_waves,
            "improved": improved,
            "worsened": worsened,
            "first_wave": net.first_wave,
            "last_wave": net.last_wave,
        }),
        primary: net.primary,
        secondary: net.secondary,
    }
}

/// The comparison of one municipality with the others (never named): per wave its mean RCap,
/// the others' range and its rank among the municipalities whose mean may be shown.
fn comparison(
    muni: &str,
    means: &BTreeMap<(String, i64), (f64, i64)>,
    min_cell: i64,
) -> Vec<Value> {
    let waves: BTreeSet<i64> = means.keys().map(|k| k.1).collect();
    let mut out = vec![];
    for w in waves {
        let shown: Vec<(&String, f64, i64)> = means
            .iter()
            .filter(|((_, ww), (_, n))| *ww == w && *n >= min_cell)
            .map(|((m, _), (v, n))| (m, *v, *n))
            .collect();
        let Some(&(_, own, own_n)) = shown.iter().find(|(m, _, _)| m.as_str() == muni) else {
            continue;
        };
        let others: Vec<f64> = shown
            .iter()
            .filter(|(m, _, _)| m.as_str() != muni)
            .map(|x| x.1)
            .collect();
        let others_n: i64 = shown
            .iter()
            .filter(|(m, _, _)| m.as_str() != muni)
            .map(|x| x.2)
            .min()
            .unwrap_or(0);
        let rank = 1 + others.iter().filter(|&&v| v > own).count();
        let lo = others.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = others.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push(serde_json::json!({
            "wave": w,
            "own": Fig { text: fmt::fixed(own, 2), n: own_n, suppressed: false },
            "n_others": others.len(),
            "others_low": Fig { text: fmt::fixed(lo, 2), n: others_n, suppressed: others.is_empty() },
            "others_high": Fig { text: fmt::fixed(hi, 2), n: others_n, suppressed: others.is_empty() },
            "rank": ordinal(rank),
            "of": shown.len(),
        }));
    }
    out
}

fn opt_num(x: Option<f64>) -> String {
    x.map(fmt::num).unwrap_or_default()
}

fn opt_p(x: Option<f64>) -> String {
    x.map(fmt::p).unwrap_or_default()
}

/// The study report's content, as the template sees it.
fn study_view(
    ctx: &StageContext,
    inp: &Inputs,
    views: Vec<MuniView>,
    min_cell: i64,
) -> Result<(Value, usize, usize)> {
    let rj = &inp.results_json;
    let conf_level = rj
        .get("conf_level")
        .and_then(Value::as_f64)
        .context("model/results.json has no number `conf_level`")?;
    let hyp_json: Vec<Value> = rj
        .get("hypotheses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut hypotheses = vec![];
    let mut forests = vec![];
    for h in ["H1", "H2", "H3"] {
        let meta = hyp_json
            .iter()
            .find(|x| x.get("hypothesis").and_then(Value::as_str) == Some(h))
            .cloned()
            .unwrap_or(Value::Null);
        let primary: Vec<&data::ResultRow> = inp
            .results
            .iter()
            .filter(|r| r.hypothesis == h && r.primary)
            .collect();
        let Some(pooled) = primary.iter().find(|r| r.scope == "pooled") else {
            hypotheses.push(serde_json::json!({"id": h, "fitted": false}));
            continue;
        };
        hypotheses.push(serde_json::json!({
            "id": h,
            "fitted": true,
            "term": pooled.term,
            "model": pooled.model,
            "design": meta.get("design"),
            "direction": meta.get("direction"),
            "estimate": Fig::shown(fmt::num(pooled.estimate), pooled.n_obs, min_cell),
            "ci": format!("[{}, {}]", opt_num(pooled.conf_low), opt_num(pooled.conf_high)),
            "p": opt_p(pooled.p_value),
            "p_holm": opt_p(pooled.p_holm),
            "p_adjusted": opt_p(pooled.p_adjusted),
            "std_estimate": opt_num(pooled.std_estimate),
            "supported": pooled.supported.unwrap_or(false),
            "n_obs": pooled.n_obs,
            "n_groups": pooled.n_groups,
        }));
        let mut rows = vec![];
        let mut table = vec![];
        let mut min_n = i64::MAX;
        let het = inp.heterogeneity.iter().find(|x| x.hypothesis == h);
        let meta_scope = het.map(|x| format!("meta_{}", x.method));
        let ordered = primary
            .iter()
            .filter(|r| r.scope != "pooled" && !r.scope.starts_with("meta_"))
            .chain(primary.iter().filter(|r| r.scope == "pooled"))
            .chain(
                primary
                    .iter()
                    .filter(|r| Some(&r.scope) == meta_scope.as_ref()),
            );
        for r in ordered {
            let (Some(lo), Some(hi)) = (r.conf_low, r.conf_high) else {
                continue;
            };
            if r.n_obs < min_cell {
                continue;
            }
            min_n = min_n.min(r.n_obs);
            let (kind, label) = if r.scope == "pooled" {
                (plots::RowKind::Pooled, "Pooled model".to_string())
            } else if r.scope.starts_with("meta_") {
                (
                    plots::RowKind::Meta,
                    format!(
                        "Meta-analysis ({})",
                        r.scope.trim_start_matches("meta_").to_uppercase()
                    ),
                )
            } else {
                (plots::RowKind::Municipality, r.scope.clone())
            };
            rows.push(plots::ForestRow {
                label: label.clone(),
                estimate: r.estimate,
                low: lo,
                high: hi,
                kind,
            });
            table.push(serde_json::json!({
                "label": label,
                "estimate": Fig::shown(fmt::num(r.estimate), r.n_obs, min_cell),
                "ci": format!("[{}, {}]", fmt::num(lo), fmt::num(hi)),
                "p": opt_p(r.p_value),
            }));
        }
        let title = format!(
            "{h}: {} ({}%)",
            pooled.term,
            fmt::fixed(conf_level * 100.0, 0)
        );
        let svg = plots::forest(&title, "estimate and interval", &rows)?;
        forests.push(serde_json::json!({
            "id": h,
            "svg": svg,
            "n": if min_n == i64::MAX { 0 } else { min_n },
            "rows": table,
            "method": het.map(|x| x.method.to_uppercase()),
            "k": het.map(|x| x.k),
            "i2": het.and_then(|x| x.i2).map(|v| fmt::fixed(v, 1)),
            "tau2": het.and_then(|x| x.tau2).map(fmt::num),
            "q_p": het.and_then(|x| x.q_p).map(fmt::p),
        }));
    }
    // H3 before/after by arm.
    let arms = arm_means(inp, conf_level, min_cell);
    let mut arm_rows = vec![];
    let mut plot_arms = vec![];
    let mut arm_min_n = i64::MAX;
    for (arm, points) in &arms {
        let mut pts = vec![];
        for &(post, mean, lo, hi, n) in points {
            arm_min_n = arm_min_n.min(n);
            pts.push(plots::ArmPoint {
                period: post,
                mean,
                low: lo,
                high: hi,
            });
            arm_rows.push(ArmMean {
                arm: arm.clone(),
                period: if post == 0 { "before" } else { "after" }.to_string(),
                mean: Fig::shown(fmt::fixed(mean, 3), n, min_cell),
                low: fmt::fixed(lo, 3),
                high: fmt::fixed(hi, 3),
            });
        }
        plot_arms.push((arm.clone(), pts));
    }
    let pre_post_svg = if plot_arms.is_empty() {
        String::new()
    } else {
        plots::pre_post(
            "H3: respondent RCap before and after",
            "mean RCap (1-5)",
            &plot_arms,
        )?
    };
    // Networks, blind spots, hubs per municipality.
    let n_municipalities = views.len();
    let mut municipalities = vec![];
    let (mut primary_n, mut secondary_n) = (0, 0);
    for v in views {
        primary_n += v.primary;
        secondary_n += v.secondary;
        municipalities.push(v.value);
    }
    // Reliability and aggregation.
    let waves: Vec<i64> = inp
        .reliability
        .iter()
        .map(|r| r.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut reliability = vec![];
    for (measure, label) in [
        ("alpha_raw", "Cronbach's alpha"),
        ("icc1", "ICC(1) by unit"),
        ("icc2", "ICC(2) by unit"),
    ] {
        let scales: Vec<String> = inp
            .reliability
            .iter()
            .filter(|r| r.measure == measure && r.scope == "all" && !r.per_group)
            .map(|r| r.scale.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for s in scales {
            let cells: Vec<Fig> = waves
                .iter()
                .map(|w| {
                    inp.reliability
                        .iter()
                        .find(|r| {
                            r.measure == measure
                                && r.scope == "all"
                                && !r.per_group
                                && r.scale == s
                                && r.wave == *w
                        })
                        .map(|r| match r.value {
                            Some(v) => Fig::shown(fmt::num(v), r.n, min_cell),
                            None => Fig::hidden(r.n),
                        })
                        .unwrap_or(Fig::hidden(0))
                })
                .collect();
            reliability.push(serde_json::json!({"measure": label, "scale": s, "cells": cells}));
        }
    }
    // rwg(j): the median over the units or dyads rated by at least min_cell people.
    for (scale, over) in [("srm", "units"), ("rc", "dyads")] {
        let cells: Vec<Fig> = waves
            .iter()
            .map(|w| {
                let mut v: Vec<(f64, i64)> = inp
                    .reliability
                    .iter()
                    .filter(|r| {
                        r.measure == "rwg_j" && r.scale == scale && r.wave == *w && r.per_group
                    })
                    .filter(|r| r.n >= min_cell)
                    .filter_map(|r| r.value.map(|x| (x, r.n)))
                    .collect();
                if v.is_empty() {
                    return Fig::hidden(0);
                }
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                let k = v.len();
                let med = if k % 2 == 1 {
                    v[k / 2].0
                } else {
                    (v[k / 2 - 1].0 + v[k / 2].0) / 2.0
                };
                let n = v.iter().map(|x| x.1).min().unwrap_or(0);
                Fig::shown(format!("{} ({k} {over})", fmt::num(med)), n, min_cell)
            })
            .collect();
        reliability.push(serde_json::json!({
            "measure": "rwg(j), median",
            "scale": scale,
            "cells": cells,
        }));
    }
    // Sample flow.
    let mut flow = vec![];
    for (stage, summary) in &inp.summaries {
        let Some(tables) = summary.get("tables").and_then(Value::as_object) else {
            continue;
        };
        for (table, t) in tables {
            let get = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
            let by_reason = |k: &str| -> (u64, String) {
                let Some(o) = t.get(k).and_then(Value::as_object) else {
                    return (0, String::new());
                };
                let total = o.values().filter_map(Value::as_u64).sum();
                let text = o
                    .iter()
                    .map(|(r, n)| format!("{r}: {}", n.as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ");
                (total, text)
            };
            let (q, q_text) = by_reason("quarantined");
            let (x, x_text) = by_reason("excluded");
            let (rows_in, rows_out, dup) =
                (get("rows_in"), get("rows_out"), get("duplicates_collapsed"));
            flow.push(serde_json::json!({
                "stage": stage,
                "table": table,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "quarantined": q,
                "quarantined_by_reason": q_text,
                "duplicates": dup,
                "excluded": x,
                "excluded_by_reason": x_text,
                "balanced": rows_in == rows_out + q + dup + x,
            }));
        }
    }
    // Methods: the primary pooled fits.
    let fits: Vec<Value> = inp
        .fits
        .iter()
        .filter(|f| f.scope == "pooled" && f.primary)
        .map(|f| {
            serde_json::json!({
                "hypothesis": f.hypothesis,
                "model": f.model,
                "formula": f.formula,
                "method": f.method,
                "vcov": f.vcov,
                "n_obs": f.n_obs,
                "n_groups": f.n_groups,
                "status": f.status,
            })
        })
        .collect();
    let score_counts = inp
        .summaries
        .iter()
        .find(|(s, _)| s == "score")
        .and_then(|(_, v)| v.get("counts"))
        .cloned()
        .unwrap_or(Value::Null);
    let meta_methods: Vec<String> = inp
        .heterogeneity
        .iter()
        .map(|h| h.method.to_uppercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fits_total = inp.fits.len();
    let fits_fitted = inp.fits.iter().filter(|f| f.status == "fitted").count();
    let singular = inp.fits.iter().filter(|f| f.singular == Some(true)).count();
    let not_converged = inp
        .fits
        .iter()
        .filter(|f| f.converged == Some(false))
        .count();
    let config_hash = {
        let sections: serde_json::Map<String, Value> = STAGE_NAMES
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    crate::config::Config::section_for_stage(ctx.config, s),
                )
            })
            .collect();
        crate::manifest::hash_json(&Value::Object(sections))
    };
    let fingerprint = ctx.fingerprint.as_deref().unwrap_or("none");
    let value = serde_json::json!({
        "study": ctx.config.study.name,
        "version": env!("CARGO_PKG_VERSION"),
        "config_hash": short(&config_hash),
        "fingerprint": short(fingerprint),
        "min_cell": min_cell,
        "alpha": fmt::plain(ctx.config.model.alpha),
        "conf_pct": fmt::fixed(conf_level * 100.0, 0),
        "correction": rj.get("correction"),
        "hypotheses": hypotheses,
        "forests": forests,
        "arms": arm_rows,
        "arms_n": if arm_min_n == i64::MAX { 0 } else { arm_min_n },
        "pre_post_svg": pre_post_svg,
        "municipalities": municipalities,
        "waves": waves,
        "reliability": reliability,
        "flow": flow,
        "fits": fits,
        "meta_methods": meta_methods,
        "n_municipalities": n_municipalities,
        "counts": score_counts,
        "fits_total": fits_total,
        "fits_fitted": fits_fitted,
        "singular": singular,
        "not_converged": not_converged,
    });
    Ok((value, primary_n, secondary_n))
}

/// Writes the reports; see the module documentation.
pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let min_cell = i64::from(ctx.config.privacy.min_cell);
    let inp = data::load(ctx)?;
    let env = template_env(ctx.config.report.templates_dir.as_deref())?;
    let css = env
        .get_template("style.css")
        .map_err(|e| anyhow!("template style.css: {e:#}"))?
        .source()
        .to_string();
    let dir: PathBuf = ctx.reports_dir.clone();
    let mut summary = StageSummary::default();

    // Each municipality's view serves both its feedback report and the study report.
    let means = municipality_means(&inp);
    let munis: BTreeSet<String> = inp.dyads.iter().map(|d| d.municipality.clone()).collect();
    let muni_list: Vec<&String> = munis.iter().collect();
    let views: Vec<MuniView> =
        super::map_on_two_threads(&muni_list, |m| municipality_view(&inp, m, &means, min_cell));
    let (mut study, primary, secondary) = study_view(ctx, &inp, views, min_cell)?;
    study["css"] = Value::String(css.clone());

    // The study report with the tables, and each municipality's feedback report, are
    // independent files: two threads take them one at a time, and each is the same text
    // whichever thread makes it.
    let fingerprint = study["fingerprint"].clone();
    // The study view holds each municipality's view, in the order of `munis`.
    let shown = study["municipalities"]
        .as_array()
        .filter(|a| a.len() == munis.len())
        .ok_or_else(|| anyhow!("the study view lost its municipalities"))?;
    let feedback = |m: &str, view: &Value| -> Result<Vec<String>> {
        let ctx_value = serde_json::json!({
            "study": ctx.config.study.name,
            "version": env!("CARGO_PKG_VERSION"),
            "fingerprint": fingerprint,
            "min_cell": min_cell,
            "css": css,
            "m": view,
            "comparison": comparison(m, &means, min_cell),
            "n_municipalities": munis.len(),
        });
        let name = format!("municipalities/{}.html", file_stem(m));
        write_text(
            &dir.join(&name),
            &render(&env, "municipality.html.j2", &ctx_value)?,
        )?;
        Ok(vec![name])
    };
    let study_files = || -> Result<Vec<String>> {
        let mut names = vec![];
        write_text(
            &dir.join("report.html"),
            &render(&env, "study.html.j2", &study)?,
        )?;
        names.push("report.html".to_string());

        // Publication tables.
        let conf_level = inp
            .results_json
            .get("conf_level")
            .and_then(Value::as_f64)
            .context("model/results.json has no number `conf_level`")?;
        let cluster = ctx.config.model.h1.cluster.clone();
        for h in ["H1", "H2", "H3"] {
            if !inp
                .results
                .iter()
                .any(|r| r.hypothesis == h && r.scope == "pooled")
            {
                continue;
            }
            let t = tables::regression_table(
                h,
                &inp.results,
                &inp.fits,
                &inp.variances,
                &ctx.config.report.stars,
                conf_level,
                if h == "H1" { cluster.as_deref() } else { None },
            );
            for (ext, text) in [
                ("md", tables::markdown(&t)),
                ("tex", tables::latex(&t)),
                ("csv", tables::csv(&t)),
            ] {
                let name = format!("tables/{h}.{ext}");
                write_text(&dir.join(&name), &text)?;
                names.push(name);
            }
        }
        Ok(names)
    };
    // Job 0 is the study report and its tables, job i > 0 municipality i − 1's feedback.
    let jobs: Vec<usize> = (0..=munis.len()).collect();
    let done = super::map_on_two_threads(&jobs, |&j| match j {
        0 => study_files(),
        i => feedback(muni_list[i - 1], &shown[i - 1]),
    });
    // The first error in job order is the one reported.
    let mut files = vec![];
    for names in done {
        files.extend(names?);
    }

    files.sort();
    summary
        .counts
        .insert("files_written".into(), files.len() as u64);
    summary
        .counts
        .insert("cells_suppressed_primary".into(), primary as u64);
    summary
        .counts
        .insert("cells_suppressed_secondary".into(), secondary as u64);
    summary.facts.insert(
        "files".into(),
        Value::Array(files.into_iter().map(Value::String).collect()),
    );
    summary
        .facts
        .insert("min_cell".into(), Value::from(min_cell));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::data::{H3Row, NetGroup, NetPair, Respondent};
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
        let inp = inputs(vec![
            dyad("a", "b", 9, 4.5),
            dyad("a", "c", 9, 2.5),
            dyad("b", "a", 8, 3.0),
            dyad("b", "c", 6, 3.0),
            dyad("c", "a", 7, 4.2),
            dyad("c", "b", 12, 3.0),
        ]);
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
        let inp = inputs(vec![
            dyad("a", "a", 3, 4.0),
            dyad("a", "b", 2, 4.5),
            dyad("a", "c", 9, 2.5),
            dyad("b", "a", 8, 3.0),
            dyad("b", "c", 6, 3.0),
            dyad("c", "a", 7, 4.2),
            dyad("c", "b", 12, 3.0),
        ]);
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
    fn arm_means_match_a_hand_computation() {
        // control, before: 3, 4, 5, 4, 4 → mean 4, sd √0.5, se √0.1 = 0.316228;
        // t(0.975, 4) = 2.776445 (R: qt(0.975, 4)) → half width 2.776445 × 0.316228 = 0.877989.
        let ys = [3.0, 4.0, 5.0, 4.0, 4.0];
        let inp = Inputs {
            h3: ys
                .iter()
                .map(|&y| H3Row {
                    municipality: "M".into(),
                    arm: "control".into(),
                    post: 0,
                    rcap: y,
                })
                .chain(std::iter::once(H3Row {
                    municipality: "M".into(),
                    arm: "control".into(),
                    post: 1,
                    rcap: 3.0,
                }))
                .collect(),
            ..Default::default()
        };
        let arms = arm_means(&inp, 0.95, 5);
        assert_eq!(arms.len(), 1);
        let (arm, points) = &arms[0];
        assert_eq!(arm, "control");
        assert_eq!(
            points.len(),
            1,
            "the single 'after' respondent is below min_cell"
        );
        let (post, mean, lo, hi, n) = points[0];
        assert_eq!((post, n), (0, 5));
        assert!((mean - 4.0).abs() < 1e-12);
        assert!((lo - (4.0 - 0.877989)).abs() < 1e-6, "{lo}");
        assert!((hi - (4.0 + 0.877989)).abs() < 1e-6, "{hi}");
    }

    #[test]
    fn municipality_means_and_anonymous_comparison() {
        let r = |m: &str, y: Option<f64>| Respondent {
            wave: 1,
            municipality: m.into(),
            rcap: y,
        };
        let mut resp = vec![];
        for y in [3.0, 3.5, 4.0, 3.5, 3.0] {
            resp.push(r("Own", Some(y)));
        }
        resp.push(r("Own", None));
        for y in [2.0, 2.5, 3.0, 2.5, 2.0, 3.0] {
            resp.push(r("Other A", Some(y)));
        }
        for y in [4.0, 4.0, 4.0, 4.0, 4.5] {
            resp.push(r("Other B", Some(y)));
        }
        resp.push(r("Tiny", Some(5.0)));
        let inp = Inputs {
            respondents: resp,
            ..Default::default()
        };
        let means = municipality_means(&inp);
        assert_eq!(means[&("Own".to_string(), 1)], (3.4, 5));
        let c = comparison("Own", &means, 5);
        assert_eq!(c.len(), 1);
        let text = c[0].to_string();
        assert!(!text.contains("Other") && !text.contains("Tiny"), "{text}");
        assert_eq!(c[0]["own"]["text"], "3.40");
        // Others shown: A 2.5 (n 6), B 4.1 (n 5); Tiny (n 1) is left out.
        assert_eq!(c[0]["others_low"]["text"], "2.50");
        assert_eq!(c[0]["others_high"]["text"], "4.10");
        assert_eq!(c[0]["rank"], "2nd");
        assert_eq!(c[0]["of"], 3);
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

    #[test]
    fn built_in_templates_parse() {
        let env = template_env(None).unwrap();
        for name in crate::config::REPORT_TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn an_override_replaces_only_its_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("style.css"), "body { color: red; }").unwrap();
        let env = template_env(Some(dir.path())).unwrap();
        assert_eq!(
            env.get_template("style.css").unwrap().source(),
            "body { color: red; }"
        );
        assert!(env
            .get_template("study.html.j2")
            .unwrap()
            .source()
            .contains("at a glance"));
    }
}
