//! The run log on stderr and its progress bars.

use std::fmt;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::status::Reason;
use crate::stages::StageSummary;

/// The log on stderr and the progress bars.
pub(super) struct Log {
    quiet: bool,
    verbose: bool,
    progress: bool,
}

impl Log {
    /// The log of a run with these options (progress bars only without `--quiet`).
    pub(super) fn new(quiet: bool, verbose: bool, progress: bool) -> Log {
        Log {
            quiet,
            verbose,
            progress: progress && !quiet,
        }
    }

    /// A log that says nothing (status, input hashes).
    pub(super) fn silent() -> Log {
        Log::new(true, false, false)
    }

    pub(super) fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub(super) fn progress(&self) -> bool {
        self.progress
    }

    pub(super) fn line(&self, stage: &str, msg: impl fmt::Display) {
        if !self.quiet {
            crate::say!("[relcap] {stage:<7} {msg}");
        }
    }

    /// A byte-count bar, shown only with progress on and for inputs worth waiting for.
    pub(super) fn bytes_bar(&self, total: u64, what: &str) -> ProgressBar {
        if !self.progress || self.quiet || total < 64 << 20 {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "[relcap] {msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar
    }

    /// A spinner with the elapsed time while a stage runs (stages draw their own bars instead
    /// when they have them: `StageContext::progress_bar`).
    pub(super) fn spinner(&self, stage: &str) -> ProgressBar {
        if !self.progress || self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("[relcap] {prefix:<7} {spinner} {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    pub(super) fn stage_done(&self, name: &str, s: &StageSummary, seconds: f64) {
        if self.quiet {
            return;
        }
        let rows_in: u64 = s.tables.values().map(|t| t.rows_in).sum();
        let rows_out: u64 = s.tables.values().map(|t| t.rows_out).sum();
        let quarantined: u64 = s.tables.values().flat_map(|t| t.quarantined.values()).sum();
        self.line(
            name,
            format!(
                "done in {seconds:.2}s: {rows_in} rows in, {rows_out} out, {quarantined} quarantined"
            ),
        );
        for w in &s.warnings {
            self.line(name, format!("warning: {w}"));
        }
        if self.verbose {
            for (t, c) in &s.tables {
                self.line(
                    name,
                    format!(
                        "{t}: in {} out {} quarantined {:?} duplicates {} excluded {:?}",
                        c.rows_in, c.rows_out, c.quarantined, c.duplicates_collapsed, c.excluded
                    ),
                );
            }
        }
    }

    pub(super) fn reasons(&self, name: &str, reasons: &[Reason]) {
        if self.quiet || reasons.is_empty() {
            return;
        }
        if self.verbose || reasons.len() == 1 {
            self.line(name, format!("running: {}", reasons[0]));
            for r in &reasons[1..] {
                self.line(name, format!("         {r}"));
            }
        } else {
            self.line(
                name,
                format!(
                    "running: {} (and {} more; -v lists them)",
                    reasons[0],
                    reasons.len() - 1
                ),
            );
        }
    }
}
