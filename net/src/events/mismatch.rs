//! A payload that does not fit a subscriber's handler, said on the subscriber's side (once
//! per handler and publisher): the publisher's report says it too, but the subscriber's
//! author is the one who wrote the mismatching type.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::serve::{Caller, Entry};
use crate::wire::WireOutcome;

/// Passes `outcome` on, after warning when it says the payload did not fit.
pub(super) fn noted(entry: &'static Entry, caller: &Caller, outcome: WireOutcome) -> WireOutcome {
    if let WireOutcome::BadArgs { message } = &outcome {
        warn(entry, caller, message);
    }
    outcome
}

fn warn(entry: &'static Entry, caller: &Caller, message: &str) {
    /// (handler, publisher) pairs already warned about.
    static WARNED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    let publisher = caller
        .id()
        .map(|id| id.addr().to_string())
        .or_else(|| caller.addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "a local publisher".into());
    let first = crate::sync::lock(&WARNED)
        .get_or_insert_with(HashSet::new)
        .insert((entry.path(), publisher.clone()));
    let text = format!(
        "an event from {publisher} does not fit the parameters of its handler {} ({}), which \
         was not run: {message}; the subscriber's parameters must match what the publisher's \
         #[net::event] function returns (a tuple is the argument list)",
        entry.path(),
        entry.location
    );
    if first {
        crate::logging::warn_user(&text);
    } else {
        tracing::debug!("{text}");
    }
}
