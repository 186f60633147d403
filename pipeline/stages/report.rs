//! The `report` stage: what people read, rendered only from the Parquet files and `summary.json`
//! files of the earlier stages, so a number in a report is always the number in the stage
//! outputs (`model/results.parquet` for every estimate).
//!
//! Reads `OUT/model/{results,fit,variance_components,heterogeneity}.parquet` and
//! `results.json`, `OUT/score/{dyads,network,units,respondents,reliability,ties}.parquet`,
//! `OUT/link/h3_panel.parquet` and the `summary.json` of ingest, clean, score, link and model.
//! Settings: `study.name`, `privacy.min_cell`, `privacy.protection_width`,
//! `scoring.hub_relevance`, `model.alpha`, `model.h1` (the cluster column
//! named in the table notes), `report.stars`, `report.templates_dir`, `report.language`,
//! `report.pdf`, `report.date`, `labels`, `instrument.{communication,relationship}_items` (the
//! items the feedback report names).
//!
//! # What it writes (under the reports folder, `reports/<study>/` by default)
//!
//! | file | for | content |
//! | --- | --- | --- |
//! | `report.html` | the research team | one self-contained page (inline SVG and CSS, no network): the three hypotheses at a glance (estimate, CI, p, Holm p, supported or not in plain words); a forest plot per hypothesis (municipalities, pooled, meta-analytic diamond, I²); the H3 means before and after by arm with CIs; each municipality's collaboration network as a group × group heat map per wave and for the change from the first to the last wave, with in- and out-strength margins; blind spots and hubs; reliability and aggregation; sample flow (rows per stage, quarantined by reason, exclusions); a methods paragraph; software version, config hash and the report's fingerprint |
//! | `tables/<H>.md`, `.tex`, `.csv` | publications | one regression table per hypothesis (see `report/tables.rs`) |
//! | `municipalities/<municipality>.html` | the municipality's managers | their network, what changed between the first and the last wave, blind spots, hubs, their units, and how they compare with the other municipalities, which are never named |
//! | `municipalities/<municipality>.pdf` | the same, printable | with `report.pdf`, when Chromium is installed: the page printed to A4 |
//!
//! `OUT/report/disclosure_audit.parquet` is the attacker's audit of every hidden figure (schema
//! in `report/audit.rs`). `OUT/report/summary.json` counts the files written, the suppressed
//! cells (`cells_suppressed_primary`, `cells_suppressed_secondary`) and the audited figures
//! (`audit_hidden_figures`, `audit_unprotected`), and lists the report files in `facts.files`;
//! with `report.pdf`, `counts.pdf_written` and `facts.pdf` (`written`, `incomplete` or
//! `chromium not found`, with a warning for each page not printed).
//!
//! # Privacy
//!
//! No figure computed from fewer than `privacy.min_cell` people is shown; a heat map's margins
//! are the means of its shown cells only; secondary suppression is chosen by an attacker's audit
//! (linear programming over every published figure and its rounding) until every hidden
//! figure's interval is at least `privacy.protection_width` wide and no hidden n is pinned, and
//! the stage fails, before writing any page, rather than publish what its audit rejects (rules
//! in `report/privacy.rs`, the audit in `report/audit.rs`). Counts (hubs) include only groups
//! whose figure could be shown; units whose figure is suppressed are not named. Every figure
//! about people is rendered with the number of people behind it in a `data-n` attribute,
//! suppressed ones with `data-suppressed`, so the rules can be checked on the rendered files.
//! Person ids are read only to count distinct raters (`score/ties.parquet`); they become
//! numbers as they are read and are neither kept nor shown. Counts of rows in the sample flow
//! are not figures about anyone and are shown as they are. Model estimates carry the number of
//! observations they rest on.
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
//! name in `report.templates_dir` replaces the built-in one, so the layout can change without
//! Rust. Every word comes from the catalogue of the page's language (`report/i18n.rs`,
//! `templates/lang/<language>.toml`; `report.language.study`, default `en`, and
//! `report.language.feedback`, default `da`), every display name from `[labels]`. Every figure
//! is formatted here (`report/fmt.rs`) and handed to the templates as text with its n; a page
//! writes it in its language's number format (filter `num`), the tables in `tables/` keep the
//! publication format. With `report.pdf` each feedback page is printed to PDF beside it
//! (`report/pdf.rs`).
//!
//! # Where each part is
//!
//! This file reads the inputs, renders the pages and writes the files. `report/data.rs` reads
//! the earlier stages' outputs; `report/network.rs` builds a municipality's heat maps, blind
//! spots and hubs; `report/municipality.rs` a municipality's view and its anonymous comparison
//! with the others; `report/study.rs` the study report's content; `report/tables.rs` the
//! publication tables; `report/privacy.rs` the suppression rules; `report/audit.rs` the
//! attacker's audit; `report/plots.rs` the
//! figures; `report/fmt.rs` how numbers are written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use serde_json::Value;

use super::{StageContext, StageSummary};
use crate::io;

pub mod audit;
pub mod data;
pub mod fmt;
pub mod h3;
pub mod i18n;
pub mod municipality;
pub mod network;
pub mod pdf;
pub mod plots;
pub mod privacy;
pub mod study;
pub mod tables;

use municipality::{comparison, municipality_means, municipality_view};
use study::study_view;

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

/// The templates with one language's catalogue (`t`) and the display names of `[labels]`.
fn template_env(
    dir: Option<&Path>,
    t: &i18n::Catalogue,
    labels: &crate::config::LabelsSection,
) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.add_global("t", minijinja::Value::from_serialize(&t.value));
    i18n::install(&mut env, t, labels);
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
pub(super) fn file_stem(name: &str) -> String {
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

/// Writes the attacker's audit of every published table, `OUT/report/disclosure_audit.parquet`
/// (schema in `report/audit.rs`), and counts it in the summary; fails, before any page is
/// written, when a hidden figure is not protected.
fn disclosure_audit(
    ctx: &StageContext,
    findings: &[audit::Finding],
    summary: &mut StageSummary,
) -> Result<()> {
    let path = ctx.write_table("report", "disclosure_audit", audit::frame(findings)?, false)?;
    summary.add_output(&ctx.stage_dir("report"), &path);
    summary
        .counts
        .insert("audit_hidden_figures".into(), findings.len() as u64);
    let exposed: Vec<&audit::Finding> = findings.iter().filter(|f| !f.protected).collect();
    summary
        .counts
        .insert("audit_unprotected".into(), exposed.len() as u64);
    if let Some(f) = exposed.first() {
        anyhow::bail!(
            "the disclosure audit rejects the reports: {} hidden figure(s) can be worked out, \
             e.g. {} in {} of {} lies in [{:.3}, {:.3}] with n from {} to {} \
             (privacy.protection_width = {}); see {}",
            exposed.len(),
            f.figure,
            f.table,
            f.municipality,
            f.lo,
            f.hi,
            f.n_lo,
            f.n_hi,
            ctx.config.privacy.protection_width,
            path.display()
        );
    }
    Ok(())
}

/// The two kinds of page in their languages: the study report's and the feedback reports'
/// catalogue, templates and date, and the style sheet they share.
struct Pages {
    study_t: i18n::Catalogue,
    env: Environment<'static>,
    feedback_env: Environment<'static>,
    study_date: Value,
    feedback_date: Value,
    css: String,
}

fn pages(ctx: &StageContext) -> Result<Pages> {
    let rc = &ctx.config.report;
    let templates_dir = rc.templates_dir.as_deref();
    let load = |key: &str, lang: &str| {
        i18n::load(lang, templates_dir).with_context(|| format!("report.language.{key}"))
    };
    let (study_t, feedback_t) = (
        load("study", &rc.language.study)?,
        load("feedback", &rc.language.feedback)?,
    );
    let env = template_env(templates_dir, &study_t, &ctx.config.labels)?;
    let feedback_env = template_env(templates_dir, &feedback_t, &ctx.config.labels)?;
    let date_in = |t: &i18n::Catalogue| -> Result<Value> {
        Ok(match &rc.date {
            Some(d) => Value::String(t.numbers.date(d).map_err(|e| anyhow!("report.date: {e}"))?),
            None => Value::Null,
        })
    };
    let (study_date, feedback_date) = (date_in(&study_t)?, date_in(&feedback_t)?);
    let css = env
        .get_template("style.css")
        .map_err(|e| anyhow!("template style.css: {e:#}"))?
        .source()
        .to_string();
    Ok(Pages {
        study_t,
        env,
        feedback_env,
        study_date,
        feedback_date,
        css,
    })
}

/// Writes the reports; see the module documentation.
pub fn run(ctx: &StageContext) -> Result<StageSummary> {
    let min_cell = i64::from(ctx.config.privacy.min_cell);
    let rc = &ctx.config.report;
    let Pages {
        study_t,
        env,
        feedback_env,
        study_date,
        feedback_date,
        css,
    } = pages(ctx)?;
    let inp = data::load(ctx)?;
    let dir: PathBuf = ctx.reports_dir.clone();
    let mut summary = StageSummary::default();

    // Each municipality's view serves both its feedback report and the study report.
    let means = municipality_means(&inp);
    let munis: BTreeSet<String> = inp.dyads.iter().map(|d| d.municipality.clone()).collect();
    let muni_list: Vec<&String> = munis.iter().collect();
    let rules = municipality::ViewRules {
        min_cell,
        width: ctx.config.privacy.protection_width,
        hub_relevance: ctx.config.scoring.hub_relevance,
    };
    let mut views = vec![];
    for v in super::map_on_two_threads(&muni_list, |m| municipality_view(&inp, m, &means, &rules)) {
        views.push(v?);
    }
    let findings: Vec<audit::Finding> = views
        .iter_mut()
        .flat_map(|v| std::mem::take(&mut v.findings))
        .collect();
    disclosure_audit(ctx, &findings, &mut summary)?;
    // A municipality mean that would give away its hidden units is published nowhere.
    let mut means = means;
    for v in &views {
        for k in &v.withheld {
            means.remove(k);
        }
    }
    let (mut study, primary, secondary) = study_view(ctx, &inp, views, min_cell, &study_t)?;
    study["css"] = Value::String(css.clone());
    study["date"] = study_date;

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
            "date": feedback_date,
            "communication_items": ctx.config.instrument.communication_items,
            "relationship_items": ctx.config.instrument.relationship_items,
        });
        let name = format!("municipalities/{}.html", file_stem(m));
        write_text(
            &dir.join(&name),
            &render(&feedback_env, "municipality.html.j2", &ctx_value)?,
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
                // H3's primary mixed model is clustered by unit (CR2); H2's are model-based.
                match h {
                    "H1" => cluster.as_deref(),
                    "H3" => Some("unit_id"),
                    _ => None,
                },
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
    // The codebook (crate::codebook), beside the report.
    let (page, warnings) = crate::codebook::page(ctx, &css)?;
    write_text(&dir.join("codebook.html"), &page)?;
    files.push("codebook.html".to_string());
    summary.warnings.extend(warnings);
    if rc.pdf {
        let pages: Vec<String> = files
            .iter()
            .filter(|f| f.starts_with("municipalities/") && f.ends_with(".html"))
            .cloned()
            .collect();
        files.extend(print_pdfs(&dir, &pages, rc.date.as_deref(), &mut summary));
    }

    record_files(&mut summary, files, (primary, secondary), min_cell);
    Ok(summary)
}

/// Records in the summary the files written (sorted), the cells suppressed (primary,
/// secondary) and the minimum cell size.
fn record_files(
    summary: &mut StageSummary,
    mut files: Vec<String>,
    (primary, secondary): (usize, usize),
    min_cell: i64,
) {
    files.sort();
    let counts = &mut summary.counts;
    counts.insert("files_written".into(), files.len() as u64);
    counts.insert("cells_suppressed_primary".into(), primary as u64);
    counts.insert("cells_suppressed_secondary".into(), secondary as u64);
    summary.facts.insert(
        "files".into(),
        Value::Array(files.into_iter().map(Value::String).collect()),
    );
    summary
        .facts
        .insert("min_cell".into(), Value::from(min_cell));
}

/// Prints each feedback page to PDF beside it; returns the PDFs written. Without Chromium, or
/// when it fails, the run goes on with the HTML alone and says so in a warning.
fn print_pdfs(
    dir: &Path,
    pages: &[String],
    date: Option<&str>,
    summary: &mut StageSummary,
) -> Vec<String> {
    let Some(chromium) = pdf::find_chromium() else {
        summary.warnings.push(
            "report.pdf: Chromium is not installed (no chromium, chromium-browser or google-chrome on \
             the PATH); the feedback reports are written as HTML only"
                .to_string(),
        );
        summary
            .facts
            .insert("pdf".into(), Value::from("chromium not found"));
        return vec![];
    };
    // Two Chromiums at a time; the results in the pages' order.
    let printed = super::map_on_two_threads(pages, |page| {
        let name = format!("{}.pdf", page.trim_end_matches(".html"));
        pdf::print(&chromium, &dir.join(page), &dir.join(&name), date).map(|()| name)
    });
    let mut written = vec![];
    for (page, r) in pages.iter().zip(printed) {
        match r {
            Ok(name) => written.push(name),
            Err(e) => summary
                .warnings
                .push(format!("report.pdf: {page} was not printed: {e:#}")),
        }
    }
    summary.facts.insert(
        "pdf".into(),
        Value::from(if written.len() == pages.len() {
            "written"
        } else {
            "incomplete"
        }),
    );
    summary
        .counts
        .insert("pdf_written".into(), written.len() as u64);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_parse() {
        let t = i18n::load("en", None).unwrap();
        let env = template_env(None, &t, &Default::default()).unwrap();
        for name in crate::config::REPORT_TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn an_override_replaces_only_its_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("style.css"), "body { color: red; }").unwrap();
        let t = i18n::load("en", None).unwrap();
        let env = template_env(Some(dir.path()), &t, &Default::default()).unwrap();
        assert_eq!(
            env.get_template("style.css").unwrap().source(),
            "body { color: red; }"
        );
        assert!(env
            .get_template("study.html.j2")
            .unwrap()
            .source()
            .contains("glance_heading"));
    }
}
