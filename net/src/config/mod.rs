//! Configuration: the `NET_*` environment variables, their validation, and the same
//! settings as a builder.
//!
//! Every invalid value is an [`Error::Config`] that names the variable and the value; a bad
//! value never falls back to a default silently.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::discovery::DiscoveryPaths;
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
}

/// The mDNS service type of this project's peers.
pub const DEFAULT_MDNS_SERVICE: &str = "_netpeer._tcp.local.";

/// The default first port, as app-net's.
pub const DEFAULT_PORT: u16 = 3010;
pub(crate) const MIN_FRAME: usize = 1024;
// A frame's 4-byte big-endian length must never start with `{` (0x7B), which marks an
// app-net JSON request on the same port: 1 GiB keeps the first byte at most 0x40.
const MAX_FRAME: usize = 1 << 30;

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
        }
    }
}

impl Config {
    /// Reads the `NET_*` environment variables over the defaults.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value) over the defaults.
    /// [`Config::from_env`] is this with the process environment.
    ///
    /// ```
    /// let config = net::Config::from_lookup(|name| match name {
    ///     "NET_PORT" => Some("4000".into()),
    ///     _ => None,
    /// }).unwrap();
    /// assert_eq!(config.port, 4000);
    ///
    /// let err = net::Config::from_lookup(|name| match name {
    ///     "NET_PORT" => Some("lots".into()),
    ///     _ => None,
    /// }).unwrap_err();
    /// assert!(err.to_string().contains("NET_PORT=\"lots\""));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("NET_PORT") {
            config.port = parse_num("NET_PORT", &v)?;
        }
        if let Some(v) = get("NET_PORT_RANGE") {
            config.port_range = parse_num("NET_PORT_RANGE", &v)?;
        }
        if let Some(v) = get("NET_THREAD_LIMIT") {
            config.thread_limit = parse_num("NET_THREAD_LIMIT", &v)?;
        }
        if let Some(v) = lookup("NET_GROUP") {
            config.group = Some(v).filter(|g| !g.is_empty());
        }
        if let Some(v) = get("NET_IS_HUB") {
            config.hub = parse_bool("NET_IS_HUB", &v)?;
        }
        if let Some(v) = get("NET_DEV") {
            config.dev = parse_bool("NET_DEV", &v)?;
        }
        if let Some(v) = get("NET_LOOPBACK") {
            config.loopback = parse_bool("NET_LOOPBACK", &v)?;
        }
        if config.loopback {
            config.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        }
        if let Some(v) = get("NET_HOST") {
            config.host = v.trim().parse().map_err(|_| Error::Config {
                var: "NET_HOST",
                value: v.clone(),
                reason: "expected an IP address such as 0.0.0.0 or 192.168.1.20".into(),
            })?;
        }
        if let Some(v) = get("NET_TIMEOUT") {
            config.timeout = parse_duration("NET_TIMEOUT", &v)?;
        }
        if let Some(v) = get("NET_MAX_FRAME") {
            config.max_frame = parse_size("NET_MAX_FRAME", &v)?;
            if !(MIN_FRAME..=MAX_FRAME).contains(&config.max_frame) {
                return Err(frame_range_error(v));
            }
        }
        if let Some(v) = get("NET_PEERS") {
            config.seeds = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = lookup("NET_DISCOVERY") {
            config.discovery = v.parse()?;
        }
        if let Some(v) = get("NET_MDNS") {
            config = config.mdns(parse_bool("NET_MDNS", &v)?);
        }
        if let Some(v) = get("NET_PROBE_TIMEOUT") {
            config.probe_timeout = parse_duration("NET_PROBE_TIMEOUT", &v)?;
        }
        if let Some(v) = get("NET_MDNS_SERVICE") {
            config.mdns_service = v.trim().to_owned();
        }
        config.validate()?;
        Ok(config)
    }

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
        use crate::discovery::Discovery::Mdns;
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

fn frame_range_error(value: String) -> Error {
    Error::Config {
        var: "NET_MAX_FRAME",
        value,
        reason: format!("must be between {MIN_FRAME} (1K) and {MAX_FRAME} (1G) bytes"),
    }
}

fn parse_num<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| Error::Config {
        var,
        value: value.to_owned(),
        reason: format!(
            "expected a whole number between {} and {}",
            0,
            match var {
                "NET_PORT" | "NET_PORT_RANGE" => "65535",
                _ => "a few thousand",
            }
        ),
    })
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config {
            var,
            value: value.to_owned(),
            reason: "expected 1/0, true/false, yes/no or on/off".into(),
        }),
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` or a bare number of seconds.
pub(crate) fn parse_duration(var: &'static str, value: &str) -> Result<Duration> {
    let err = || Error::Config {
        var,
        value: value.to_owned(),
        reason: "expected a duration such as 250ms, 2s, 1.5s, 1m or a number of seconds".into(),
    };
    let v = value.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    let number: f64 = number.trim().parse().map_err(|_| err())?;
    if !number.is_finite() || number < 0.0 || number * scale > 1e9 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(number * scale))
}

/// Parses `1048576`, `64K`, `16M`, `1G` (binary multiples; `KiB`/`MB` spellings accepted).
fn parse_size(var: &'static str, value: &str) -> Result<usize> {
    let err = || Error::Config {
        var,
        value: value.to_owned(),
        reason: "expected a byte count such as 65536, 64K, 16M or 1G".into(),
    };
    let v = value.trim().to_ascii_uppercase();
    let v = v.trim_end_matches('B').trim_end_matches('I');
    let (digits, shift) = match v.chars().last() {
        Some('K') => (&v[..v.len() - 1], 10),
        Some('M') => (&v[..v.len() - 1], 20),
        Some('G') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: usize = digits.trim().parse().map_err(|_| err())?;
    n.checked_mul(1 << shift).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_app_nets() {
        let c = env(&[]).unwrap();
        assert_eq!((c.port, c.port_range, c.thread_limit), (3010, 5, 5));
        assert!(!c.hub && c.group.is_none() && !c.loopback);
    }

    #[test]
    fn every_variable_parses() {
        let c = env(&[
            ("NET_PORT", "4000"),
            ("NET_PORT_RANGE", "9"),
            ("NET_THREAD_LIMIT", "16"),
            ("NET_GROUP", "render"),
            ("NET_IS_HUB", "yes"),
            ("NET_DEV", "1"),
            ("NET_LOOPBACK", "true"),
            ("NET_TIMEOUT", "250ms"),
            ("NET_MAX_FRAME", "64K"),
            ("NET_PEERS", "10.0.0.1:3010, 10.0.0.2:3011"),
        ])
        .unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.port_range, 9);
        assert_eq!(c.thread_limit, 16);
        assert_eq!(c.group.as_deref(), Some("render"));
        assert!(c.hub && c.dev && c.loopback);
        assert_eq!(c.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.max_frame, 64 * 1024);
        assert_eq!(c.seeds, vec!["10.0.0.1:3010", "10.0.0.2:3011"]);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        for (var, value) in [
            ("NET_PORT", "70000"),
            ("NET_PORT", "-1"),
            ("NET_PORT_RANGE", "x"),
            ("NET_THREAD_LIMIT", "0"),
            ("NET_IS_HUB", "maybe"),
            ("NET_DEV", "loud"),
            ("NET_HOST", "my-laptop"),
            ("NET_TIMEOUT", "soon"),
            ("NET_TIMEOUT", "0"),
            ("NET_MAX_FRAME", "12"),
            ("NET_MAX_FRAME", "2G"),
            ("NET_LOOPBACK", "2"),
        ] {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
            if value != "0" {
                assert!(err.contains(value), "{var}={value}: {err}");
            }
        }
    }

    #[test]
    fn port_range_must_fit_below_65536() {
        let err = env(&[("NET_PORT", "65530"), ("NET_PORT_RANGE", "10")]).unwrap_err();
        assert!(err.to_string().contains("NET_PORT_RANGE"));
    }

    #[test]
    fn loopback_refuses_a_public_host() {
        let err = env(&[("NET_LOOPBACK", "1"), ("NET_HOST", "0.0.0.0")]).unwrap_err();
        assert!(err.to_string().contains("NET_LOOPBACK"));
    }

    #[test]
    fn discovery_settings() {
        let c = env(&[]).unwrap();
        assert_eq!(c.discovery.to_string(), "scan,mdns,seeds");
        let c = env(&[("NET_DISCOVERY", "all"), ("NET_MDNS", "0")]).unwrap();
        assert_eq!(c.discovery.to_string(), "scan,seeds,arp");
        let c = env(&[("NET_DISCOVERY", "seeds"), ("NET_PROBE_TIMEOUT", "200ms")]).unwrap();
        assert_eq!(c.discovery.to_string(), "seeds");
        assert_eq!(c.probe_timeout, Duration::from_millis(200));
        let c = env(&[("NET_MDNS_SERVICE", "_nt-42._tcp.local.")]).unwrap();
        assert_eq!(c.mdns_service, "_nt-42._tcp.local.");
        for (var, value) in [
            ("NET_DISCOVERY", "scan,sonar"),
            ("NET_MDNS", "perhaps"),
            ("NET_PROBE_TIMEOUT", "quick"),
            ("NET_MDNS_SERVICE", "_much-too-long-a-name._tcp.local."),
            ("NET_MDNS_SERVICE", "netpeer"),
        ] {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.contains(var) && err.contains(value),
                "{var}={value}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration("X", s).unwrap();
        assert_eq!(d("2"), Duration::from_secs(2));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert!(parse_duration("X", "-1s").is_err());
    }
}
