//! `relcap power`: power by simulation for a planned study. For every size in
//! `--employees-per-municipality` and every effect scenario (the k-th values of `--effect-h1`,
//! `--effect-h2`, `--effect-h3`; a single value is used in every scenario), `--replications`
//! studies are simulated and run through the pipeline; a hypothesis is *detected* when the study
//! configuration's decision rule supports it (adjusted p below alpha and the predicted sign).
//! Replication r uses the same seed in every cell (common random numbers), which makes the
//! differences between cells less noisy.
//!
//! Writes under `--out` (the same bytes for the same arguments, whatever `--threads`):
//!
//! `power.csv` (and the same rows in `power.json`), one row per size × scenario × hypothesis:
//!
//! | column | meaning |
//! | --- | --- |
//! | employees_per_municipality | target positions per municipality (`--employees-per-municipality`) |
//! | positions_per_municipality | realised positions per municipality, mean over replications (the simulator adds whole units of 8–20 and gives every work group a unit in every municipality, so small targets are exceeded) |
//! | scenario | 1-based index of the effect scenario |
//! | effect_h1, effect_h2, effect_h3 | the scenario's simulated effects |
//! | hypothesis | H1, H2, H3 |
//! | effect | the simulated effect of this hypothesis |
//! | replications | studies simulated |
//! | failed | replications in which the pipeline failed or the hypothesis could not be tested (counted as not detected) |
//! | detected | replications in which the hypothesis was supported |
//! | power | detected / replications |
//! | mc_se | Monte Carlo SE of power, √(power (1 − power) / replications) |
//! | power_unadjusted | share with unadjusted p < alpha and the predicted sign |
//! | mean_estimate | mean of the primary estimate over the replications that have one |
//!
//! `power.svg`: power against size, one panel per hypothesis, a line per scenario with
//! ±1.96 Monte Carlo SE bars and the conventional 0.8 line.
//!
//! With `--shard K/N` only the replications of shard K are run (in every cell) and `--out` is
//! the partial result file; `relcap power merge` writes the three files above from the partials
//! of all N shards, byte for byte those of the unsharded run (`shard` has the rule and the
//! partial's layout).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::{
    ChartBuilder, DashedLineSeries, DrawingArea, ErrorBar, IntoDrawingArea, IntoFont, LineSeries,
    PathElement, RGBColor, Rectangle, SVGBackend, Text, WHITE,
};
use plotters::style::{Color, FontStyle};
use serde::{Deserialize, Serialize};

use super::shard::{self, ShardSpec};
use super::{
    check_design, parse_list, progress_bar, replicate, replication_seed, run_indexed, threads,
    Replication,
};
use crate::config::{Config, Direction, ModelSection};
use crate::sim::StudyDesign;
use crate::stages::report::plots::{self, plot_err, KeyedAxis};

/// What `relcap power` is asked to run.
#[derive(Debug, Clone)]
pub struct PowerOptions {
    /// Study configuration (its model settings decide detection).
    /// The study config (None: found as `relcap run` finds it, else the built-in defaults).
    pub config: Option<PathBuf>,
    /// Folder for power.csv, power.json and power.svg.
    pub out: PathBuf,
    /// Simulated studies per cell of the grid.
    pub replications: usize,
    pub seed: u64,
    /// Worker threads (None: the available cores).
    pub threads: Option<usize>,
    /// Sizes: positions per municipality, comma-separated.
    pub employees_per_municipality: String,
    /// Effects, comma-separated (one per scenario, or one for all).
    pub effect_h1: String,
    pub effect_h2: String,
    pub effect_h3: String,
    /// The rest of the design; its size and effects are the grid's.
    pub design: StudyDesign,
    /// No progress bar and no table on stderr.
    pub quiet: bool,
    /// Run only this shard's replications and write a partial result to `out` (a file).
    pub shard: Option<ShardSpec>,
}

/// One row of power.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PowerRow {
    pub employees_per_municipality: u32,
    pub positions_per_municipality: Option<f64>,
    pub scenario: usize,
    pub effect_h1: f64,
    pub effect_h2: f64,
    pub effect_h3: f64,
    pub hypothesis: String,
    pub effect: f64,
    pub replications: usize,
    pub failed: usize,
    pub detected: usize,
    pub power: f64,
    pub mc_se: f64,
    pub power_unadjusted: f64,
    pub mean_estimate: Option<f64>,
}

/// The scenarios: the k-th value of each list, a one-value list broadcast.
pub fn scenarios(h1: &[f64], h2: &[f64], h3: &[f64]) -> Result<Vec<(f64, f64, f64)>> {
    let k = h1.len().max(h2.len()).max(h3.len());
    for (name, l) in [
        ("--effect-h1", h1),
        ("--effect-h2", h2),
        ("--effect-h3", h3),
    ] {
        if l.is_empty() || (l.len() != 1 && l.len() != k) {
            bail!(
                "{name} has {} values; give 1 or {k} (one per scenario)",
                l.len()
            );
        }
    }
    let at = |l: &[f64], i: usize| if l.len() == 1 { l[0] } else { l[i] };
    Ok((0..k).map(|i| (at(h1, i), at(h2, i), at(h3, i))).collect())
}

/// Power figures of one cell from its replications.
pub fn cell_rows(
    size: u32,
    scenario: usize,
    effects: (f64, f64, f64),
    reps: &[Replication],
    alpha: f64,
    positive: [bool; 3],
) -> Vec<PowerRow> {
    let n = reps.len();
    ["H1", "H2", "H3"]
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let prim: Vec<_> = reps
                .iter()
                .filter_map(|r| r.primaries.iter().find(|p| p.hypothesis == *h))
                .collect();
            let detected = prim.iter().filter(|p| p.supported == Some(true)).count();
            let failed = n - prim.iter().filter(|p| p.supported.is_some()).count();
            let unadjusted = prim
                .iter()
                .filter(|p| match (p.p_value, p.estimate) {
                    (Some(pv), Some(e)) => pv < alpha && (e > 0.0) == positive[k],
                    _ => false,
                })
                .count();
            let est: Vec<f64> = prim.iter().filter_map(|p| p.estimate).collect();
            let power = detected as f64 / n as f64;
            let pos: Vec<f64> = reps
                .iter()
                .filter(|r| r.error.is_none())
                .map(|r| r.truth.positions_per_municipality)
                .collect();
            PowerRow {
                employees_per_municipality: size,
                positions_per_municipality: (!pos.is_empty())
                    .then(|| pos.iter().sum::<f64>() / pos.len() as f64),
                scenario: scenario + 1,
                effect_h1: effects.0,
                effect_h2: effects.1,
                effect_h3: effects.2,
                hypothesis: h.to_string(),
                effect: [effects.0, effects.1, effects.2][k],
                replications: n,
                failed,
                detected,
                power,
                mc_se: (power * (1.0 - power) / n as f64).sqrt(),
                power_unadjusted: unadjusted as f64 / n as f64,
                mean_estimate: (!est.is_empty())
                    .then(|| est.iter().sum::<f64>() / est.len() as f64),
            }
        })
        .collect()
}

/// Size of one panel of the power plot, in pixels.
const PANEL: (u32, u32) = (370, 330);
/// Height of the legend below the panels.
const LEGEND_HEIGHT: u32 = 44;

/// The power plot as a standalone SVG: one panel per hypothesis, power (0..1) against size, a
/// line per scenario with ±1.96 Monte Carlo SE bars, the conventional 0.8 line dashed, and a
/// legend of the scenarios below.
pub fn svg(rows: &[PowerRow], replications: usize) -> Result<String> {
    let mut sizes: Vec<u32> = rows.iter().map(|r| r.employees_per_municipality).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let n_scen = rows.iter().map(|r| r.scenario).max().unwrap_or(1);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (3 * PANEL.0, PANEL.1 + LEGEND_HEIGHT))
            .into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (panels, legend) = root.split_vertically(PANEL.1);
        for (k, (h, area)) in ["H1", "H2", "H3"]
            .iter()
            .zip(panels.split_evenly((1, 3)))
            .enumerate()
        {
            power_panel(&area, h, k == 0, rows, &sizes, n_scen)?;
        }
        power_legend(&legend, rows, n_scen, replications)?;
        root.present().map_err(plot_err)?;
    }
    Ok(s)
}

/// The colour of scenario `sc` (1-based).
fn scenario_colour(sc: usize) -> RGBColor {
    plots::SERIES[(sc - 1) % plots::SERIES.len()]
}

/// One hypothesis's panel of the power plot.
fn power_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    h: &str,
    first: bool,
    rows: &[PowerRow],
    sizes: &[u32],
    n_scen: usize,
) -> Result<()> {
    let (xmin, xmax) = (
        *sizes.first().unwrap_or(&0) as f64,
        *sizes.last().unwrap_or(&1) as f64,
    );
    // 6% padding so the points at the ends are not on the frame; one size sits in the middle.
    let (lo, hi) = if xmax > xmin {
        let span = xmax - xmin;
        (xmin - 0.06 * span, xmax + 0.06 * span)
    } else {
        (xmin - 0.5, xmin + 0.5)
    };
    let x_keys: Vec<f64> = sizes.iter().map(|&v| v as f64).collect();
    let y_keys: Vec<f64> = (0..=5).map(|i| i as f64 * 0.2).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(h, ("sans-serif", 16).into_font().style(FontStyle::Bold))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(
            KeyedAxis::new(lo..hi, x_keys),
            KeyedAxis::new(0.0..1.0, y_keys),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 13))
        .x_desc("employees per municipality")
        .y_desc(if first { "power" } else { "" })
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(lo, 0.0), (hi, 1.0)],
            plots::OKABE_ITO_GREY.stroke_width(1),
        )))
        .map_err(plot_err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(lo, 0.8), (hi, 0.8)],
            4,
            3,
            plots::OKABE_ITO_GREY.stroke_width(1),
        ))
        .map_err(plot_err)?;
    for sc in 1..=n_scen {
        let style = scenario_colour(sc).stroke_width(2);
        let mut pts: Vec<&PowerRow> = rows
            .iter()
            .filter(|r| r.hypothesis == h && r.scenario == sc)
            .collect();
        pts.sort_by_key(|r| r.employees_per_municipality);
        let x = |r: &PowerRow| r.employees_per_municipality as f64;
        chart
            .draw_series(LineSeries::new(pts.iter().map(|r| (x(r), r.power)), style))
            .map_err(plot_err)?;
        chart
            .draw_series(pts.iter().map(|r| {
                let (low, high) = (r.power - 1.96 * r.mc_se, r.power + 1.96 * r.mc_se);
                ErrorBar::new_vertical(
                    x(r),
                    low.clamp(0.0, 1.0),
                    r.power,
                    high.clamp(0.0, 1.0),
                    // Filled: the bar's point at the power is a dot of radius 3.
                    style.filled(),
                    6,
                )
            }))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The legend below the panels: one entry per scenario with its effects, and what the bars
/// and the dashed line are.
fn power_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    rows: &[PowerRow],
    n_scen: usize,
    replications: usize,
) -> Result<()> {
    let font = ("sans-serif", 12).into_font();
    let mut x = 58;
    for sc in 1..=n_scen {
        let Some(r) = rows.iter().find(|r| r.scenario == sc) else {
            continue;
        };
        let style = scenario_colour(sc).stroke_width(2);
        area.draw(&PathElement::new(vec![(x, 8), (x + 18, 8)], style))
            .map_err(plot_err)?;
        let label = format!(
            "scenario {sc}: h1 = {}, h2 = {}, h3 = {}",
            r.effect_h1, r.effect_h2, r.effect_h3
        );
        area.draw(&Text::new(label, (x + 22, 2), font.clone()))
            .map_err(plot_err)?;
        x += 260;
    }
    let note = format!(
        "{replications} simulated studies per point; bars: ±1.96 Monte Carlo SE; dashed: power 0.8"
    );
    area.draw(&Text::new(
        note,
        (58, 24),
        font.color(&RGBColor(0x55, 0x55, 0x55)),
    ))
    .map_err(plot_err)?;
    Ok(())
}

fn write_csv(path: &std::path::Path, rows: &[PowerRow]) -> Result<()> {
    crate::io::write_atomic(path, |w| {
        writeln!(w, "employees_per_municipality,positions_per_municipality,scenario,effect_h1,effect_h2,effect_h3,hypothesis,effect,replications,failed,detected,power,mc_se,power_unadjusted,mean_estimate")?;
        for r in rows {
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.employees_per_municipality,
                r.positions_per_municipality
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                r.scenario,
                r.effect_h1,
                r.effect_h2,
                r.effect_h3,
                r.hypothesis,
                r.effect,
                r.replications,
                r.failed,
                r.detected,
                r.power,
                r.mc_se,
                r.power_unadjusted,
                r.mean_estimate.map(|v| v.to_string()).unwrap_or_default()
            )?;
        }
        Ok(())
    })
}

/// Everything that decides `relcap power`'s result (recorded in a partial result, whose
/// merge computes the files from it): see `shard`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PowerSettings {
    pub replications: usize,
    pub seed: u64,
    /// Positions per municipality, the grid's rows.
    pub sizes: Vec<u32>,
    /// (h1, h2, h3) of each effect scenario.
    pub scenarios: Vec<(f64, f64, f64)>,
    /// The rest of the design (its size and effects are the grid's).
    pub design: StudyDesign,
    /// The study configuration's `[model]` section (it decides detection).
    pub model: ModelSection,
    /// `shard::config_hash` of the whole study configuration.
    pub config_hash: String,
}

/// One cell of the grid: size, scenario index, its effects and its design.
type Cell = (u32, usize, (f64, f64, f64), StudyDesign);

/// The study configuration and the settings of `args`, checked.
fn settings(args: &PowerOptions) -> Result<(Config, PowerSettings)> {
    if args.replications < 1 {
        bail!("--replications must be at least 1");
    }
    let (config, _) = Config::find(args.config.as_deref())?;
    let sizes: Vec<u32> = parse_list(
        &args.employees_per_municipality,
        "--employees-per-municipality",
    )?;
    if sizes.is_empty() || sizes.contains(&0) {
        bail!("--employees-per-municipality needs positive sizes");
    }
    let scenarios = scenarios(
        &parse_list(&args.effect_h1, "--effect-h1")?,
        &parse_list(&args.effect_h2, "--effect-h2")?,
        &parse_list(&args.effect_h3, "--effect-h3")?,
    )?;
    let settings = PowerSettings {
        replications: args.replications,
        seed: args.seed,
        sizes,
        scenarios,
        design: args.design.clone(),
        model: config.model.clone(),
        config_hash: shard::config_hash(&config)?,
    };
    Ok((config, settings))
}

/// The grid, each cell with its design; checked before any thread starts.
fn cells(s: &PowerSettings) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for &size in &s.sizes {
        for (k, &(h1, h2, h3)) in s.scenarios.iter().enumerate() {
            let d = StudyDesign {
                employees_per_municipality: Some(size),
                effect_h1: h1,
                effect_h2: h2,
                effect_h3: h3,
                ..s.design.clone()
            };
            check_design(&d)?;
            cells.push((size, k, (h1, h2, h3), d));
        }
    }
    Ok(cells)
}

/// The name of cell `c` in a partial result.
fn cell_name(c: usize, cell: &Cell) -> String {
    format!(
        "cell {} ({} employees per municipality, scenario {})",
        c + 1,
        cell.0,
        cell.1 + 1
    )
}

pub fn main(args: &PowerOptions) -> Result<()> {
    let (config, settings) = settings(args)?;
    let cells = cells(&settings)?;
    let held: Vec<usize> = match args.shard {
        Some(s) => {
            shard::check_partial_path(&args.out)?;
            s.share(settings.replications)
        }
        None => (0..settings.replications).collect(),
    };
    let n_threads = threads(args.threads);
    let total = cells.len() * held.len();
    let start = Instant::now();
    let bar = progress_bar(total, args.quiet, "power");
    let mut reps = run_indexed(total, n_threads, &bar, |i| {
        let (c, r) = (i / held.len(), held[i % held.len()]);
        replicate(
            &config,
            &cells[c].3,
            r,
            replication_seed(settings.seed, r),
            false,
        )
    })
    .into_iter();
    bar.finish_and_clear();
    let per_cell: Vec<Vec<Replication>> = cells
        .iter()
        .map(|_| reps.by_ref().take(held.len()).collect())
        .collect();
    let failed = per_cell
        .iter()
        .flatten()
        .filter(|r| r.error.is_some())
        .count();
    let ran = format!(
        "{total} simulated studies ({failed} failed) in {:.1} s on {n_threads} threads",
        start.elapsed().as_secs_f64()
    );
    if let Some(s) = args.shard {
        let groups = cells
            .iter()
            .zip(per_cell)
            .enumerate()
            .map(|(c, (cell, r))| shard::group(cell_name(c, cell), settings.replications, &held, r))
            .collect();
        let partial = shard::partial("power", settings.clone(), s, groups)?;
        shard::write(&partial, &args.out)?;
        if !args.quiet {
            crate::say!(
                "[relcap] shard {s}: {} of each of {} cells, {ran}; partial result written to {}",
                shard::describe_held(&held, settings.replications),
                cells.len(),
                args.out.display()
            );
        }
        return Ok(());
    }
    write_outputs(&settings, &cells, &per_cell, &args.out, args.quiet)?;
    if !args.quiet {
        crate::say!("[relcap] {ran}; written to {}", args.out.display());
    }
    Ok(())
}

/// `relcap power merge`: the partial results of one sharded run combined into the files an
/// unsharded run writes.
pub fn merge(out: &Path, partials: &[PathBuf], quiet: bool) -> Result<()> {
    let start = Instant::now();
    let (settings, groups) = shard::read_all::<PowerSettings>(partials, "power")?;
    let cells = cells(&settings)?;
    if groups.len() != cells.len() {
        bail!(
            "the partial results hold {} cells, but their settings make {}",
            groups.len(),
            cells.len()
        );
    }
    let per_cell: Vec<Vec<Replication>> = groups.into_iter().map(|g| g.results).collect();
    write_outputs(&settings, &cells, &per_cell, out, quiet)?;
    if !quiet {
        crate::say!(
            "[relcap] {} partial results merged ({} simulated studies) in {:.1} s; written to {}",
            partials.len(),
            cells.len() * settings.replications,
            start.elapsed().as_secs_f64(),
            out.display()
        );
    }
    Ok(())
}

/// power.csv, power.json and power.svg from every cell's replications (in replication order),
/// and the table on stderr unless `quiet`.
fn write_outputs(
    s: &PowerSettings,
    cells: &[Cell],
    per_cell: &[Vec<Replication>],
    out: &Path,
    quiet: bool,
) -> Result<()> {
    let m = &s.model;
    let positive = [
        m.h1.direction == Direction::Positive,
        m.h2.direction == Direction::Positive,
        m.h3.direction == Direction::Positive,
    ];
    let mut rows = Vec::new();
    for ((size, k, eff, _), cell) in cells.iter().zip(per_cell) {
        rows.extend(cell_rows(*size, *k, *eff, cell, m.alpha, positive));
    }
    let errors: Vec<String> = per_cell
        .iter()
        .flatten()
        .filter_map(|r| r.error.clone())
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_csv(&out.join("power.csv"), &rows)?;
    crate::io::write_json(
        &serde_json::json!({
            "replications": s.replications,
            "seed": s.seed,
            "alpha": m.alpha,
            "correction": m.correction,
            "failed_replications": errors.len(),
            "errors": errors.iter().take(20).collect::<Vec<_>>(),
            "rows": rows,
        }),
        &out.join("power.json"),
    )?;
    let plot = svg(&rows, s.replications)?;
    crate::io::write_atomic(&out.join("power.svg"), |w| {
        w.write_all(plot.as_bytes())?;
        Ok(())
    })?;
    if !quiet {
        print_table(&rows);
    }
    Ok(())
}

/// The power table on stderr.
fn print_table(rows: &[PowerRow]) {
    crate::say!(
        "{:>9} {:>9} {:>8} {:<4} {:>7} {:>7} {:>7} {:>10}",
        "employees",
        "positions",
        "scenario",
        "hyp",
        "effect",
        "power",
        "mc_se",
        "unadjusted"
    );
    for r in rows {
        crate::say!(
            "{:>9} {:>9.1} {:>8} {:<4} {:>7} {:>7.3} {:>7.3} {:>10.3}",
            r.employees_per_municipality,
            r.positions_per_municipality.unwrap_or(f64::NAN),
            r.scenario,
            r.hypothesis,
            r.effect,
            r.power,
            r.mc_se,
            r.power_unadjusted
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Primary, TruthFacts};
    use super::*;

    #[test]
    fn scenarios_broadcast_single_values() {
        let s = scenarios(&[0.5], &[0.1, 0.2], &[0.3]).unwrap();
        assert_eq!(s, vec![(0.5, 0.1, 0.3), (0.5, 0.2, 0.3)]);
        assert!(scenarios(&[0.5, 0.6], &[0.1, 0.2, 0.3], &[0.3]).is_err());
    }

    #[test]
    fn power_counts_failures_as_not_detected() {
        let mk = |supported: Option<bool>, p: f64| Replication {
            index: 0,
            seed: 0,
            primaries: ["H1", "H2", "H3"]
                .iter()
                .map(|h| Primary {
                    hypothesis: h.to_string(),
                    estimate: Some(0.3),
                    std_error: Some(0.1),
                    conf_low: None,
                    conf_high: None,
                    p_value: Some(p),
                    p_adjusted: Some(p),
                    supported,
                    n_obs: None,
                })
                .collect(),
            municipal: vec![],
            truth: TruthFacts::default(),
            error: None,
            h3_models: vec![],
        };
        let mut reps = vec![
            mk(Some(true), 0.01),
            mk(Some(true), 0.02),
            mk(Some(false), 0.2),
        ];
        reps.push(Replication {
            primaries: vec![],
            error: Some("boom".into()),
            ..mk(None, 1.0)
        });
        let rows = cell_rows(140, 0, (0.5, 0.25, 0.2), &reps, 0.05, [true; 3]);
        assert_eq!(rows.len(), 3);
        let r = &rows[0];
        assert_eq!((r.detected, r.failed, r.replications), (2, 1, 4));
        assert_eq!(r.power, 0.5);
        assert!((r.mc_se - (0.25f64 / 4.0).sqrt()).abs() < 1e-15);
        assert_eq!(r.power_unadjusted, 0.5);
        let svg = svg(&rows, 4).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
