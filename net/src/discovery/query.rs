//! `net::peers()`: the builder with app-net's options (refresh, groups, hubs only, on host),
//! usable with `.await` or `.wait()`; `peer_group`; and the membership stream.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use tokio::sync::broadcast;

use super::discover;
use super::report::Report;
use super::table::{Membership, PeerInfo};
use crate::addrs;
use crate::error::{Error, Result};
use crate::peer::{self, Peer};

/// The peers this program knows, as `net::peers()` or [`Peer::peers`] builds the question.
/// The first one discovers (every selected path at once); later ones return the table,
/// which mDNS keeps current, unless `.refresh()` asks for a new round (which also drops
/// peers that stopped answering).
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let config = net::Config::default().loopback(true).port(0);
/// let me = net::Peer::start(config).await?;
/// let hubs = me.peers().group("render").hubs_only().on_host().await?;
/// for peer in &hubs {
///     let info = net::info().on(peer).via(&me).await?;
///     println!("{} runs {}", info.id, info.executable);
/// }
/// # me.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "a peers() query does nothing until awaited or waited on"]
#[derive(Debug, Clone)]
pub struct Peers {
    /// Whose table; `None`: the process-wide default peer, started when the query runs.
    peer: Option<Peer>,
    /// Keep peers of any of these groups (empty: every group).
    groups: Vec<String>,
    /// Keep hubs only.
    hubs_only: bool,
    /// Keep peers on this machine only.
    on_host: bool,
    /// Run a new discovery round instead of answering from the table.
    refresh: bool,
    /// Keep peers that serve this function (a tag or a function's path).
    serving: Option<String>,
}

/// The peers the process-wide default peer knows (app-net's `net.peers()`): `.await` it,
/// or `.wait()` from synchronous code.
///
/// ```no_run
/// for peer in net::peers().wait()? {
///     println!("{} at {}", peer.id, peer.addr);
/// }
/// # Ok::<(), net::Error>(())
/// ```
pub fn peers() -> Peers {
    Peers {
        peer: None,
        groups: Vec::new(),
        hubs_only: false,
        on_host: false,
        refresh: false,
        serving: None,
    }
}

/// The peers of one group (app-net's `peer_group(name, hubs_only, on_host)`).
pub fn peer_group(name: &str, hubs_only: bool, on_host: bool) -> Peers {
    let mut query = peers().group(name);
    query.hubs_only = hubs_only;
    query.on_host = on_host;
    query
}

/// Membership events (joined, updated, left) of the default peer's table from now on.
/// Events wait in a buffer; a receiver that falls far behind gets `Lagged` and can
/// re-read the table with `peers()`.
pub fn membership() -> Result<broadcast::Receiver<Membership>> {
    Ok(peer::local_peer()?.membership())
}

impl Peer {
    /// The peers this peer knows; see [`Peers`].
    pub fn peers(&self) -> Peers {
        Peers {
            peer: Some(self.clone()),
            ..peers()
        }
    }

    /// Membership events of this peer's table from now on. The background refresh starts
    /// with it (if no discovery started it before), so peers that start later are reported
    /// as they come.
    pub fn membership(&self) -> broadcast::Receiver<Membership> {
        let events = self.discovery().table.subscribe();
        super::refresh::start(self);
        events
    }
}

impl Peers {
    /// Keeps peers of `group` (several calls: of any of them).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Keeps peers of any of `groups`.
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Keeps hubs only.
    pub fn hubs_only(mut self) -> Self {
        self.hubs_only = true;
        self
    }

    /// Keeps peers on this machine only.
    pub fn on_host(mut self) -> Self {
        self.on_host = true;
        self
    }

    /// Keeps the peers that serve a function: `function` is its tag (`"registry.get"`,
    /// as in `#[net::connect("registry.get")]`) or its path (`"app::add"`, which stands
    /// for its default tag), or the tag of a call (`app::add(0, 0).tag()`).
    ///
    /// ```
    /// #[net::connect("demo.greet")]
    /// fn greet(name: String) -> String { format!("hello {name}") }
    ///
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// for peer in me.peers().serving("demo.greet").await? {
    ///     println!("{}", greet("you".into()).on(&peer).via(&me).await?);
    /// }
    /// # me.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn serving(mut self, function: impl Into<String>) -> Self {
        self.serving = Some(function.into());
        self
    }

    /// Runs a new discovery round instead of returning the cache, and drops the known
    /// peers that no longer answer.
    pub fn refresh(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// The peers together with what each discovery path did: the explanation to show
    /// when the list is empty.
    pub async fn report(self) -> Result<Report> {
        let home = match &self.peer {
            Some(peer) => peer.clone(),
            None => peer::local_peer()?,
        };
        if home.is_shut_down() {
            return Err(Error::Shutdown);
        }
        // Probes use the peer's sockets, which live on its runtime; the caller may be on
        // another runtime or none.
        let runtime = home.runtime().clone();
        let task = runtime.spawn(async move {
            let paths = discover(&home, self.refresh, true).await;
            let known = home.discovery().table.snapshot();
            let total = known.len();
            super::explain_if_empty(&home, total == 0, &paths);
            let peers = self.filter(known);
            Report {
                filtered_out: total - peers.len(),
                peers,
                paths,
            }
        });
        task.await
            .map_err(|e| Error::io_text("running discovery", e.to_string()))
    }

    fn filter(&self, known: Vec<std::sync::Arc<PeerInfo>>) -> Vec<PeerInfo> {
        let own = if self.on_host {
            addrs::own_ips()
        } else {
            Vec::new()
        };
        known
            .into_iter()
            .filter(|p| {
                self.groups.is_empty() || p.group.as_ref().is_some_and(|g| self.groups.contains(g))
            })
            .filter(|p| !self.hubs_only || p.hub)
            .filter(|p| self.serving.as_ref().is_none_or(|f| p.serves(f)))
            .filter(|p| {
                !self.on_host
                    || addrs::is_own(p.addr.ip(), &own)
                    || addrs::is_own(p.id.host(), &own)
            })
            .map(std::sync::Arc::unwrap_or_clone)
            .collect()
    }

    /// Blocks this thread until the answer is there: for plain synchronous code. Inside
    /// async code use `.await`; on a current-thread runtime this returns
    /// [`Error::Usage`] instead of blocking the thread the answer needs.
    pub fn wait(self) -> Result<Vec<PeerInfo>> {
        let home = self.peer.clone();
        let peers = async move { self.report().await.map(|r| r.peers) };
        crate::call::block_on(move || home.map_or_else(peer::local_peer, Ok), peers)?
    }
}

impl IntoFuture for Peers {
    type Output = Result<Vec<PeerInfo>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.report().await.map(|r| r.peers) })
    }
}
