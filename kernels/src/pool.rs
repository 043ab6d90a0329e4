//! Keeping a rayon pool's workers awake through a timed region.
//!
//! An idle rayon worker yields a few dozen times and then sleeps on a futex, and the next split
//! has to wake it. On a 2-vCPU KVM guest that wake-up took 12-28 µs (median 14 µs, `rayon::join`
//! with 0-5 µs between calls), longer than a whole 640x2560 GEMV from DRAM, so a second thread
//! joined each product late or not at all. While a [`Polling`] guard lives, every worker but the
//! caller looks for work in a loop instead (the same join: 0.4 µs), as ggml's thread pool polls
//! between graph nodes. The price is a busy core while the pool has nothing to do: CPU time and
//! power that a measurement taken under the guard includes, as llama.cpp's would.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Workers of one pool polling for work until this is dropped.
#[must_use = "the workers stop polling when the guard is dropped"]
pub struct Polling {
    state: Option<Arc<State>>,
}

struct State {
    stop: AtomicBool,
    /// Workers inside the polling loop.
    running: AtomicUsize,
}

impl Polling {
    /// Make the workers of `pool` other than the calling thread poll for work. Nothing polls
    /// when the pool has one thread, or more threads than the machine has CPUs (a spinning
    /// worker would then take a CPU from one with work).
    pub fn new(pool: &rayon::ThreadPool) -> Polling {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = pool.current_num_threads();
        if threads < 2 || threads > cpus {
            return Polling { state: None };
        }
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        });
        // A caller inside the pool keeps its own thread: it could otherwise pick its own
        // polling job up while it waits on a join, and poll until a drop it never reaches.
        let caller = pool.current_thread_index();
        let s = state.clone();
        pool.spawn_broadcast(move |ctx| {
            if Some(ctx.index()) == caller {
                return;
            }
            s.running.fetch_add(1, Ordering::AcqRel);
            while !s.stop.load(Ordering::Acquire) {
                // Runs whatever the pool has (a split's other half, an `install`ed closure).
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
            s.running.fetch_sub(1, Ordering::AcqRel);
        });
        Polling { state: Some(state) }
    }

    /// Whether any worker was asked to poll.
    pub fn active(&self) -> bool {
        self.state.is_some()
    }
}

impl Drop for Polling {
    /// Stop the loops and wait for those already in one to leave it, so that what follows the
    /// guard (an energy window, an idle baseline) never sees a worker still spinning.
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            s.stop.store(true, Ordering::Release);
            while s.running.load(Ordering::Acquire) > 0 {
                std::thread::yield_now();
            }
        }
    }
}

/// Run `f` inside `pool` with the pool's other workers polling for work throughout.
pub fn install_polling<R: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    let _polling = Polling::new(pool);
    pool.install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_work_completes_under_the_guard_from_outside_and_inside_the_pool() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let sum = |n: u64| -> u64 {
            use rayon::prelude::*;
            (0..n).into_par_iter().sum()
        };
        for n in [10, 1000, 100_000] {
            assert_eq!(install_polling(&pool, || sum(n)), n * (n - 1) / 2);
        }
        // Made by a worker: that worker keeps its thread, so its own joins cannot deadlock.
        let total = pool.install(|| {
            let _inside = Polling::new(&pool);
            (0..50).map(|_| sum(10_000)).sum::<u64>()
        });
        assert_eq!(total, 50 * 10_000 * 9_999 / 2);
    }

    #[test]
    fn nothing_polls_on_one_thread() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        assert!(!Polling::new(&pool).active());
    }
}
