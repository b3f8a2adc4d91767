//! The threads that run synchronous handlers, off the async workers: a shared queue that
//! busy threads drain one job after another, with more threads woken or started only
//! when the running ones are stuck in slow handlers.
//!
//! Why not `tokio::task::spawn_blocking`: it hands every job to a thread of its own the
//! moment no thread is idle, so a burst of 64 quick calls wakes or starts dozens of
//! threads, and each job pays two thread switches. On the call benchmark that was most
//! of the server's time. Here a thread that finishes a job takes the next one without
//! sleeping; a sleeping thread is woken only when no thread is running, or when no job
//! has started for a whole [`TICK`] of the pool's watchdog while some run: they are then
//! stuck in slow handlers. A slow handler therefore delays the calls queued behind it by
//! a millisecond or two, and never blocks them. (Ticks rather than clock reads: reading
//! the clock on every job showed in the call benchmark.)

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The watchdog's period while the pool is in use: it counts ticks, and gives queued
/// jobs a thread when the running ones are stuck and no new job came to notice it.
const TICK: Duration = Duration::from_millis(1);

/// Idle ticks after which the watchdog sleeps until the next job.
const LINGER_TICKS: u32 = 50;

/// Most threads the pool runs (as tokio's blocking pool); past it jobs wait in the queue.
const MAX_THREADS: usize = 512;

/// An idle thread exits after this long without work.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Jobs a thread takes in a row before it runs its deferred work anyway.
const DEFER_AT_MOST: u32 = 32;

/// A job: runs a handler and delivers its reply itself.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Work a handler thread runs once it finds no job queued.
type Deferred = Box<dyn FnOnce()>;

thread_local! {
    /// On handler threads: work deferred until the thread finds no job queued (see
    /// [`when_idle`]). `None` on every other thread.
    static DEFERRED: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Runs `f` once this handler thread finds no job queued, or after [`DEFER_AT_MOST`]
/// more; at once on any other thread. Replies to a burst of calls thus go out in one
/// write.
pub(crate) fn when_idle(f: Deferred) {
    let now = DEFERRED.with(|deferred| match deferred.borrow_mut().as_mut() {
        Some(list) => {
            list.push(f);
            None
        }
        None => Some(f),
    });
    if let Some(f) = now {
        f();
    }
}

/// Runs the work deferred on this thread (nothing on other threads).
pub(crate) fn run_deferred() {
    loop {
        let list = DEFERRED.with(|deferred| {
            deferred
                .borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        });
        if list.is_empty() {
            return;
        }
        for f in list {
            let _ = catch_unwind(AssertUnwindSafe(f));
        }
    }
}

/// Runs `job` on a handler thread.
pub(crate) fn run(job: Job) {
    pool().submit(job);
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            threads: 0,
            idle: Vec::new(),
            wakeups: 0,
            starting: 0,
            running: 0,
            tick: 0,
            started_at: 0,
            watchdog: false,
            watchdog_parked: false,
        }),
        watch: Condvar::new(),
    })
}

struct Pool {
    state: Mutex<State>,
    /// The watchdog waits here.
    watch: Condvar,
}

/// An idle handler thread, parked until a job needs it.
struct Sleeper {
    thread: std::thread::Thread,
    /// Set (under the pool's lock) when `add_thread` takes it off `idle`.
    woken: AtomicBool,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads alive: idle, on their way, or running a job.
    threads: usize,
    /// Threads parked waiting for work that nobody has woken yet, the most recently
    /// idle last.
    idle: Vec<Arc<Sleeper>>,
    /// Wake-ups sent to idle threads and not yet taken: a woken thread will take a
    /// queued job, so nobody else needs waking for it.
    wakeups: usize,
    /// Threads started that have not yet looked at the queue (likewise).
    starting: usize,
    /// Threads running a job; each looks at the queue again when its job ends.
    running: usize,
    /// Watchdog ticks so far (they stop while it sleeps, when nothing runs).
    tick: u64,
    /// The tick at which the last job started: if a whole tick has passed since, every
    /// running thread has been in its job for at least that long.
    started_at: u64,
    /// The watchdog thread runs (it starts with the first thread and never ends).
    watchdog: bool,
    /// The watchdog sleeps until notified: the pool was idle for [`LINGER_TICKS`].
    watchdog_parked: bool,
}

impl State {
    /// A queued job needs a thread woken or started: none is on its way, and none runs,
    /// or the running ones are stuck (no job started for a whole tick).
    fn needs_thread(&self) -> bool {
        !self.queue.is_empty()
            && self.wakeups == 0
            && self.starting == 0
            && (self.running == 0 || self.tick >= self.started_at + 2)
    }
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let mut state = self.lock();
        state.queue.push_back(job);
        let wake = match state.needs_thread() {
            true => self.add_thread(&mut state),
            false => None,
        };
        let watch = std::mem::take(&mut state.watchdog_parked);
        // Woken after unlocking: a thread woken while the lock is held would wake only to
        // wait for it, a second thread switch.
        drop(state);
        if let Some(sleeper) = wake {
            sleeper.thread.unpark();
        }
        if watch {
            self.watch.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock; nothing under it panics.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a thread, or takes the most recently idle one off `idle` (its cache is the
    /// warmest) and returns it: the caller unparks it once the lock is released.
    fn add_thread(&'static self, state: &mut State) -> Option<Arc<Sleeper>> {
        if let Some(sleeper) = state.idle.pop() {
            sleeper.woken.store(true, Ordering::Release);
            state.wakeups += 1;
            return Some(sleeper);
        }
        if state.threads >= MAX_THREADS {
            return None;
        }
        if !state.watchdog {
            let started = std::thread::Builder::new()
                .name("net-handler-watchdog".into())
                .spawn(move || self.watchdog());
            state.watchdog = started.is_ok();
        }
        let started = std::thread::Builder::new()
            .name("net-handler".into())
            .spawn(move || self.work());
        // Out of threads: the queued jobs wait for a running thread instead.
        if started.is_ok() {
            state.threads += 1;
            state.starting += 1;
        }
        None
    }

    /// A handler thread: takes jobs until none comes for [`KEEP_ALIVE`].
    fn work(&self) {
        DEFERRED.with(|deferred| *deferred.borrow_mut() = Some(Vec::new()));
        let me = Arc::new(Sleeper {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
        });
        let mut state = self.lock();
        // Started by `add_thread`, which counted this thread as starting.
        state.starting -= 1;
        let mut in_a_row = 0;
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                state.started_at = state.tick;
                drop(state);
                // Jobs catch their handler's panic; this guards the thread against one
                // in the delivery of the reply.
                let _ = catch_unwind(AssertUnwindSafe(job));
                in_a_row += 1;
                state = self.lock();
                state.running -= 1;
                if state.queue.is_empty() || in_a_row >= DEFER_AT_MOST {
                    drop(state);
                    run_deferred();
                    in_a_row = 0;
                    state = self.lock();
                }
                continue;
            }
            me.woken.store(false, Ordering::Relaxed);
            state.idle.push(me.clone());
            drop(state);
            let until = Instant::now() + KEEP_ALIVE;
            loop {
                std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
                if me.woken.load(Ordering::Acquire) || Instant::now() >= until {
                    break;
                }
            }
            state = self.lock();
            if me.woken.load(Ordering::Acquire) {
                // Taken off `idle` by `add_thread`.
                state.wakeups -= 1;
                continue;
            }
            // Timed out with nobody taking it: leave, unless work came meanwhile.
            state.idle.retain(|sleeper| !Arc::ptr_eq(sleeper, &me));
            if state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }

    /// Every [`TICK`] while the pool is in use: counts the tick and gives queued jobs a
    /// thread if the running ones are stuck and no new job came to notice it.
    fn watchdog(&'static self) {
        let mut state = self.lock();
        let mut idle_ticks = 0;
        loop {
            state = self
                .watch
                .wait_timeout(state, TICK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.tick += 1;
            if state.needs_thread() {
                if let Some(sleeper) = self.add_thread(&mut state) {
                    sleeper.thread.unpark();
                }
            }
            if !state.queue.is_empty() || state.running > 0 {
                idle_ticks = 0;
                continue;
            }
            idle_ticks += 1;
            if idle_ticks >= LINGER_TICKS {
                idle_ticks = 0;
                state.watchdog_parked = true;
                while state.watchdog_parked {
                    state = self.watch.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn a_burst_of_quick_jobs_all_run() {
        let (tx, rx) = mpsc::channel();
        for i in 0..1_000 {
            let tx = tx.clone();
            run(Box::new(move || {
                let _ = tx.send(i);
            }));
        }
        let mut got: Vec<i32> = (0..1_000).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    }

    #[test]
    fn slow_jobs_do_not_stall_quick_ones() {
        // Several slow jobs at once: each needs a thread of its own, started as the
        // earlier ones are seen to be stuck.
        let slow = 4;
        let (done, finished) = mpsc::channel();
        for _ in 0..slow {
            let done = done.clone();
            run(Box::new(move || {
                std::thread::sleep(Duration::from_millis(800));
                let _ = done.send(());
            }));
        }
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        run(Box::new(move || {
            let _ = tx.send(());
        }));
        rx.recv_timeout(Duration::from_millis(400))
            .expect("a quick job waited for the slow ones");
        assert!(started.elapsed() < Duration::from_millis(400));
        for _ in 0..slow {
            finished.recv().unwrap();
        }
    }
}
