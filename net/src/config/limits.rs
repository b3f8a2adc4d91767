//! The limits a peer holds every connection to, since a LAN it does not control may hold
//! hostile clients: how long a remote may make it wait, how much it may make it buffer,
//! and how much of its threads and connection slots one connection may take. Read from
//! `NET_*` variables like the other settings; docs/PROTOCOL.md section 14.1 says what each
//! limit does to a connection that passes it.

use std::time::Duration;

use super::env::{parse_duration, parse_num, parse_size};
use super::Config;
use crate::error::{Error, Result};

/// The limits of one peer; [`Config::limits`](Config#structfield.limits). Each field's
/// doc names its variable and default.
///
/// ```
/// use std::time::Duration;
/// let config = net::Config::default()
///     .idle_timeout(Duration::from_secs(30))
///     .max_connections(256);
/// assert_eq!(config.limits.idle_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// `NET_HELLO_TIMEOUT`: how long a new connection may take to deliver its whole hello.
    /// Default 5 s.
    pub hello_timeout: Duration,
    /// `NET_FRAME_TIMEOUT`: the grace a frame gets once its first byte has arrived; past
    /// it the frame must keep up `NET_MIN_RATE` (it must be complete by this plus its
    /// bytes so far at that rate). The same holds for an app-net request, and for what
    /// this peer sends: the other side must take it as fast. Default 5 s.
    pub frame_timeout: Duration,
    /// `NET_MIN_RATE`: the slowest a started frame may arrive, or a queued reply be taken,
    /// in bytes per second. Default 1 MiB/s (`1M`): a LAN moves ten times that.
    pub min_rate: usize,
    /// `NET_IDLE_TIMEOUT`: a connection with nothing in flight in either direction for
    /// this long is closed with a goodbye; the next call opens a new one. Default 60 s.
    pub idle_timeout: Duration,
    /// `NET_MAX_CONNECTIONS`: most connections the peer serves at once. When full, the
    /// one idle the longest is closed to make room; with none idle, a newcomer is refused
    /// with an error frame. Default 1024.
    pub max_connections: usize,
    /// `NET_MAX_CALLS`: most calls of one connection running here at once; past it the
    /// peer stops reading that connection until some end. Default 1024.
    pub max_calls: usize,
    /// `NET_CONN_THREADS`: most handler threads the synchronous calls of one connection
    /// may hold at once (the peer has 512); its further calls wait their turn, so one
    /// caller cannot starve the others. Default 64.
    pub conn_threads: usize,
    /// `NET_CONN_MEMORY`: what one connection may make the peer buffer (calls waiting or
    /// running, replies not yet taken). Past half of it the peer stops reading that
    /// connection; past all of it the connection is closed with an error. At least twice
    /// `NET_MAX_FRAME`. Default 64 MiB.
    pub conn_memory: usize,
    /// `NET_PEER_MEMORY`: what all connections together may make the peer buffer. Large
    /// frames (64 KiB and more) wait to be read until their size fits; past it the
    /// connection holding the most is closed. At least `NET_CONN_MEMORY`. Default 512 MiB.
    pub peer_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hello_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
            min_rate: 1 << 20,
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_calls: 1024,
            conn_threads: 64,
            conn_memory: 64 << 20,
            peer_memory: 512 << 20,
        }
    }
}

impl Limits {
    /// Reads the `NET_*` variables of the limits through `get` over what is set.
    pub(super) fn read(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let duration = |var: &'static str, slot: &mut Duration| -> Result<()> {
            if let Some(v) = get(var) {
                *slot = parse_duration(var, &v)?;
            }
            Ok(())
        };
        duration("NET_HELLO_TIMEOUT", &mut self.hello_timeout)?;
        duration("NET_FRAME_TIMEOUT", &mut self.frame_timeout)?;
        duration("NET_IDLE_TIMEOUT", &mut self.idle_timeout)?;
        let size = |var: &'static str, slot: &mut usize| -> Result<()> {
            if let Some(v) = get(var) {
                *slot = parse_size(var, &v)?;
            }
            Ok(())
        };
        size("NET_MIN_RATE", &mut self.min_rate)?;
        size("NET_CONN_MEMORY", &mut self.conn_memory)?;
        size("NET_PEER_MEMORY", &mut self.peer_memory)?;
        let count = |var: &'static str, slot: &mut usize| -> Result<()> {
            if let Some(v) = get(var) {
                *slot = parse_num(var, &v)?;
            }
            Ok(())
        };
        count("NET_MAX_CONNECTIONS", &mut self.max_connections)?;
        count("NET_MAX_CALLS", &mut self.max_calls)?;
        count("NET_CONN_THREADS", &mut self.conn_threads)?;
        Ok(())
    }

    /// Checks the limits against each other and against the frame limit.
    pub(super) fn validate(&self, max_frame: usize) -> Result<()> {
        let zero = |var: &'static str, what: &str| Error::Config {
            var,
            value: "0".into(),
            reason: format!("{what}; give a positive value"),
        };
        let durations = [
            ("NET_HELLO_TIMEOUT", self.hello_timeout),
            ("NET_FRAME_TIMEOUT", self.frame_timeout),
            ("NET_IDLE_TIMEOUT", self.idle_timeout),
        ];
        for (var, value) in durations {
            if value.is_zero() {
                return Err(zero(var, "a remote needs some time"));
            }
        }
        let counts = [
            ("NET_MIN_RATE", self.min_rate),
            ("NET_MAX_CONNECTIONS", self.max_connections),
            ("NET_MAX_CALLS", self.max_calls),
            ("NET_CONN_THREADS", self.conn_threads),
        ];
        for (var, value) in counts {
            if value == 0 {
                return Err(zero(var, "nothing could get through"));
            }
        }
        if self.conn_memory < max_frame.saturating_mul(2) {
            return Err(Error::Config {
                var: "NET_CONN_MEMORY",
                value: self.conn_memory.to_string(),
                reason: format!(
                    "a connection must hold a frame each way: at least twice NET_MAX_FRAME \
                     ({max_frame} bytes); raise it or lower NET_MAX_FRAME"
                ),
            });
        }
        if self.peer_memory < self.conn_memory {
            return Err(Error::Config {
                var: "NET_PEER_MEMORY",
                value: self.peer_memory.to_string(),
                reason: format!(
                    "the peer must hold at least one connection's NET_CONN_MEMORY ({} bytes)",
                    self.conn_memory
                ),
            });
        }
        Ok(())
    }
}

impl Config {
    /// `NET_HELLO_TIMEOUT`: how long a new connection may take to deliver its hello.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.limits.hello_timeout = timeout;
        self
    }

    /// `NET_FRAME_TIMEOUT`: the grace a started frame gets before `NET_MIN_RATE` applies.
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.limits.frame_timeout = timeout;
        self
    }

    /// `NET_MIN_RATE`: the slowest a started frame may arrive, in bytes per second.
    pub fn min_rate(mut self, bytes_per_second: usize) -> Self {
        self.limits.min_rate = bytes_per_second;
        self
    }

    /// `NET_IDLE_TIMEOUT`: how long a connection with nothing in flight stays open.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// `NET_MAX_CONNECTIONS`: most connections served at once.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.max_connections = connections;
        self
    }

    /// `NET_MAX_CALLS`: most calls of one connection running at once.
    pub fn max_calls(mut self, calls: usize) -> Self {
        self.limits.max_calls = calls;
        self
    }

    /// `NET_CONN_THREADS`: most handler threads one connection's calls may hold.
    pub fn conn_threads(mut self, threads: usize) -> Self {
        self.limits.conn_threads = threads;
        self
    }

    /// `NET_CONN_MEMORY`: what one connection may make the peer buffer, in bytes.
    pub fn conn_memory(mut self, bytes: usize) -> Self {
        self.limits.conn_memory = bytes;
        self
    }

    /// `NET_PEER_MEMORY`: what all connections may make the peer buffer, in bytes.
    pub fn peer_memory(mut self, bytes: usize) -> Self {
        self.limits.peer_memory = bytes;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::tests::env;

    #[test]
    fn every_limit_parses() {
        let c = env(&[
            ("NET_HELLO_TIMEOUT", "2s"),
            ("NET_FRAME_TIMEOUT", "750ms"),
            ("NET_MIN_RATE", "256K"),
            ("NET_IDLE_TIMEOUT", "5m"),
            ("NET_MAX_CONNECTIONS", "64"),
            ("NET_MAX_CALLS", "100"),
            ("NET_CONN_THREADS", "8"),
            ("NET_CONN_MEMORY", "128M"),
            ("NET_PEER_MEMORY", "1G"),
        ])
        .unwrap();
        let l = &c.limits;
        assert_eq!(l.hello_timeout, Duration::from_secs(2));
        assert_eq!(l.frame_timeout, Duration::from_millis(750));
        assert_eq!(l.min_rate, 256 << 10);
        assert_eq!(l.idle_timeout, Duration::from_secs(300));
        assert_eq!(
            (l.max_connections, l.max_calls, l.conn_threads),
            (64, 100, 8)
        );
        assert_eq!((l.conn_memory, l.peer_memory), (128 << 20, 1 << 30));
        assert_eq!(env(&[]).unwrap().limits, Limits::default());
    }

    #[test]
    fn bad_limits_name_the_variable_and_the_value() {
        for (var, value) in [
            ("NET_HELLO_TIMEOUT", "soon"),
            ("NET_FRAME_TIMEOUT", "0"),
            ("NET_IDLE_TIMEOUT", "-1s"),
            ("NET_MIN_RATE", "fast"),
            ("NET_MAX_CONNECTIONS", "0"),
            ("NET_MAX_CALLS", "many"),
            ("NET_CONN_THREADS", "0"),
            ("NET_CONN_MEMORY", "1M"),
            ("NET_PEER_MEMORY", "32M"),
        ] {
            let err = env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        // Memory limits are checked against the frame limit and each other.
        let err = env(&[("NET_MAX_FRAME", "64M")]).unwrap_err().to_string();
        assert!(err.contains("NET_CONN_MEMORY"), "{err}");
        assert!(env(&[("NET_MAX_FRAME", "64M"), ("NET_CONN_MEMORY", "128M")]).is_ok());
    }
}
