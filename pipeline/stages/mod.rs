//! The six stages of a study run. Each is one module with one entry point,
//! `run(&StageContext) -> Result<StageSummary>`: it reads the Parquet files of earlier stages
//! from `ctx.stage_dir(..)`, writes its own tables under `ctx.stage_dir(own name)`, and returns
//! the counts that go into its `summary.json`. Stages never call each other; ordering, timing,
//! caching, fingerprints and the summary file itself belong to `orchestrate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use polars::prelude::DataFrame;
use serde::Serialize;

use crate::config::Config;
use crate::io::{self, ParquetMeta};
use crate::memo::Memo;
use crate::pseudonym::Pseudonymizer;

pub mod clean;
pub mod frame;
pub mod ingest;
pub mod link;
pub mod model;
pub mod report;
pub mod score;

/// Independent jobs on two threads (the one way stages share work between threads).
pub use crate::jobs::map_on_two_threads;

/// The order in which ingest makes the input tables and clean takes them: the schema's, but
/// in a dry run (`relcap check`, where the two run at once) the employee answers, usually the
/// largest table, last: while ingest reads them, clean works on the others, and when clean
/// works on them no other table is held.
pub fn table_order(dry_run: bool) -> [&'static str; 5] {
    let mut order = crate::schema::TABLES;
    if dry_run {
        let big = crate::schema::EMPLOYEE_RESPONSES.name;
        order.sort_by_key(|t| *t == big);
    }
    order
}

/// What a stage gets: the validated config, where the study's input lives, where outputs go.
#[derive(Debug)]
pub struct StageContext<'a> {
    pub config: &'a Config,
    /// Folder of the canonical input tables.
    pub data_dir: PathBuf,
    /// Root of the stage outputs: stage `s` writes under `out_dir/s/`.
    pub out_dir: PathBuf,
    /// Folder for human-readable reports (`reports/<study>/`).
    pub reports_dir: PathBuf,
    pub pseudonymizer: &'a Pseudonymizer,
    /// Print progress bars (only when stderr is a terminal and not --quiet).
    pub progress: bool,
    /// Results the stage may reuse from the previous run (see `crate::memo`).
    pub memo: &'a Memo,
    /// The stage's fingerprint as the orchestrator computed it, written into the footer of every
    /// Parquet file the stage writes ([`StageContext::parquet_meta`]); None when a stage runs
    /// outside a study run (unit tests).
    pub fingerprint: Option<String>,
    /// A dry run (`relcap check`): the stage's tables go to this store instead of Parquet files,
    /// and earlier stages' tables are taken from it. None in a normal run.
    pub store: Option<&'a TableStore>,
}

/// The tables of a dry run, held in memory by (stage, table) instead of written. A table is
/// handed out once ([`StageContext::read_table`] takes it), and a table the store does not
/// `keep` is dropped as it is written (`relcap check` keeps only what it reads afterwards).
///
/// Stages may run at once on threads, each taking its inputs as the stage before puts them:
/// while a stage is marked [`TableStore::running`], taking one of its tables waits until the
/// stage puts it or is marked [`TableStore::finished`].
pub struct TableStore {
    shelf: Mutex<Shelf>,
    /// Signalled when a table is put or a stage finishes.
    changed: std::sync::Condvar,
    keep: fn(&str, &str) -> bool,
}

#[derive(Default)]
struct Shelf {
    tables: BTreeMap<(String, String), DataFrame>,
    running: std::collections::BTreeSet<String>,
}

impl TableStore {
    /// A store keeping the tables for which `keep(stage, table)` holds.
    pub fn keeping(keep: fn(&str, &str) -> bool) -> TableStore {
        TableStore {
            shelf: Mutex::default(),
            changed: std::sync::Condvar::new(),
            keep,
        }
    }

    fn shelf(&self) -> std::sync::MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, stage: &str, table: &str, df: DataFrame) {
        if (self.keep)(stage, table) {
            let key = (stage.to_string(), table.to_string());
            self.shelf().tables.insert(key, df);
            self.changed.notify_all();
        }
    }

    /// Marks `stage` as running: its tables are waited for (see above).
    pub fn running(&self, stage: &str) {
        self.shelf().running.insert(stage.to_string());
    }

    /// Marks `stage` as finished, whether it succeeded or not: no more tables of it will come.
    pub fn finished(&self, stage: &str) {
        self.shelf().running.remove(stage);
        self.changed.notify_all();
    }

    /// Takes a table out of the store (None when no stage stored it); while `stage` is
    /// running, waits for it.
    pub fn take(&self, stage: &str, table: &str) -> Option<DataFrame> {
        let key = (stage.to_string(), table.to_string());
        let mut shelf = self.shelf();
        loop {
            if let Some(df) = shelf.tables.remove(&key) {
                return Some(df);
            }
            if !shelf.running.contains(stage) {
                return None;
            }
            shelf = self.changed.wait(shelf).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.shelf().tables.keys()).finish()
    }
}

impl StageContext<'_> {
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.out_dir.join(stage)
    }
    pub fn table_path(&self, stage: &str, table: &str) -> PathBuf {
        self.stage_dir(stage).join(format!("{table}.parquet"))
    }

    /// Writes the running stage's table `table` to `table_path(stage, table)` (as
    /// [`io::write_parquet`], or [`io::write_parquet_as_one_chunk`] when `one_chunk`), or in a
    /// dry run puts it in the store. Returns the path, for [`StageSummary::add_output`].
    pub fn write_table(
        &self,
        stage: &str,
        table: &str,
        mut df: DataFrame,
        one_chunk: bool,
    ) -> Result<PathBuf> {
        let path = self.table_path(stage, table);
        match self.store {
            Some(store) => store.put(stage, table, df),
            None if one_chunk => {
                io::write_parquet_as_one_chunk(&df, &path, &self.parquet_meta(stage))?
            }
            None => io::write_parquet(&mut df, &path, &self.parquet_meta(stage))?,
        }
        Ok(path)
    }

    /// Reads table `table` of the earlier stage `stage` ([`io::read_parquet`]), or in a dry run
    /// takes it from the store.
    pub fn read_table(&self, stage: &str, table: &str) -> Result<DataFrame> {
        match self.store {
            Some(store) => store.take(stage, table).with_context(|| {
                format!("table {table} of stage {stage} is not in the dry run's store")
            }),
            None => io::read_parquet(&self.table_path(stage, table)),
        }
    }

    /// [`StageContext::read_table`], only `columns` (in that order).
    pub fn read_columns(&self, stage: &str, table: &str, columns: &[&str]) -> Result<DataFrame> {
        match self.store {
            Some(_) => Ok(self
                .read_table(stage, table)?
                .select(columns.iter().copied())?),
            None => io::read_parquet_columns(&self.table_path(stage, table), Some(columns)),
        }
    }

    /// A dry run: nothing is written (see [`StageContext::store`]).
    pub fn is_dry_run(&self) -> bool {
        self.store.is_some()
    }

    /// The footer metadata of a Parquet file that `stage` (the running stage) writes: its name,
    /// the schema version and this run's fingerprint of it.
    pub fn parquet_meta(&self, stage: &str) -> ParquetMeta {
        ParquetMeta {
            fingerprint: self.fingerprint.clone(),
            ..ParquetMeta::stage(stage)
        }
    }

    /// A progress bar of `len` steps on stderr, labelled `what`, for long loops (large inputs,
    /// model fits, replications); hidden unless `progress` is on (stderr is a terminal and the
    /// run is not `--quiet`). Call `finish_and_clear` when done.
    pub fn progress_bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "[relcap] {msg} {wide_bar} {human_pos}/{human_len} ({elapsed}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar
    }
}

/// Row accounting for one table a stage handled:
/// `rows_in = rows_out + sum(quarantined) + duplicates_collapsed + sum(excluded)`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TableCount {
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows sent to quarantine, by reason.
    pub quarantined: BTreeMap<String, u64>,
    /// Exact duplicate rows collapsed to their first copy.
    pub duplicates_collapsed: u64,
    /// Rows or units left out on purpose (not bad input), by reason.
    pub excluded: BTreeMap<String, u64>,
}

impl TableCount {
    pub fn balanced(&self) -> bool {
        self.rows_in
            == self.rows_out
                + self.quarantined.values().sum::<u64>()
                + self.duplicates_collapsed
                + self.excluded.values().sum::<u64>()
    }
}

/// What a stage reports about itself; the orchestrator adds the timing and writes it as JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSummary {
    /// Per input/output table row accounting.
    pub tables: BTreeMap<String, TableCount>,
    /// Counts of things that could not be computed or were set aside, by reason
    /// (e.g. `tie_too_few_items`), for scores and models.
    pub counts: BTreeMap<String, u64>,
    /// Human-readable warnings (singular fits, too few clusters, ...).
    pub warnings: Vec<String>,
    /// Files written, relative to the stage folder, sorted.
    pub outputs: Vec<String>,
    /// Stage-specific extra facts (e.g. which pseudonymisation key source was used).
    pub facts: BTreeMap<String, serde_json::Value>,
}

impl StageSummary {
    pub fn add_output(&mut self, dir: &Path, path: &Path) {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        self.outputs.push(rel.to_string_lossy().into_owned());
        self.outputs.sort();
        self.outputs.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_meta_carries_the_fingerprint_the_orchestrator_gave() {
        let text = "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n\
                    [privacy]\ndemo_key = \"k\"\n";
        let config = Config::from_toml(text).unwrap();
        let pseudonymizer = Pseudonymizer::from_config(&config.privacy).unwrap();
        let memo = Memo::disabled();
        let mut ctx = StageContext {
            config: &config,
            data_dir: "d".into(),
            out_dir: "o".into(),
            reports_dir: "r".into(),
            pseudonymizer: &pseudonymizer,
            progress: false,
            memo: &memo,
            fingerprint: None,
            store: None,
        };
        let meta = ctx.parquet_meta("score");
        assert_eq!((meta.stage.as_str(), meta.fingerprint), ("score", None));
        ctx.fingerprint = Some("abc".into());
        let meta = ctx.parquet_meta("score");
        assert_eq!(meta.fingerprint.as_deref(), Some("abc"));
        assert!(meta.extra.is_empty());
    }

    #[test]
    fn a_dry_run_keeps_its_tables_in_the_store_and_writes_nothing() {
        let config = Config::from_toml("[privacy]\ndemo_key = \"k\"\n").unwrap();
        let pseudonymizer = Pseudonymizer::from_config(&config.privacy).unwrap();
        let memo = Memo::disabled();
        let store = TableStore::keeping(|_, table| table != "dropped");
        let tmp = tempfile::tempdir().unwrap();
        let ctx = StageContext {
            config: &config,
            data_dir: "d".into(),
            out_dir: tmp.path().join("out"),
            reports_dir: "r".into(),
            pseudonymizer: &pseudonymizer,
            progress: false,
            memo: &memo,
            fingerprint: None,
            store: Some(&store),
        };
        let df = polars::df!("a" => [1i64, 2]).unwrap();
        let path = ctx
            .write_table("ingest", "units", df.clone(), true)
            .unwrap();
        assert_eq!(path, ctx.table_path("ingest", "units"));
        ctx.write_table("ingest", "dropped", df.clone(), false)
            .unwrap();
        assert!(!tmp.path().join("out").exists());
        assert!(ctx.read_table("ingest", "units").unwrap().equals(&df));
        // Handed out once; a table not kept is not there.
        assert!(ctx.read_table("ingest", "units").is_err());
        assert!(ctx.read_table("ingest", "dropped").is_err());
    }

    #[test]
    fn taking_a_table_of_a_running_stage_waits_for_it_or_for_the_stage_to_finish() {
        let store = TableStore::keeping(|_, _| true);
        store.running("ingest");
        let df = polars::df!("a" => [1i64, 2]).unwrap();
        std::thread::scope(|s| {
            let taker = s.spawn(|| {
                let units = store.take("ingest", "units");
                let missing = store.take("ingest", "intervention");
                (units, missing)
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            store.put("ingest", "units", df.clone());
            std::thread::sleep(std::time::Duration::from_millis(50));
            store.finished("ingest");
            let (units, missing) = taker.join().unwrap();
            assert!(units.unwrap().equals(&df));
            assert!(missing.is_none());
        });
        // A stage never marked running is not waited for.
        assert!(store.take("clean", "units").is_none());
    }
}
