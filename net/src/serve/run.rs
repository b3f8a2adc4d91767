//! Running a registered function for a caller, local or remote, and turning what it did
//! into a wire outcome. Local and remote calls share this path so that they behave alike.

use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::flags::INVALID_CONNECTION;
use super::panic::{self, Caught};
use super::pool;
use super::registry::{Args, Entry, Handler, Registry};
use super::speed::Speed;
use super::{Caller, Outcome};
use crate::wire::WireOutcome;

/// The function registered under `tag`, or the outcome that tells the caller why there
/// is none (an unknown tag is app-net's `INVALID_CONNECTION` flag with the peer's tags as
/// detail).
pub(crate) fn lookup(tag: &str) -> Result<(&'static Entry, &'static Speed), WireOutcome> {
    let registry = match Registry::get() {
        Ok(registry) => registry,
        Err(e) => {
            return Err(WireOutcome::Panic {
                message: e.to_string(),
                location: "registry".into(),
            })
        }
    };
    registry
        .lookup(tag)
        .and_then(|entry| Some((entry, registry.speed(entry)?)))
        .ok_or_else(|| unknown_tag(registry))
}

fn unknown_tag(registry: &Registry) -> WireOutcome {
    let available: Vec<Value> = registry
        .tags()
        .into_iter()
        .map(|(tag, path)| Value::String(format!("{tag} ({path})")))
        .collect();
    WireOutcome::Flag {
        name: INVALID_CONNECTION.to_owned(),
        detail: Value::Array(available),
    }
}

/// Runs a function for a remote caller: synchronous ones on a handler thread so a slow
/// one never stalls the async workers, async ones on this task.
pub(crate) async fn run(entry: &'static Entry, args: Args<'static>, caller: Caller) -> WireOutcome {
    let result = match entry.handler {
        Handler::Sync(f) => {
            let (tx, rx) = oneshot::channel();
            on_handler_thread(move || {
                let _ = tx.send(panic::catch(|| f(args, caller)));
            });
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(Caught {
                    message: "the handler's thread failed".into(),
                    location: None,
                }),
            }
        }
        Handler::Async(f) => panic::catch_async(f(args, caller)).await,
    };
    finish(entry, result)
}

/// Runs `f` once this handler thread has no queued call left to take (or has taken a
/// good few), so that the replies of a burst of calls go out together; runs it at once
/// anywhere else.
pub(crate) fn when_idle(f: Box<dyn FnOnce()>) {
    pool::when_idle(f);
}

/// Runs now what [`when_idle`] deferred on this thread: before a run that may take long,
/// so that the replies of the quick calls before it are not held for as long as it takes
/// (a caller's quick call would otherwise wait for another caller's slow one).
pub(crate) fn flush_deferred() {
    pool::run_deferred();
}

/// Runs `job` on a handler thread (see `pool`), never on an async worker, with the current
/// runtime entered: a handler may use tokio there (`Handle::current`, `tokio::spawn`, a
/// nested `.wait()`) as it could on tokio's blocking pool.
pub(crate) fn on_handler_thread(job: impl FnOnce() + Send + 'static) {
    let runtime = Handle::try_current().ok();
    pool::run(Box::new(move || {
        let _entered = runtime.as_ref().map(Handle::enter);
        job();
    }));
}

/// Runs a function in this thread, for `.local()` of a synchronous function.
pub(crate) fn run_inline(entry: &'static Entry, args: Args<'_>, caller: Caller) -> WireOutcome {
    let result = match entry.handler {
        Handler::Sync(f) => panic::catch(|| f(args, caller)),
        Handler::Async(f) => {
            // `.local()` of an async function is itself async; this arm is unreachable
            // through the public API, and answers sensibly anyway.
            let _ = f;
            Err(Caught {
                message: "an async function must be called with `.local().await`".into(),
                location: None,
            })
        }
    };
    finish(entry, result)
}

/// Runs a function on this task, for `.local().await` of an async function.
pub(crate) async fn run_here(
    entry: &'static Entry,
    args: Args<'static>,
    caller: Caller,
) -> WireOutcome {
    let result = match entry.handler {
        Handler::Sync(f) => panic::catch(|| f(args, caller)),
        Handler::Async(f) => panic::catch_async(f(args, caller)).await,
    };
    finish(entry, result)
}

/// Starts an async function: its arguments are decoded now (so they may be borrowed from
/// the frame), and the run is a future of its own, ready to be polled here first and
/// handed to a task only if it waits.
pub(crate) fn start_async(entry: &'static Entry, args: Args<'_>, caller: Caller) -> AsyncRun {
    let future = match entry.handler {
        Handler::Async(f) => Ok(f(args, caller)),
        Handler::Sync(_) => Err(Caught {
            message: "a synchronous function was started as an async one".into(),
            location: None,
        }),
    };
    AsyncRun { entry, future }
}

/// An async function's run: polls it, catching a panic in any poll, and turns how it
/// ended into an outcome.
pub(crate) struct AsyncRun {
    entry: &'static Entry,
    /// The handler's future, or why there is none.
    future: Result<super::BoxFuture<Outcome>, Caught>,
}

impl std::future::Future for AsyncRun {
    type Output = WireOutcome;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<WireOutcome> {
        let this = self.get_mut();
        let result = match &mut this.future {
            Ok(future) => match panic::poll_caught(future.as_mut(), cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(result) => result,
            },
            Err(caught) => Err(Caught {
                message: std::mem::take(&mut caught.message),
                location: caught.location.take(),
            }),
        };
        std::task::Poll::Ready(finish(this.entry, result))
    }
}

fn finish(entry: &'static Entry, result: Result<Outcome, Caught>) -> WireOutcome {
    match result {
        Ok(Outcome::Value(payload)) => WireOutcome::Ok(payload),
        Ok(Outcome::Raised(payload)) => WireOutcome::Raised(payload),
        Ok(Outcome::Flag { name, detail }) => WireOutcome::Flag { name, detail },
        Ok(Outcome::BadArgs(message)) => WireOutcome::BadArgs { message },
        Ok(Outcome::Panic { message, location }) => WireOutcome::Panic { message, location },
        Ok(Outcome::Unencodable(message)) => WireOutcome::Panic {
            message: format!("the return value cannot be encoded as JSON: {message}"),
            location: format!("{} ({})", entry.path(), entry.location),
        },
        Err(caught) => WireOutcome::Panic {
            message: caught.message,
            location: match caught.location {
                Some(at) => format!("{} at {at}", entry.path()),
                None => format!("{} ({})", entry.path(), entry.location),
            },
        },
    }
}

/// Runs `job` on a handler thread and waits for what it returns: the crate's one blocking
/// pool, for blocking work of the services too (reading the neighbour table, a batch of
/// synchronous event handlers). `Err` says why there is no result (the job panicked).
pub(crate) async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    on_handler_thread(move || {
        let _ = tx.send(panic::catch(job));
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(caught)) => Err(caught.message),
        Err(_) => Err("the handler's thread failed".into()),
    }
}
