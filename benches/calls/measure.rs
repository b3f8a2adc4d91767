//! Measuring: percentiles, rates over a timed window, and running work on a given runtime.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::Plan;

/// Runs `work` as a task on `rt`, so that it runs on that runtime's worker like the rest
/// of its side, rather than on the main thread that `block_on` would poll it on.
pub fn run_on<T: Send + 'static>(
    rt: &Runtime,
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(rt.spawn(work))
        .expect("a benchmark task panicked")
}

pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// Percentiles of a set of samples.
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// The median of per-round rates.
pub fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or_default()
}

/// Runs `workers` for the warm-up, then counts what they complete in the measured window.
/// Each worker loops until `stop` and adds one to `done` per completed round trip.
pub async fn rate<Fut>(
    plan: Plan,
    workers: Vec<Fut>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> f64
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(plan.warmup_for).await;
    let before = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(plan.measure_for).await;
    let after = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("a benchmark worker panicked");
    }
    (after - before) as f64 / elapsed.as_secs_f64()
}
