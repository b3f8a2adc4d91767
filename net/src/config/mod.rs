//! Configuration: the settings of one peer, their validation, and the builder; `env.rs`
//! reads the same settings from the `NET_*` environment variables, `paths.rs` names the
//! discovery paths.
//!
//! Every invalid value is an [`Error::Config`] that names the variable and the value; a bad
//! value never falls back to a default silently.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

mod env;
mod limits;
mod paths;

pub use limits::Limits;
pub use paths::{Discovery, DiscoveryPaths};

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
    /// or a bare number of seconds.
    pub timeout: Duration,
    /// `NET_MAX_FRAME`: the largest frame this peer sends or accepts, in bytes. Default
    /// 16 MiB; accepts `64K`, `16M`, `1G`. Between 1 KiB and 1 GiB.
    pub max_frame: usize,
    /// `NET_PEERS`: seed addresses (`host:port,...`) of peers outside this broadcast domain.
    /// Default none.
    pub seeds: Vec<String>,
    /// Listen on any free port instead of one of `NET_PORT..=NET_PORT+NET_PORT_RANGE`,
    /// while discovery still scans that range: for tools and scripts that call peers but
    /// must not take a port of the range from a real one (the `net` command line). Default
    /// false.
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
    /// Deadlines, memory budgets and fair shares for every connection (`NET_HELLO_TIMEOUT`,
    /// `NET_IDLE_TIMEOUT`, `NET_CONN_MEMORY`, ...): see [`Limits`].
    pub limits: Limits,
}

/// The mDNS service type of this project's peers.
pub const DEFAULT_MDNS_SERVICE: &str = "_netpeer._tcp.local.";

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
            limits: Limits::default(),
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
        if self.timeout.is_zero() {
            return Err(Error::Config {
                var: "NET_TIMEOUT",
                value: "0".into(),
                reason: "a call needs some time; give e.g. 500ms or 10s".into(),
            });
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

    /// `NET_TIMEOUT`: the default call timeout.
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

    /// Listens on any free port while discovery scans the configured range (see
    /// [`Config::client`](Config#structfield.client)).
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

pub(crate) fn frame_range_error(value: String) -> Error {
    Error::Config {
        var: "NET_MAX_FRAME",
        value,
        reason: format!("must be between {MIN_FRAME} (1K) and {MAX_FRAME} (1G) bytes"),
    }
}
