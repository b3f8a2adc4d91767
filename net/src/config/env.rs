//! Reading the settings from `NET_*` environment variables (or any lookup), and the
//! parsers for their values.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{frame_range_error, table_replicas_error, Config, MAX_FRAME, MIN_FRAME};
use crate::error::{Error, Result};

impl Config {
    /// Reads the `NET_*` environment variables over the defaults. A `NET_*` variable that
    /// no part of `net` reads (a typo such as `NET_PROT`) is warned about once, with the
    /// closest known name.
    pub fn from_env() -> Result<Config> {
        super::vars::warn_unknown_once(std::env::vars_os());
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
        // app-net's documented name for the same setting.
        if let Some(v) = get("NET_PORT_START") {
            let start = parse_num("NET_PORT_START", &v)?;
            if get("NET_PORT").is_some() && start != config.port {
                return Err(Error::Config {
                    var: "NET_PORT_START",
                    value: v,
                    reason: format!(
                        "NET_PORT_START is app-net's name for NET_PORT, which says {}; set \
                         one of them",
                        config.port
                    ),
                });
            }
            config.port = start;
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
            // Zero or negative: no timeout (Peers' convention).
            config.timeout = match v.trim().strip_prefix('-') {
                Some(magnitude) => {
                    parse_duration("NET_TIMEOUT", magnitude).map(|_| Duration::ZERO)?
                }
                None => parse_duration("NET_TIMEOUT", &v)?,
            };
        }
        if let Some(v) = get("NET_CLIENT") {
            config.client = parse_bool("NET_CLIENT", &v)?;
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
        if let Some(v) = get("NET_TABLE_REPLICAS") {
            config.table_replicas = v
                .trim()
                .parse()
                .map_err(|_| table_replicas_error(v.clone()))?;
        }
        if let Some(v) = get("NET_TABLE_DIR") {
            config.table_dir = Some(std::path::PathBuf::from(v.trim()));
        }
        match (get("NET_SECRET"), get("NET_SECRET_FILE")) {
            (Some(_), Some(file)) => {
                return Err(Error::Config {
                    var: "NET_SECRET_FILE",
                    value: file,
                    reason: "NET_SECRET is set too; set one of them".into(),
                })
            }
            (Some(secret), None) => config.secret = Some(super::Secret::new(secret)),
            (None, Some(file)) => config.secret = Some(super::Secret::from_file(file.trim())?),
            (None, None) => {}
        }
        if let Some(v) = get("NET_APPNET") {
            config.app_net = super::AppNetAccess::parse(&v)?;
        }
        config.limits.read(&get)?;
        config.validate()?;
        Ok(config)
    }
}

pub(crate) fn parse_num<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T> {
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
pub(crate) fn parse_size(var: &'static str, value: &str) -> Result<usize> {
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
pub(in crate::config) mod tests {
    use super::*;

    /// A configuration read from `pairs` as if they were the environment (the other
    /// config modules' tests use it too).
    pub(in crate::config) fn env(pairs: &[(&str, &str)]) -> Result<Config> {
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
            ("NET_PORT_START", "x"),
            ("NET_CLIENT", "maybe"),
            ("NET_MAX_FRAME", "12"),
            ("NET_MAX_FRAME", "2G"),
            ("NET_LOOPBACK", "2"),
            ("NET_TABLE_REPLICAS", "0"),
            ("NET_TABLE_REPLICAS", "three"),
            ("NET_TABLE_REPLICAS", "65"),
        ] {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
            if value != "0" {
                assert!(err.contains(value), "{var}={value}: {err}");
            }
        }
    }

    #[test]
    fn table_settings() {
        let c = env(&[]).unwrap();
        assert_eq!((c.table_replicas, c.table_dir.clone()), (3, None));
        let c = env(&[
            ("NET_TABLE_REPLICAS", "5"),
            ("NET_TABLE_DIR", "/var/lib/net"),
        ])
        .unwrap();
        assert_eq!(c.table_replicas, 5);
        assert_eq!(c.table_dir, Some(std::path::PathBuf::from("/var/lib/net")));
    }

    #[test]
    fn app_nets_port_start_zero_timeouts_and_clients() {
        assert_eq!(env(&[("NET_PORT_START", "4100")]).unwrap().port, 4100);
        let same = env(&[("NET_PORT_START", "4100"), ("NET_PORT", "4100")]).unwrap();
        assert_eq!(same.port, 4100);
        let err = env(&[("NET_PORT_START", "4100"), ("NET_PORT", "4200")]).unwrap_err();
        assert!(err.to_string().contains("set one of them"), "{err}");
        for none in ["0", "-1", "-2s", "0ms"] {
            let c = env(&[("NET_TIMEOUT", none)]).unwrap();
            assert_eq!(c.timeout, Duration::ZERO, "{none}");
        }
        assert!(env(&[("NET_TIMEOUT", "-soon")]).is_err());
        assert!(env(&[("NET_CLIENT", "1")]).unwrap().client);
        assert!(!env(&[]).unwrap().client);
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
