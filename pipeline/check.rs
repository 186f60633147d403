//! `relcap check`: reads, types and validates the study's input as `relcap run` would, and
//! writes nothing. The config, the study name, the data folder and the key are resolved as a
//! run resolves them (`Config::named_after_data`, `StudyPaths::resolve`,
//! `Pseudonymizer::for_study`); then the ingest and clean stages run unchanged in a dry run
//! (`StageContext::store`): their tables stay in memory, uncompressed, and no folder, lock,
//! manifest or report is made. The report says, per table, the rows that would be quarantined
//! or excluded by reason, with the first few `file:line` examples of each quarantine reason
//! (and the cell as written), and every problem that would stop the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;

use crate::config::Config;
use crate::memo::Memo;
use crate::orchestrate::{StudyPaths, STAGES};
use crate::pseudonym::{KeySource, Pseudonymizer};
use crate::stages::clean::ITEM_STATISTICS;
use crate::stages::{StageContext, StageSummary, TableCount, TableStore};

/// How many `file:line` examples the report shows per table and reason.
pub const EXAMPLES: usize = 3;

/// What `relcap check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub study: String,
    pub data_dir: PathBuf,
    /// Problems that would stop the run (missing table, unreadable file, refused key, ...).
    pub problems: Vec<String>,
    /// Per stage and table: the row accounting and the quarantine examples.
    pub tables: Vec<TableCheck>,
    /// Item statistics of clean's answers (`crate::codebook::items`); flagged items are shown.
    pub items: Vec<crate::codebook::items::ItemStat>,
}

/// One table of one stage.
#[derive(Debug)]
pub struct TableCheck {
    pub stage: &'static str,
    pub table: String,
    pub count: TableCount,
    /// Per quarantine reason, the first [`EXAMPLES`] rows as `file:line column "value"`.
    pub examples: BTreeMap<String, Vec<String>>,
}

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The data would run clean.
    Clean,
    /// Rows would be quarantined, excluded or collapsed as duplicates.
    RowsSetAside,
    /// The run would fail.
    WouldFail,
}

impl CheckReport {
    pub fn verdict(&self) -> Verdict {
        let set_aside = |c: &TableCount| {
            c.quarantined.values().any(|&n| n > 0)
                || c.excluded.values().any(|&n| n > 0)
                || c.duplicates_collapsed > 0
        };
        if !self.problems.is_empty() {
            Verdict::WouldFail
        } else if self.tables.iter().any(|t| set_aside(&t.count)) {
            Verdict::RowsSetAside
        } else {
            Verdict::Clean
        }
    }

    /// The report as text, one table per paragraph, the problems last.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "relcap check: study {}, data {}",
            self.study,
            self.data_dir.display()
        );
        for t in &self.tables {
            let c = &t.count;
            let _ = writeln!(
                s,
                "{} {}: {} rows in, {} would be kept",
                t.stage, t.table, c.rows_in, c.rows_out
            );
            for (reason, n) in c.quarantined.iter().filter(|(_, &n)| n > 0) {
                let _ = writeln!(s, "  quarantined {reason}: {n}");
                for e in t.examples.get(reason).into_iter().flatten() {
                    let _ = writeln!(s, "    {e}");
                }
            }
            if c.duplicates_collapsed > 0 {
                let _ = writeln!(s, "  duplicates collapsed: {}", c.duplicates_collapsed);
            }
            for (reason, n) in c.excluded.iter().filter(|(_, &n)| n > 0) {
                let _ = writeln!(s, "  excluded {reason}: {n}");
            }
        }
        s += &crate::codebook::items::to_text(&self.items);
        for p in &self.problems {
            let _ = writeln!(s, "problem (the run would stop): {p}");
        }
        let verdict = match self.verdict() {
            Verdict::Clean => "the data would run clean",
            Verdict::RowsSetAside => "rows would be set aside; the run would go on",
            Verdict::WouldFail => "the run would fail",
        };
        let _ = writeln!(s, "verdict: {verdict}");
        s
    }
}

/// Checks the study of `config` (its name and folders resolved as `relcap run` resolves them,
/// `data` overriding the data folder). Writes nothing. A stage's error is a problem in the
/// report, not an error of this function.
pub fn check(config: &Config, data: Option<&Path>, progress: bool) -> CheckReport {
    let data_dir = data.unwrap_or(&config.study.data_dir);
    let config = &config.named_after_data(data_dir);
    let paths = StudyPaths::resolve(config, data, None, None);
    let mut report = CheckReport {
        study: config.study.name.clone(),
        data_dir: paths.data_dir.clone(),
        ..CheckReport::default()
    };
    if !paths.data_dir.is_dir() {
        let p = format!("data folder {} does not exist", paths.data_dir.display());
        report.problems.push(p);
        return report;
    }
    // The key as a run resolves it; when it is refused, the data is still checked (with a
    // throwaway key: nothing is written, and only pseudonyms appear in the report).
    let pseudonymizer = match Pseudonymizer::for_study(config, &paths.data_dir, true) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            let key: [u8; 32] = rand::random();
            match Pseudonymizer::new(&key, KeySource::Environment) {
                Ok(p) => p,
                Err(e) => {
                    report.problems.push(format!("{e:#}"));
                    return report;
                }
            }
        }
    };
    // Ingest's tables are read by clean; of clean's, the quarantine and the item statistics
    // (gathered while clean checks the answers) are read here.
    let store = TableStore::keeping(|stage, table| {
        stage == "ingest" || table == "quarantine" || table == ITEM_STATISTICS
    });
    let memo = Memo::disabled();
    // The stages of the run up to clean, on two threads (`crate::jobs`): clean takes each table
    // of ingest as soon as ingest has it, so the two overlap and ingest's tables are not all
    // held.
    let last = STAGES.iter().position(|s| s.name == "clean").unwrap_or(1);
    let stages = &STAGES[..=last];
    for stage in stages {
        store.running(stage.name);
    }
    // Jobs are handed out in order, and each waits only for tables of the stages before it,
    // which are already running: the two threads never wait for each other in a circle.
    let results: Vec<Result<Vec<TableCheck>>> = crate::jobs::map_on_two_threads(stages, |stage| {
        let first = std::ptr::eq(stage, &stages[0]);
        let ctx = StageContext {
            config,
            data_dir: paths.data_dir.clone(),
            out_dir: paths.out_dir.clone(),
            reports_dir: paths.reports_dir.clone(),
            pseudonymizer: &pseudonymizer,
            // One progress bar at a time: the first stage's.
            progress: progress && first,
            memo: &memo,
            fingerprint: None,
            store: Some(&store),
        };
        run_stage(&ctx, stage.run, stage.name)
    });
    // In the run's order; a stage after a failed one is not reported (it had no input).
    for (stage, result) in stages.iter().zip(results) {
        match result {
            Ok(tables) => report.tables.extend(tables),
            Err(e) => {
                report.problems.push(format!("stage {}: {e:#}", stage.name));
                break;
            }
        }
    }
    if report.problems.is_empty() {
        let items = store
            .take("clean", ITEM_STATISTICS)
            .context("clean kept no item statistics")
            .and_then(|df| crate::codebook::items::from_frame(&df));
        match items {
            Ok(items) => report.items = items,
            Err(e) => report.problems.push(format!("item statistics: {e:#}")),
        }
    }
    report
}

/// Runs one stage in the dry run of `ctx` and returns its tables with their quarantine
/// examples; the stage is marked finished in the store however it ends, so that a later stage
/// waiting for its tables goes on.
fn run_stage(
    ctx: &StageContext,
    run: fn(&StageContext) -> Result<StageSummary>,
    stage: &'static str,
) -> Result<Vec<TableCheck>> {
    struct Finished<'a>(&'a TableStore, &'static str);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.finished(self.1);
        }
    }
    let store = ctx.store.context("a check is a dry run")?;
    let _finished = Finished(store, stage);
    let summary = run(ctx)?;
    let quarantine = ctx.read_table(stage, "quarantine")?;
    tables_of(stage, &summary, &quarantine)
}

/// The tables of one stage's summary, each with its first quarantine examples by reason.
fn tables_of(
    stage: &'static str,
    summary: &StageSummary,
    quarantine: &DataFrame,
) -> Result<Vec<TableCheck>> {
    let mut examples = examples(quarantine)?;
    Ok(summary
        .tables
        .iter()
        .map(|(table, count)| TableCheck {
            stage,
            table: table.clone(),
            count: count.clone(),
            examples: examples.remove(table).unwrap_or_default(),
        })
        .collect())
}

/// Per table and reason, the first [`EXAMPLES`] quarantine rows (in the quarantine's order:
/// source, then line) as `file:line column "value"`.
fn examples(q: &DataFrame) -> Result<BTreeMap<String, BTreeMap<String, Vec<String>>>> {
    let text = |name: &str| -> Result<StringChunked> {
        Ok(q.column(name)?.cast(&DataType::String)?.str()?.clone())
    };
    let (table, source, line) = (text("table")?, text("source")?, text("line")?);
    let (column, value, reason) = (text("column")?, text("value")?, text("reason")?);
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for i in 0..q.height() {
        let (Some(t), Some(r)) = (table.get(i), reason.get(i)) else {
            continue;
        };
        let list = out
            .entry(t.to_string())
            .or_default()
            .entry(r.to_string())
            .or_default();
        if list.len() >= EXAMPLES {
            continue;
        }
        let mut e = format!(
            "{}:{}",
            source.get(i).unwrap_or("?"),
            line.get(i).unwrap_or("?")
        );
        if let Some(c) = column.get(i) {
            let _ = write!(e, " {c}");
        }
        match value.get(i) {
            Some(v) => {
                let _ = write!(e, " {v:?}");
            }
            None if column.get(i).is_some() => e.push_str(" (empty)"),
            None => {}
        }
        list.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantine() -> DataFrame {
        df!(
            "table" => ["units", "units", "units", "units", "units"],
            "source" => ["u.csv"; 5],
            "line" => [2i64, 3, 4, 5, 6],
            "column" => [Some("headcount"), Some("headcount"), None, Some("headcount"), Some("unit_id")],
            "value" => [Some("x"), Some("y"), None, Some("z"), None],
            "reason" => ["not_an_integer", "not_an_integer", "ragged_row", "not_an_integer", "missing_required"],
        )
        .unwrap()
    }

    #[test]
    fn examples_are_the_first_few_per_reason_with_the_cell_as_written() {
        let e = examples(&quarantine()).unwrap();
        let units = &e["units"];
        assert_eq!(
            units["not_an_integer"],
            [
                "u.csv:2 headcount \"x\"",
                "u.csv:3 headcount \"y\"",
                "u.csv:5 headcount \"z\""
            ]
        );
        assert_eq!(units["ragged_row"], ["u.csv:4"]);
        assert_eq!(units["missing_required"], ["u.csv:6 unit_id (empty)"]);
    }

    #[test]
    fn verdict_is_fail_then_set_aside_then_clean() {
        let mut r = CheckReport::default();
        let mut count = TableCount {
            rows_in: 2,
            rows_out: 2,
            ..TableCount::default()
        };
        r.tables.push(TableCheck {
            stage: "clean",
            table: "units".into(),
            count: count.clone(),
            examples: BTreeMap::new(),
        });
        assert_eq!(r.verdict(), Verdict::Clean);
        count.rows_out = 1;
        count.excluded.insert("no_answers".into(), 1);
        r.tables[0].count = count;
        assert_eq!(r.verdict(), Verdict::RowsSetAside);
        assert!(r.to_text().contains("excluded no_answers: 1"));
        r.problems.push("required table units: no file".into());
        assert_eq!(r.verdict(), Verdict::WouldFail);
        assert!(r
            .to_text()
            .contains("problem (the run would stop): required table units"));
    }
}
