//! The one place where a call from another peer becomes a handler run and a reply:
//! [`Server`] is what every link hands its inbound calls to. Synchronous functions run on
//! a handler thread that also sends the reply (no task, no timer); async ones on a task of
//! their own within the caller's budget; a panic becomes the caller's `Remote` error.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::registry::{Args, Handler};
use super::{inline, run, Caller, Host};
use crate::link::{Flush, Guard, Inbound, Job, Link};
use crate::wire::{CallIn, WireOutcome};

/// Serves the functions of this program to the links of one peer.
pub(crate) struct Server {
    /// The peer served for, erased (this layer is below the peer's), handed to handlers in
    /// their [`Caller`]; weak, so that links never keep a dropped peer alive.
    host: Weak<dyn std::any::Any + Send + Sync>,
    /// Handler tasks and threads count as the peer's tasks, so that shutdown waits for
    /// them.
    tracker: TaskTracker,
    /// Told when a link's other side says goodbye: the peer passes the news up.
    goodbye: Box<dyn Fn(&Link) + Send + Sync>,
    /// The peer's limits, which its links are held to; `None` in tests of this layer.
    guard: Option<Arc<Guard>>,
}

impl Server {
    pub(crate) fn new(
        host: Weak<dyn std::any::Any + Send + Sync>,
        tracker: TaskTracker,
        goodbye: impl Fn(&Link) + Send + Sync + 'static,
        guard: Option<Arc<Guard>>,
    ) -> Server {
        Server {
            host,
            tracker,
            goodbye: Box::new(goodbye),
            guard,
        }
    }

    /// Most handler threads one link's calls may hold (`NET_CONN_THREADS`).
    fn thread_share(&self) -> usize {
        self.guard
            .as_ref()
            .map_or(usize::MAX, |g| g.limits.conn_threads)
    }
}

impl Inbound for Server {
    fn goodbye(&self, link: &Link) {
        (self.goodbye)(link);
    }

    fn guard(&self) -> Option<Arc<Guard>> {
        self.guard.clone()
    }

    fn opened(&self, link: &Arc<Link>) {
        // An accepted connection's slot now holds a link (outgoing links hold none).
        super::slots::became_link(link);
    }

    /// Runs a call from the other side and replies. A quick synchronous function runs
    /// right here on the reader, its reply going out with the others of this read; a
    /// slow or unknown one on a handler thread, which sends its reply itself; an async one
    /// is polled here once and, if not done, goes on as a task of its own within the
    /// caller's budget.
    fn call(&self, link: &Arc<Link>, call: CallIn<'_>, bytes: &Bytes, attachments: Vec<Bytes>) {
        let Some(host): Option<Host> = self.host.upgrade() else {
            return;
        };
        let id = call.id;
        let oneway = call.oneway;
        let (entry, speed) = match run::lookup(&call.tag) {
            Ok(found) => found,
            Err(outcome) => {
                if !oneway && !refuse_duplicate(link, id) {
                    link.reply(id, outcome, String::new, Flush::Caller);
                }
                return;
            }
        };
        let named = call.kwargs;
        match entry.handler {
            Handler::Sync(_) if speed.quick() => {
                if !oneway && refuse_duplicate(link, id) {
                    return;
                }
                // Nothing can cancel it but the end of the link: the reader that would
                // read a cancel is busy running it.
                let caller = Caller::remote(link.clone(), host, None);
                let args = Args::borrowed(call.args, named, attachments);
                let outcome = inline::run(link, speed, || run::run_inline(entry, args, caller));
                if !oneway && link.is_open() {
                    link.reply(id, outcome, || entry.tag(), Flush::Caller);
                }
            }
            Handler::Sync(_) => {
                let budget = call.timeout_ms.map(Duration::from_millis);
                // The budget is enforced by the link's sweep.
                let size = frame_size(bytes, &attachments);
                let Some(cancel) = self.begin(link, id, oneway, budget, size) else {
                    return;
                };
                let detached = oneway.then(|| Detached::new(link));
                let caller = Caller::remote(link.clone(), host, Some(cancel.clone()));
                let link = link.clone();
                // Counts as a task of the peer, so that shutdown waits for it.
                let running = self.tracker.token();
                // The arguments stay in the frame's bytes (shared, not copied) until the
                // handler thread copies them out: memory allocated and freed on one
                // thread is much cheaper than memory passed between threads.
                let args = bytes.slice_ref(call.args.get().as_bytes());
                let job_link = link.clone();
                let job: Job = Box::new(move || {
                    let link = job_link;
                    let _running = running;
                    let _detached = detached;
                    // Given up on (cancel, budget spent, link gone) before it could
                    // start: skip it. A one-way call runs whatever happens to the link,
                    // as its sender was told it was delivered.
                    if !oneway && cancel.is_cancelled() {
                        link.finish(id);
                        return;
                    }
                    // Replies deferred on this thread go out first unless this run is
                    // known to be quick.
                    if !speed.quick() {
                        run::flush_deferred();
                    }
                    let started = Instant::now();
                    let outcome = match raw_args(&args) {
                        Some(positional) => {
                            let args = Args::owned(positional, named, attachments);
                            run::run_inline(entry, args, caller)
                        }
                        None => WireOutcome::BadArgs {
                            message: "the arguments are not JSON".into(),
                        },
                    };
                    speed.record(started.elapsed());
                    // Only if still wanted: a cancel or the sweep removed the entry.
                    if oneway || !link.finish(id) {
                        return;
                    }
                    link.reply(id, outcome, || entry.tag(), Flush::Caller);
                    // Sent once this thread has no more queued calls, with their replies.
                    link.promise_flush(run::when_idle);
                });
                // Within the link's share of the threads; past it, after its earlier calls.
                let share = link.clone();
                link.on_thread(self.thread_share(), job, move |job| {
                    run::on_handler_thread(move || {
                        job();
                        while let Some(next) = share.thread_done() {
                            next();
                        }
                    })
                });
            }
            Handler::Async(_) => {
                // The budget is enforced by the task's timer, below.
                let size = frame_size(bytes, &attachments);
                let Some(cancel) = self.begin(link, id, oneway, None, size) else {
                    return;
                };
                let detached = oneway.then(|| Detached::new(link));
                let caller = Caller::remote(link.clone(), host, Some(cancel.clone()));
                let args = Args::borrowed(call.args, named, attachments);
                let mut work = run::start_async(entry, args, caller);
                // The first poll runs here: an async function that does not wait finishes
                // without a task of its own (a spawn and a wake-up saved per call).
                let mut noop = Context::from_waker(Waker::noop());
                let first = inline::run(link, speed, || Pin::new(&mut work).poll(&mut noop));
                if let Poll::Ready(outcome) = first {
                    if !oneway && link.finish(id) {
                        link.reply(id, outcome, || entry.tag(), Flush::Caller);
                    }
                    return;
                }
                let budget = call.timeout_ms.map(Duration::from_millis);
                let task_link = link.clone();
                let task = self.tracker.spawn(async move {
                    let link = task_link;
                    let _detached = detached;
                    let outcome = match budget {
                        Some(budget) => match tokio::time::timeout(budget, work).await {
                            Ok(outcome) => outcome,
                            // The caller has given up too; nobody waits for a reply. A
                            // synchronous function it called back sees the cancel
                            // through its Caller.
                            Err(_) => {
                                cancel.cancel();
                                link.finish(id);
                                return;
                            }
                        },
                        None => work.await,
                    };
                    if oneway || !link.finish(id) {
                        return;
                    }
                    link.reply(id, outcome, || entry.tag(), Flush::Task);
                });
                if !oneway {
                    link.set_abort(id, task.abort_handle());
                }
            }
        }
    }
}

impl Server {
    /// Registers call `id` as running, so that a cancel, a budget (`deadline`, for
    /// synchronous calls) or the end of the link stops it; `None` (and the caller told
    /// why) when its id is already in flight.
    fn begin(
        &self,
        link: &Arc<Link>,
        id: u64,
        oneway: bool,
        deadline: Option<Duration>,
        size: usize,
    ) -> Option<CancellationToken> {
        if oneway {
            return Some(link.oneway_token());
        }
        match link.begin(id, deadline, size) {
            Ok(cancel) => Some(cancel),
            Err(_duplicate) => {
                link.reply(id, duplicate(id), String::new, Flush::Caller);
                None
            }
        }
    }
}

/// A one-way call running off the reader: the link is not idle until it ends.
struct Detached(Arc<Link>);

impl Detached {
    fn new(link: &Arc<Link>) -> Detached {
        link.detached();
        Detached(link.clone())
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.detached_done();
    }
}

/// The bytes a call's frame holds while it runs: its JSON and its attachments.
fn frame_size(json: &Bytes, attachments: &[Bytes]) -> usize {
    json.len() + attachments.iter().map(Bytes::len).sum::<usize>()
}

/// Answers call `id` that its id is already in flight, if it is: its reply would be
/// ambiguous and its cancel would hit the wrong call. True if refused.
fn refuse_duplicate(link: &Link, id: u64) -> bool {
    let refused = link.is_serving(id);
    if refused {
        link.reply(id, duplicate(id), String::new, Flush::Caller);
    }
    refused
}

fn duplicate(id: u64) -> WireOutcome {
    WireOutcome::BadArgs {
        message: format!("request id {id} is already in flight on this connection"),
    }
}

/// The arguments of a call, copied out of its frame.
fn raw_args(bytes: &[u8]) -> Option<Box<RawValue>> {
    // Already parsed as JSON when the frame was read; this only makes it owned.
    let text = std::str::from_utf8(bytes).ok()?;
    RawValue::from_string(text.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    /// The serving layer alone, over an in-memory link: sync and async functions, typed
    /// errors, panics, unknown tags and a reused request id, with no socket and no peer.
    mod in_memory {
        use std::any::Any;
        use std::sync::Arc;
        use std::time::Duration;

        use bytes::Bytes;
        use tokio_util::task::TaskTracker;

        use crate::link::testing::memory_links;
        use crate::link::{Inbound, Link};
        use crate::serve::Server;
        use crate::wire::{CallIn, WireOutcome};

        #[net::connect("serve.tests.double")]
        fn double(x: i64) -> i64 {
            x * 2
        }

        #[net::connect("serve.tests.half")]
        async fn half(x: i64) -> Result<i64, String> {
            if x % 2 == 0 {
                Ok(x / 2)
            } else {
                Err(format!("{x} is odd"))
            }
        }

        #[net::connect("serve.tests.boom")]
        fn boom() -> i64 {
            panic!("boom")
        }

        static GATE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
        static GATE_OPENED: std::sync::Condvar = std::sync::Condvar::new();

        /// Quick, until asked to wait for `open_gate`, a call that comes after it.
        #[net::connect("serve.tests.wait_gate")]
        fn wait_gate(wait: bool) -> bool {
            let mut open = GATE.lock().unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while wait && !*open && std::time::Instant::now() < until {
                open = GATE_OPENED
                    .wait_timeout(open, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
            *open || !wait
        }

        #[net::connect("serve.tests.open_gate")]
        fn open_gate() {
            *GATE.lock().unwrap() = true;
            GATE_OPENED.notify_all();
        }

        /// The calling side serves nothing.
        struct Nothing;

        impl Inbound for Nothing {
            fn call(&self, _: &Arc<Link>, _: CallIn<'_>, _: &Bytes, _: Vec<Bytes>) {}
            fn goodbye(&self, _: &Link) {}
        }

        async fn call(link: &Link, tag: &str, args: &str) -> WireOutcome {
            let args = crate::wire::Payload::json(args.to_owned());
            link.call(tag, &args, None, Duration::from_secs(5), false)
                .await
                .unwrap()
                .unwrap()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_server_runs_what_a_link_hands_it() {
            let host: Arc<dyn Any + Send + Sync> = Arc::new(());
            let server = Server::new(
                Arc::downgrade(&host),
                TaskTracker::new(),
                |_: &Link| {},
                None,
            );
            let (caller, _served) =
                memory_links(Arc::new(Nothing), Arc::new(server), 1 << 20).await;

            assert!(matches!(call(&caller, "serve.tests.double", "[21]").await,
                WireOutcome::Ok(raw) if raw.text() == "42"));
            assert!(matches!(call(&caller, "serve.tests.half", "[8]").await,
                WireOutcome::Ok(raw) if raw.text() == "4"));
            assert!(matches!(call(&caller, "serve.tests.half", "[7]").await,
                WireOutcome::Raised(raw) if raw.text() == "\"7 is odd\""));
            match call(&caller, "serve.tests.boom", "[]").await {
                WireOutcome::Panic { message, location } => {
                    assert_eq!(message, "boom");
                    assert!(location.contains("boom"), "{location}");
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                call(&caller, "serve.tests.double", "[\"x\"]").await,
                WireOutcome::BadArgs { .. }
            ));
            match call(&caller, "serve.tests.nothing", "[]").await {
                WireOutcome::Flag { name, detail } => {
                    assert_eq!(name, crate::INVALID_CONNECTION);
                    assert!(
                        detail.to_string().contains("serve.tests.double"),
                        "{detail}"
                    );
                }
                other => panic!("{other:?}"),
            }
            // Many at once, sync and async mixed, each reply to its own call.
            let calls = (0..100i64).map(|n| {
                let caller = caller.clone();
                async move {
                    let tag = if n % 2 == 0 {
                        "serve.tests.double"
                    } else {
                        "serve.tests.half"
                    };
                    (n, call(&caller, tag, &format!("[{}]", n * 2)).await)
                }
            });
            for (n, outcome) in futures_util::future::join_all(calls).await {
                let want = if n % 2 == 0 { n * 4 } else { n };
                assert!(
                    matches!(&outcome, WireOutcome::Ok(raw) if raw.text() == want.to_string()),
                    "{n}: {outcome:?}"
                );
            }
        }
        /// A quick function runs inline on the reader; when one run of it waits for a
        /// later call of the same link, the reading moves on and serves that call, as it
        /// would have on a handler thread.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_long_inline_run_does_not_hold_its_links_other_calls() {
            let host: Arc<dyn Any + Send + Sync> = Arc::new(());
            let server = Server::new(
                Arc::downgrade(&host),
                TaskTracker::new(),
                |_: &Link| {},
                None,
            );
            let (caller, _served) =
                memory_links(Arc::new(Nothing), Arc::new(server), 1 << 20).await;
            // Learns that it is quick.
            for _ in 0..20 {
                assert!(
                    matches!(call(&caller, "serve.tests.wait_gate", "[false]").await,
                    WireOutcome::Ok(raw) if raw.text() == "true")
                );
            }
            let waiting = {
                let caller = caller.clone();
                tokio::spawn(async move { call(&caller, "serve.tests.wait_gate", "[true]").await })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let opened = tokio::time::timeout(
                Duration::from_secs(2),
                call(&caller, "serve.tests.open_gate", "[]"),
            )
            .await
            .expect("the call after a long inline run was never served");
            assert!(matches!(opened, WireOutcome::Ok(_)), "{opened:?}");
            let waited = tokio::time::timeout(Duration::from_secs(2), waiting)
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(waited, WireOutcome::Ok(raw) if raw.text() == "true"));
        }
    }
}
