//! `net::Peer`: a running local peer (its server, its pool of connections to other peers,
//! its shutdown), and the process-wide default peer that starts on first use.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::conn::{lock, Conn};
use crate::error::{Error, Result};
use crate::id::PeerId;
use crate::registry::Registry;
use crate::wire::{Hello, PROTOCOL_VERSION};

/// How long a TCP connect may take at most, whatever the call's timeout: a live host on a
/// LAN answers in well under a millisecond, an absent one never does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long `shutdown` lets calls in progress finish before closing their connections.
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
    /// Outgoing connections by address; the cell makes concurrent first calls share one
    /// connect.
    pool: Mutex<HashMap<SocketAddr, Arc<OnceCell<Arc<Conn>>>>>,
    /// Every connection, both directions, for shutdown and the `connections` count.
    conns: Mutex<Vec<Weak<Conn>>>,
    /// Cancelled by `shutdown`: stops the accept loop; every connection's token is a
    /// child of it.
    shutdown: CancellationToken,
    /// Cancelled first by `shutdown` to stop the accept loop while calls finish.
    accepting: CancellationToken,
    /// Every task the peer spawned, so `shutdown` can wait for them.
    tracker: TaskTracker,
    /// Its known peers, probe permits and mDNS advertiser (discovery/).
    discovery: crate::discovery::State,
    /// Its subscribers (as a publisher) and its subscriptions (as a subscriber).
    events: crate::events::PeerEvents,
}

impl Peer {
    /// Starts a peer on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Peer> {
        Peer::start_on(config, Handle::current())
    }

    /// Starts a peer whose sockets and tasks live on `runtime`.
    pub fn start_on(config: Config, runtime: Handle) -> Result<Peer> {
        config.validate()?;
        crate::logging::init(config.dev);
        Registry::get()?;
        let listener = crate::server::bind(&config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let host = advertised_host(&config);
        let id = PeerId::new(host, addr.port(), config.group.clone());
        let discovery = crate::discovery::State::new(&config);
        let peer = Peer {
            inner: Arc::new(PeerInner {
                events: crate::events::PeerEvents::new(&config),
                config,
                id,
                addr,
                runtime: runtime.clone(),
                pool: Mutex::new(HashMap::new()),
                conns: Mutex::new(Vec::new()),
                accepting: CancellationToken::new(),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                discovery,
            }),
        };
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::io("registering the listener with the runtime", e))?
        };
        peer.tracker()
            .spawn_on(crate::server::accept_loop(listener, peer.clone()), &runtime);
        crate::discovery::start(&peer);
        tracing::info!(id = %peer.id(), addr = %addr, "peer started");
        Ok(peer)
    }

    pub(crate) fn from_inner(inner: Arc<PeerInner>) -> Peer {
        Peer { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<PeerInner> {
        &self.inner
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
        let mut conns = lock(&self.inner.conns);
        conns.retain(|c| c.upgrade().is_some_and(|c| c.is_open()));
        conns.len()
    }

    pub(crate) fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn accepting_token(&self) -> &CancellationToken {
        &self.inner.accepting
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    pub(crate) fn discovery(&self) -> &crate::discovery::State {
        &self.inner.discovery
    }

    pub(crate) fn events(&self) -> &crate::events::PeerEvents {
        &self.inner.events
    }

    pub(crate) fn hello(&self) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            // A client peer (tools, scripts) serves nothing others should list or call.
            id: (!self.inner.config.client).then(|| self.inner.id.clone()),
            group: self.inner.config.group.clone(),
            hub: self.inner.config.hub,
            version: crate::VERSION.to_owned(),
            max_frame: self.inner.config.max_frame,
        }
    }

    /// Remembers a connection (either direction) for shutdown and counting. An incoming
    /// connection from a serving peer also joins the pool, so that calls back to it reuse
    /// it rather than opening a second one.
    pub(crate) fn adopt(&self, conn: &Arc<Conn>, incoming: bool) {
        {
            let mut conns = lock(&self.inner.conns);
            conns.retain(|c| c.upgrade().is_some_and(|c| c.is_open()));
            conns.push(Arc::downgrade(conn));
        }
        if incoming {
            // Only an id whose host is where the connection comes from: otherwise any
            // client could claim another peer's address and receive calls meant for it.
            let claimed = conn
                .remote()
                .id
                .as_ref()
                .filter(|id| id.host() == conn.remote_addr().ip());
            if let Some(id) = claimed {
                {
                    let mut pool = lock(&self.inner.pool);
                    let fresh = pool
                        .get(&id.addr())
                        .is_none_or(|cell| cell.get().is_none_or(|c| !c.is_open()));
                    if fresh {
                        pool.insert(id.addr(), Arc::new(OnceCell::new_with(Some(conn.clone()))));
                    }
                }
                // A peer that contacted us is a peer we know (on loopback, where there is
                // no mDNS, this is how existing peers hear of a newcomer).
                crate::discovery::learn(self, id, Some(conn.remote_addr()));
            }
        }
    }

    /// The open connection to `addr`, connecting if there is none. Concurrent callers
    /// share one connect attempt.
    pub(crate) async fn connection(&self, addr: SocketAddr, budget: Duration) -> Result<Arc<Conn>> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        if self.inner.config.loopback && !addr.ip().is_loopback() {
            return Err(Error::InvalidTarget {
                target: addr.to_string(),
                reason: "this peer is confined to loopback (NET_LOOPBACK); it calls nothing \
                         beyond this machine"
                    .into(),
            });
        }
        for _ in 0..2 {
            let cell = lock(&self.inner.pool).entry(addr).or_default().clone();
            let result = cell
                .get_or_try_init(|| self.open(addr, budget.min(CONNECT_TIMEOUT)))
                .await;
            match result {
                Ok(conn) if conn.is_open() => return Ok(conn.clone()),
                // A dead connection: forget it and connect afresh.
                Ok(_) => self.forget(addr, &cell),
                Err(e) => {
                    self.forget(addr, &cell);
                    if let Error::Unreachable { reason, .. } = &e {
                        // A peer whose calls fail disappears from discovery.
                        let why = format!("a call found it unreachable: {reason}");
                        crate::discovery::gone(self, addr, &why);
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::unreachable(
            addr,
            "the connection closed as soon as it opened",
        ))
    }

    /// The open pooled connection to `addr`, if there is one (discovery probes reuse it).
    pub(crate) fn pooled(&self, addr: SocketAddr) -> Option<Arc<Conn>> {
        let cell = lock(&self.inner.pool).get(&addr).cloned()?;
        cell.get().filter(|c| c.is_open()).cloned()
    }

    /// Offers a connection opened elsewhere (a discovery probe) to the pool, so later
    /// calls reuse it; false when `addr` already has one.
    pub(crate) fn offer(&self, addr: SocketAddr, conn: &Arc<Conn>) -> bool {
        let mut pool = lock(&self.inner.pool);
        if let Some(cell) = pool.get(&addr) {
            let open = cell.get().is_some_and(|c| c.is_open());
            // A connect in progress holds a clone of the cell: let it win.
            let connecting = cell.get().is_none() && Arc::strong_count(cell) > 1;
            if open || connecting {
                return false;
            }
        }
        pool.insert(addr, Arc::new(OnceCell::new_with(Some(conn.clone()))));
        true
    }

    fn forget(&self, addr: SocketAddr, cell: &Arc<OnceCell<Arc<Conn>>>) {
        let mut pool = lock(&self.inner.pool);
        if pool.get(&addr).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            pool.remove(&addr);
        }
    }

    /// Connects and shakes hands on this peer's runtime (sockets belong to the runtime
    /// that drives them, and the caller may be on another one or on none).
    async fn open(&self, addr: SocketAddr, budget: Duration) -> Result<Arc<Conn>> {
        let peer = self.clone();
        let task = self.inner.runtime.spawn(async move {
            let stream = match tokio::time::timeout(budget, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(Error::unreachable(addr, e)),
                Err(_) => {
                    return Err(Error::unreachable(
                        addr,
                        format!("no answer within {budget:?}"),
                    ))
                }
            };
            let conn = Conn::start(stream, &peer).await?;
            peer.adopt(&conn, false);
            Ok(conn)
        });
        task.await
            .map_err(|e| Error::unreachable(addr, format!("the connect task failed: {e}")))?
    }

    /// Stops the peer: its subscriptions are withdrawn from the peers it subscribed to, no
    /// new connections, calls in progress get a short grace period to finish, then every
    /// connection is closed with a goodbye and every task is awaited.
    pub async fn shutdown(&self) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        crate::events::before_shutdown(self).await;
        // The mDNS goodbye first, while the peer still answers.
        crate::discovery::stop(self).await;
        self.inner.accepting.cancel();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let conns: Vec<Arc<Conn>> = lock(&self.inner.conns)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        while conns.iter().any(|c| c.is_serving()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for conn in &conns {
            conn.close("the peer shut down");
        }
        lock(&self.inner.pool).clear();
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tracker.wait()).await;
        tracing::info!(id = %self.id(), "peer stopped");
    }

    /// True once `shutdown` has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
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
        .or_else(|_| crate::discovery::fallback_host(config).ok_or(()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The default peer, and the runtime it lives on when the program has none of its own.
static DEFAULT_PEER: Mutex<Option<Peer>> = Mutex::new(None);
static DEFAULT_RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

fn default_runtime() -> Result<Handle> {
    let runtime = DEFAULT_RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.handle().clone()),
        Err(message) => Err(Error::Io {
            context: "starting the net runtime".into(),
            message: message.clone(),
        }),
    }
}

/// The process-wide default peer, started from the `NET_*` variables on first use (as
/// app-net's `net.Peer()` singleton). It runs on a small runtime of its own, so remote
/// calls work from plain synchronous code and from any async runtime alike.
pub fn local_peer() -> Result<Peer> {
    let mut slot = lock(&DEFAULT_PEER);
    if let Some(peer) = slot.as_ref().filter(|p| !p.is_shut_down()) {
        return Ok(peer.clone());
    }
    let peer = Peer::start_on(Config::from_env()?, default_runtime()?)?;
    *slot = Some(peer.clone());
    crate::events::default_started(&peer);
    Ok(peer)
}

/// Runs `work` on the runtime of the peer `home` gives and blocks this thread until it
/// ends: the `.wait()` of calls, queries, publications and broadcasts, for plain
/// synchronous code. On a current-thread runtime that would block the very thread the work
/// needs, so it refuses with [`Error::Usage`] before starting anything; on a multi-thread
/// runtime's worker it lets the runtime move other tasks away while this thread blocks.
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

/// The default peer if it already runs; never starts it.
pub(crate) fn running_default() -> Option<Peer> {
    lock(&DEFAULT_PEER)
        .as_ref()
        .filter(|p| !p.is_shut_down())
        .cloned()
}

/// Starts the process-wide default peer with `config` instead of the environment. Fails
/// if it already runs.
///
/// ```
/// let peer = net::start(net::Config::from_env()?.loopback(true).port(0))?;
/// assert!(peer.addr().ip().is_loopback());
/// # Ok::<(), net::Error>(())
/// ```
pub fn start(config: Config) -> Result<Peer> {
    start_default(config, default_runtime)
}

/// Starts the process-wide default peer with `config` on `runtime` (for a program that
/// wants its one runtime to carry everything). The runtime must outlive every call made
/// through the default peer; a `#[tokio::main]` runtime does.
pub fn start_on(config: Config, runtime: Handle) -> Result<Peer> {
    start_default(config, move || Ok(runtime))
}

fn start_default(config: Config, runtime: impl FnOnce() -> Result<Handle>) -> Result<Peer> {
    let mut slot = lock(&DEFAULT_PEER);
    if let Some(peer) = slot.as_ref().filter(|p| !p.is_shut_down()) {
        return Err(Error::Usage(format!(
            "the default peer already runs as {} ({}); call net::start before any remote call",
            peer.addr(),
            peer.id()
        )));
    }
    let peer = Peer::start_on(config, runtime()?)?;
    *slot = Some(peer.clone());
    crate::events::default_started(&peer);
    Ok(peer)
}
