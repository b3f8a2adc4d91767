//! The blocking bridge behind every `.wait()` (calls, queries, publications, broadcasts),
//! for plain synchronous code.

use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::peer::Peer;

/// Runs `work` on the runtime of the peer `home` gives and blocks this thread until it
/// ends. On a current-thread runtime that would block the very thread the work needs, so
/// it refuses with [`Error::Usage`] before starting anything; on a multi-thread runtime's
/// worker it lets the runtime move other tasks away while this thread blocks.
pub(crate) fn block_on<T: Send + 'static>(
    home: impl FnOnce() -> Result<Peer>,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    refuse_current_thread()?;
    let (tx, rx) = std::sync::mpsc::channel();
    home()?.runtime().spawn(async move {
        let _ = tx.send(work.await);
    });
    let receive = move || rx.recv().map_err(|_| Error::Shutdown);
    match Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(receive),
        Err(_) => receive(),
    }
}

/// Refuses to block the only thread of a current-thread runtime (see [`block_on`]).
pub(crate) fn refuse_current_thread() -> Result<()> {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread => {
            Err(Error::Usage(
                "wait() would block the only thread of this current-thread runtime; use .await"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}
