//! The one way relcap runs independent jobs on threads: [`map_on_two_threads`] (and
//! [`map_owned_on_two_threads`] for jobs that consume their item) for the stages, and
//! [`map_indexed`] on a chosen number of threads for `relcap power` and `relcap validate`.
//! Results come back in job order, so the thread that computed a result never shows in an
//! output. Stages use it to share files, views and tables to read or write between two threads;
//! it knows nothing of stages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f` on job indices taken one at a time from `next` (shared by the threads that work
/// through the same jobs) until they pass `n`; returns each result with its job's index.
fn take_jobs<R>(n: usize, next: &AtomicUsize, mut f: impl FnMut(usize) -> R) -> Vec<(usize, R)> {
    let mut done = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
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

/// `f(0..n)` on `threads` threads (at least one, at most `n`), each taking the next index not
/// yet taken; the results come back in index order. A panic in a job is raised again here.
pub fn map_indexed<R: Send>(n: usize, threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = threads.max(1).min(n.max(1));
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| take_jobs(n, &next, &f)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// [`map_on_two_threads`] for jobs that take their item by value.
pub fn map_owned_on_two_threads<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    map_on_two_threads(&slots, |slot| {
        let item = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each job is taken once");
        f(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn owned_items_are_each_consumed_once_in_order() {
        let items: Vec<String> = (0..9).map(|i| format!("job {i}")).collect();
        let out = map_owned_on_two_threads(items.clone(), |s| s + "!");
        let want: Vec<String> = items.iter().map(|s| format!("{s}!")).collect();
        assert_eq!(out, want);
    }

    /// Files of `dir` (recursively) ending in `.rs`.
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn threads_are_started_here_only() {
        // The one way to run jobs on threads is this module; the statistics engine (its own
        // crate) keeps its own lanes, and the simulator streams municipalities from a generating
        // thread to its writer (a pipeline, not independent jobs).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline");
        let not_yet = ["sim.rs"];
        let mut files = vec![];
        sources(&root, &mut files);
        for f in files {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "jobs.rs" || rel.starts_with("stats/") || not_yet.contains(&rel.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Tests may start threads of their own (two runs racing for a lock, say).
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for call in ["thread::scope(", "thread::spawn("] {
                assert!(
                    !text.contains(call),
                    "{rel} calls {call}..): run independent jobs through crate::jobs"
                );
            }
        }
    }
}
