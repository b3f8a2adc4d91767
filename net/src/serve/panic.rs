//! Catching a handler's panic with its message and location, so that a remote panic comes
//! back as `Error::Remote` saying what and where (app-net sends its traceback).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::Once;

use futures_util::FutureExt;

thread_local! {
    /// Set while a handler runs on this thread: only then does the hook record the panic.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
    /// The location of the last handler panic on this thread.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs, once, a panic hook that records the location of panics inside handlers and
/// then defers to the previous hook (so the panic is still printed where it happened).
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HANDLER.with(Cell::get) {
                let location = info.location().map(Location::to_string);
                LAST_LOCATION.with(|last| *last.borrow_mut() = location);
            }
            previous(info);
        }));
    });
}

/// A caught panic: its message and, when known, its `file:line:col`.
pub(crate) struct Caught {
    pub message: String,
    pub location: Option<String>,
}

fn caught(payload: Box<dyn Any + Send>) -> Caught {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    };
    let location = LAST_LOCATION.with(|last| last.borrow_mut().take());
    Caught { message, location }
}

struct InHandler;

impl InHandler {
    fn enter() -> InHandler {
        IN_HANDLER.with(|flag| flag.set(true));
        InHandler
    }
}

impl Drop for InHandler {
    fn drop(&mut self) {
        IN_HANDLER.with(|flag| flag.set(false));
    }
}

/// Runs `f`, catching a panic.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    install_hook();
    let result = {
        let _in = InHandler::enter();
        std::panic::catch_unwind(AssertUnwindSafe(f))
    };
    result.map_err(caught)
}

/// Polls `future` to completion, catching a panic in any poll. The location is recorded
/// on the thread of the panicking poll, which is the thread that sees the error.
pub(crate) async fn catch_async<T>(future: impl Future<Output = T> + Unpin) -> Result<T, Caught> {
    install_hook();
    let guarded = GuardedPolls { inner: future };
    AssertUnwindSafe(guarded)
        .catch_unwind()
        .await
        .map_err(caught)
}

/// Polls `future` once, catching a panic (for a future polled by hand, without a wrapper
/// of its own).
pub(crate) fn poll_caught<F: Future + ?Sized>(
    future: std::pin::Pin<&mut F>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<F::Output, Caught>> {
    install_hook();
    let _in = InHandler::enter();
    match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
        Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
        Err(payload) => std::task::Poll::Ready(Err(caught(payload))),
    }
}

/// Marks every poll of the inner future as handler code.
struct GuardedPolls<F> {
    inner: F,
}

impl<F: Future + Unpin> Future for GuardedPolls<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let _in = InHandler::enter();
        std::pin::Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}
