//! Synchronous functions run inline on a link's reader (see `speed.rs` for which), under
//! a watch: a run still going after [`STUCK`] has its link's reading moved to a fresh task,
//! so the link's other calls, the run's own cancel, and calls the run may be waiting for
//! are read and served while it finishes, as they would be had it run on a handler
//! thread. The watch is one thread that wakes every [`TICK`] while inline runs happen and
//! sleeps otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::link::Link;
use crate::sync::lock;

/// How long an inline run may hold its link's reader.
const STUCK: Duration = Duration::from_millis(2);

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
    since: Instant,
    link: Weak<Link>,
}

/// Every thread's slot (threads that ever ran a call inline), and the watch's state.
struct Watch {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The watch thread, to wake it.
    thread: OnceLock<std::thread::Thread>,
    /// The watch sleeps until woken.
    asleep: AtomicBool,
}

fn watch() -> &'static Watch {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    WATCH.get_or_init(|| Watch {
        slots: Mutex::new(Vec::new()),
        thread: OnceLock::new(),
        asleep: AtomicBool::new(true),
    })
}

thread_local! {
    static SLOT: Arc<Slot> = {
        let slot = Arc::new(Slot::default());
        lock(&watch().slots).push(slot.clone());
        slot
    };
}

/// Runs `f` inline for a call of `link`, under the watch.
pub(crate) fn run<T>(link: &Arc<Link>, since: Instant, f: impl FnOnce() -> T) -> T {
    SLOT.with(|slot| {
        *lock(&slot.running) = Some(Running {
            since,
            link: Arc::downgrade(link),
        });
    });
    wake_watch();
    let out = f();
    SLOT.with(|slot| lock(&slot.running).take());
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
        let now = Instant::now();
        let mut any = false;
        let slots: Vec<Arc<Slot>> = lock(&watch.slots).clone();
        for slot in slots {
            let mut running = lock(&slot.running);
            let Some(run) = running.as_ref() else {
                continue;
            };
            any = true;
            if now.duration_since(run.since) < STUCK {
                continue;
            }
            // Taken, so that the link is rescued once for this run.
            let link = running.take().and_then(|run| run.link.upgrade());
            drop(running);
            if let Some(link) = link {
                link.move_reader();
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
