//! The six stages of a study run. Each is one module with one entry point,
//! `run(&StageContext) -> Result<StageSummary>`: it reads the Parquet files of earlier stages
//! from `ctx.stage_dir(..)`, writes its own tables under `ctx.stage_dir(own name)`, and returns
//! the counts that go into its `summary.json`. Stages never call each other; ordering, timing,
//! caching and the summary file itself belong to `orchestrate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use serde::Serialize;

use crate::config::Config;
use crate::memo::Memo;
use crate::pseudonym::Pseudonymizer;

pub mod clean;
pub mod frame;
pub mod ingest;
pub mod link;
pub mod model;
pub mod report;
pub mod score;

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
}

impl StageContext<'_> {
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.out_dir.join(stage)
    }
    pub fn table_path(&self, stage: &str, table: &str) -> PathBuf {
        self.stage_dir(stage).join(format!("{table}.parquet"))
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

/// Runs `f` on job indices taken one at a time from `next` (shared by the threads that work
/// through the same jobs) until they pass `n`; returns each result with its job's index.
fn take_jobs<R>(n: usize, next: &AtomicUsize, mut f: impl FnMut(usize) -> R) -> Vec<(usize, R)> {
    let mut done = Vec::new();
    loop {
        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
        if i >= n {
            return done;
        }
        done.push((i, f(i)));
    }
}

/// `f` applied to every item on up to two threads (this one and one more), each taking the
/// next item not yet taken; the results come back in item order. For independent jobs whose
/// result does not depend on the thread that computes it (each is computed exactly as alone),
/// so only the wall time changes. A panic in a job is raised again on this thread.
pub fn map_on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || take_jobs(items.len(), &next, |i| f(&items[i]));
    let mut done = std::thread::scope(|scope| {
        let other = scope.spawn(work);
        let mut mine = work();
        let theirs = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        mine.extend(theirs);
        mine
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::map_on_two_threads;

    #[test]
    fn map_on_two_threads_keeps_item_order() {
        for n in [0usize, 1, 2, 3, 17, 200] {
            let items: Vec<usize> = (0..n).collect();
            let out = map_on_two_threads(&items, |&i| {
                // Uneven work, so that the threads finish their items out of order.
                if i % 3 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                i * i
            });
            assert_eq!(out, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    #[should_panic(expected = "job 5 failed")]
    fn map_on_two_threads_raises_a_jobs_panic() {
        let items: Vec<usize> = (0..10).collect();
        map_on_two_threads(&items, |&i| {
            if i == 5 {
                panic!("job 5 failed");
            }
            i
        });
    }
}
