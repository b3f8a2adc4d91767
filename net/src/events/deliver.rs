//! Delivering queued events: the publisher's side of one delivery call (a batch through
//! the `net.events.deliver` built-in, or one event straight to the handler's tag), the
//! subscriber's side of the built-in, and what each outcome means for the subscription.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::publish::DeliveryStatus;
use super::table::{Item, Verdict};
use crate::error::Error;
use crate::peer::Peer;
use crate::serve::Caller;
use crate::serve::{self, Args, Entry, Handler, Registry, INVALID_CONNECTION, NULL};
use crate::wire::{Payload, WireOutcome};

/// The batch built-in's tag.
pub(crate) const DELIVER_TAG: &str = "net.events.deliver";

/// How one event of a batch went on the subscriber.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemResult {
    /// The handler returned normally.
    Delivered,
    /// The handler failed; why.
    Failed(String),
    /// The subscriber has no function under the tag (any more).
    UnknownTag,
    /// Not run: the call's time budget was used up by the events before it.
    NotRun,
}

/// Runs a batch of events on this (the subscribing) peer, in order, each through its
/// handler's registry entry as a call would run it. Stops starting new ones when half of
/// the publisher's budget is spent, so that the reply arrives in time and the rest come
/// in the next batch rather than time out.
#[crate::connect("net.events.deliver")]
#[allow(dead_code)] // called by tag from the publishing side, never through this function
pub(crate) async fn deliver(
    items: Vec<(String, Box<RawValue>)>,
    budget_ms: u64,
    caller: Caller,
) -> Vec<ItemResult> {
    let started = Instant::now();
    let budget = Duration::from_millis(budget_ms) / 2;
    let registry = match Registry::get() {
        Ok(registry) => registry,
        Err(e) => {
            return items
                .iter()
                .map(|_| ItemResult::Failed(e.to_string()))
                .collect()
        }
    };
    let mut results = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while let Some((tag, payload)) = items.next() {
        if started.elapsed() > budget || caller.is_cancelled() {
            results.push(ItemResult::NotRun);
            continue;
        }
        if let Some(result) = caller
            .server()
            .and_then(|peer| super::watch::deliver(&peer, &tag, &payload))
        {
            results.push(result);
            continue;
        }
        let Some(entry) = registry.lookup(&tag) else {
            results.push(ItemResult::UnknownTag);
            continue;
        };
        match entry.handler {
            Handler::Async(_) => {
                let outcome =
                    serve::run_here(entry, Args::positional(payload), caller.clone()).await;
                results.push(classify(super::mismatch::noted(entry, &caller, outcome)));
            }
            Handler::Sync(_) => {
                // This and the synchronous events right after it run in one trip to the
                // blocking pool: one hop per batch rather than per event.
                let mut run: Vec<(&'static Entry, Box<RawValue>)> = vec![(entry, payload)];
                while let Some((tag, _)) = items.peek() {
                    match registry.lookup(tag) {
                        Some(next) if matches!(next.handler, Handler::Sync(_)) => {
                            if let Some((_, payload)) = items.next() {
                                run.push((next, payload));
                            }
                        }
                        _ => break,
                    }
                }
                let caller = caller.clone();
                let count = run.len();
                let ran = serve::blocking(move || {
                    let mut out = Vec::with_capacity(run.len());
                    for (entry, payload) in run {
                        if started.elapsed() > budget || caller.is_cancelled() {
                            out.push(ItemResult::NotRun);
                            continue;
                        }
                        let args = Args::positional(payload);
                        let outcome = serve::run_inline(entry, args, caller.clone());
                        out.push(classify(super::mismatch::noted(entry, &caller, outcome)));
                    }
                    out
                })
                .await;
                match ran {
                    Ok(ran) => results.extend(ran),
                    Err(e) => {
                        results.extend((0..count).map(|_| {
                            ItemResult::Failed(format!("the handler's thread failed: {e}"))
                        }))
                    }
                }
            }
        }
    }
    results
}

/// What an outcome means for a delivery.
fn classify(outcome: WireOutcome) -> ItemResult {
    match outcome {
        WireOutcome::Ok(_) => ItemResult::Delivered,
        WireOutcome::Raised(payload) => {
            ItemResult::Failed(format!("the handler returned Err({})", payload.text()))
        }
        WireOutcome::Flag { name, .. } if name == NULL => ItemResult::Delivered,
        WireOutcome::Flag { name, .. } if name == INVALID_CONNECTION => ItemResult::UnknownTag,
        WireOutcome::Flag { name, .. } => {
            ItemResult::Failed(format!("the handler answered with the flag {name}"))
        }
        WireOutcome::Panic { message, location } => {
            ItemResult::Failed(format!("the handler panicked: {message} (at {location})"))
        }
        WireOutcome::BadArgs { message } => ItemResult::Failed(format!(
            "the payload does not fit the handler's parameters: {message}"
        )),
    }
}

/// Why a call's error means the subscriber is gone (pruned) rather than failing once:
/// nothing there, or something there that never answered the call in time (a subscriber
/// that makes every publication wait is as good as gone).
fn gone(error: &Error) -> bool {
    matches!(
        error,
        Error::Unreachable { .. }
            | Error::ConnectionClosed { .. }
            | Error::Incompatible { .. }
            | Error::Timeout { .. }
    )
}

/// Fails a batch whose subscriber could not be connected to: whatever went wrong (no
/// answer, no hello in time, a refusal, a broken hello), it is gone.
fn fail_connect(peer: &Peer, addr: SocketAddr, batch: Vec<Item>, error: Error) -> Verdict {
    let error = match error {
        Error::Shutdown | Error::InvalidTarget { .. } => error,
        other if gone(&other) => other,
        other => Error::unreachable_because(addr, format!("its hello failed: {other}")),
    };
    fail_all(peer, addr, batch, error)
}

/// Finishes every item of `batch` with the error's status and says what to do next.
fn fail_all(peer: &Peer, addr: SocketAddr, batch: Vec<Item>, error: Error) -> Verdict {
    if peer.is_shut_down() || matches!(error, Error::Shutdown) {
        for item in batch {
            item.finish(
                addr,
                DeliveryStatus::Failed("the publishing peer shut down".into()),
            );
        }
        return Verdict::Continue;
    }
    if gone(&error) {
        // Pruned before anyone hears of it: a report that says "pruned" is then true of
        // the table too.
        let reason = error.to_string();
        peer.events().table.prune_addr(addr, &reason);
        for item in batch {
            item.finish(addr, DeliveryStatus::Pruned(reason.clone()));
        }
        return Verdict::Pruned(reason);
    }
    let reason = error.to_string();
    for item in batch {
        item.finish(addr, DeliveryStatus::Failed(reason.clone()));
    }
    Verdict::Continue
}

/// Room left in a frame for everything but the events' payloads (frame kind, id, tag,
/// timeout).
const FRAME_MARGIN: usize = 4096;

/// Sends a batch through the subscriber's `net.events.deliver` built-in: one call, the
/// events run in order there. What does not fit one frame (the smaller of both sides'
/// `NET_MAX_FRAME`) goes back to the front of the queue for the next call.
pub(crate) async fn send_batch(peer: &Peer, addr: SocketAddr, mut batch: Vec<Item>) -> Verdict {
    let budget = crate::config::budget(peer.config().timeout);
    let conn = match peer
        .link_to(addr, tokio::time::Instant::now() + budget)
        .await
    {
        Ok(conn) => conn,
        Err(e) => return fail_connect(peer, addr, batch, e),
    };
    let room = conn
        .remote()
        .max_frame
        .min(peer.config().max_frame)
        .saturating_sub(FRAME_MARGIN);
    let mut size = 0;
    let fits = batch
        .iter()
        .take_while(|item| {
            size += item.payload.len() + item.tag.len() + 8;
            size <= room
        })
        .count()
        .max(1);
    let rest = batch.split_off(fits);
    match send_fitting(peer, &conn, addr, batch).await {
        verdict if rest.is_empty() => verdict,
        Verdict::Continue => Verdict::Retry(rest),
        Verdict::Retry(mut again) => {
            again.extend(rest);
            Verdict::Retry(again)
        }
        Verdict::GoDirect(mut again) => {
            again.extend(rest);
            Verdict::GoDirect(again)
        }
        Verdict::Pruned(reason) => {
            for item in rest {
                item.finish(addr, DeliveryStatus::Pruned(reason.clone()));
            }
            Verdict::Pruned(reason)
        }
    }
}

/// Sends a batch that fits one frame over `conn`.
async fn send_fitting(
    peer: &Peer,
    conn: &crate::link::Link,
    addr: SocketAddr,
    batch: Vec<Item>,
) -> Verdict {
    let budget = crate::config::budget(peer.config().timeout);
    let mut args = String::with_capacity(
        32 + batch
            .iter()
            .map(|i| i.payload.len() + i.tag.len() + 8)
            .sum::<usize>(),
    );
    args.push_str("[[");
    for (i, item) in batch.iter().enumerate() {
        if i > 0 {
            args.push(',');
        }
        args.push('[');
        // A tag is a plain string; encoding it cannot fail.
        args.push_str(&serde_json::to_string(&*item.tag).unwrap_or_default());
        args.push(',');
        args.push_str(&item.payload);
        args.push(']');
    }
    args.push_str("],");
    args.push_str(&budget.as_millis().to_string());
    args.push(']');
    if let Err(e) = serde_json::from_str::<&RawValue>(&args) {
        let error = Error::Encode {
            tag: DELIVER_TAG.into(),
            message: e.to_string(),
        };
        return fail_all(peer, addr, batch, error);
    }
    let args = Payload::json(args);
    let outcome = match conn.call(DELIVER_TAG, &args, None, budget, false).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return fail_all(peer, addr, batch, missing_reply(conn)),
        // The link parted for idleness as the call went out: nothing ran; again, anew.
        Err(Error::ConnectionClosed { .. }) if conn.parted_idle() => return Verdict::Retry(batch),
        Err(e) => return fail_all(peer, addr, batch, e),
    };
    let results: Vec<ItemResult> = match outcome {
        WireOutcome::Ok(payload) => match payload.decode() {
            Ok(results) => results,
            Err(e) => {
                let error = Error::Decode {
                    peer: conn.label().to_owned(),
                    tag: DELIVER_TAG.into(),
                    message: e.to_string(),
                };
                return fail_all(peer, addr, batch, error);
            }
        },
        WireOutcome::Flag { name, .. } if name == INVALID_CONNECTION => {
            tracing::debug!(subscriber = %addr, "no batch built-in there; delivering one by one");
            return Verdict::GoDirect(batch);
        }
        other => {
            let message = match classify(other) {
                ItemResult::Failed(why) => why,
                _ => "unexpected answer".into(),
            };
            let error = Error::Protocol {
                peer: conn.label().to_owned(),
                message: format!("{DELIVER_TAG} failed: {message}"),
            };
            return fail_all(peer, addr, batch, error);
        }
    };
    if results.len() != batch.len() {
        let error = Error::Protocol {
            peer: conn.label().to_owned(),
            message: format!(
                "{DELIVER_TAG} answered {} results for {} events",
                results.len(),
                batch.len()
            ),
        };
        return fail_all(peer, addr, batch, error);
    }
    let mut retry = Vec::new();
    for (item, result) in batch.into_iter().zip(results) {
        match result {
            ItemResult::Delivered => item.finish(addr, DeliveryStatus::Delivered),
            ItemResult::Failed(why) => item.finish(addr, DeliveryStatus::Failed(why)),
            ItemResult::UnknownTag => unknown_tag(peer, addr, item),
            ItemResult::NotRun => retry.push(item),
        }
    }
    if retry.is_empty() {
        Verdict::Continue
    } else {
        Verdict::Retry(retry)
    }
}

/// Sends one event straight to the handler's tag: for subscribers without the batch
/// built-in. The lane sends these one at a time, so they run in order there too.
pub(crate) async fn send_direct(peer: &Peer, addr: SocketAddr, batch: Vec<Item>) -> Verdict {
    let budget = crate::config::budget(peer.config().timeout);
    let conn = match peer
        .link_to(addr, tokio::time::Instant::now() + budget)
        .await
    {
        Ok(conn) => conn,
        Err(e) => return fail_connect(peer, addr, batch, e),
    };
    let mut items = batch.into_iter();
    while let Some(item) = items.next() {
        if let Err(e) = serde_json::from_str::<&RawValue>(&item.payload) {
            item.finish(addr, DeliveryStatus::Failed(e.to_string()));
            continue;
        }
        let args = Payload::json(item.payload.to_string());
        match conn.call(&item.tag, &args, None, budget, false).await {
            Ok(Some(outcome)) => match classify(outcome) {
                ItemResult::Delivered => item.finish(addr, DeliveryStatus::Delivered),
                ItemResult::Failed(why) => item.finish(addr, DeliveryStatus::Failed(why)),
                ItemResult::UnknownTag => unknown_tag(peer, addr, item),
                ItemResult::NotRun => item.finish(addr, DeliveryStatus::Failed("not run".into())),
            },
            Ok(None) => item.finish(
                addr,
                DeliveryStatus::Failed(missing_reply(&conn).to_string()),
            ),
            Err(e) => {
                let mut rest = vec![item];
                rest.extend(items);
                if matches!(e, Error::ConnectionClosed { .. }) && conn.parted_idle() {
                    return Verdict::Retry(rest);
                }
                return fail_all(peer, addr, rest, e);
            }
        }
    }
    Verdict::Continue
}

/// Sends one event to a Python app-net subscriber in app-net's format (one entry
/// per request, as app-net serves). The lane sends these one at a time, so they run in
/// order there too.
pub(crate) async fn send_app_net(peer: &Peer, addr: SocketAddr, batch: Vec<Item>) -> Verdict {
    let budget = crate::config::budget(peer.config().timeout);
    let max_reply = peer.config().max_frame;
    let mut items = batch.into_iter();
    while let Some(item) = items.next() {
        let args = match RawValue::from_string(item.payload.to_string()) {
            Ok(args) => args,
            Err(e) => {
                item.finish(addr, DeliveryStatus::Failed(e.to_string()));
                continue;
            }
        };
        let sent = crate::appnet::call(addr, &item.tag, &args, None, budget, max_reply, false);
        match sent.await {
            Ok(Some(outcome)) => match classify(outcome) {
                ItemResult::UnknownTag => unknown_tag(peer, addr, item),
                ItemResult::Failed(why) => item.finish(addr, DeliveryStatus::Failed(why)),
                ItemResult::Delivered | ItemResult::NotRun => {
                    item.finish(addr, DeliveryStatus::Delivered)
                }
            },
            Ok(None) => item.finish(addr, DeliveryStatus::Delivered),
            // The request was refused before sending (too long for app-net): this event
            // only.
            Err(e @ Error::Encode { .. }) => {
                item.finish(addr, DeliveryStatus::Failed(e.to_string()))
            }
            Err(e) => {
                let mut rest = vec![item];
                rest.extend(items);
                return fail_all(peer, addr, rest, e);
            }
        }
    }
    Verdict::Continue
}

fn missing_reply(conn: &crate::link::Link) -> Error {
    Error::Protocol {
        peer: conn.label().to_owned(),
        message: "no reply to a delivery".into(),
    }
}

/// The subscriber no longer has the handler: that subscription is stale.
fn unknown_tag(peer: &Peer, addr: SocketAddr, item: Item) {
    peer.events().table.prune_tag(addr, &item.tag);
    let reason = format!(
        "the subscriber has no function tagged {:?} any more",
        &*item.tag
    );
    item.finish(addr, DeliveryStatus::Pruned(reason));
}
