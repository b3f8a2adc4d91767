//! Command-line plumbing shared by the Peers examples: node addresses, loopback
//! confinement unless `--lan` is given, and the tutorial's `pid [address]: message` log line.
//! Each example includes it with `#[macro_use] mod common;` and uses a different part.
#![allow(dead_code)]

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;

/// Parses `host:port` (`127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`) for clap. Names
/// resolve once, IPv4 first, so that `localhost` means the same peer as `127.0.0.1`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("expected host:port such as 127.0.0.1:5000 ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// Refuses addresses off this machine unless the user asked for the LAN with `--lan`: the
/// examples are demos, and a demo should not reach out by accident.
pub fn confine<'a>(
    addrs: impl IntoIterator<Item = &'a SocketAddr>,
    lan: bool,
) -> Result<(), String> {
    if lan {
        return Ok(());
    }
    match addrs.into_iter().find(|a| !a.ip().is_loopback()) {
        Some(addr) => Err(format!(
            "{addr} is not a loopback address; these examples stay on this machine (use \
             127.0.0.1:PORT) unless you pass --lan"
        )),
        None => Ok(()),
    }
}

/// The configuration of a node serving on exactly `addr` (no port range: the address is
/// its name in the tutorial's transcripts). Other settings come from the `NET_*`
/// variables. The peer is confined to loopback unless `--lan` is given, and even then when
/// `NET_LOOPBACK=1` says so (a non-loopback address is then a clear start-up error).
pub fn node_config(addr: SocketAddr, lan: bool) -> net::Result<net::Config> {
    let config = net::Config::from_env()?;
    let loopback = config.loopback || !lan;
    Ok(config
        .loopback(loopback)
        .host(addr.ip())
        .port(addr.port())
        .port_range(0))
}

/// The configuration of a client: its own peer on any free port, on loopback unless
/// `--lan` is given (and `NET_LOOPBACK` is not set).
pub fn client_config(lan: bool) -> net::Result<net::Config> {
    let config = net::Config::from_env()?;
    let loopback = config.loopback || !lan;
    let config = config.loopback(loopback).port(0);
    Ok(match loopback {
        true => config,
        false => config.host(std::net::Ipv4Addr::UNSPECIFIED.into()),
    })
}

/// The address this node serves on, for log lines; set once at start-up.
static NAME: OnceLock<SocketAddr> = OnceLock::new();

/// Names this process in log lines from now on.
pub fn set_name(addr: SocketAddr) {
    let _ = NAME.set(addr);
}

/// `pid [address]`, as the tutorial's nodes prefix their messages.
pub struct Who;

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAME.get() {
            Some(addr) => write!(f, "{} [{addr}]", std::process::id()),
            None => write!(f, "{}", std::process::id()),
        }
    }
}

/// Prints one line of the node's transcript: `pid [address]: message`.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}: {}", $crate::common::Who, format_args!($($arg)*))
    };
}

/// Locks a mutex whose holders never leave it half-updated, so a poisoned one (a handler
/// panicked elsewhere) still holds good data.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Prints `error: ...` for a failed start-up or command and gives the exit code 1.
pub fn fail(error: impl fmt::Display) -> std::process::ExitCode {
    eprintln!("error: {error}");
    std::process::ExitCode::FAILURE
}
