//! Call targets: what `.on(...)` accepts (a peer id, "host:port", a socket address, a
//! local `Peer`, a `Caller`) and how each becomes a connection.

use std::net::SocketAddr;

use crate::caller::Caller;
use crate::error::Error;
use crate::id::PeerId;
use crate::peer::Peer;

/// Where a call goes. Built from the types `.on(...)` accepts; text is parsed when the
/// call runs, so a bad target is an error of the call, not a panic.
#[derive(Clone, Debug)]
pub struct Target {
    pub(crate) kind: TargetKind,
}

#[derive(Clone, Debug)]
pub(crate) enum TargetKind {
    Addr(SocketAddr),
    Text(String),
    Caller(Caller),
    /// A Python app-net peer at the inner target: calls use app-net's JSON format, one TCP
    /// connection per call (legacy/client.rs).
    AppNet(Box<Target>),
}

impl Target {
    /// A Python app-net 0.6 peer at `target` (`"host:port"`, a socket address, ...): calls
    /// to it are sent in app-net's own JSON format, one TCP connection per call, as app-net
    /// expects (see docs/APPNET.md for what is compatible).
    ///
    /// ```no_run
    /// #[net::connect("app.multiply")] // app-net's tag for `multiply` in module `app`
    /// fn multiply(a: i64, b: i64) -> i64 { a * b }
    ///
    /// # async fn f() -> net::Result<()> {
    /// let python = net::Target::app_net("127.0.0.1:3010");
    /// assert_eq!(multiply(5, 10).on(&python).await?, 50);
    /// # Ok(()) }
    /// ```
    pub fn app_net(target: impl Into<Target>) -> Target {
        Target {
            kind: TargetKind::AppNet(Box::new(target.into())),
        }
    }

    /// Resolves to a socket address. `host:port` names are looked up.
    pub(crate) async fn addr(&self) -> Result<SocketAddr, Error> {
        match &self.kind {
            TargetKind::Addr(addr) => Ok(*addr),
            TargetKind::Caller(caller) if caller.is_app_net() => Err(Error::InvalidTarget {
                target: format!("{caller:?}"),
                reason: "an app-net client serves nothing on the connection it called from; \
                         call its peer's server with net::Target::app_net(\"host:port\")"
                    .into(),
            }),
            TargetKind::Caller(caller) => caller.addr().ok_or_else(|| Error::InvalidTarget {
                target: "a local caller".into(),
                reason: "a local call has no remote peer to call back".into(),
            }),
            TargetKind::Text(text) => resolve_text(text).await,
            TargetKind::AppNet(inner) => Box::pin(inner.addr()).await,
        }
    }
}

async fn resolve_text(text: &str) -> Result<SocketAddr, Error> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Peer ids are URL-safe base64 and never hold a colon; anything with one is host:port.
    if text.contains(':') {
        let invalid = |reason: String| Error::InvalidTarget {
            target: text.to_owned(),
            reason,
        };
        let mut addrs = tokio::net::lookup_host(text)
            .await
            .map_err(|e| invalid(format!("not a reachable host:port ({e})")))?;
        return addrs
            .next()
            .ok_or_else(|| invalid("the host name resolves to no address".into()));
    }
    text.parse::<PeerId>()
        .map(|id| id.addr())
        .map_err(|_| Error::InvalidTarget {
            target: text.to_owned(),
            reason: "expected a peer id (from net::peers()), host:port or a socket address".into(),
        })
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target {
            kind: TargetKind::Addr(addr),
        }
    }
}

impl From<&str> for Target {
    fn from(text: &str) -> Target {
        Target {
            kind: TargetKind::Text(text.to_owned()),
        }
    }
}

impl From<String> for Target {
    fn from(text: String) -> Target {
        Target {
            kind: TargetKind::Text(text),
        }
    }
}

impl From<&String> for Target {
    fn from(text: &String) -> Target {
        Target::from(text.as_str())
    }
}

impl From<&PeerId> for Target {
    fn from(id: &PeerId) -> Target {
        Target::from(id.addr())
    }
}

impl From<PeerId> for Target {
    fn from(id: PeerId) -> Target {
        Target::from(id.addr())
    }
}

impl From<&Peer> for Target {
    fn from(peer: &Peer) -> Target {
        Target::from(peer.addr())
    }
}

impl From<&Caller> for Target {
    fn from(caller: &Caller) -> Target {
        Target {
            kind: TargetKind::Caller(caller.clone()),
        }
    }
}

impl From<(std::net::IpAddr, u16)> for Target {
    fn from((ip, port): (std::net::IpAddr, u16)) -> Target {
        Target::from(SocketAddr::new(ip, port))
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Target {
        target.clone()
    }
}
