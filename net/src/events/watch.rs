//! `Peer::watch`: a subscription made at run time to an event named by a string, whose
//! events arrive on a channel instead of at a `#[net::subscribe]` function (what the
//! `net watch` command uses).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;

use super::deliver::ItemResult;
use crate::call::Target;
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::sync::lock;

/// Tags of watchers start with this; no `#[net::connect]` tag can (the registry is not
/// consulted for them).
const WATCH_PREFIX: &str = "net.watch/";

/// One run-time subscription.
struct Watcher {
    /// The publishing peer it is registered with.
    publisher: SocketAddr,
    /// The event's name.
    event: String,
    /// Where its events go; a dropped receiver ends the subscription.
    events: mpsc::UnboundedSender<Value>,
}

/// The watchers of one peer.
#[derive(Default)]
pub(crate) struct Watchers {
    /// Numbers the watchers' tags.
    next: AtomicU64,
    /// By the tag the publisher delivers to.
    by_tag: Mutex<HashMap<String, Watcher>>,
}

impl Peer {
    /// Subscribes to `event` on the peer at `target`, however it is named at run time;
    /// each event arrives on the returned channel as the JSON array of the arguments a
    /// `#[net::subscribe]` function would get. Dropping the receiver ends the subscription
    /// (the publisher prunes it at its next event); shutting the peer down withdraws it.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// #[net::event("temperature")]
    /// fn temperature(celsius: f64) -> f64 { celsius }
    ///
    /// let config = || net::Config::default().loopback(true).port(0);
    /// let sensor = net::Peer::start(config()).await?;
    /// let me = net::Peer::start(config()).await?;
    /// let mut readings = me.watch("temperature", &sensor).await?;
    /// temperature(21.5).via(&sensor).await?;
    /// assert_eq!(readings.recv().await, Some(serde_json::json!([21.5])));
    /// # me.shutdown().await; sensor.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn watch(
        &self,
        event: &str,
        target: impl Into<Target>,
    ) -> Result<mpsc::UnboundedReceiver<Value>> {
        let publisher = target.into().addr().await?;
        let watchers = &self.events().watchers;
        let tag = format!(
            "{WATCH_PREFIX}{}",
            watchers.next.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Watcher {
            publisher,
            event: event.to_owned(),
            events: tx,
        };
        lock(&watchers.by_tag).insert(tag.clone(), watcher);
        let registered = register(self, publisher, event, &tag, true).await;
        if registered.is_err() {
            lock(&watchers.by_tag).remove(&tag);
        }
        registered.map(|()| rx)
    }
}

async fn register(
    local: &Peer,
    publisher: SocketAddr,
    event: &str,
    tag: &str,
    subscribe: bool,
) -> Result<()> {
    let host = local.id().host().to_string();
    let port = local.addr().port();
    let (event, tag) = (event.to_owned(), tag.to_owned());
    let call = if subscribe {
        super::handlers::subscription_handler(event, host, port, tag)
    } else {
        super::handlers::unsubscription_handler(event, host, port, tag)
    };
    call.on(publisher)
        .via(local)
        .await?
        .map_err(|message| Error::Remote {
            peer: publisher.to_string(),
            tag: crate::appnet::SUBSCRIPTION_TAG.into(),
            message,
            location: "the publishing peer's subscriber table".into(),
        })
}

/// Hands an event for a watcher's tag to its channel; `None` when `tag` is not a
/// watcher's (the registry handles it). A watcher whose receiver is gone answers as an
/// unknown tag, so the publisher prunes it.
pub(crate) fn deliver(peer: &Peer, tag: &str, payload: &RawValue) -> Option<ItemResult> {
    if !tag.starts_with(WATCH_PREFIX) {
        return None;
    }
    let events = peer.events();
    let mut watchers = lock(&events.watchers.by_tag);
    let Some(watcher) = watchers.get(tag) else {
        return Some(ItemResult::UnknownTag);
    };
    let value = serde_json::from_str(payload.get()).unwrap_or(Value::Null);
    if watcher.events.send(value).is_err() {
        watchers.remove(tag);
        return Some(ItemResult::UnknownTag);
    }
    Some(ItemResult::Delivered)
}

/// Withdraws every watcher's registration before the peer's connections close.
pub(crate) async fn unwatch_all(peer: &Peer) {
    let all: Vec<(String, SocketAddr, String)> = lock(&peer.events().watchers.by_tag)
        .drain()
        .map(|(tag, w)| (tag, w.publisher, w.event))
        .collect();
    for (tag, publisher, event) in all {
        if let Err(e) = register(peer, publisher, &event, &tag, false).await {
            tracing::debug!(%publisher, event, error = %e, "could not withdraw a watch");
        }
    }
}
