//! The subscribing side: which publishing peers this peer's `#[net::subscribe]` functions
//! are registered with, the filters that decide it, and the [`Peer`] methods that
//! subscribe to a given peer, follow seeds and (later) discovery, and list subscriptions.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;

use crate::call::{Target, TargetKind};
use crate::discovery::{Membership, PeerInfo};
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::serve::{Subscription, SUBSCRIPTIONS};
use crate::sync::lock;

/// How long each unsubscribe call may take when the peer shuts down; they run together,
/// so this bounds the whole step.
const UNSUBSCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

/// When the seeds are tried again after a failed attempt (they may start after us).
const SEED_RETRIES: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// An (event, handler tag) pair registered with one publishing peer.
type Key = (&'static str, String);

/// The subscribing side of one peer.
#[derive(Default)]
pub(crate) struct SubscriberSide {
    /// Set by [`Peer::auto_subscribe`]: seeds and peers that discovery reports are
    /// subscribed to without being asked.
    auto: AtomicBool,
    /// Set when shutdown begins: no new registrations.
    closing: AtomicBool,
    /// What is registered where, as the publishers confirmed it.
    registered: Mutex<HashMap<SocketAddr, Registered>>,
    /// Held while registrations change, so that two triggers for one publisher (an
    /// explicit call and discovery, say) do not interleave.
    reconciling: tokio::sync::Mutex<()>,
}

/// The registrations with one publisher.
#[derive(Default, Clone)]
struct Registered {
    keys: BTreeSet<Key>,
    /// The publisher is a Python app-net peer: registrations go in app-net's format, and
    /// there is nothing to withdraw them with (app-net prunes us once we are gone).
    app_net: bool,
}

/// What the filters see of a publishing peer.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Where it serves: what registrations are keyed by and `peers = [..]` matches.
    pub(crate) addr: SocketAddr,
    /// Its group, for `groups = [..]`.
    pub(crate) group: Option<String>,
    /// Whether it is a hub, for `hubs_only`.
    pub(crate) hub: bool,
    /// It is a Python app-net peer.
    pub(crate) app_net: bool,
}

/// Whether `sub`'s filters accept `candidate` for `local`; `listed` is its `peers = [..]`
/// resolved to addresses.
fn accepts(sub: &Subscription, candidate: &Candidate, local: &Peer, listed: &[SocketAddr]) -> bool {
    if !sub.groups.is_empty()
        && !candidate
            .group
            .as_deref()
            .is_some_and(|group| sub.groups.contains(&group))
    {
        return false;
    }
    if sub.hubs_only && !candidate.hub {
        return false;
    }
    let ip = candidate.addr.ip();
    if sub.on_host && !(ip.is_loopback() || ip == local.id().host()) {
        return false;
    }
    if !sub.peers.is_empty() && !listed.contains(&candidate.addr) {
        return false;
    }
    true
}

/// The addresses of a subscription's `peers = [..]`; an entry that does not resolve is
/// logged and left out.
async fn listed(sub: &Subscription) -> Vec<SocketAddr> {
    let mut addrs = Vec::with_capacity(sub.peers.len());
    for text in sub.peers {
        match Target::from(*text).addr().await {
            Ok(addr) => addrs.push(addr),
            Err(e) => tracing::warn!(
                event = sub.event,
                at = sub.location,
                error = %e,
                "a peer listed in #[net::subscribe(peers = [..])] does not resolve"
            ),
        }
    }
    addrs
}

fn is_self(local: &Peer, addr: SocketAddr) -> bool {
    addr == local.addr() || addr == local.id().addr()
}

/// Registers what `candidate` should have and withdraws what it should no longer have.
/// Returns the events it is now subscribed to there.
async fn reconcile(local: &Peer, candidate: &Candidate) -> Result<Vec<String>> {
    let side = &local.events().subscriber;
    if side.closing.load(Ordering::Acquire) || local.is_shut_down() {
        return Err(Error::Shutdown);
    }
    let _turn = side.reconciling.lock().await;
    let mut wanted: BTreeSet<Key> = BTreeSet::new();
    for sub in SUBSCRIPTIONS.iter() {
        let listed = listed(sub).await;
        if accepts(sub, candidate, local, &listed) {
            wanted.insert((sub.event, sub.entry.tag()));
        }
    }
    let have = lock(&side.registered)
        .get(&candidate.addr)
        .map(|r| r.keys.clone())
        .unwrap_or_default();
    let add: Vec<&Key> = wanted.difference(&have).collect();
    let remove: Vec<&Key> = have.difference(&wanted).collect();
    let (addr, app_net) = (candidate.addr, candidate.app_net);
    let added = join_all(
        add.iter()
            .map(|key| register(local, addr, key, true, app_net)),
    )
    .await;
    let removed = join_all(
        remove
            .iter()
            .map(|key| register(local, addr, key, false, app_net)),
    )
    .await;
    let mut first_error = None;
    {
        let mut registered = lock(&side.registered);
        let entry = registered.entry(addr).or_default();
        entry.app_net = app_net;
        let set = &mut entry.keys;
        for (key, result) in add.iter().zip(added) {
            match result {
                Ok(()) => {
                    set.insert((*key).clone());
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for (key, result) in remove.iter().zip(removed) {
            match result {
                Ok(()) => {
                    set.remove(*key);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if set.is_empty() {
            registered.remove(&addr);
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let events: BTreeSet<&str> = wanted.iter().map(|(event, _)| *event).collect();
    if !add.is_empty() {
        tracing::info!(publisher = %addr, events = ?events, "subscribed");
    }
    Ok(events.into_iter().map(str::to_owned).collect())
}

/// Calls the publisher's `subscription_handler` (or `unsubscription_handler`) for one
/// (event, tag), naming this peer's address as app-net's do. A Python app-net publisher
/// is called in its own format, and has nothing to unsubscribe with.
async fn register(
    local: &Peer,
    publisher: SocketAddr,
    key: &Key,
    subscribe: bool,
    app_net: bool,
) -> Result<()> {
    let (event, tag) = key;
    let host = local.id().host().to_string();
    let port = local.addr().port();
    if app_net {
        if !subscribe {
            return Ok(());
        }
        let args = serde_json::json!([event, host, port, tag]);
        let _: serde_json::Value =
            crate::call::call_tag(crate::appnet::APP_NET_SUBSCRIPTION_TAG, args)
                .on(Target::app_net(publisher))
                .via(local)
                .await?;
        return Ok(());
    }
    let (call, name) = if subscribe {
        (
            super::handlers::subscription_handler((*event).to_owned(), host, port, tag.clone()),
            crate::appnet::SUBSCRIPTION_TAG,
        )
    } else {
        (
            super::handlers::unsubscription_handler((*event).to_owned(), host, port, tag.clone()),
            crate::appnet::UNSUBSCRIPTION_TAG,
        )
    };
    let mut remote = call.on(publisher).via(local);
    if !subscribe {
        remote = remote.timeout(UNSUBSCRIBE_TIMEOUT);
    }
    remote.await?.map_err(|message| Error::Remote {
        peer: publisher.to_string(),
        tag: name.into(),
        message,
        location: "the publishing peer's subscriber table".into(),
    })
}

/// What a Python app-net publisher says of itself, as a candidate.
async fn app_net_candidate(local: &Peer, addr: SocketAddr) -> Result<Candidate> {
    let reply: serde_json::Value =
        crate::call::call_tag(crate::AppNetInfo::TAG, serde_json::json!([]))
            .on(Target::app_net(addr))
            .via(local)
            .await?;
    let info = crate::AppNetInfo::recognise(&reply).ok_or_else(|| Error::InvalidTarget {
        target: format!("app-net peer {addr}"),
        reason: "it does not answer app-net's info as a Python app-net peer does; if it is a \
                 net peer, subscribe to its address directly"
            .into(),
    })?;
    Ok(Candidate {
        addr,
        group: info.group,
        hub: info.hub,
        app_net: true,
    })
}

/// The address a subscribe target stands for: a `Caller` stands for the peer that
/// called (its serving address), anything else for where it points.
async fn target_addr(target: &Target) -> Result<SocketAddr> {
    if let TargetKind::Caller(caller) = &target.kind {
        return caller
            .id()
            .map(|id| id.addr())
            .ok_or_else(|| Error::InvalidTarget {
                target: format!("{caller:?}"),
                reason: "the caller serves no port, so it publishes nothing to subscribe to".into(),
            });
    }
    target.addr().await
}

impl Peer {
    /// Registers this program's `#[net::subscribe]` functions whose filters accept
    /// `target` with it: from now on its `#[net::event]`s of those names reach them, in
    /// the order it publishes them. Returns the events subscribed to there (empty when no
    /// filter accepts the target). Calling it again is harmless.
    ///
    /// ```
    /// #[net::subscribe("greeting")]
    /// fn on_greeting(text: String) {
    ///     println!("{text}");
    /// }
    ///
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// let publisher = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let subscriber = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let events = subscriber.subscribe_to(&publisher).await?;
    /// assert!(events.contains(&"greeting".to_owned()));
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_to(&self, target: impl Into<Target>) -> Result<Vec<String>> {
        let target = target.into();
        let addr = target_addr(&target).await?;
        if is_self(self, addr) {
            return Err(Error::Usage(format!(
                "peer {addr} cannot subscribe to itself; call the handler locally instead"
            )));
        }
        let candidate = if target.protocol() == Some("app-net") {
            app_net_candidate(self, addr).await?
        } else {
            let conn = self
                .link_to(
                    addr,
                    tokio::time::Instant::now() + crate::config::budget(self.config().timeout),
                )
                .await?;
            Candidate {
                addr,
                group: conn.remote().group.clone(),
                hub: conn.remote().hub,
                app_net: false,
            }
        };
        reconcile(self, &candidate).await
    }

    /// Withdraws every subscription this peer registered with `target`.
    pub async fn unsubscribe_from(&self, target: impl Into<Target>) -> Result<()> {
        let addr = target_addr(&target.into()).await?;
        let side = &self.events().subscriber;
        let _turn = side.reconciling.lock().await;
        let gone = lock(&side.registered).remove(&addr).unwrap_or_default();
        let results = join_all(
            gone.keys
                .iter()
                .map(|key| register(self, addr, key, false, gone.app_net)),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    /// Subscribes without being asked: to every seed (`NET_PEERS`) now, retrying for a few
    /// seconds while a seed is not up yet, and to every matching peer that discovery
    /// reports later. The process-wide peer does this when it starts, as app-net's
    /// `net.Peer()` did; a peer started with [`Peer::start`] only when this is called,
    /// because a program's `#[net::subscribe]` functions are linked into every peer it
    /// starts, and several peers in one process (tests, one peer per role) would otherwise
    /// all subscribe to everything they hear of.
    pub fn auto_subscribe(&self) {
        let side = &self.events().subscriber;
        if side.auto.swap(true, Ordering::AcqRel) || SUBSCRIPTIONS.is_empty() {
            return;
        }
        for seed in self.config().seeds.clone() {
            let peer = self.clone();
            let stop = self.shutdown_token().clone();
            self.tracker().spawn_on(
                async move {
                    let mut last = None;
                    for delay in SEED_RETRIES {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop.cancelled() => return,
                        }
                        match peer.subscribe_to(seed.as_str()).await {
                            Ok(_) => return,
                            Err(e) if e.is_transient() => last = Some(e),
                            Err(e) => {
                                last = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = last {
                        tracing::warn!(seed = %seed, error = %e, "could not subscribe to a seed");
                    }
                },
                self.runtime(),
            );
        }
        self.follow_membership();
    }

    /// Subscribes to the peers discovery knows now (running the first round if none ran)
    /// and keeps up with its membership stream: joined and updated peers are reconciled
    /// against the filters, departed ones forgotten.
    fn follow_membership(&self) {
        let peer = self.clone();
        let stop = self.shutdown_token().clone();
        // Subscribed before the first round, so that no join between the two is missed.
        let mut membership = self.membership();
        self.tracker().spawn_on(
            async move {
                // A background round: finding nobody yet is no news worth printing.
                crate::discovery::discover(&peer, false, false).await;
                for info in peer.discovery().table.snapshot() {
                    joined(&peer, &info);
                }
                loop {
                    let event = tokio::select! {
                        event = membership.recv() => event,
                        _ = stop.cancelled() => return,
                    };
                    match event {
                        Ok(Membership::Joined(info) | Membership::Updated(info)) => {
                            joined(&peer, &info)
                        }
                        Ok(Membership::Left { peer: info, .. }) => {
                            super::peer_left(&peer, info.addr)
                        }
                        // Fell behind: catch up from the table itself.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for info in peer.discovery().table.snapshot() {
                                joined(&peer, &info);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            },
            self.runtime(),
        );
    }

    /// Where this peer's subscriptions are registered: (event, publishing peer), sorted.
    pub fn subscriptions(&self) -> Vec<(String, SocketAddr)> {
        let events = self.events();
        let registered = lock(&events.subscriber.registered);
        let mut list: Vec<(String, SocketAddr)> = registered
            .iter()
            .flat_map(|(addr, r)| r.keys.iter().map(|(event, _)| ((*event).to_owned(), *addr)))
            .collect();
        list.sort();
        list.dedup();
        list
    }

    /// The peers subscribed to `event` on this peer, sorted.
    pub fn subscribers(&self, event: &str) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self
            .events()
            .table
            .subscribers(event)
            .into_iter()
            .map(|(addr, _)| addr)
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

fn joined(local: &Peer, info: &PeerInfo) {
    super::peer_joined(
        local,
        info.addr,
        info.group.as_deref(),
        info.hub,
        info.app_net,
    );
}

/// Discovery found `addr` (or its group or hub flag changed): register what matches,
/// withdraw what no longer does. Only for peers that subscribe automatically.
pub(crate) fn peer_joined(local: &Peer, candidate: Candidate) {
    let side = &local.events().subscriber;
    if !side.auto.load(Ordering::Acquire)
        || side.closing.load(Ordering::Acquire)
        || is_self(local, candidate.addr)
        || SUBSCRIPTIONS.is_empty()
    {
        return;
    }
    let peer = local.clone();
    local.tracker().spawn_on(
        async move {
            if let Err(e) = reconcile(&peer, &candidate).await {
                tracing::warn!(publisher = %candidate.addr, error = %e, "could not subscribe");
            }
        },
        local.runtime(),
    );
}

/// Discovery says `addr` is gone: forget what was registered there (nobody is left to
/// tell).
pub(crate) fn peer_left(local: &Peer, addr: SocketAddr) {
    lock(&local.events().subscriber.registered).remove(&addr);
}

/// Withdraws every registration before the peer's connections close.
pub(crate) async fn unsubscribe_all(local: &Peer) {
    let side = &local.events().subscriber;
    side.closing.store(true, Ordering::Release);
    let all: Vec<(SocketAddr, Registered)> = lock(&side.registered).drain().collect();
    let calls = all.iter().flat_map(|(addr, registered)| {
        registered.keys.iter().map(move |key| async move {
            if let Err(e) = register(local, *addr, key, false, registered.app_net).await {
                tracing::debug!(publisher = %addr, error = %e, "could not unsubscribe");
            }
        })
    });
    let _ = tokio::time::timeout(UNSUBSCRIBE_TIMEOUT * 2, join_all(calls)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    static ENTRY: &crate::serve::Entry = &__NET_ENTRY_handler;

    #[crate::connect("events.subscriber.tests.handler")]
    fn handler() {}

    fn subscription(
        groups: &'static [&'static str],
        hubs_only: bool,
        on_host: bool,
    ) -> Subscription {
        Subscription {
            event: "e",
            entry: ENTRY,
            groups,
            hubs_only,
            on_host,
            peers: &[],
            location: "here",
        }
    }

    fn candidate(addr: &str, group: Option<&str>, hub: bool) -> Candidate {
        Candidate {
            addr: addr.parse().unwrap(),
            group: group.map(str::to_owned),
            hub,
            app_net: false,
        }
    }

    #[tokio::test]
    async fn filters() {
        let local = Peer::start(crate::Config::default().loopback(true).port(0))
            .await
            .unwrap();
        let near = candidate("127.0.0.1:4000", Some("a"), false);
        let far_hub = candidate("10.9.8.7:4000", None, true);
        let none: &[SocketAddr] = &[];

        let any = subscription(&[], false, false);
        assert!(accepts(&any, &near, &local, none));
        assert!(accepts(&any, &far_hub, &local, none));

        let groups = subscription(&["a", "b"], false, false);
        assert!(accepts(&groups, &near, &local, none));
        assert!(!accepts(&groups, &far_hub, &local, none));

        let hubs = subscription(&[], true, false);
        assert!(!accepts(&hubs, &near, &local, none));
        assert!(accepts(&hubs, &far_hub, &local, none));

        let on_host = subscription(&[], false, true);
        assert!(accepts(&on_host, &near, &local, none));
        assert!(!accepts(&on_host, &far_hub, &local, none));

        let mut listed = subscription(&[], false, false);
        listed.peers = &["127.0.0.1:4000"];
        assert!(accepts(&listed, &near, &local, &[near.addr]));
        assert!(!accepts(&listed, &far_hub, &local, &[near.addr]));
        assert_eq!(super::listed(&listed).await, [near.addr]);
        local.shutdown().await;
    }
}
