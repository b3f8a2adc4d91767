//! Events and subscriptions (app-net's `net.event` / `net.subscribe`) and broadcast
//! (py-p2p's `send` to everybody).
//!
//! # How an event travels
//!
//! A subscribing peer registers `(event, its host and port, its handler's tag)` with a
//! publishing peer through the built-in `subscription_handler`, with app-net's four
//! arguments. Calling an `#[net::event]` function runs its body, which shapes the payload,
//! and queues the payload for every subscriber recorded for that event on the publishing
//! peer. Each subscriber has one ordered lane; a worker drains it, delivering whatever has
//! queued up in one call of the subscriber's `net.events.deliver` built-in, which runs the
//! events there in order through the handler's registry entry. A peer never has more than
//! `NET_THREAD_LIMIT` delivery calls in flight; a slow subscriber holds one of them and
//! only its own lane waits.
//!
//! # Decisions
//!
//! - **Order** — one lane per subscriber, one delivery call in flight per lane. The server
//!   runs each incoming call on a task of its own, so pipelined calls could overtake each
//!   other; instead of sequence numbers and a reorder buffer on the subscriber (gaps to
//!   time out when a call is lost), events that queue up while a call is in flight travel
//!   together in the next one. Under load that costs one round trip per batch rather than
//!   per event: to one subscriber about ten times the rate of even unordered pipelined
//!   calls, which a sequence-number design would build on (`cargo bench --bench events`).
//! - **Failures stay with the publisher's log and report** — a handler's panic or `Err`,
//!   a payload that does not fit, a timeout: `Failed`, and the subscriber stays. A
//!   refused or closed connection or a handler that is no longer there: `Pruned`, and the
//!   subscriber is removed (it subscribes again when it comes back). Nothing of it ever
//!   becomes an `Err` of the publishing call.
//! - **Who subscribes** — the process-wide peer (`net::start`, or the first remote call)
//!   subscribes by itself, as app-net's `net.Peer()` did at decoration time: to its seeds
//!   (`NET_PEERS`) at start and to every matching peer discovery reports later. A peer
//!   started with `Peer::start` subscribes only when told: `peer.subscribe_to(target)`
//!   for one publisher, `peer.auto_subscribe()` to behave like the process-wide peer. The
//!   `#[net::subscribe]` functions of a program are linked into every peer it starts, so
//!   if every peer subscribed on its own, several peers in one process (tests, and
//!   programs that start one peer per role) would all subscribe to everything found.
//! - **Who may register what** — a LAN holds strangers, so a registration may name only
//!   the caller's own address (its host is where the call came from; over loopback, any
//!   address of this machine), or the very connection it came over, which then carries
//!   the events; only a caller from that address may withdraw it. A host holds at most
//!   1,000 subscriptions on a peer and a peer 10,000 in all (`subs.rs`), each added or
//!   removed in constant time. A subscriber that cannot be reached, never answers the
//!   hello or lets a delivery time out is pruned.
//! - **Filters** — `groups`, `hubs_only`, `on_host` and `peers` are checked against the
//!   publisher's address, group and hub flag, whichever way it became known (an explicit
//!   target, a seed, discovery). A subscription without `groups` accepts any group.

mod deliver;
mod handlers;
mod mismatch;
mod publish;
mod subs;
mod subscriber;
mod table;
mod watch;

use std::net::SocketAddr;

use serde::Serialize;

pub use publish::{Delivering, Delivery, DeliveryReport, DeliveryStatus, Publish};

use crate::config::Config;
use crate::peer::{Peer, Service};
use crate::serve::{Caller, Entry, EventDecl};

pub use handlers::{subscription_handler, unsubscription_handler};

/// The built-ins this module adds, for the composition root's list of built-ins.
pub(crate) fn builtins() -> [&'static Entry; 4] {
    [
        &deliver::__NET_ENTRY_deliver,
        &handlers::__NET_ENTRY_subscription_handler,
        &handlers::__NET_ENTRY_unsubscription_handler,
        &handlers::__NET_ENTRY_app_net_subscription_handler,
    ]
}

/// The events state of one peer: its subscribers (as a publisher) and its registrations
/// (as a subscriber).
pub(crate) struct PeerEvents {
    /// Who subscribed to which event here, and their delivery queues.
    pub(crate) table: table::Table,
    /// Where this peer's own subscriptions are registered.
    pub(crate) subscriber: subscriber::SubscriberSide,
    /// Subscriptions made at run time with [`Peer::watch`].
    pub(crate) watchers: watch::Watchers,
}

impl Service for PeerEvents {
    fn new(peer: &Peer) -> PeerEvents {
        PeerEvents::for_config(peer.config())
    }
}

impl Peer {
    /// This peer's events state.
    pub(crate) fn events(&self) -> std::sync::Arc<PeerEvents> {
        self.service::<PeerEvents>()
    }
}

impl PeerEvents {
    fn for_config(config: &Config) -> PeerEvents {
        PeerEvents {
            table: table::Table::new(config.thread_limit),
            subscriber: subscriber::SubscriberSide::default(),
            watchers: watch::Watchers::default(),
        }
    }
}

/// A payload encoded by [`payload`], for [`publish`].
#[doc(hidden)]
pub struct Payload(crate::error::Result<std::sync::Arc<str>>);

/// Encodes an event's payload (the tuple of the subscriber's arguments). The expansion
/// names the type, spanned at the function's return type, so that a payload that is not
/// `Serialize` is reported there, once.
pub fn payload<T: Serialize + ?Sized>(args: &T) -> Payload {
    Payload(publish::encode_args(args))
}

/// Builds the publication an `#[net::event]` function returns.
pub fn publish(decl: &'static EventDecl, payload: Payload) -> Publish {
    Publish::encoded(decl.name, payload.0)
}

/// Sets how many events one delivery call may carry (1 disables batching): for
/// benchmarks that compare the two.
#[doc(hidden)]
pub fn set_batch_limit(limit: usize) {
    table::set_batch_limit(limit)
}

/// `subscription_handler`: records a subscriber on the serving peer. An unspecified host
/// (`0.0.0.0`) stands for the caller's address.
pub(crate) fn register_subscriber(
    server: &Peer,
    event: &str,
    host: &str,
    port: u16,
    tag: &str,
    caller: &Caller,
) -> Result<(), String> {
    let addr = subscriber_addr(host, port, caller)?;
    if event.is_empty() || tag.is_empty() {
        return Err("the event name and the handler's tag must not be empty".into());
    }
    own_address(addr, caller)?;
    if caller.addr() == Some(addr) {
        // The connection it came over: deliveries go back over it while it lasts.
        if let Some(link) = caller.link() {
            server.offer(addr, link);
        }
    }
    if server
        .events()
        .table
        .register(event, addr, tag, caller.is_app_net())?
    {
        tracing::info!(event, subscriber = %addr, tag, "new subscriber");
    }
    Ok(())
}

/// Refuses a subscriber address that is not the caller's own: its host must be where the
/// call came from, or, for a caller on this machine (over loopback), an address of this
/// machine (a peer advertises its LAN address and may call a neighbour over loopback).
/// Local calls name what they like: they are this program.
fn own_address(addr: SocketAddr, caller: &Caller) -> Result<(), String> {
    let Some(from) = caller.addr() else {
        return Ok(());
    };
    let (named, from) = (addr.ip().to_canonical(), from.ip().to_canonical());
    let this_machine = || {
        named == std::net::IpAddr::from([127, 0, 0, 1])
            || named == std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            || crate::addrs::own_ips().contains(&named)
    };
    if named == from || (from.is_loopback() && this_machine()) {
        return Ok(());
    }
    Err(format!(
        "a subscriber may name only its own address: the call came from {from}, not {named}"
    ))
}

/// `unsubscription_handler`: forgets a subscriber.
pub(crate) fn unregister_subscriber(
    server: &Peer,
    event: &str,
    host: &str,
    port: u16,
    tag: &str,
    caller: &Caller,
) -> Result<(), String> {
    let addr = subscriber_addr(host, port, caller)?;
    // Only from where it was registered from: nobody withdraws another's subscription.
    own_address(addr, caller)?;
    if server.events().table.unregister(event, addr, tag) {
        tracing::info!(event, subscriber = %addr, tag, "subscriber left");
    }
    Ok(())
}

fn subscriber_addr(host: &str, port: u16, caller: &Caller) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let host = host.trim();
    if port == 0 {
        return Err("the subscriber's port must not be 0".into());
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if ip.is_unspecified() {
            return caller
                .addr()
                .map(|from| SocketAddr::new(from.ip(), port))
                .ok_or_else(|| "host 0.0.0.0 needs a remote caller to stand for".to_owned());
        }
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("the subscriber's host {host:?} is not an address that resolves"))
}

/// The events with subscribers on `peer`, sorted: `info`'s `subscriptions`, as app-net's.
pub(crate) fn subscribed_events(peer: &Peer) -> Vec<String> {
    peer.events().table.events()
}

/// The process-wide peer has started: it subscribes by itself (see the module notes).
pub(crate) fn default_started(peer: &Peer) {
    peer.auto_subscribe();
}

/// The peer is shutting down: withdraw its subscriptions while its connections are open.
pub(crate) async fn before_shutdown(peer: &Peer) {
    subscriber::unsubscribe_all(peer).await;
    watch::unwatch_all(peer).await;
}

/// Discovery's membership stream reports a peer that joined, or whose group or hub flag
/// changed: subscribe to it if filters accept it, withdraw what they no longer accept.
/// Does nothing for peers that do not subscribe automatically.
pub(crate) fn peer_joined(
    local: &Peer,
    addr: SocketAddr,
    group: Option<&str>,
    hub: bool,
    app_net: bool,
) {
    subscriber::peer_joined(
        local,
        subscriber::Candidate {
            addr,
            group: group.map(str::to_owned),
            hub,
            app_net,
        },
    );
}

/// Discovery's membership stream reports a peer that left: stop delivering to it and
/// forget what was registered there.
pub(crate) fn peer_left(local: &Peer, addr: SocketAddr) {
    subscriber::peer_left(local, addr);
    local.events().table.prune_addr(addr, "it left the network");
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[crate::subscribe("unit.any")]
    fn on_any(n: u64) {
        let _ = n;
    }

    #[crate::subscribe("unit.grouped", groups = ["g"], hubs_only)]
    fn on_grouped(n: u64) {
        let _ = n;
    }

    fn config() -> Config {
        Config::default().loopback(true).port(0)
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discovery_hooks_subscribe_follow_updates_and_forget() {
        let publisher = Peer::start(config().group("g").hub(true)).await.unwrap();
        let subscriber = Peer::start(config()).await.unwrap();
        let (addr, me) = (publisher.addr(), subscriber.addr());

        // Not following discovery: a join changes nothing.
        peer_joined(&subscriber, addr, Some("g"), true, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(subscriber.subscriptions().is_empty());

        subscriber.auto_subscribe();
        peer_joined(&subscriber, addr, Some("g"), true, false);
        eventually("both subscriptions", || {
            publisher.subscribers("unit.grouped") == [me]
                && publisher.subscribers("unit.any") == [me]
        })
        .await;

        // The publisher changed group: the grouped subscription is withdrawn.
        peer_joined(&subscriber, addr, Some("h"), true, false);
        eventually("the grouped one withdrawn", || {
            publisher.subscribers("unit.grouped").is_empty()
        })
        .await;
        assert_eq!(publisher.subscribers("unit.any"), [me]);

        // Either side hearing that the other left forgets it.
        peer_left(&subscriber, addr);
        assert!(subscriber.subscriptions().is_empty());
        peer_left(&publisher, me);
        assert!(publisher.subscribers("unit.any").is_empty());

        // Joining oneself is ignored.
        peer_joined(&subscriber, me, None, false, false);
        publisher.shutdown().await;
        subscriber.shutdown().await;
    }

    #[test]
    fn a_subscriber_address_must_make_sense() {
        let local = Caller::local(None);
        assert_eq!(
            subscriber_addr("127.0.0.1", 4000, &local).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 4000))
        );
        let err = subscriber_addr("127.0.0.1", 0, &local).unwrap_err();
        assert!(err.contains("port must not be 0"), "{err}");
        let err = subscriber_addr("0.0.0.0", 4000, &local).unwrap_err();
        assert!(err.contains("needs a remote caller"), "{err}");
    }
}
