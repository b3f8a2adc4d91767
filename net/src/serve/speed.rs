//! How long each synchronous function takes, and so where it runs: on the link's reader,
//! inline, when it has shown itself quick; on a handler thread otherwise.
//!
//! A call run inline costs no thread hop and no wake-up: the reply is written by the same
//! task that read the call, in the same write as the other replies of that read (on the
//! call benchmark, the hop to a handler thread was half of a sequential round trip). A
//! function that takes long would hold the reader, and with it the other calls of its
//! link, so a function runs inline only once it has run [`LEARN`] times, each of its
//! recent runs was short, and it has had no long run for a while; one long run sends it
//! back to the handler threads. `inline.rs` guards the rest: a run that turns out long
//! after it started inline has its link's reading moved to another task.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Runs a function makes on handler threads before it may run inline.
const LEARN: u32 = 8;

/// A run longer than this is long: the function leaves the reader.
const LONG: Duration = Duration::from_micros(500);

/// The average run (weighted to the recent ones) under which a function may run inline.
const QUICK: Duration = Duration::from_micros(100);

/// Runs after a long one before the function may run inline again.
const PENALTY: u32 = 256;

/// Of a quick function's inline runs, one in this many is timed (reading the clock
/// twice per call showed in the call benchmark); a run that turns long is caught by the
/// watch in `inline.rs` anyway.
const SAMPLE: u32 = 8;

/// The running record of one function.
#[derive(Debug, Default)]
pub(crate) struct Speed {
    /// Runs recorded (saturating).
    runs: AtomicU32,
    /// Exponentially weighted average run time in nanoseconds (weight 1/8 per run).
    average_ns: AtomicU64,
    /// Runs left before the function may run inline again after a long run.
    penalty: AtomicU32,
    /// Inline runs of a quick function, timed or not, for [`Speed::sample`].
    skipped: AtomicU32,
}

impl Speed {
    /// Whether the next call may run inline on the reader.
    pub(crate) fn quick(&self) -> bool {
        self.runs.load(Ordering::Relaxed) >= LEARN
            && self.penalty.load(Ordering::Relaxed) == 0
            && self.average_ns.load(Ordering::Relaxed) <= QUICK.as_nanos() as u64
    }

    /// Whether to time this run: every run until the function is known quick, then one in
    /// [`SAMPLE`].
    pub(crate) fn sample(&self) -> bool {
        let runs = self.runs.load(Ordering::Relaxed);
        if runs < LEARN || self.penalty.load(Ordering::Relaxed) > 0 {
            return true;
        }
        // Counted here rather than in `record`, which the untimed runs skip.
        let skipped = self.skipped.fetch_add(1, Ordering::Relaxed);
        skipped % SAMPLE == 0
    }

    /// A run was seen to take long while it still ran.
    pub(crate) fn mark_long(&self) {
        self.penalty.store(PENALTY, Ordering::Relaxed);
    }

    /// Records one run. Relaxed and racy on purpose: a lost update only delays a
    /// decision by a run.
    pub(crate) fn record(&self, took: Duration) {
        let ns = took.as_nanos().min(u128::from(u64::MAX / 8)) as u64;
        let runs = self.runs.load(Ordering::Relaxed);
        self.runs.store(runs.saturating_add(1), Ordering::Relaxed);
        let average = self.average_ns.load(Ordering::Relaxed);
        let average = if runs == 0 {
            ns
        } else {
            average - average / 8 + ns / 8
        };
        self.average_ns.store(average, Ordering::Relaxed);
        if took > LONG {
            self.penalty.store(PENALTY, Ordering::Relaxed);
        } else {
            let left = self.penalty.load(Ordering::Relaxed);
            if left > 0 {
                self.penalty.store(left - 1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_functions_go_inline_after_learning_and_a_long_run_sends_them_back() {
        let speed = Speed::default();
        for _ in 0..LEARN - 1 {
            speed.record(Duration::from_micros(5));
            assert!(!speed.quick(), "still learning");
        }
        speed.record(Duration::from_micros(5));
        assert!(speed.quick());
        speed.record(Duration::from_millis(3));
        assert!(!speed.quick(), "a long run sends it back");
        for _ in 0..PENALTY {
            speed.record(Duration::from_micros(5));
        }
        assert!(speed.quick(), "short runs bring it back");
    }

    #[test]
    fn a_slow_average_keeps_a_function_on_the_handler_threads() {
        let speed = Speed::default();
        for _ in 0..100 {
            speed.record(Duration::from_micros(300));
        }
        assert!(!speed.quick());
    }
}
