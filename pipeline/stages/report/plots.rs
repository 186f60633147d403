//! The report's figures as inline SVG, drawn with plotters' SVG backend (text is written as SVG
//! `<text>` with a generic font family, so no system font is needed), and the colours of the
//! heat maps.
//!
//! Colours are colour-blind safe: the Okabe–Ito palette for series, and a diverging
//! blue–orange scale (Okabe–Ito blue #0072B2 for high or improved, vermillion #D55E00 for low or
//! worse, white at the midpoint) for the heat maps.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::{
    ChartBuilder, Circle, ErrorBar, IntoDrawingArea, IntoFont, LineSeries, PathElement, Polygon,
    RGBColor, Rectangle, SVGBackend, ShapeStyle, Text, BLACK, WHITE,
};
use plotters::style::Color;

pub const OKABE_ITO_BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub const OKABE_ITO_VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub const OKABE_ITO_ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
pub const OKABE_ITO_GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);

/// Series colours in order: the Okabe–Ito palette without its yellow (too light on white).
pub const SERIES: [RGBColor; 7] = [
    OKABE_ITO_BLUE,
    OKABE_ITO_VERMILLION,
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    OKABE_ITO_ORANGE,
    RGBColor(0x56, 0xB4, 0xE9),
    BLACK,
];

/// An axis of f64 values whose ticks are exactly `keys` (plotters' own axes choose round
/// numbers).
#[derive(Clone)]
pub struct KeyedAxis {
    inner: RangedCoordf64,
    keys: Vec<f64>,
}

impl KeyedAxis {
    pub fn new(range: std::ops::Range<f64>, keys: Vec<f64>) -> KeyedAxis {
        KeyedAxis {
            inner: range.into(),
            keys,
        }
    }
}

impl Ranged for KeyedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }
    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.keys.clone()
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// A plotters error as an error of the figure being drawn.
pub fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a figure: {e:?}")
}

/// What a forest-plot row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Municipality,
    Pooled,
    Meta,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub kind: RowKind,
}

/// A padded axis range covering `values` and 0.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    (lo - pad, hi + pad)
}

/// A forest plot: one line per row (estimate and interval), squares for municipalities and the
/// pooled model, a diamond for the meta-analytic estimate, a vertical line at 0.
pub fn forest(title: &str, x_label: &str, rows: &[ForestRow]) -> Result<String> {
    let n = rows.len().max(1);
    let height = 70 + 28 * n as u32 + 50;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (lo, hi) = range(rows.iter().flat_map(|r| [r.low, r.high, r.estimate]));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18).into_font())
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(170)
            .build_cartesian_2d(lo..hi, 0.0..n as f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .y_labels(0)
            .x_desc(x_label)
            .x_labels(7)
            .x_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (0.0, n as f64)],
                OKABE_ITO_GREY.stroke_width(1),
            )))
            .map_err(plot_err)?;
        for (i, r) in rows.iter().enumerate() {
            let y = n as f64 - i as f64 - 0.5;
            let colour = match r.kind {
                RowKind::Municipality => BLACK,
                RowKind::Pooled => OKABE_ITO_BLUE,
                RowKind::Meta => OKABE_ITO_VERMILLION,
            };
            if r.kind == RowKind::Meta {
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        vec![
                            (r.low, y),
                            (r.estimate, y + 0.3),
                            (r.high, y),
                            (r.estimate, y - 0.3),
                        ],
                        colour.filled(),
                    )))
                    .map_err(plot_err)?;
            } else {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(r.low, y), (r.high, y)],
                        colour.stroke_width(2),
                    )))
                    .map_err(plot_err)?;
                let (dx, dy) = ((hi - lo) * 0.006, 0.16);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(r.estimate - dx, y - dy), (r.estimate + dx, y + dy)],
                        colour.filled(),
                    )))
                    .map_err(plot_err)?;
            }
            let (px, py) = chart.backend_coord(&(lo, y));
            root.draw(&Text::new(
                r.label.clone(),
                (px - 165, py - 7),
                ("sans-serif", 14).into_font().color(&colour),
            ))
            .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// One point of the pre/post plot.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmPoint {
    /// 0 = before, 1 = after.
    pub period: i64,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Means before and after the intervention by arm, with intervals.
pub fn pre_post(title: &str, y_label: &str, arms: &[(String, Vec<ArmPoint>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let all = arms.iter().flat_map(|(_, p)| p.iter());
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in all {
            lo = lo.min(p.low);
            hi = hi.max(p.high);
        }
        if !lo.is_finite() {
            (lo, hi) = (1.0, 5.0);
        }
        let pad = ((hi - lo) * 0.15).max(0.05);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18).into_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..1.5f64, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(3)
            .x_label_formatter(&|v| {
                if v.abs() < 1e-9 {
                    "before".to_string()
                } else if (v - 1.0).abs() < 1e-9 {
                    "after".to_string()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .x_desc("wave relative to the intervention")
            .draw()
            .map_err(plot_err)?;
        let colours = [
            OKABE_ITO_VERMILLION,
            OKABE_ITO_BLUE,
            OKABE_ITO_ORANGE,
            BLACK,
        ];
        for (k, (arm, points)) in arms.iter().enumerate() {
            let colour = colours[k % colours.len()];
            let shift = (k as f64 - (arms.len() as f64 - 1.0) / 2.0) * 0.06;
            let style: ShapeStyle = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.period as f64 + shift, p.mean)),
                    style,
                ))
                .map_err(plot_err)?
                .label(arm.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(points.iter().map(|p| {
                    ErrorBar::new_vertical(
                        p.period as f64 + shift,
                        p.low,
                        p.mean,
                        p.high,
                        style,
                        10,
                    )
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(
                    points.iter().map(|p| {
                        Circle::new((p.period as f64 + shift, p.mean), 4, colour.filled())
                    }),
                )
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

/// Background and text colour (`#rrggbb`) of a heat-map cell: `t` in [-1, 1], negative towards
/// vermillion, positive towards blue, white at 0.
pub fn diverging(t: f64) -> (String, &'static str) {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let end = if t < 0.0 {
        OKABE_ITO_VERMILLION
    } else {
        OKABE_ITO_BLUE
    };
    let a = t.abs();
    let mix = |c: u8| -> u8 { (255.0 + (c as f64 - 255.0) * a).round() as u8 };
    let bg = format!("#{:02x}{:02x}{:02x}", mix(end.0), mix(end.1), mix(end.2));
    let fg = if a > 0.6 { "#ffffff" } else { "#000000" };
    (bg, fg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_scale_ends_and_middle() {
        assert_eq!(diverging(0.0).0, "#ffffff");
        assert_eq!(diverging(1.0).0, "#0072b2");
        assert_eq!(diverging(-1.0).0, "#d55e00");
        assert_eq!(diverging(7.0).0, "#0072b2");
        // Half way to blue: 255 + (0 − 255)/2 = 127.5 → 128; 255 + (114 − 255)/2 = 184.5 → 185;
        // 255 + (178 − 255)/2 = 216.5 → 217.
        assert_eq!(diverging(0.5).0, "#80b9d9");
    }

    #[test]
    fn forest_plot_is_svg_with_every_label() {
        let rows = vec![
            ForestRow {
                label: "Aarhus".into(),
                estimate: 0.2,
                low: 0.1,
                high: 0.3,
                kind: RowKind::Municipality,
            },
            ForestRow {
                label: "Meta-analysis (REML)".into(),
                estimate: 0.25,
                low: 0.15,
                high: 0.35,
                kind: RowKind::Meta,
            },
        ];
        let svg = forest("H1", "estimate", &rows).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Aarhus") && svg.contains("Meta-analysis (REML)"));
        assert!(svg.contains("<polygon"), "the diamond");
        assert_eq!(
            svg,
            forest("H1", "estimate", &rows).unwrap(),
            "deterministic"
        );
    }
}
