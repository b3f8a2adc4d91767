//! Waiting for something with a deadline instead of sleeping a guessed time: the one
//! `eventually` of the tests (and its twin for blocking tests), and the deadline that every
//! wait of the support module shares.

use std::time::{Duration, Instant};

/// How long anything a test waits for may take (a process coming up, a line, an event)
/// before the test fails. Generous: the machine is shared, and only a failure waits it out.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(5);

/// Polls `condition` until it holds; fails the test with `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        give_up_after(deadline, what);
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for plain blocking tests, whose conditions often block themselves
/// (asking a helper process over its stdin, reading a child's output).
pub fn eventually_blocking(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        give_up_after(deadline, what);
        std::thread::sleep(POLL);
    }
}

fn give_up_after(deadline: Instant, what: &str) {
    assert!(
        Instant::now() < deadline,
        "timed out after {DEADLINE:?} waiting for {what}"
    );
}
