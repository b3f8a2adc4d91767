//! Synchronous functions run inline on a link's reader (see `speed.rs` for which), under
//! a watch: a run still going after [`STUCK`] ticks has its link's reading moved to a
//! fresh task, so the link's other calls, and calls the run may be waiting for, are read
//! and served while it finishes, as they would be had it run on a handler thread; and
//! the function runs on a handler thread for a while. The watch is one thread that ticks
//! every [`TICK`] while inline runs happen and sleeps otherwise; runs note the tick they
//! began at, so an inline run reads no clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::speed::Speed;
use crate::link::Link;
use crate::sync::lock;

/// Ticks an inline run may hold its link's reader: between 2 and 3 ms.
const STUCK: u64 = 3;

/// How often the watch looks while inline runs happen.
const TICK: Duration = Duration::from_millis(1);

/// Idle ticks after which the watch sleeps until the next inline run.
const LINGER: u32 = 100;

/// The inline run of one thread, if one is going.
#[derive(Default)]
struct Slot {
    running: Mutex<Option<Running>>,
}

struct Running {
    /// The watch's tick when the run began.
    since: u64,
    link: Weak<Link>,
    speed: &'static Speed,
}

/// Every thread's slot (threads that ever ran a call inline), and the watch's state.
struct Watch {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The watch thread, to wake it.
    thread: OnceLock<std::thread::Thread>,
    /// The watch sleeps until woken.
    asleep: AtomicBool,
    /// Ticks so far (they stop while the watch sleeps).
    tick: AtomicU64,
}

fn watch() -> &'static Watch {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    WATCH.get_or_init(|| Watch {
        slots: Mutex::new(Vec::new()),
        thread: OnceLock::new(),
        asleep: AtomicBool::new(true),
        tick: AtomicU64::new(0),
    })
}

thread_local! {
    static SLOT: Arc<Slot> = {
        let slot = Arc::new(Slot::default());
        lock(&watch().slots).push(slot.clone());
        slot
    };
}

/// Runs `f` inline for a call of `link` of the function whose record is `speed`, under
/// the watch, timing it now and then.
pub(crate) fn run<T>(link: &Arc<Link>, speed: &'static Speed, f: impl FnOnce() -> T) -> T {
    let watch = watch();
    let started = speed.sample().then(Instant::now);
    SLOT.with(|slot| {
        *lock(&slot.running) = Some(Running {
            since: watch.tick.load(Ordering::Relaxed),
            link: Arc::downgrade(link),
            speed,
        });
    });
    wake_watch();
    let out = f();
    if SLOT.with(|slot| lock(&slot.running).take()).is_none() {
        // The watch found it stuck and moved the reading on (`move_reader`), counting it.
        link.unstuck_inline();
    }
    if let Some(started) = started {
        speed.record(started.elapsed());
    }
    out
}

fn wake_watch() {
    let watch = watch();
    if !watch.asleep.swap(false, Ordering::AcqRel) {
        return;
    }
    let thread = watch.thread.get_or_init(|| {
        // Without a thread the watch does nothing, and inline runs are merely unguarded;
        // spawning fails only when the process is out of threads.
        std::thread::Builder::new()
            .name("net-inline-watch".into())
            .spawn(watch_loop)
            .map(|handle| handle.thread().clone())
            .unwrap_or_else(|_| std::thread::current())
    });
    thread.unpark();
}

fn watch_loop() {
    let watch = watch();
    let mut idle = 0;
    loop {
        std::thread::park_timeout(TICK);
        let now = watch.tick.fetch_add(1, Ordering::Relaxed) + 1;
        let mut any = false;
        let slots: Vec<Arc<Slot>> = lock(&watch.slots).clone();
        for slot in slots {
            let mut running = lock(&slot.running);
            let Some(run) = running.as_ref() else {
                continue;
            };
            any = true;
            if now.saturating_sub(run.since) < STUCK {
                continue;
            }
            // Taken, so that the link is rescued once for this run.
            let stuck = running.take();
            drop(running);
            if let Some(run) = stuck {
                run.speed.mark_long();
                if let Some(link) = run.link.upgrade() {
                    link.move_reader();
                }
            }
        }
        idle = if any { 0 } else { idle + 1 };
        if idle >= LINGER {
            idle = 0;
            watch.asleep.store(true, Ordering::Release);
            // A run that began after the last look and before `asleep` was set has
            // found the watch awake and not woken it: look again before sleeping.
            if lock(&watch.slots)
                .iter()
                .any(|s| lock(&s.running).is_some())
            {
                watch.asleep.store(false, Ordering::Release);
                continue;
            }
            while watch.asleep.load(Ordering::Acquire) {
                std::thread::park();
            }
        }
    }
}
