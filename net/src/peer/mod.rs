//! `net::Peer`: the handle on a running local peer: its settings and id, the runtime its
//! sockets live on, its links to other peers, its tasks, the bus on which news travels up
//! to the services, and the services' state.
//!
//! This layer starts and stops only the core (listener, links, tasks); the composition
//! root (`start.rs`) starts the services on top and shuts everything down in order.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the handle, its accessors, bringing the core up and down |
//! | `pool.rs` | the links by address: reuse, adoption of incoming ones, forgetting dead ones |
//! | `connect.rs` | opening a link (connect, handshake) and serving an accepted stream |
//! | `pairing.rs` | one link per pair of peers: tickets, the `net.link.dialled` check, retiring the second link, which goodbyes to believe |
//! | `bus.rs` | upward news: goodbyes, unreachable peers, incoming peers |
//! | `services.rs` | the per-peer state of each service, by type |
//! | `default.rs` | the process-wide default peer and its runtime |
//! | `caller.rs` | `Caller::server`, the serving peer of a call |
//! | `state.rs` | the values handlers' `net::State<T>` parameters get |

mod bus;
mod caller;
mod connect;
mod default;
mod pairing;
mod pool;
mod services;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::id::PeerId;
use crate::link::{Guard, Link};
use crate::secure::MeshKey;
use crate::serve::{Registry, Server, Slots};
use crate::sync::lock;
use crate::wire::{Hello, PROTOCOL_VERSION};

pub(crate) use bus::News;
pub(crate) use connect::Claim;
pub use default::local_peer;
pub(crate) use default::{default_runtime, install_default, running_default, DefaultSlot};
pub(crate) use pairing::dialled_builtin;
pub(crate) use services::Service;

/// How long `shutdown` lets calls in progress finish before closing their links.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running peer: it serves this program's `#[net::connect]` functions on a port and
/// keeps persistent connections to the peers it calls.
///
/// Most programs never touch one: the first remote call starts the process-wide default
/// peer from the `NET_*` variables (see [`local_peer`]). Tests and programs that want
/// several peers in one process start their own and call through them with
/// [`RemoteCall::via`](crate::RemoteCall::via).
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let a = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let b = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let info = net::info().on(&b).via(&a).await?;
/// assert_eq!(info.port, b.addr().port());
/// a.shutdown().await;
/// b.shutdown().await;
/// # Ok(()) }
/// ```
///
/// A started peer runs until [`Peer::shutdown`], even when every handle is dropped.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

pub(crate) struct PeerInner {
    /// The settings it was started with.
    config: Config,
    /// Its id: advertised host, bound port, group.
    id: PeerId,
    /// The address its listener is bound to.
    addr: SocketAddr,
    /// The runtime its sockets and tasks live on, so that calls work from any thread,
    /// including plain synchronous code.
    runtime: Handle,
    /// Its links to other peers, both directions.
    links: pool::Links,
    /// Runs the calls that arrive over its links; set once, right after start (it needs
    /// the peer's own address, to hand to handlers).
    server: OnceLock<Arc<Server>>,
    /// Cancelled by `shutdown`: every link's token is a child of it.
    shutdown: CancellationToken,
    /// Cancelled first by `shutdown` to stop the accept loop while calls finish; a child
    /// of `shutdown`.
    accepting: CancellationToken,
    /// Every task the peer spawned, so `shutdown` can wait for them.
    tracker: TaskTracker,
    /// News for the services above: who said goodbye, who is unreachable, who called.
    bus: bus::Bus,
    /// Each service's state, by type (discovery's table, events' subscribers, ...).
    services: services::Services,
    /// Protocols other than this crate's that may arrive on its port (app-net's JSON),
    /// told apart by their first byte.
    claims: Mutex<Vec<Claim>>,
    /// The mesh key derived from NET_SECRET: every link is then secured with it.
    key: Option<MeshKey>,
    /// The values handlers' `net::State<T>` parameters get (`state.rs`).
    states: std::sync::RwLock<crate::config::StateMap>,
}

impl Peer {
    /// Brings up the core of a peer on `runtime`: checks the settings and the registry,
    /// binds the port and starts accepting. The services start on top of it (`start.rs`).
    pub(crate) fn bring_up(config: Config, runtime: Handle) -> Result<Peer> {
        config.validate()?;
        crate::logging::init(config.dev);
        Registry::get()?;
        let listener = crate::serve::bind(&config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let id = PeerId::new(advertised_host(&config), addr.port(), config.group.clone());
        let key = match &config.secret {
            Some(secret) => Some(MeshKey::from_secret(secret.bytes())?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let peer = Peer {
            inner: Arc::new(PeerInner {
                links: pool::Links::default(),
                services: services::Services::default(),
                bus: bus::Bus::default(),
                claims: Mutex::new(Vec::new()),
                key,
                states: std::sync::RwLock::new(config.states.clone()),
                server: OnceLock::new(),
                config,
                id,
                addr,
                runtime: runtime.clone(),
                accepting: shutdown.child_token(),
                shutdown,
                tracker: TaskTracker::new(),
            }),
        };
        let news = Arc::downgrade(&peer.inner);
        let host: std::sync::Weak<dyn std::any::Any + Send + Sync> = news.clone();
        // The limits and deadlines of every link of the peer, and the task enforcing them.
        let guard = Guard::new(peer.inner.config.limits.clone());
        let goodbye = move |link: &Link| {
            if let (Some(inner), Some(id)) = (news.upgrade(), &link.remote().id) {
                let peer = Peer { inner };
                let addr = id.addr();
                let vouched = peer.vouches_for(link, addr);
                peer.publish(&News::Goodbye { addr, vouched });
            }
        };
        let server = Server::new(
            host,
            peer.inner.tracker.clone(),
            goodbye,
            Some(guard.clone()),
        );
        peer.inner
            .tracker
            .spawn_on(guard.clone().run(peer.inner.shutdown.clone()), &runtime);
        // Set once, here, before anything can connect.
        let _ = peer.inner.server.set(Arc::new(server));
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::io("registering the listener with the runtime", e))?
        };
        let accepting = peer.inner.accepting.clone();
        let tracker = peer.inner.tracker.clone();
        let serving = peer.clone();
        let slots = Arc::new(Slots::new(guard));
        let accept =
            crate::serve::accept_loop(listener, accepting, tracker, slots, move |stream, from| {
                serving.clone().serve_stream(stream, from)
            });
        peer.inner.tracker.spawn_on(accept, &runtime);
        tracing::info!(id = %peer.id(), addr = %addr, "peer started");
        Ok(peer)
    }

    /// This peer's id.
    pub fn id(&self) -> &PeerId {
        &self.inner.id
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Its group, if any.
    pub fn group(&self) -> Option<&str> {
        self.inner.config.group.as_deref()
    }

    /// Whether it is a hub.
    pub fn is_hub(&self) -> bool {
        self.inner.config.hub
    }

    /// How many connections to other peers are open, both directions.
    pub fn connection_count(&self) -> usize {
        self.inner.links.count()
    }

    /// Whether the peer has a shared secret (NET_SECRET): its links are then encrypted,
    /// and peers without the secret learn nothing.
    pub fn is_secured(&self) -> bool {
        self.inner.key.is_some()
    }

    /// True once `shutdown` has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    pub(crate) fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The limits and memory budget its links are held to.
    pub(crate) fn guard(&self) -> Option<Arc<Guard>> {
        use crate::link::Inbound;
        self.inner.server.get()?.guard()
    }

    /// The peer as the serving layer holds it, for handlers' `Caller`s.
    pub(crate) fn host(&self) -> crate::serve::Host {
        self.inner.clone()
    }

    /// The hello this peer sends on every new link.
    pub(crate) fn hello(&self) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            // A client peer (tools, scripts) serves nothing others should list or call.
            id: (!self.inner.config.client).then(|| self.inner.id.clone()),
            group: self.inner.config.group.clone(),
            hub: self.inner.config.hub,
            version: crate::config::VERSION.to_owned(),
            max_frame: self.inner.config.max_frame,
            // Binary values cross beside the JSON (`wire/payload.rs`).
            attachments: true,
            ticket: None,
        }
    }

    /// Stops the core: no new connections, calls in progress get a short grace period to
    /// finish, then every link is closed with a goodbye and every task is awaited. The
    /// services have stopped before (`start.rs` orders it).
    pub(crate) async fn bring_down(&self) {
        self.inner.accepting.cancel();
        let links = self.inner.links.all();
        let drained = futures_util::future::join_all(links.iter().map(|link| link.drained()));
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
        for link in &links {
            link.close("the peer shut down");
        }
        self.inner.links.clear();
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tracker.wait()).await;
        tracing::info!(id = %self.id(), "peer stopped");
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.inner.id.as_str())
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// The address other peers should use: the bound one when it is specific, else the
/// address of the interface that routes off this machine (found without sending
/// anything), else loopback.
fn advertised_host(config: &Config) -> IpAddr {
    if config.loopback || !config.host.is_unspecified() {
        return config.host;
    }
    // Connecting a UDP socket only picks a route; no packet leaves. 192.0.2.1 is
    // TEST-NET-1, never a real host.
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|socket| {
            socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        // No route (a host or namespace without a default gateway): an interface address.
        .or_else(|_| crate::addrs::fallback_host(config).ok_or(()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Locks the claims list (short sections only).
fn claims(peer: &Peer) -> std::sync::MutexGuard<'_, Vec<Claim>> {
    lock(&peer.inner.claims)
}
