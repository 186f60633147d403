//! Publication tables: one regression table per hypothesis, built from the long results table
//! (`model/results.parquet`, pooled scope) and the fit and variance-component tables, written
//! as Markdown, LaTeX (booktabs) and CSV with the same cells.
//!
//! Layout: one column per model of the hypothesis (in the model stage's order), one row per
//! term (in order of first appearance), each cell the coefficient with its standard error in
//! parentheses; then N, the number of groups (clusters for OLS, units for mixed models), R² for
//! OLS, the variance components for mixed models; and a note that says the standard-error type,
//! the clustering level, the interval level and, when stars are shown, what they mean.
//! Significance stars follow `report.stars` (none by default).

use std::fmt::Write as _;

use super::data::{FitRow, ResultRow, VarianceRow};
use super::fmt;

/// A rendered-ready regression table.
#[derive(Debug, Clone, PartialEq)]
pub struct RegTable {
    pub hypothesis: String,
    pub title: String,
    /// Model names, one per column.
    pub models: Vec<String>,
    /// Row label and one cell per model (empty when the model has no such term).
    pub rows: Vec<(String, Vec<String>)>,
    /// Statistics below the coefficients (N, groups, R², variance components).
    pub stats: Vec<(String, Vec<String>)>,
    pub note: String,
}

/// Stars for `p` under the thresholds (strictly decreasing): one star per threshold passed.
pub fn stars(p: Option<f64>, thresholds: &[f64]) -> String {
    match p {
        Some(p) if p.is_finite() => "*".repeat(thresholds.iter().filter(|&&t| p < t).count()),
        _ => String::new(),
    }
}

/// The note's sentence on stars, e.g. `* p < 0.05, ** p < 0.01, *** p < 0.001.`
pub fn stars_note(thresholds: &[f64]) -> String {
    let parts: Vec<String> = thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} p < {}", "*".repeat(i + 1), fmt::plain(*t)))
        .collect();
    format!("{} (two-sided, unadjusted).", parts.join(", "))
}

fn vcov_words(vcov: &str, cluster: Option<&str>) -> String {
    match vcov {
        "cr1" => format!(
            "cluster-robust (CR1) standard errors, clustered by {}",
            cluster.unwrap_or("cluster")
        ),
        "cr2" => format!(
            "bias-reduced cluster-robust (CR2) standard errors with Satterthwaite degrees of freedom, clustered by {}",
            cluster.unwrap_or("cluster")
        ),
        "classical" => "classical OLS standard errors".to_string(),
        "model" => "model-based standard errors of the mixed model (REML), Satterthwaite degrees of freedom".to_string(),
        "paired" => "standard error of the paired mean difference".to_string(),
        "cluster_bootstrap" => "h1_corrected: corrected for the sampling error of case RCap by regression calibration, standard error from a cluster bootstrap over lead units".to_string(),
        other => format!("{} heteroskedasticity-consistent standard errors", other.to_uppercase()),
    }
}

/// The models of one hypothesis's pooled table, one per column, with their fits.
struct Columns<'a> {
    hypothesis: &'a str,
    models: Vec<String>,
    fits: &'a [FitRow],
}

impl Columns<'_> {
    /// The pooled fit of `model`.
    fn fit_of(&self, model: &str) -> Option<&FitRow> {
        self.fits
            .iter()
            .find(|f| f.hypothesis == self.hypothesis && f.scope == "pooled" && f.model == model)
    }

    /// One cell per model.
    fn cells(&self, cell: impl Fn(&str) -> Option<String>) -> Vec<String> {
        self.models
            .iter()
            .map(|m| cell(m).unwrap_or_default())
            .collect()
    }
}

/// Builds the table of `hypothesis` from the pooled rows.
pub fn regression_table(
    hypothesis: &str,
    results: &[ResultRow],
    fits: &[FitRow],
    variances: &[VarianceRow],
    star_thresholds: &[f64],
    conf_level: f64,
    cluster: Option<&str>,
) -> RegTable {
    let pooled: Vec<&ResultRow> = results
        .iter()
        .filter(|r| r.hypothesis == hypothesis && r.scope == "pooled")
        .collect();
    let mut models: Vec<String> = vec![];
    let mut terms: Vec<String> = vec![];
    for r in &pooled {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
        if !terms.contains(&r.term) {
            terms.push(r.term.clone());
        }
    }
    let cols = Columns {
        hypothesis,
        models,
        fits,
    };
    let rows = coefficient_rows(&cols, &pooled, &terms, star_thresholds);
    let any_r2 = cols
        .models
        .iter()
        .any(|m| cols.fit_of(m).and_then(|f| f.r_squared).is_some());
    let stats = statistics(&cols, variances, any_r2);
    let note = note(&cols, any_r2, star_thresholds, conf_level, cluster);
    RegTable {
        hypothesis: hypothesis.to_string(),
        title: format!("{hypothesis}: regression models (pooled)"),
        models: cols.models,
        rows,
        stats,
        note,
    }
}

/// One row per term: the coefficient, its stars and its standard error in parentheses.
fn coefficient_rows(
    cols: &Columns,
    pooled: &[&ResultRow],
    terms: &[String],
    star_thresholds: &[f64],
) -> Vec<(String, Vec<String>)> {
    terms
        .iter()
        .map(|t| {
            let cells = cols.cells(|m| {
                pooled
                    .iter()
                    .find(|r| r.model == m && &r.term == t)
                    .map(|r| {
                        let se = r
                            .std_error
                            .map(|s| format!(" ({})", fmt::num(s)))
                            .unwrap_or_default();
                        format!(
                            "{}{}{}",
                            fmt::num(r.estimate),
                            stars(r.p_value, star_thresholds),
                            se
                        )
                    })
            });
            (t.clone(), cells)
        })
        .collect()
}

/// The rows below the coefficients: N, groups, R² (when any model has one) and the variance
/// components.
fn statistics(
    cols: &Columns,
    variances: &[VarianceRow],
    any_r2: bool,
) -> Vec<(String, Vec<String>)> {
    let mut stats = vec![];
    stats.push((
        "N".to_string(),
        cols.cells(|m| cols.fit_of(m).and_then(|f| f.n_obs).map(|n| n.to_string())),
    ));
    stats.push((
        "Groups".to_string(),
        cols.cells(|m| {
            cols.fit_of(m)
                .and_then(|f| f.n_clusters.or(f.n_groups))
                .map(|n| n.to_string())
        }),
    ));
    if any_r2 {
        stats.push((
            "R²".to_string(),
            cols.cells(|m| cols.fit_of(m).and_then(|f| f.r_squared).map(fmt::num)),
        ));
    }
    let pooled: Vec<&VarianceRow> = variances
        .iter()
        .filter(|v| v.hypothesis == cols.hypothesis && v.scope == "pooled")
        .collect();
    let mut groups: Vec<&String> = vec![];
    for v in &pooled {
        if !groups.contains(&&v.group) {
            groups.push(&v.group);
        }
    }
    for g in groups {
        stats.push((
            format!("Variance: {g}"),
            cols.cells(|m| {
                pooled
                    .iter()
                    .find(|v| v.model == m && &v.group == g)
                    .and_then(|v| v.variance)
                    .map(fmt::num)
            }),
        ));
    }
    stats
}

/// The note: the standard-error types, what the groups are, the interval level and the stars.
fn note(
    cols: &Columns,
    any_r2: bool,
    star_thresholds: &[f64],
    conf_level: f64,
    cluster: Option<&str>,
) -> String {
    let mut kinds: Vec<String> = vec![];
    for m in &cols.models {
        if let Some(v) = cols.fit_of(m).and_then(|f| f.vcov.clone()) {
            let w = vcov_words(&v, cluster);
            if !kinds.contains(&w) {
                kinds.push(w);
            }
        }
    }
    let mut note = format!(
        "Coefficients with standard errors in parentheses; {}. Groups: {}. Pooled over the \
         municipalities with municipality (and wave) fixed effects; {:.0}% intervals are in \
         results.parquet.",
        if kinds.is_empty() {
            "standard errors as in results.parquet".to_string()
        } else {
            kinds.join("; ")
        },
        if any_r2 {
            format!("clusters ({})", cluster.unwrap_or("cluster"))
        } else {
            "units (random-intercept levels)".to_string()
        },
        conf_level * 100.0
    );
    if !star_thresholds.is_empty() {
        note.push(' ');
        note.push_str(&stars_note(star_thresholds));
    }
    note
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('*', "\\*")
}

/// The table as GitHub-flavoured Markdown.
pub fn markdown(t: &RegTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**{}**\n", t.title);
    let _ = writeln!(out, "| term | {} |", t.models.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(t.models.len()));
    for (label, cells) in t.rows.iter().chain(&t.stats) {
        let cells: Vec<String> = cells.iter().map(|c| md_escape(c)).collect();
        let _ = writeln!(out, "| {} | {} |", md_escape(label), cells.join(" | "));
    }
    let _ = writeln!(out, "\n{}", md_escape(&t.note));
    out
}

/// LaTeX special characters escaped for text mode.
pub fn tex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '²' => out.push_str("$^2$"),
            '<' => out.push_str("$<$"),
            '>' => out.push_str("$>$"),
            _ => out.push(c),
        }
    }
    out
}

fn tex_cell(c: &str) -> String {
    // Stars become superscripts; the rest is escaped text.
    let stars = c
        .find(" (")
        .map_or(c, |i| &c[..i])
        .trim_start_matches(|ch: char| ch != '*');
    if stars.is_empty() {
        return tex_escape(c);
    }
    let rest = c.replacen(stars, "", 1);
    match rest.find(" (") {
        Some(i) => format!(
            "{}$^{{{}}}${}",
            tex_escape(&rest[..i]),
            stars,
            tex_escape(&rest[i..])
        ),
        None => format!("{}$^{{{}}}$", tex_escape(&rest), stars),
    }
}

/// The table as a LaTeX `table` with booktabs rules (needs `\usepackage{booktabs}`).
pub fn latex(t: &RegTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\\begin{{table}}[htbp]");
    let _ = writeln!(out, "\\centering");
    let _ = writeln!(out, "\\caption{{{}}}", tex_escape(&t.title));
    let _ = writeln!(out, "\\begin{{tabular}}{{l{}}}", "r".repeat(t.models.len()));
    let _ = writeln!(out, "\\toprule");
    let head: Vec<String> = t.models.iter().map(|m| tex_escape(m)).collect();
    let _ = writeln!(out, " & {} \\\\", head.join(" & "));
    let _ = writeln!(out, "\\midrule");
    for (label, cells) in &t.rows {
        let cells: Vec<String> = cells.iter().map(|c| tex_cell(c)).collect();
        let _ = writeln!(out, "{} & {} \\\\", tex_escape(label), cells.join(" & "));
    }
    let _ = writeln!(out, "\\midrule");
    for (label, cells) in &t.stats {
        let cells: Vec<String> = cells.iter().map(|c| tex_escape(c)).collect();
        let _ = writeln!(out, "{} & {} \\\\", tex_escape(label), cells.join(" & "));
    }
    let _ = writeln!(out, "\\bottomrule");
    let _ = writeln!(out, "\\end{{tabular}}");
    let _ = writeln!(
        out,
        "\\par\\smallskip\\footnotesize\\raggedright {}",
        tex_escape(&t.note)
    );
    let _ = writeln!(out, "\\end{{table}}");
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The table as CSV: a header `term,<models>`, the coefficient rows, the statistics rows, and
/// the note as a last row with the label `note`.
pub fn csv(t: &RegTable) -> String {
    let mut out = String::new();
    let mut head = vec!["term".to_string()];
    head.extend(t.models.iter().cloned());
    let head: Vec<String> = head.iter().map(|h| csv_field(h)).collect();
    let _ = writeln!(out, "{}", head.join(","));
    for (label, cells) in t.rows.iter().chain(&t.stats) {
        let mut f = vec![csv_field(label)];
        f.extend(cells.iter().map(|c| csv_field(c)));
        let _ = writeln!(out, "{}", f.join(","));
    }
    let _ = writeln!(out, "note,{}", csv_field(&t.note));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small fixed results table: two OLS models of one hypothesis, numbers chosen by hand.
    fn fixture() -> (Vec<ResultRow>, Vec<FitRow>) {
        let r = |model: &str, term: &str, est: f64, se: f64, p: f64| ResultRow {
            hypothesis: "H1".into(),
            scope: "pooled".into(),
            model: model.into(),
            primary: term == "case_rcap",
            term: term.into(),
            estimate: est,
            std_error: Some(se),
            p_value: Some(p),
            p_holm: None,
            p_adjusted: None,
            supported: None,
            conf_low: None,
            conf_high: None,
            std_estimate: None,
            n_obs: 2111,
            n_groups: Some(51),
        };
        let results = vec![
            r("case_rcap", "(Intercept)", 2.5, 0.25, 1e-9),
            r("case_rcap", "case_rcap", 0.3118, 0.0526, 0.0000003),
            r("case_rcap", "C(wave)2", -0.0123, 0.0314, 0.7),
            r("unit_rcap_mean", "(Intercept)", 2.9, 0.3, 1e-8),
            r("unit_rcap_mean", "unit_rcap_mean", 0.2, 0.09, 0.03),
            r("unit_rcap_mean", "C(wave)2", -0.01, 0.032, 0.75),
            // Another scope is not part of the pooled table.
            ResultRow {
                scope: "Randers".into(),
                ..r("case_rcap", "case_rcap", 9.0, 9.0, 0.5)
            },
        ];
        let f = |model: &str, r2: f64| FitRow {
            hypothesis: "H1".into(),
            scope: "pooled".into(),
            model: model.into(),
            status: "fitted".into(),
            vcov: Some("cr1".into()),
            n_obs: Some(2111),
            n_groups: Some(51),
            n_clusters: Some(51),
            r_squared: Some(r2),
            ..Default::default()
        };
        (
            results,
            vec![f("case_rcap", 0.0379), f("unit_rcap_mean", 0.0208)],
        )
    }

    #[test]
    fn cells_are_coefficient_and_se_with_stars_only_when_asked() {
        let (res, fits) = fixture();
        let t = regression_table("H1", &res, &fits, &[], &[], 0.95, Some("lead_unit_id"));
        assert_eq!(t.models, vec!["case_rcap", "unit_rcap_mean"]);
        assert_eq!(t.rows[1].0, "case_rcap");
        assert_eq!(
            t.rows[1].1,
            vec!["0.312 (0.053)".to_string(), String::new()]
        );
        assert_eq!(t.rows[2].1[0], "-0.012 (0.031)");
        assert!(!t.note.contains('*'), "no stars, no star note: {}", t.note);
        let s = regression_table("H1", &res, &fits, &[], &[0.05, 0.01, 0.001], 0.95, None);
        assert_eq!(s.rows[1].1[0], "0.312*** (0.053)");
        assert_eq!(s.rows[4 - 1].1[1], "0.200* (0.090)");
        assert!(s.note.contains("* p < 0.05, ** p < 0.01, *** p < 0.001"));
        assert_eq!(
            s.stats[0],
            ("N".to_string(), vec!["2111".into(), "2111".into()])
        );
        assert_eq!(s.stats[2].1, vec!["0.038".to_string(), "0.021".into()]);
    }

    #[test]
    fn latex_matches_the_stored_snapshot() {
        // No TeX engine on the CI machine: the LaTeX is compared with a snapshot that was
        // checked by eye (booktabs rules, escaped underscores, stars as superscripts).
        let (res, fits) = fixture();
        let t = regression_table(
            "H1",
            &res,
            &fits,
            &[],
            &[0.05, 0.01, 0.001],
            0.95,
            Some("lead_unit_id"),
        );
        let got = latex(&t);
        let want = include_str!("../../../tests/fixtures/report_table.tex");
        assert_eq!(
            got, want,
            "LaTeX changed; if on purpose, update tests/fixtures/report_table.tex:\n{got}"
        );
        assert!(got.contains("\\toprule") && got.contains("\\bottomrule"));
        assert!(got.contains("case\\_rcap"));
    }

    #[test]
    fn markdown_and_csv_have_the_same_cells() {
        let (res, fits) = fixture();
        let t = regression_table("H1", &res, &fits, &[], &[], 0.95, Some("lead_unit_id"));
        let md = markdown(&t);
        assert!(md.contains("| case_rcap | 0.312 (0.053) |  |"), "{md}");
        let c = csv(&t);
        assert!(c.starts_with("term,case_rcap,unit_rcap_mean\n"));
        assert!(c.contains("\ncase_rcap,0.312 (0.053),\n"), "{c}");
        assert!(c.contains("\n\"C(wave)2\",") || c.contains("\nC(wave)2,"));
    }
}
