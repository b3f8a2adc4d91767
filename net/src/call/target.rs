//! Call targets: what `.on(...)` accepts (a peer id, "host:port", a socket address, a
//! local `Peer`, a `Caller`) and how each becomes a link; and [`Route`], the seam through
//! which a service offers another way to reach a target (app-net's one TCP connection per
//! call), so that this layer never names the service.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::id::PeerId;
use crate::link::Link;
use crate::peer::Peer;
use crate::serve::Caller;
use crate::wire::{Payload, WireOutcome};

/// One call handed to a [`Route`].
pub(crate) struct RouteCall<'a> {
    /// The local peer it goes from (its settings and runtime).
    pub(crate) home: &'a Peer,
    /// The function's tag.
    pub(crate) tag: &'a str,
    /// The positional arguments (a JSON array, and attachments).
    pub(crate) args: &'a Payload,
    /// The keyword arguments, if any.
    pub(crate) kwargs: Option<&'a Map<String, Value>>,
    /// How long the caller waits, in all.
    pub(crate) budget: Duration,
    /// No reply is wanted.
    pub(crate) oneway: bool,
}

/// What a route answers: how errors name the other side, and the outcome (`None` for a
/// one-way call).
pub(crate) type Routed<'a> =
    Pin<Box<dyn Future<Output = Result<(String, Option<WireOutcome>)>> + Send + 'a>>;

/// Another way than a link to reach a target, offered by a service.
pub(crate) trait Route: fmt::Debug + fmt::Display + Send + Sync {
    /// Where it goes, resolved.
    fn addr(&self) -> Pin<Box<dyn Future<Output = Result<SocketAddr>> + Send + '_>>;

    /// Runs one call.
    fn call<'a>(&'a self, call: RouteCall<'a>) -> Routed<'a>;

    /// The protocol it speaks, for messages and for services that treat it apart.
    fn protocol(&self) -> &'static str;
}

/// Where a call goes. Built from the types `.on(...)` accepts; text is parsed when the
/// call runs, so a bad target is an error of the call, not a panic.
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let server = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let addr = server.addr();
/// let targets: Vec<net::Target> = vec![
///     (&server).into(),                  // a local peer
///     addr.into(),                       // a socket address
///     addr.to_string().into(),           // "host:port"
///     server.id().into(),                // a peer id, as net::peers() and `net peers` show
/// ];
/// for target in targets {
///     assert_eq!(net::info().on(target).via(&me).await?.port, addr.port());
/// }
/// // A found peer (net::PeerInfo) and a handler's net::Caller are targets too; a Python
/// // app-net peer is called in its own format:
/// let _python = net::Target::app_net("127.0.0.1:3010");
/// // A bad target is an error of the call:
/// let err = net::info().on("not a peer").via(&me).await.unwrap_err();
/// assert!(matches!(err, net::Error::InvalidTarget { .. }));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Target {
    pub(crate) kind: TargetKind,
}

#[derive(Clone, Debug)]
pub(crate) enum TargetKind {
    Addr(SocketAddr),
    Text(String),
    Caller(Caller),
    /// Reached another way than a link (a Python app-net peer: app-net's JSON format, one
    /// TCP connection per call).
    Routed(Arc<dyn Route>),
    /// Over this link, whoever is at its other end (a peer that called in, asked about
    /// itself before this side trusts its claims).
    Link(Arc<Link>),
}

impl Target {
    /// The peer at the other end of `link`, called over it.
    pub(crate) fn over(link: Arc<Link>) -> Target {
        Target {
            kind: TargetKind::Link(link),
        }
    }

    /// A target reached through `route`.
    pub(crate) fn routed(route: Arc<dyn Route>) -> Target {
        Target {
            kind: TargetKind::Routed(route),
        }
    }

    /// The protocol of a target reached another way than a link (`"app-net"`), if so.
    pub(crate) fn protocol(&self) -> Option<&'static str> {
        match &self.kind {
            TargetKind::Routed(route) => Some(route.protocol()),
            _ => None,
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
            TargetKind::Routed(route) => route.addr().await,
            TargetKind::Link(link) => Ok(link.remote_addr()),
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
