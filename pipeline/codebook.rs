//! The study's codebook: what each source variable is and how it was answered, and item
//! statistics that catch a mis-coded item. Ingest writes `OUT/ingest/codebook.parquet` (its
//! schema is in `stages::ingest::codebook`); the report stage writes it as `codebook.html`
//! beside the report with [`page`], which adds the item statistics ([`items`], computed on
//! clean's answers; also shown by `relcap check`).
//!
//! The page holds only what the codebook table holds (counts below `privacy.min_cell` already
//! written as `<min_cell`) and correlations over at least [`items::MIN_RECORDS`] records; it has
//! no script and loads nothing.

pub mod items;

use std::fmt::Write as _;

use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::*;

use crate::stages::StageContext;

/// Text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text columns of the codebook table, in page order, with their headings.
const COLUMNS: [(&str, &str); 10] = [
    ("source", "file"),
    ("variable", "variable"),
    ("question", "question"),
    ("kind", "kind"),
    ("maps_to", "maps to"),
    ("target_group", "partner group"),
    ("value_labels", "value labels"),
    ("missing_codes", "missing codes (count)"),
    ("answered", "answered"),
    ("distribution", "answers (code: count)"),
];

/// The item statistics as an HTML table.
fn items_table(stats: &[items::ItemStat]) -> String {
    let mut s = String::new();
    if stats.is_empty() {
        s += "<p>No scale had enough complete records for item statistics.</p>\n";
        return s;
    }
    s += "<table class=\"codebook-items\"><thead><tr><th>scale</th><th>wave</th>\
          <th>complete records</th><th>item</th><th>corrected item-total r</th><th>flag</th>\
          </tr></thead><tbody>\n";
    for x in stats {
        let r = x.r_drop.map_or("–".to_string(), |r| format!("{r:.2}"));
        let flag = x.flag.unwrap_or("");
        let _ = writeln!(
            s,
            "<tr data-item=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{r}</td>\
             <td>{flag}</td></tr>",
            esc(&x.item),
            x.scale,
            x.wave,
            x.n,
            esc(&x.item)
        );
    }
    s += "</tbody></table>\n";
    s
}

/// The codebook rows of one table as an HTML table.
fn variables_table(book: &DataFrame, rows: &[usize]) -> Result<String> {
    let mut cols = vec![];
    for (c, _) in COLUMNS {
        let col = book.column(c)?.cast(&DataType::String)?;
        cols.push(col.str()?.clone());
    }
    let mut s = String::from("<table class=\"codebook-variables\"><thead><tr>");
    for (_, h) in COLUMNS {
        let _ = write!(s, "<th>{h}</th>");
    }
    s += "</tr></thead><tbody>\n";
    for &r in rows {
        let cell = |j: usize| cols[j].get(r).unwrap_or("");
        let _ = write!(
            s,
            "<tr data-source=\"{}\" data-variable=\"{}\">",
            esc(cell(0)),
            esc(cell(1))
        );
        for j in 0..COLUMNS.len() {
            let _ = write!(s, "<td>{}</td>", esc(cell(j)));
        }
        s += "</tr>\n";
    }
    s += "</tbody></table>\n";
    Ok(s)
}

/// Bumped when the item statistics kept in the store would no longer be what [`item_statistics`]
/// computes (a change to `items`, or to how they are encoded).
const KEPT_ITEM_STATISTICS_VERSION: &[u8] = b"relcap item statistics 1";

/// The stage whose store keeps the item statistics: the report stage, which shows them.
const MEMO_STAGE: &str = "report";

/// The item statistics of clean's answers ([`items::item_statistics`]). They depend only on
/// clean's two answer tables and the instrument, not on anything a model setting changes, so
/// they are kept in the store (`crate::memo`) under the hash of both tables' bytes and the
/// instrument, and a report written again after a model setting changed takes them from there.
fn item_statistics(ctx: &StageContext) -> Result<Vec<items::ItemStat>> {
    let tables = ["employee_responses", "citizen_responses"];
    let key = if ctx.is_dry_run() {
        None
    } else {
        let mut h = blake3::Hasher::new();
        h.update(KEPT_ITEM_STATISTICS_VERSION);
        h.update(&serde_json::to_vec(&ctx.config.instrument)?);
        for t in tables {
            let path = ctx.table_path("clean", t);
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            h.update(&file.metadata()?.len().to_le_bytes());
            std::io::copy(&mut file, &mut h)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        Some(h.finalize())
    };
    if let Some(key) = &key {
        let kept = ctx.memo.get(MEMO_STAGE, key, |bytes| {
            let df =
                crate::io::parquet_from_bytes(bytes, Path::new("kept item statistics")).ok()?;
            items::from_frame(&df).ok()
        });
        if let Some(stats) = kept {
            return Ok(stats);
        }
    }
    let employees = ctx.read_columns("clean", tables[0], items::EMPLOYEE_COLUMNS)?;
    let citizens = ctx.read_columns("clean", tables[1], items::CITIZEN_COLUMNS)?;
    let stats = items::item_statistics(&ctx.config.instrument, &employees, &citizens)?;
    drop((employees, citizens));
    if let Some(key) = &key {
        let mut df = items::to_frame(&stats)?;
        let mut bytes = vec![];
        ParquetWriter::new(&mut bytes).finish(&mut df)?;
        ctx.memo.put(MEMO_STAGE, key, &bytes)?;
    }
    Ok(stats)
}

/// The codebook page of the run in `ctx` (`css`: the report's style sheet), and a warning per
/// flagged item.
pub fn page(ctx: &StageContext, css: &str) -> Result<(String, Vec<String>)> {
    let book = ctx.read_table("ingest", "codebook")?;
    let stats = item_statistics(ctx)?;
    let warnings = items::flagged(&stats)
        .into_iter()
        .map(|f| format!("item statistics: {f} (see codebook.html)"))
        .collect();
    let study = esc(&ctx.config.study.name);
    let min_cell = ctx.config.privacy.min_cell;
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Codebook: {study}</title>\n<style>\n{css}\n</style>\n</head>\n<body>\n<main>\n\
         <h1>Codebook: {study}</h1>\n<p>Every source variable of the answer tables: the file it \
         came from, its question, what it maps to, its value labels, the codes read as missing \
         and how it was answered. A count from fewer than {min_cell} answers is shown as \
         &lt;{min_cell}.</p>\n<h2>Item statistics</h2>\n<p>Per scale and wave, each item's \
         correlation with the sum of the scale's other items, over the records that answered \
         every item, after value maps and reverse coding. A negative correlation, or one far \
         below the others', usually means a reverse-coded item or a wrong value map \
         (docs/methods.md, \"Item statistics\").</p>\n"
    );
    s += &items_table(&stats);
    s += "<h2>Variables</h2>\n";
    let table = book.column("table")?.str()?.clone();
    let mut tables: Vec<&str> = table.iter().flatten().collect();
    tables.dedup();
    for t in tables {
        let rows: Vec<usize> = (0..book.height())
            .filter(|&r| table.get(r) == Some(t))
            .collect();
        let _ = writeln!(s, "<h3 id=\"{0}\">{0}</h3>", esc(t));
        s += &variables_table(&book, &rows)?;
    }
    s += "</main>\n</body>\n</html>\n";
    Ok((s, warnings))
}
