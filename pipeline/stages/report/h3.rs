//! The study report's H3 sections beyond the before/after means: H3's models side by side (the
//! primary cluster-randomised difference in differences, the analysis plan's formula, the
//! both-waves sensitivity model, the event study's post-period terms) and H2's model adjusted
//! for the intervention; the event-study plot; attrition by arm; and the notes on singular
//! per-municipality fits with the meta-analysis without them. Everything comes from the model
//! stage's `results.parquet` and `results.json`; no figure from fewer than `min_cell` people.

use anyhow::Result;
use plotters::prelude::{
    ChartBuilder, Circle, ErrorBar, IntoDrawingArea, IntoFont, LineSeries, PathElement, SVGBackend,
    ShapeStyle, BLACK, WHITE,
};
use plotters::style::Color;
use serde_json::{json, Value};

use super::data::{Inputs, ResultRow};
use super::plots::{plot_err, OKABE_ITO_BLUE, OKABE_ITO_GREY, OKABE_ITO_VERMILLION};
use super::{fmt, Fig};

/// What each sensitivity model is, for the table.
const MODELS: [(&str, &str, &str); 7] = [
    (
        "H3",
        "cluster_did",
        "primary: arm main effect, unit × period random intercept",
    ),
    (
        "H3",
        "cluster_did_cr2",
        "primary model, CR2 cluster-robust standard errors by unit",
    ),
    (
        "H3",
        "diff_in_diff",
        "the analysis plan's formula: no arm main effect, no unit × period term",
    ),
    (
        "H3",
        "cluster_did_both_waves",
        "primary model, respondents in both waves only",
    ),
    (
        "H3",
        "event_study",
        "every wave: wave fixed effects, arm × event time, unit × wave random intercept",
    ),
    ("H2", "unit_wave_within", "primary H2 model"),
    (
        "H2",
        "unit_wave_within_adjusted",
        "primary H2 model adjusted for the intervention (arm, arm × after)",
    ),
];

/// The pooled rows of the models above, in that order, with their terms of interest.
fn model_rows(inp: &Inputs, min_cell: i64) -> Vec<Value> {
    let term_of = |h: &str, model: &str, term: &str| -> bool {
        match (h, model) {
            ("H3", "event_study") => term.starts_with("arm_"),
            ("H3", _) => term == "post:intervention",
            _ => term == "srm_unit",
        }
    };
    let mut out = vec![];
    for (h, model, what) in MODELS {
        for r in inp.results.iter().filter(|r| {
            r.hypothesis == h
                && r.scope == "pooled"
                && r.model == model
                && term_of(h, model, &r.term)
        }) {
            out.push(row(r, what, min_cell));
        }
    }
    out
}

fn row(r: &ResultRow, what: &str, min_cell: i64) -> Value {
    let o = |x: Option<f64>| x.map(fmt::num).unwrap_or_default();
    json!({
        "hypothesis": r.hypothesis,
        "model": r.model,
        "what": what,
        "term": r.term,
        "estimate": Fig::shown(fmt::num(r.estimate), r.n_obs, min_cell),
        "ci": format!("[{}, {}]", o(r.conf_low), o(r.conf_high)),
        "p": r.p_value.map(fmt::p).unwrap_or_default(),
        "n_obs": r.n_obs,
        "n_groups": r.n_groups,
    })
}

/// One point of the event-study plot.
pub struct EventPoint {
    pub event_time: i64,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The event study: arm × event-time estimates with intervals (the reference event time 0 at
/// zero), and the primary difference in differences beside event time 1.
pub fn event_plot(points: &[EventPoint], primary: Option<&EventPoint>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let all = points.iter().chain(primary);
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        let (mut t0, mut t1) = (0i64, 1i64);
        for p in all {
            lo = lo.min(p.low);
            hi = hi.max(p.high);
            t0 = t0.min(p.event_time);
            t1 = t1.max(p.event_time);
        }
        let pad = ((hi - lo) * 0.12).max(0.02);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "H3: event study (intervention − control)",
                ("sans-serif", 18).into_font(),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((t0 as f64 - 0.5)..(t1 as f64 + 0.5), (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels((t1 - t0 + 1) as usize)
            .x_label_formatter(&|v| {
                let k = v.round();
                if (v - k).abs() < 1e-9 {
                    format!("{k:+.0}").replace("+0", "0")
                } else {
                    String::new()
                }
            })
            .x_desc("waves relative to the last wave before the intervention")
            .y_desc("difference in RCap")
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                [(t0 as f64 - 0.5, 0.0), (t1 as f64 + 0.5, 0.0)],
                OKABE_ITO_GREY.stroke_width(1),
            ))
            .map_err(plot_err)?;
        let style: ShapeStyle = OKABE_ITO_BLUE.stroke_width(2);
        let mut line: Vec<(f64, f64)> = vec![(0.0, 0.0)];
        line.extend(points.iter().map(|p| (p.event_time as f64, p.estimate)));
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line, style))
            .map_err(plot_err)?
            .label("event study (reference: 0)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(points.iter().map(|p| {
                ErrorBar::new_vertical(p.event_time as f64, p.low, p.estimate, p.high, style, 10)
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| {
                        Circle::new(
                            (p.event_time as f64, p.estimate),
                            4,
                            OKABE_ITO_BLUE.filled(),
                        )
                    })
                    .chain(std::iter::once(Circle::new((0.0, 0.0), 4, BLACK.filled()))),
            )
            .map_err(plot_err)?;
        if let Some(p) = primary {
            let x = p.event_time as f64 + 0.15;
            let ps: ShapeStyle = OKABE_ITO_VERMILLION.stroke_width(2);
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x, p.low, p.estimate, p.high, ps, 10,
                )))
                .map_err(plot_err)?
                .label("primary (two waves)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ps));
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, p.estimate),
                    4,
                    OKABE_ITO_VERMILLION.filled(),
                )))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The event study section: the plot, the pre-trend sentence and the formula (null when the
/// model stage has no event study).
fn event_study(inp: &Inputs, min_cell: i64) -> Result<Value> {
    let es = &inp.results_json["h3_event_study"];
    if es.is_null() {
        return Ok(Value::Null);
    }
    if es["fitted"] != json!(true) {
        return Ok(json!({"fitted": false, "message": es["message"]}));
    }
    let rows: Vec<&ResultRow> = inp
        .results
        .iter()
        .filter(|r| r.hypothesis == "H3" && r.scope == "pooled" && r.model == "event_study")
        .filter(|r| r.n_obs >= min_cell)
        .collect();
    let points: Vec<EventPoint> = es["terms"]
        .as_array()
        .map(|terms| {
            terms
                .iter()
                .filter_map(|t| {
                    Some(EventPoint {
                        event_time: t["event_time"].as_i64()?,
                        estimate: t["estimate"].as_f64()?,
                        low: t["conf_low"].as_f64()?,
                        high: t["conf_high"].as_f64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // The event study's terms as results.json lists them, shown only when every row of the
    // model is from at least min_cell people.
    if rows.is_empty() {
        return Ok(Value::Null);
    }
    if points.is_empty() {
        return Ok(Value::Null);
    }
    let primary = inp
        .results
        .iter()
        .find(|r| r.hypothesis == "H3" && r.scope == "pooled" && r.primary)
        .filter(|r| r.term == "post:intervention" && r.n_obs >= min_cell)
        .and_then(|r| {
            Some(EventPoint {
                event_time: 1,
                estimate: r.estimate,
                low: r.conf_low?,
                high: r.conf_high?,
            })
        });
    let pre = &es["pre_trend"];
    let pre_trend = if pre["tested"] == json!(true) {
        format!(
            "Pre-trend test ({}): p = {}.",
            pre["method"].as_str().unwrap_or(""),
            pre["p_value"].as_f64().map(fmt::p).unwrap_or_default()
        )
    } else {
        format!(
            "{}.",
            pre["message"].as_str().unwrap_or("no pre-trend test")
        )
    };
    Ok(json!({
        "fitted": true,
        "svg": event_plot(&points, primary.as_ref())?,
        "n": rows.iter().map(|r| r.n_obs).min().unwrap_or(0),
        "formula": es["formula"],
        "singular": es["singular"],
        "pre_trend": pre_trend,
    }))
}

/// Attrition between the two waves of the window by arm (pooled); a row whose counts include
/// one below `min_cell` is left out whole, so that no count can be had by subtraction.
fn attrition(inp: &Inputs, min_cell: i64) -> Vec<Value> {
    let rows = inp.results_json["attrition"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    rows.iter()
        .filter(|a| a["scope"] == "pooled")
        .filter_map(|a| {
            let n = |k: &str| a[k].as_i64();
            let counts = [
                n("before")?,
                n("after")?,
                n("in_both")?,
                n("left")?,
                n("joined")?,
            ];
            if counts.iter().any(|&c| c < min_cell) {
                return None;
            }
            Some(json!({
                "arm": a["arm"],
                "before": counts[0], "after": counts[1], "in_both": counts[2],
                "left": counts[3], "joined": counts[4],
                "attrition": a["attrition"].as_f64().map(|x| format!("{:.1}%", 100.0 * x)),
            }))
        })
        .collect()
}

/// Sentences on singular per-municipality primary fits and the meta-analysis without them, per
/// hypothesis (`H1`.. → text).
pub fn singular_notes(inp: &Inputs) -> Vec<(String, String)> {
    let rows = inp.results_json["meta_without_singular"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<(String, String)> = vec![];
    for r in &rows {
        let h = r["hypothesis"].as_str().unwrap_or("").to_string();
        if out.iter().any(|(x, _)| *x == h) {
            continue;
        }
        let names: Vec<&str> = r["singular"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let f = |k: &str| r[k].as_f64().map(fmt::num).unwrap_or_default();
        out.push((
            h,
            format!(
                "The primary model's fit is singular (a random-effect variance at zero) in {}; without {} the meta-analysis ({}, k = {}) gives {} [{}, {}], p = {}.",
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" },
                r["method"].as_str().unwrap_or("").to_uppercase(),
                r["k"],
                f("estimate"),
                f("conf_low"),
                f("conf_high"),
                r["p_value"].as_f64().map(fmt::p).unwrap_or_default()
            ),
        ));
    }
    out
}

/// The H3 sections of the study report.
pub fn h3_view(inp: &Inputs, min_cell: i64) -> Result<Value> {
    Ok(json!({
        "models": model_rows(inp, min_cell),
        "event_study": event_study(inp, min_cell)?,
        "attrition": attrition(inp, min_cell),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_plot_is_svg_with_its_series() {
        let p = |e, x| EventPoint {
            event_time: e,
            estimate: x,
            low: x - 0.1,
            high: x + 0.1,
        };
        let svg = event_plot(&[p(-1, 0.01), p(1, 0.17), p(2, 0.15)], Some(&p(1, 0.16))).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("primary (two waves)") && svg.contains("event study"));
        assert_eq!(
            svg,
            event_plot(&[p(-1, 0.01), p(1, 0.17), p(2, 0.15)], Some(&p(1, 0.16))).unwrap()
        );
    }

    #[test]
    fn attrition_rows_with_a_small_count_are_left_out_whole() {
        let inp = Inputs {
            results_json: json!({"attrition": [
                {"scope": "pooled", "arm": "all", "before": 100, "after": 90, "in_both": 70, "left": 30, "joined": 20, "attrition": 0.3},
                {"scope": "pooled", "arm": "control", "before": 50, "after": 47, "in_both": 46, "left": 4, "joined": 1, "attrition": 0.08},
                {"scope": "Aby", "arm": "all", "before": 10, "after": 9, "in_both": 7, "left": 3, "joined": 2, "attrition": 0.3},
            ]}),
            ..Default::default()
        };
        let a = attrition(&inp, 5);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["arm"], "all");
        assert_eq!(a[0]["attrition"], "30.0%");
    }
}
