//! Configuration: the settings of one peer, their validation, and the builder; `env.rs`
//! reads the same settings from the `NET_*` environment variables, `paths.rs` names the
//! discovery paths.
//!
//! Every invalid value is an [`Error::Config`] that names the variable and the value; a bad
//! value never falls back to a default silently.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

mod env;
mod limits;
mod paths;
mod secret;
mod state;
mod vars;

pub use limits::Limits;
pub use paths::{Discovery, DiscoveryPaths};
pub use secret::{AppNetAccess, Secret};
pub(crate) use state::StateMap;

use crate::error::{Error, Result};

/// Settings of one peer. `Config::from_env()` reads the `NET_*` variables;
/// `Config::default()` ignores them. Every setter has the variable's name in its docs.
///
/// ```
/// use std::time::Duration;
/// let config = net::Config::default()
///     .loopback(true)
///     .port(0)
///     .group("render")
///     .timeout(Duration::from_secs(2));
/// assert_eq!(config.port, 0);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `NET_PORT`: the first port to try. Default 3010. `0` lets the OS pick any free port
    /// (tests do this).
    pub port: u16,
    /// `NET_PORT_RANGE`: how many further ports to try. Default 5. The range is inclusive:
    /// with the defaults a peer binds the first free port of 3010..=3015, as app-net does.
    pub port_range: u16,
    /// `NET_THREAD_LIMIT`: most discovery probes, event deliveries and broadcast calls in
    /// flight at once (each kind counted on its own). Default 5.
    pub thread_limit: usize,
    /// `NET_GROUP`: the peer's group; discovery and subscriptions can filter on it.
    /// Default none.
    pub group: Option<String>,
    /// `NET_IS_HUB`: whether this peer is a hub of its group. Default false.
    pub hub: bool,
    /// `NET_DEV`: debug logging through `tracing`. Default false.
    pub dev: bool,
    /// `NET_HOST`: the address to bind. Default `0.0.0.0` (every interface), because a peer
    /// exists to be called from other machines; `127.0.0.1` when [`Config::loopback`] is on.
    pub host: IpAddr,
    /// `NET_LOOPBACK`: confine the peer to this machine: bind 127.0.0.1, advertise only on
    /// loopback, probe nothing beyond it. Default false. Every test, example and benchmark
    /// of this project sets it.
    pub loopback: bool,
    /// `NET_TIMEOUT`: the default call timeout. Default 10 s. Accepts `250ms`, `2s`, `1m`
    /// or a bare number of seconds. Zero (or a negative value in `NET_TIMEOUT`) means no
    /// timeout, as in Peers: calls wait as long as the peer takes.
    pub timeout: Duration,
    /// `NET_MAX_FRAME`: the largest frame this peer sends or accepts, in bytes. Default
    /// 16 MiB; accepts `64K`, `16M`, `1G`. Between 1 KiB and 1 GiB.
    pub max_frame: usize,
    /// `NET_PEERS`: seed addresses (`host:port,...`) of peers outside this broadcast domain.
    /// Default none.
    pub seeds: Vec<String>,
    /// `NET_CLIENT`: be a client, a peer that only calls. It listens on any free port
    /// instead of one of `NET_PORT..=NET_PORT+NET_PORT_RANGE` (discovery still scans that
    /// range), is not advertised and not listed by other peers' discovery; calls back to
    /// it over the connections it opened still work. Default false, except for the
    /// process-wide peer when it starts by itself (see [`local_peer`](crate::local_peer)):
    /// a program that never calls `net::start` and has no `#[net::subscribe]` or
    /// `#[net::event]` functions is a client unless `NET_CLIENT=0` says otherwise.
    pub client: bool,
    /// `NET_DISCOVERY`: the discovery paths, e.g. `scan,mdns,seeds` (the default) or
    /// `all` to add the ARP-neighbour port scan. `NET_MDNS=0` takes mDNS out. With
    /// [`Config::loopback`] mDNS and ARP probing stay off whatever this says.
    pub discovery: DiscoveryPaths,
    /// `NET_PROBE_TIMEOUT`: how long a discovery probe (connect and `info` call) may take.
    /// Default 500 ms: a peer on a LAN answers in about a millisecond, an absent host never.
    pub probe_timeout: Duration,
    /// `NET_MDNS_SERVICE`: the mDNS service type peers advertise and browse. Default
    /// `_netpeer._tcp.local.`; tests give each run its own so runs never see each other.
    pub mdns_service: String,
    /// `NET_TABLE_REPLICAS`: how many members hold each key of a replicated table
    /// ([`Table`](crate::Table)). Default 3, at least 1. Every member of a table must use the
    /// same value: a member with another one is refused at join, loudly.
    pub table_replicas: usize,
    /// `NET_TABLE_DIR`: the directory where a member keeps its replicas (one file per
    /// table), so that a restarted member comes back with them. Default none: replicas live
    /// in memory and go with the process.
    pub table_dir: Option<PathBuf>,
    /// Deadlines, memory budgets and fair shares for every connection (`NET_HELLO_TIMEOUT`,
    /// `NET_IDLE_TIMEOUT`, `NET_CONN_MEMORY`, ...): see [`Limits`].
    pub limits: Limits,
    /// `NET_SECRET`, or the contents of the file `NET_SECRET_FILE` names: the mesh's
    /// shared secret. With it every connection is encrypted and authenticated
    /// (docs/PROTOCOL.md section 17) and a peer without it learns nothing. Default none:
    /// the mesh is then open to anyone who can reach its ports.
    pub secret: Option<Secret>,
    /// `NET_APPNET`: whether Python app-net's plain JSON requests are served (`auto`,
    /// the default: yes without a secret, no with one; `allow`; `deny`).
    pub app_net: AppNetAccess,
    /// The values handlers' `net::State<T>` parameters get, one per type
    /// ([`Config::state`]).
    pub(crate) states: StateMap,
}

/// How long a call with no timeout (zero) may wait: long enough to mean "as long as it
/// takes", short enough that a deadline computed from it never overflows.
const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The budget a call gets from a timeout: the timeout itself, or practically forever for
/// zero (no timeout, as Peers defines it).
pub(crate) fn budget(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        NO_TIMEOUT
    } else {
        timeout
    }
}

/// The mDNS service type of this project's peers.
pub const DEFAULT_MDNS_SERVICE: &str = "_netpeer._tcp.local.";

/// Copies of each key of a replicated table when `NET_TABLE_REPLICAS` is not set.
pub const DEFAULT_TABLE_REPLICAS: usize = 3;

/// The most copies of a key a table may keep: each is a replica asked on every read.
pub(crate) const MAX_TABLE_REPLICAS: usize = 64;

/// This crate's version, as `info` and the hello report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The default first port, as app-net's.
pub const DEFAULT_PORT: u16 = 3010;
pub(crate) const MIN_FRAME: usize = 1024;
// A frame's 4-byte big-endian length must never start with `{` (0x7B), which marks an
// app-net JSON request on the same port: 1 GiB keeps the first byte at most 0x40.
pub(crate) const MAX_FRAME: usize = 1 << 30;

impl Default for Config {
    fn default() -> Self {
        Config {
            port: DEFAULT_PORT,
            port_range: 5,
            thread_limit: 5,
            group: None,
            hub: false,
            dev: false,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            loopback: false,
            timeout: Duration::from_secs(10),
            max_frame: 16 << 20,
            seeds: Vec::new(),
            client: false,
            discovery: DiscoveryPaths::default(),
            probe_timeout: Duration::from_millis(500),
            mdns_service: DEFAULT_MDNS_SERVICE.to_owned(),
            table_replicas: DEFAULT_TABLE_REPLICAS,
            table_dir: None,
            limits: Limits::default(),
            secret: None,
            app_net: AppNetAccess::Auto,
            states: StateMap::default(),
        }
    }
}

impl Config {
    /// Checks values that each setter cannot check alone; [`crate::Peer::start`] calls it.
    pub fn validate(&self) -> Result<()> {
        if self.thread_limit == 0 {
            return Err(Error::Config {
                var: "NET_THREAD_LIMIT",
                value: "0".into(),
                reason: "at least 1 probe must be allowed in flight".into(),
            });
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.max_frame) {
            return Err(frame_range_error(self.max_frame.to_string()));
        }
        if self.port != 0 && u32::from(self.port) + u32::from(self.port_range) > 65535 {
            return Err(Error::Config {
                var: "NET_PORT_RANGE",
                value: self.port_range.to_string(),
                reason: format!("NET_PORT {} plus the range passes port 65535", self.port),
            });
        }
        if self.probe_timeout.is_zero() {
            return Err(Error::Config {
                var: "NET_PROBE_TIMEOUT",
                value: "0".into(),
                reason: "a probe needs some time; give e.g. 500ms".into(),
            });
        }
        check_mdns_service(&self.mdns_service)?;
        if !(1..=MAX_TABLE_REPLICAS).contains(&self.table_replicas) {
            return Err(table_replicas_error(self.table_replicas.to_string()));
        }
        self.limits.validate(self.max_frame)?;
        if self.loopback && !self.host.is_loopback() {
            return Err(Error::Config {
                var: "NET_HOST",
                value: self.host.to_string(),
                reason: "NET_LOOPBACK confines the peer to loopback; use 127.0.0.1 or unset one"
                    .into(),
            });
        }
        Ok(())
    }

    /// `NET_PORT`: the first port to try (0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Listens on exactly `addr`: its host (`NET_HOST`), its port (`NET_PORT`) and no
    /// further ports (`NET_PORT_RANGE=0`). A loopback address also turns on
    /// [`Config::loopback`].
    ///
    /// ```
    /// let config = net::Config::default().listen("127.0.0.1:5000".parse().unwrap());
    /// assert_eq!((config.port, config.port_range, config.loopback), (5000, 0, true));
    /// ```
    pub fn listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.host = addr.ip();
        self.port = addr.port();
        self.port_range = 0;
        if addr.ip().is_loopback() {
            self.loopback = true;
        }
        self
    }

    /// `NET_PORT_RANGE`: how many further ports to try.
    pub fn port_range(mut self, range: u16) -> Self {
        self.port_range = range;
        self
    }

    /// `NET_THREAD_LIMIT`: most discovery probes in flight.
    pub fn thread_limit(mut self, limit: usize) -> Self {
        self.thread_limit = limit;
        self
    }

    /// `NET_GROUP`: the peer's group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// `NET_IS_HUB`: whether this peer is a hub.
    pub fn hub(mut self, hub: bool) -> Self {
        self.hub = hub;
        self
    }

    /// `NET_DEV`: debug logging.
    pub fn dev(mut self, dev: bool) -> Self {
        self.dev = dev;
        self
    }

    /// `NET_HOST`: the address to bind.
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// `NET_LOOPBACK`: confine the peer to loopback (also sets the host to 127.0.0.1).
    pub fn loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        if loopback {
            self.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        }
        self
    }

    /// `NET_TIMEOUT`: the default call timeout; zero means none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `NET_MAX_FRAME`: the frame size limit in bytes.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// `NET_PEERS`: seed addresses.
    pub fn seeds<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
        self.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// `NET_CLIENT`: a peer that only calls: it takes no port of the range and is not
    /// listed by other peers (see [`Config::client`](Config#structfield.client)).
    pub fn client(mut self, client: bool) -> Self {
        self.client = client;
        self
    }

    /// `NET_DISCOVERY`: the discovery paths.
    pub fn discovery(mut self, paths: DiscoveryPaths) -> Self {
        self.discovery = paths;
        self
    }

    /// `NET_MDNS`: mDNS on or off, leaving the other paths as they are.
    pub fn mdns(mut self, on: bool) -> Self {
        use Discovery::Mdns;
        self.discovery = if on {
            self.discovery.with(Mdns)
        } else {
            self.discovery.without(Mdns)
        };
        self
    }

    /// `NET_PROBE_TIMEOUT`: how long one discovery probe may take.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// `NET_TABLE_REPLICAS`: copies of each key of a replicated table.
    pub fn table_replicas(mut self, replicas: usize) -> Self {
        self.table_replicas = replicas;
        self
    }

    /// `NET_TABLE_DIR`: where a member keeps its replicas on disk.
    pub fn table_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.table_dir = Some(dir.into());
        self
    }

    /// `NET_SECRET`: the mesh's shared secret (see [`Config::secret`](Config#structfield.secret)).
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// `NET_APPNET`: whether app-net's plain JSON requests are served.
    pub fn app_net(mut self, access: AppNetAccess) -> Self {
        self.app_net = access;
        self
    }

    /// Gives the peer `value` for every handler that takes a [`net::State<T>`](crate::State)
    /// parameter (one value per type; a second of the same type replaces the first). Pass
    /// an `Arc<T>` you keep as `T` itself if the rest of the program shares it, or get it
    /// back with [`Peer::state`](crate::Peer::state).
    ///
    /// ```
    /// struct Db(std::sync::Mutex<Vec<String>>);
    ///
    /// let config = net::Config::default().state(Db(Default::default()));
    /// # let _ = config;
    /// ```
    pub fn state<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.states.insert(std::sync::Arc::new(value));
        self
    }

    /// `NET_MDNS_SERVICE`: the mDNS service type, `_name._tcp.local.`.
    pub fn mdns_service(mut self, service: impl Into<String>) -> Self {
        self.mdns_service = service.into();
        self
    }
}

/// A DNS-SD service type is `_name._tcp.local.` with a name of at most 15 letters, digits
/// and hyphens (RFC 6763 section 7).
fn check_mdns_service(service: &str) -> Result<()> {
    let name = service
        .strip_prefix('_')
        .and_then(|s| s.strip_suffix("._tcp.local."));
    let ok = name.is_some_and(|n| {
        (1..=15).contains(&n.len())
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && n.bytes().any(|b| b.is_ascii_alphabetic())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            var: "NET_MDNS_SERVICE",
            value: service.to_owned(),
            reason: "expected _name._tcp.local. with a name of 1 to 15 letters, digits and \
                     hyphens"
                .into(),
        })
    }
}

pub(crate) fn table_replicas_error(value: String) -> Error {
    Error::Config {
        var: "NET_TABLE_REPLICAS",
        value,
        reason: format!(
            "expected a whole number of copies from 1 to {MAX_TABLE_REPLICAS} (default \
             {DEFAULT_TABLE_REPLICAS}); every member of a table must use the same"
        ),
    }
}

pub(crate) fn frame_range_error(value: String) -> Error {
    Error::Config {
        var: "NET_MAX_FRAME",
        value,
        reason: format!("must be between {MIN_FRAME} (1K) and {MAX_FRAME} (1G) bytes"),
    }
}
