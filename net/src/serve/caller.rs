//! `net::Caller`: what a handler can learn about who called it, and the way to call that
//! peer back over the same link (Peers' reverse channel). The serving peer is held
//! erased ([`Host`]): this layer is below the peer's; `Caller::server` is attached in
//! `peer/caller.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Host;
use crate::id::PeerId;
use crate::link::Link;

/// Who called. Add a parameter of this type to a `#[net::connect]` function to receive it;
/// it is filled in by the peer, not sent by the caller.
///
/// ```
/// #[net::connect]
/// fn whoami(caller: net::Caller) -> String {
///     match caller.addr() {
///         Some(addr) => format!("you are {addr}"),
///         None => "a local call".to_owned(),
///     }
/// }
///
/// assert_eq!(whoami().local().unwrap(), "a local call");
/// ```
///
/// To call back, pass it as a target: `f(x).on(&caller)` travels over the connection the
/// call came in on, so it works even when the caller serves no port of its own.
#[derive(Clone)]
pub struct Caller {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Local {
        host: Option<Host>,
    },
    Remote {
        link: Arc<Link>,
        host: Host,
        /// Cancelled when the caller gives up; `None` for a call that nothing but the end
        /// of its link can cancel (one run inline, which ends before a cancel is read).
        cancel: Option<CancellationToken>,
    },
    /// A Python app-net client: one request per TCP connection, nothing to call back on.
    AppNet {
        addr: SocketAddr,
        host: Host,
        cancel: CancellationToken,
    },
}

impl Caller {
    pub(crate) fn local(host: Option<Host>) -> Caller {
        Caller {
            kind: Kind::Local { host },
        }
    }

    pub(crate) fn remote(link: Arc<Link>, host: Host, cancel: Option<CancellationToken>) -> Caller {
        Caller {
            kind: Kind::Remote { link, host, cancel },
        }
    }

    pub(crate) fn app_net(addr: SocketAddr, host: Host, cancel: CancellationToken) -> Caller {
        Caller {
            kind: Kind::AppNet { addr, host, cancel },
        }
    }

    /// True for `.local()` calls.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }

    /// True for calls from a Python app-net client (docs/APPNET.md). Such a caller cannot
    /// be called back with `.on(&caller)`: app-net serves nothing on the connection it
    /// calls from.
    pub fn is_app_net(&self) -> bool {
        matches!(self.kind, Kind::AppNet { .. })
    }

    /// The calling peer's id; `None` for local calls, app-net clients and clients that
    /// serve nothing.
    pub fn id(&self) -> Option<&PeerId> {
        match &self.kind {
            Kind::Remote { link, .. } => link.remote().id.as_ref(),
            Kind::Local { .. } | Kind::AppNet { .. } => None,
        }
    }

    /// The calling socket's address; `None` for local calls.
    pub fn addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::Remote { link, .. } => Some(link.remote_addr()),
            Kind::AppNet { addr, .. } => Some(*addr),
            Kind::Local { .. } => None,
        }
    }

    /// The calling peer's group.
    pub fn group(&self) -> Option<&str> {
        match &self.kind {
            Kind::Remote { link, .. } => link.remote().group.as_deref(),
            Kind::Local { .. } | Kind::AppNet { .. } => None,
        }
    }

    /// Whether the calling peer is a hub.
    pub fn is_hub(&self) -> bool {
        match &self.kind {
            Kind::Remote { link, .. } => link.remote().hub,
            Kind::Local { .. } | Kind::AppNet { .. } => false,
        }
    }

    /// The serving peer, erased (for local calls: the one given, if any).
    pub(crate) fn host(&self) -> Option<&Host> {
        match &self.kind {
            Kind::Remote { host, .. } | Kind::AppNet { host, .. } => Some(host),
            Kind::Local { host } => host.as_ref(),
        }
    }

    /// True once the caller has given up (timeout, cancel, closed connection). A long
    /// synchronous handler can check it and stop early; async handlers are simply dropped.
    pub fn is_cancelled(&self) -> bool {
        match &self.kind {
            Kind::Remote {
                cancel: Some(cancel),
                ..
            }
            | Kind::AppNet { cancel, .. } => cancel.is_cancelled(),
            Kind::Remote { link, .. } => !link.is_open(),
            Kind::Local { .. } => false,
        }
    }

    /// Completes when the caller gives up; never, for local calls.
    pub async fn cancelled(&self) {
        match &self.kind {
            Kind::Remote {
                cancel: Some(cancel),
                ..
            }
            | Kind::AppNet { cancel, .. } => cancel.cancelled().await,
            Kind::Remote { link, .. } => link.closed().await,
            Kind::Local { .. } => std::future::pending().await,
        }
    }

    /// The link back to the caller, for `.on(&caller)`.
    pub(crate) fn link(&self) -> Option<&Arc<Link>> {
        match &self.kind {
            Kind::Remote { link, .. } => Some(link),
            Kind::Local { .. } | Kind::AppNet { .. } => None,
        }
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Local { .. } => f.write_str("Caller(local)"),
            Kind::Remote { link, .. } => write!(f, "Caller({})", link.label()),
            Kind::AppNet { addr, .. } => write!(f, "Caller(app-net client {addr})"),
        }
    }
}
