//! The one way relcap runs independent jobs on threads: [`map_on_two_threads`] for the stages,
//! [`map_in_two_lanes`] for the model stage's fits, and [`map_indexed`] on a chosen number of
//! threads for `relcap power` and `relcap validate`.
//! Results come back in job order, so the thread that computed a result never shows in an
//! output. Stages use it to share files, views and tables to read or write between two threads;
//! it knows nothing of stages.

use std::collections::VecDeque;
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
    on_two_threads(|_| take_jobs(items.len(), &next, |i| f(&items[i])))
}

/// `work(0)` on this thread and `work(1)` on one more; the results of both, each with its job's
/// index, back in index order. A panic in either is raised again on this thread.
fn on_two_threads<R: Send>(work: impl Fn(usize) -> Vec<(usize, R)> + Sync) -> Vec<R> {
    let done = std::thread::scope(|scope| {
        let other = scope.spawn(|| work(1));
        let mut mine = work(0);
        let theirs = other
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        mine.extend(theirs);
        mine
    });
    in_index_order(done)
}

/// The results of `done` in the order of their indices.
fn in_index_order<R>(mut done: Vec<(usize, R)>) -> Vec<R> {
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// `f` applied to every item on two threads with a lane each: `slot(item)` gives the item's
/// lane (0, or 1 for anything else) and whether it is *large*; items queue in item order. Each
/// thread takes, in this order: the large items of its own lane from the front; those of the
/// other lane from the back; then the small items likewise. So the large items run one per lane
/// while both lanes have some (never two large items of one lane at once before that), a thread
/// done with its lane's large items helps with the other's (the one queued last first) before
/// it starts on small ones, and the small items even out the end. The results come back in item
/// order; for jobs computed exactly as alone, only the wall time depends on the threads. A
/// panic in a job is raised again here.
pub fn map_in_two_lanes<T: Sync, R: Send>(
    items: &[T],
    slot: impl Fn(&T) -> (usize, bool),
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    // [lane][0: large, 1: small]
    let mut queues: [[VecDeque<usize>; 2]; 2] = Default::default();
    for (i, item) in items.iter().enumerate() {
        let (lane, large) = slot(item);
        queues[lane.min(1)][usize::from(!large)].push_back(i);
    }
    let queues = Mutex::new(queues);
    let next = |me: usize| {
        let mut q = queues.lock().unwrap_or_else(|e| e.into_inner());
        (q[me][0].pop_front())
            .or_else(|| q[1 - me][0].pop_back())
            .or_else(|| q[me][1].pop_front())
            .or_else(|| q[1 - me][1].pop_back())
    };
    on_two_threads(|me| {
        let mut done = Vec::new();
        while let Some(i) = next(me) {
            done.push((i, f(&items[i])));
        }
        done
    })
}

/// `f(0..n)` on `threads` threads (at least one, at most `n`), each taking the next index not
/// yet taken; the results come back in index order. A panic in a job is raised again here.
pub fn map_indexed<R: Send>(n: usize, threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = threads.max(1).min(n.max(1));
    let done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| take_jobs(n, &next, &f)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    in_index_order(done)
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
    fn lanes_keep_item_order_and_compute_each_item_once() {
        for n in [0usize, 1, 2, 5, 40] {
            let items: Vec<usize> = (0..n).collect();
            let calls = AtomicUsize::new(0);
            let out = map_in_two_lanes(
                &items,
                |&i| (usize::from(i % 3 == 0), i % 5 == 0),
                |&i| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    if i % 4 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(300));
                    }
                    i * 10
                },
            );
            assert_eq!(out, items.iter().map(|i| i * 10).collect::<Vec<_>>());
            assert_eq!(calls.load(Ordering::Relaxed), n);
        }
    }

    /// [`map_in_two_lanes`] over 0..n with `slot`, each item recording (item, thread, the order
    /// in which it started); item `waiter` waits (at most 20 s) until item `awaited` has started,
    /// so that a test does not depend on how soon the second thread is scheduled.
    fn lanes_recorded(
        n: usize,
        slot: impl Fn(&usize) -> (usize, bool),
        waiter: usize,
        awaited: usize,
    ) -> Vec<(usize, std::thread::ThreadId, usize)> {
        use std::sync::atomic::AtomicBool;
        let items: Vec<usize> = (0..n).collect();
        let awaited_started = AtomicBool::new(false);
        let started = AtomicUsize::new(0);
        map_in_two_lanes(&items, slot, |&i| {
            let order = started.fetch_add(1, Ordering::SeqCst);
            if i == awaited {
                awaited_started.store(true, Ordering::SeqCst);
            }
            if i == waiter {
                let start = std::time::Instant::now();
                while !awaited_started.load(Ordering::SeqCst)
                    && start.elapsed() < std::time::Duration::from_secs(20)
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            (i, std::thread::current().id(), order)
        })
    }

    /// With every item in one lane, the other thread takes from its back: both threads work,
    /// the lane's owner from the front (item 0 first), the other from the back (the last item
    /// first). Item 0 waits until the last item has started.
    #[test]
    fn a_thread_whose_lane_is_empty_takes_from_the_back_of_the_other() {
        let out = lanes_recorded(8, |_| (0, false), 0, 7);
        let owner = out[0].1;
        let other = out[7].1;
        assert_ne!(owner, other, "the last item was taken by the lane's owner");
        // Each thread's items are a run from its end: the owner's a prefix, the other's a suffix,
        // which the other thread took last item first.
        let k = out.iter().take_while(|(_, t, _)| *t == owner).count();
        assert!(out[k..].iter().all(|(_, t, _)| *t == other), "{out:?}");
        let by_start = out[k..]
            .iter()
            .min_by_key(|(_, _, o)| *o)
            .map(|(i, _, _)| *i);
        assert_eq!(by_start, Some(7), "{out:?}");
    }

    /// Lane 0: large 0, small 4 5 6; lane 1: large 1 2 3. Item 1 waits until item 3 has started,
    /// so whichever thread has item 0 must take lane 1's last large item (3) before the small
    /// items of its own lane (as it would not if its own lane came first).
    #[test]
    fn a_thread_done_with_its_large_items_takes_the_others_before_its_small_ones() {
        let out = lanes_recorded(7, |&i| (usize::from((1..4).contains(&i)), i < 4), 1, 3);
        assert_eq!(out[3].1, out[0].1, "{out:?}");
        assert!(
            out[3].2 < out[4].2,
            "a small item before the other lane's large: {out:?}"
        );
    }

    #[test]
    #[should_panic(expected = "item 3 failed")]
    fn lanes_raise_a_jobs_panic() {
        let items: Vec<usize> = (0..6).collect();
        map_in_two_lanes(
            &items,
            |&i| (i % 2, i < 2),
            |&i| {
                if i == 3 {
                    panic!("item 3 failed");
                }
                i
            },
        );
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
