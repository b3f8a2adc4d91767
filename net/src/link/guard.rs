//! The guard of a peer's links: the limits every link is held to (`NET_*` settings in
//! [`Limits`]), the peer's memory budget, and one task that looks at every link a few
//! times a second and enforces the deadlines a remote could otherwise stretch at will:
//!
//! - a frame that has started must keep arriving at `NET_MIN_RATE` after a grace of
//!   `NET_FRAME_TIMEOUT` (it must be whole by the grace plus its bytes so far at that
//!   rate), and may not stall for a whole `NET_FRAME_TIMEOUT`, else the link closes with
//!   an error frame saying so;
//! - what this side queued must be taken by the other by the same rules, else the same;
//! - a link with nothing in flight in either direction for `NET_IDLE_TIMEOUT` is asked to
//!   part: its reader sends `{"goodbye":{"reason":"idle"}}` and closes, and the next call
//!   opens a new link; a retired link (one of two to the same peer) parts at its first
//!   quiet look;
//! - all links together hold at most `NET_PEER_MEMORY`: past it the one holding the most
//!   is closed.
//!
//! The hot path pays nothing for it but a few relaxed atomics: the reader counts bytes
//! (`meter.rs`), the writer counts what it wrote, and only the guard reads a clock, once
//! per tick. Why a sweep and not a timer per link: a timer reset per read costs more than
//! the read, and a thousand idle links cost a thousand timers; one sweep over a thousand
//! links is a few microseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::meter::Meter;
use super::Link;
use crate::config::Limits;
use crate::sync::lock;
use crate::wire::Frame;

/// What a link sends when it parts for being idle (docs/PROTOCOL.md section 7).
pub(super) const IDLE_GOODBYE: &[u8] = br#"{"goodbye":{"reason":"idle"}}"#;

/// `quiet_since` of a link that is not quiet.
pub(super) const NOT_QUIET: u64 = u64::MAX;

/// Bytes the peer's connections may make it hold, shared by all of them: large frames
/// take their size before their body is read and give it back once read; app-net
/// requests take what they buffer.
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
    /// Readers waiting for room, woken when some is given back.
    waiting: Mutex<Vec<Waker>>,
    /// The same, for async code that waits with [`Budget::reserve`].
    relief: Notify,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit,
            waiting: Mutex::new(Vec::new()),
            relief: Notify::new(),
        }
    }

    /// Bytes taken now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes if they fit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.limit).then_some(used + n)
            })
            .is_ok()
    }

    /// Takes `n` bytes, waiting for room.
    pub(crate) async fn reserve(&self, n: usize) {
        loop {
            let relief = self.relief.notified();
            tokio::pin!(relief);
            relief.as_mut().enable();
            if self.try_reserve(n) {
                return;
            }
            relief.await;
        }
    }

    /// Gives back `n` bytes and wakes whoever waits for room.
    pub(crate) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        let woken = std::mem::take(&mut *lock(&self.waiting));
        for waker in woken {
            waker.wake();
        }
        self.relief.notify_waiters();
    }

    /// Wakes `waker` at the next release.
    pub(super) fn wait(&self, waker: &Waker) {
        let mut waiting = lock(&self.waiting);
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }
}

/// A link's side of the guard: what its reader, its calls and the guard share.
pub(super) struct Watched {
    /// What the reader has read.
    pub(super) meter: Arc<Meter>,
    /// The guard's clock (ms) when the link last became quiet, or [`NOT_QUIET`]; the
    /// listener reclaims the quiet-longest link when the peer is full.
    pub(super) quiet_since: AtomicU64,
    /// The guard asks the reader to part for idleness (only the reader may: it alone knows
    /// that no frame is half-served).
    pub(super) idle_close: AtomicBool,
    /// Wakes the reader for that.
    pub(super) reader: AtomicWaker,
    /// The link is one of two to the same peer and gives way to the other: it parts as
    /// soon as it is quiet, without waiting for `NET_IDLE_TIMEOUT`.
    pub(super) retired: AtomicBool,
    /// The link ended with an idle goodbye, from either side: calls it failed had not
    /// run, and may be sent again on a new link.
    pub(super) parted_idle: AtomicBool,
    /// The other side's calls registered here (`serving.len()`), readable without the lock.
    pub(super) serving: AtomicUsize,
    /// Bytes of the frames of those calls.
    pub(super) inflight_bytes: AtomicUsize,
    /// The reader waits for relief (calls to end, replies to be taken).
    pub(super) paused: AtomicBool,
    /// Signalled when a call ends while the reader waits.
    pub(super) relief: Notify,
    /// Inline runs that turned long and still run (not in `serving`).
    pub(super) stuck_inline: AtomicUsize,
    /// One-way calls running on threads or tasks (not in `serving` either).
    pub(super) detached: AtomicUsize,
}

impl Watched {
    pub(super) fn new() -> Watched {
        Watched {
            meter: Arc::new(Meter::default()),
            quiet_since: AtomicU64::new(NOT_QUIET),
            idle_close: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            retired: AtomicBool::new(false),
            parted_idle: AtomicBool::new(false),
            serving: AtomicUsize::new(0),
            inflight_bytes: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            relief: Notify::new(),
            stuck_inline: AtomicUsize::new(0),
            detached: AtomicUsize::new(0),
        }
    }
}

/// The limits and deadlines of one peer's links.
pub(crate) struct Guard {
    pub(crate) limits: Limits,
    /// The peer's memory budget (`NET_PEER_MEMORY`).
    pub(crate) budget: Arc<Budget>,
    /// The links looked after, with what the last tick saw of each.
    links: Mutex<Vec<Record>>,
    /// Where the guard's clock starts.
    epoch: Instant,
    /// The guard's clock, in ms since `epoch`, as of the last tick: a coarse time that
    /// costs a load to read.
    now_ms: AtomicU64,
}

/// What the guard saw of one link at its last tick.
struct Record {
    link: Weak<Link>,
    bytes_in: u64,
    bytes_out: u64,
    /// When `bytes_in` last moved.
    read_at: Instant,
    /// When `bytes_out` last moved.
    written_at: Instant,
    /// The frame in progress (its number) and when the guard first saw it, moved on by
    /// the time the reader was held back by this side.
    frame: Option<(u64, Instant)>,
    /// Since when something has waited to go out, and how much had gone out then.
    out: Option<(Instant, u64)>,
    /// Since when the link has been quiet and inactive.
    quiet: Option<Instant>,
}

/// What a tick decided for a link, done once the guard's lock is released.
enum Verdict {
    Close(Arc<Link>, String),
    /// Close, dropping what waits to go out: the other side does not take it.
    Drop(Arc<Link>, String),
    Part(Arc<Link>),
}

impl Guard {
    pub(crate) fn new(limits: Limits) -> Arc<Guard> {
        Arc::new(Guard {
            budget: Arc::new(Budget::new(limits.peer_memory)),
            limits,
            links: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            now_ms: AtomicU64::new(0),
        })
    }

    /// The guard's coarse clock, in ms (as of its last tick).
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    /// How often it looks: an eighth of the shortest deadline, between 10 and 250 ms.
    fn tick(&self) -> Duration {
        let l = &self.limits;
        let shortest = l.frame_timeout.min(l.idle_timeout).min(l.hello_timeout);
        (shortest / 8).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// Looks after `link` from now on.
    pub(super) fn watch(&self, link: &Arc<Link>) {
        lock(&self.links).push(Record {
            link: Arc::downgrade(link),
            bytes_in: 0,
            bytes_out: 0,
            read_at: Instant::now(),
            written_at: Instant::now(),
            frame: None,
            out: None,
            quiet: None,
        });
    }

    /// Ticks until `stop` is cancelled.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let tick = self.tick();
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.cancelled() => return,
            }
            self.look(tick);
        }
    }

    /// One look at every link.
    fn look(&self, tick: Duration) {
        let now = Instant::now();
        let now_ms = now.duration_since(self.epoch).as_millis() as u64;
        self.now_ms.store(now_ms, Ordering::Relaxed);
        let l = &self.limits;
        let mut verdicts = Vec::new();
        let mut held = 0usize;
        let mut heaviest: Option<(usize, Arc<Link>)> = None;
        lock(&self.links).retain_mut(|record| {
            let Some(link) = record.link.upgrade().filter(|link| link.is_open()) else {
                return false;
            };
            let watched = &link.watched;
            let meter = &watched.meter;
            let bytes_in = meter.bytes_in.load(Ordering::Relaxed);
            let bytes_out = link.outbox.written();
            let active = bytes_in != record.bytes_in || bytes_out != record.bytes_out;
            if bytes_in != record.bytes_in {
                record.read_at = now;
            }
            if bytes_out != record.bytes_out {
                record.written_at = now;
            }
            record.bytes_in = bytes_in;
            record.bytes_out = bytes_out;

            // A frame in progress must keep up the minimum rate.
            let partial = meter.partial.load(Ordering::Relaxed);
            let frame = meter.frames.load(Ordering::Relaxed);
            // Held back by this side's reader, the time does not count; waiting for room
            // in the budget does (else a flood of large frames would hold their
            // connections for as long as the budget stays full).
            let held_back = watched.paused.load(Ordering::Relaxed);
            if held_back {
                record.read_at = now;
            }
            record.frame = match record.frame {
                _ if partial == 0 => None,
                Some((n, since)) if n == frame => {
                    // Time this side held the reader back does not count.
                    let since = if held_back { since + tick } else { since };
                    let allowed = l.frame_timeout + rate_time(partial, l.min_rate);
                    let stalled = !held_back
                        && now.saturating_duration_since(record.read_at) > l.frame_timeout;
                    if stalled {
                        verdicts.push(Verdict::Close(
                            link.clone(),
                            format!(
                                "a frame stalled: {partial} bytes of it, then nothing for {:?} \
                                 (NET_FRAME_TIMEOUT)",
                                l.frame_timeout
                            ),
                        ));
                    } else if now.saturating_duration_since(since) > allowed {
                        verdicts.push(Verdict::Close(
                            link.clone(),
                            format!(
                                "a frame arrived too slowly: {partial} bytes in {:.1?}, under \
                                 the minimum rate of {} bytes/s after a grace of {:?} \
                                 (NET_MIN_RATE, NET_FRAME_TIMEOUT)",
                                now.saturating_duration_since(since),
                                l.min_rate,
                                l.frame_timeout
                            ),
                        ));
                    }
                    Some((n, since))
                }
                _ => Some((frame, now)),
            };

            // What waits to go out must be taken at the minimum rate too (counted only
            // while it waits for the socket: replies a handler thread will flush once
            // its queue is empty are this side's doing).
            let backlog = link.outbox.backlog();
            let stuck = link.outbox.waiting_on_socket();
            record.out = match record.out {
                _ if stuck == 0 => None,
                Some((since, at)) => {
                    let taken = bytes_out.saturating_sub(at) as usize;
                    let allowed = l.frame_timeout + rate_time(taken, l.min_rate);
                    let stalled = now.saturating_duration_since(record.written_at.max(since))
                        > l.frame_timeout;
                    if stalled || now.saturating_duration_since(since) > allowed {
                        verdicts.push(Verdict::Drop(
                            link.clone(),
                            format!(
                                "the peer does not take what is sent to it: {backlog} bytes \
                                 wait, {taken} taken in {:.1?}, under the minimum rate of {} \
                                 bytes/s (NET_MIN_RATE, NET_FRAME_TIMEOUT)",
                                now.saturating_duration_since(since),
                                l.min_rate
                            ),
                        ));
                    }
                    Some((since, at))
                }
                None => Some((now, bytes_out)),
            };

            // Idle: quiet (nothing in flight either way) and inactive.
            if active || partial > 0 || backlog > 0 || !link.quiet() {
                record.quiet = None;
                watched.quiet_since.store(NOT_QUIET, Ordering::Relaxed);
            } else {
                let since = *record.quiet.get_or_insert(now);
                let since_ms = now_ms.saturating_sub(now.duration_since(since).as_millis() as u64);
                watched.quiet_since.store(since_ms, Ordering::Relaxed);
                if now.duration_since(since) >= l.idle_timeout
                    || watched.retired.load(Ordering::Relaxed)
                {
                    verdicts.push(Verdict::Part(link.clone()));
                }
            }

            let holds = backlog + watched.inflight_bytes.load(Ordering::Relaxed);
            held += holds;
            if heaviest.as_ref().is_none_or(|(most, _)| holds > *most) {
                heaviest = Some((holds, link.clone()));
            }
            true
        });
        if held + self.budget.used() > l.peer_memory {
            if let Some((holds, link)) = heaviest {
                verdicts.push(Verdict::Close(
                    link,
                    format!(
                        "the peer's memory budget is spent ({} bytes, NET_PEER_MEMORY); this \
                         connection held the most: {holds} bytes of calls and replies",
                        l.peer_memory
                    ),
                ));
            }
        }
        for verdict in verdicts {
            match verdict {
                Verdict::Close(link, message) => {
                    tracing::warn!(peer = %link.label, %message, "closing connection");
                    link.shut(
                        &message,
                        Some(&Frame::Error {
                            message: message.clone(),
                        }),
                    );
                }
                Verdict::Drop(link, message) => {
                    tracing::warn!(peer = %link.label, %message, "closing connection");
                    link.outbox.discard_queued();
                    link.shut(
                        &message,
                        Some(&Frame::Error {
                            message: message.clone(),
                        }),
                    );
                }
                Verdict::Part(link) => link.ask_to_part(),
            }
        }
    }
}

/// How long `bytes` take at `rate` bytes per second.
fn rate_time(bytes: usize, rate: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64)
}
