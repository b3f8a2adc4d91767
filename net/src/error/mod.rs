//! The one error type of the crate. Every variant names what went wrong, where, and what
//! to do about it; an OS error behind it is kept as its [`source`](std::error::Error::source),
//! so code decides by [`Error::io_kind`], never by searching the text.

mod unknown;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::id::readable_tag;

pub(crate) use unknown::closest;

/// `Result` with [`net::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a call, in start-up or in configuration.
///
/// A typed error returned by a remote function (`Result<T, E>`) is *not* one of these: it
/// comes back as the `Err(E)` of the call's value, so `f(x).on(&peer).await` has the type
/// `Result<Result<T, E>, net::Error>`.
///
/// ```
/// #[net::connect]
/// fn lookup(key: String) -> Result<String, String> {
///     Err(format!("no {key}"))
/// }
///
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let server = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// // The call worked; the function said no: the typed error.
/// assert_eq!(lookup("x".into()).on(&server).via(&me).await?, Err("no x".to_owned()));
///
/// // The call itself failed: a net::Error, decided on by variant or kind.
/// let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
/// match lookup("x".into()).on(nobody).via(&me).await {
///     Err(net::Error::Unreachable { addr, .. }) => assert_eq!(addr, nobody.to_string()),
///     other => panic!("expected Unreachable, got {other:?}"),
/// }
/// let err = net::call_tag::<i64>("no.such.function", net::serde_json::json!([]))
///     .on(&server)
///     .via(&me)
///     .await
///     .unwrap_err();
/// assert!(matches!(err, net::Error::UnknownTag { .. }));
/// assert!(!err.is_transient(), "calling again will not help: {err}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `NET_*` environment variable or builder value is invalid.
    #[error("invalid {var}={value:?}: {reason}")]
    Config {
        /// The variable (or builder method) that was wrong.
        var: &'static str,
        /// The value given.
        value: String,
        /// What is expected instead.
        reason: String,
    },

    /// No port of the configured range could be bound.
    #[error(
        "no free port on {host} in {start}..={end} (NET_PORT={start}, NET_PORT_RANGE={range}): \
         {reason}; stop another peer or set NET_PORT / NET_PORT_RANGE to a free range"
    )]
    NoFreePort {
        /// The address the peer tried to bind.
        host: String,
        /// First port tried.
        start: u16,
        /// Last port tried (inclusive).
        end: u16,
        /// `NET_PORT_RANGE`.
        range: u16,
        /// The last bind error.
        reason: String,
    },

    /// Two registered functions claim the same tag.
    #[error(
        "two functions claim the tag {tag:?}: {first} and {second}; give one of them another \
         custom tag"
    )]
    DuplicateTag {
        /// The contested tag.
        tag: String,
        /// The first function (path and location).
        first: String,
        /// The second function.
        second: String,
    },

    /// The peer could not be reached.
    #[error("cannot reach peer at {addr}: {reason}; is a net peer running there?")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// The connect error, as text.
        reason: String,
        /// The OS error behind it, when there is one (shared, so that the error stays
        /// `Clone`).
        #[source]
        source: Option<Arc<io::Error>>,
    },

    /// The call took longer than its timeout. The remote work was cancelled.
    #[error(
        "call to {} on {peer} timed out after {after:?} {step}; the remote work was \
         cancelled (raise it with .timeout() or NET_TIMEOUT)",
        readable_tag(.tag)
    )]
    Timeout {
        /// The peer called.
        peer: String,
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// The timeout that ran out.
        after: Duration,
        /// Which step of the call it ran out in.
        step: TimeoutStep,
    },

    /// The secure handshake (NET_SECRET) with a peer failed: one side has no secret, or
    /// the two hold different ones, or the handshake broke. The message says which side
    /// and what to do.
    #[error("{message}")]
    Secure {
        /// The peer.
        peer: String,
        /// What failed.
        kind: SecureFailure,
        /// What failed, what to do.
        message: String,
        /// The handshake's own error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },

    /// The peer has no function under this tag (app-net's INVALID_CONNECTION).
    #[error("INVALID_CONNECTION: {}", unknown::message(.peer, .tag, .available))]
    UnknownTag {
        /// The peer called.
        peer: String,
        /// The tag asked for.
        tag: String,
        /// `tag (path)` of every function the peer has.
        available: Vec<String>,
    },

    /// The remote function failed: it panicked or its result could not be encoded.
    #[error("remote error in {} on {peer}: {message} (at {location})", readable_tag(.tag))]
    Remote {
        /// The peer called.
        peer: String,
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// The panic or failure message.
        message: String,
        /// Where it happened on the remote side (function and file:line).
        location: String,
    },

    /// The arguments did not fit the remote function's parameters.
    #[error("peer {peer} rejected the arguments for {}: {message}", readable_tag(.tag))]
    BadArguments {
        /// The peer called.
        peer: String,
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// What did not fit.
        message: String,
    },

    /// The arguments could not be encoded as JSON on this side.
    #[error("cannot encode the arguments for {}: {message}", readable_tag(.tag))]
    Encode {
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// serde_json's message.
        message: String,
    },

    /// The reply did not decode into the function's return type: the two sides disagree
    /// on the function's signature.
    #[error(
        "the reply of {} from {peer} does not fit the expected return type: {message}; do \
         both sides run the same version of the function?",
        readable_tag(.tag)
    )]
    Decode {
        /// The peer called.
        peer: String,
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// serde_json's message.
        message: String,
    },

    /// The remote function answered with a flag that has no meaning as a value.
    #[error("peer {peer} answered {} with the flag {name}", readable_tag(.tag))]
    Flag {
        /// The peer called.
        peer: String,
        /// The function's tag as sent (messages show a default tag as the function's path).
        tag: String,
        /// The flag's name.
        name: String,
    },

    /// The peer speaks an incompatible protocol version.
    #[error(
        "peer {peer} speaks net protocol {theirs}, this peer speaks {ours}; upgrade the older \
         side"
    )]
    Incompatible {
        /// The peer.
        peer: String,
        /// Our protocol version.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },

    /// The peer broke the protocol (bad frame, unexpected message).
    #[error("protocol error with {peer}: {message}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What was wrong.
        message: String,
    },

    /// A request or reply exceeds the frame size limit.
    #[error(
        "a {size}-byte frame exceeds the {max}-byte limit (NET_MAX_FRAME) of {side}; send \
         less or raise NET_MAX_FRAME on both peers"
    )]
    FrameTooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        max: usize,
        /// Whose limit: "this peer" or the remote peer.
        side: String,
    },

    /// The connection closed before the reply came.
    #[error("connection to {peer} closed: {reason}")]
    ConnectionClosed {
        /// The peer.
        peer: String,
        /// Why, as far as known.
        reason: String,
    },

    /// The call target could not be understood.
    #[error("invalid call target {target:?}: {reason}")]
    InvalidTarget {
        /// What was given.
        target: String,
        /// What is expected.
        reason: String,
    },

    /// The local peer is shutting down or gone.
    #[error("the local peer has shut down; start a new one")]
    Shutdown,

    /// The API was used in a way that cannot work.
    #[error("{0}")]
    Usage(String),

    /// An I/O error outside any one call (binding, accepting).
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error, as text.
        message: String,
        /// The OS error itself, when there is one.
        #[source]
        source: Option<Arc<io::Error>>,
    },
}

/// The step of a call its timeout ran out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutStep {
    /// Connecting to the peer (TCP).
    Connect,
    /// The hello (and, with NET_SECRET, the secure handshake) on a new connection.
    Handshake,
    /// Waiting for the reply.
    Reply,
}

impl std::fmt::Display for TimeoutStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutStep::Connect => "while connecting",
            TimeoutStep::Handshake => "during the handshake of a new connection",
            TimeoutStep::Reply => "waiting for the reply",
        })
    }
}

/// Why a secure handshake failed ([`Error::Secure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureFailure {
    /// The other peer requires a shared secret and this one has none.
    SecretRequired,
    /// This peer requires a shared secret and the other has none.
    NoSecret,
    /// Both have a secret, and they differ.
    SecretsDiffer,
    /// The other peer offers another version of the secure handshake.
    Unsupported,
    /// The handshake broke: a malformed or refused message, a closed socket, a bad secret.
    Handshake,
}

impl Error {
    /// True for errors where retrying the same call later may succeed (timeouts, a peer
    /// that was unreachable or closed the connection).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. } | Error::Unreachable { .. } | Error::ConnectionClosed { .. }
        )
    }

    /// The kind of the OS error behind this one, if there is one: what a caller decides
    /// on (a refused connect is `ConnectionRefused`, whatever the platform's text says).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<io::Error>() {
                return Some(io.kind());
            }
            if let Some(io) = error.downcast_ref::<Arc<io::Error>>() {
                return Some(io.kind());
            }
            cause = error.source();
        }
        None
    }

    pub(crate) fn io(context: impl Into<String>, err: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            message: err.to_string(),
            source: Some(Arc::new(err)),
        }
    }

    /// An I/O failure with no OS error behind it (a task that failed, say).
    pub(crate) fn io_text(context: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Io {
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }

    /// The connect to `addr` failed with this OS error.
    pub(crate) fn unreachable(addr: SocketAddr, err: io::Error) -> Error {
        Error::Unreachable {
            addr: addr.to_string(),
            reason: err.to_string(),
            source: Some(Arc::new(err)),
        }
    }

    /// `addr` could not be reached, for a reason that is no OS error (no answer in time).
    pub(crate) fn unreachable_because(addr: SocketAddr, reason: impl Into<String>) -> Error {
        Error::Unreachable {
            addr: addr.to_string(),
            reason: reason.into(),
            source: None,
        }
    }
}
