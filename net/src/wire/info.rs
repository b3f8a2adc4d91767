//! What the `info` built-in answers: a description of a peer. It is part of the protocol
//! (docs/PROTOCOL.md), so discovery reads it from peers here without depending on the
//! built-in that writes it.

use serde::{Deserialize, Serialize};

use crate::id::PeerId;

/// The tag every peer serves `info` under.
pub(crate) const INFO_TAG: &str = "info";

/// What `info` says about a peer: app-net's `friendly_id` fields, plus the protocol and
/// crate versions.
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let peer = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let info: net::Info = net::info().on(&peer).via(&me).await?;
/// assert_eq!(info.port, peer.addr().port());
/// assert!(info.connections.iter().any(|tag| tag == "info"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Info {
    /// The peer's id.
    pub id: PeerId,
    /// The host it advertises.
    pub host: String,
    /// The port it serves.
    pub port: u16,
    /// The user running it.
    pub user: String,
    /// The program running it.
    pub executable: String,
    /// Its group.
    pub group: Option<String>,
    /// Whether it is a hub.
    pub hub: bool,
    /// The tags of its functions, sorted.
    pub connections: Vec<String>,
    /// The events other peers have subscribed to on it, sorted (app-net's meaning: the
    /// keys of its subscriber table).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// The flags it handles, sorted.
    pub flags: Vec<String>,
    /// The events its `#[net::event]` functions publish, sorted.
    #[serde(default)]
    pub events: Vec<String>,
    /// The `net` crate version.
    pub version: String,
    /// The wire protocol version.
    pub protocol: u32,
}

impl Info {
    /// The peer's own functions, each once, without net's built-ins: the paths of
    /// functions with a default tag (every `#[net::connect]` function has one, whatever
    /// its custom tag), or, for a Python app-net peer, its tags without app-net's
    /// `net.defaults.*` handlers.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// #[net::connect("demo.double")]
    /// fn double(x: i64) -> i64 { 2 * x }
    ///
    /// let peer = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let info = net::info().on(&peer).via(&me).await?;
    /// assert!(info.functions().iter().any(|f| f.ends_with("::double")));
    /// assert!(!info.functions().iter().any(|f| f.starts_with("net::builtins::")));
    /// # Ok(()) }
    /// ```
    pub fn functions(&self) -> Vec<String> {
        let mut functions: Vec<String> = if self.protocol == 0 {
            self.connections
                .iter()
                .filter(|tag| !tag.starts_with("net.defaults."))
                .cloned()
                .collect()
        } else {
            self.connections
                .iter()
                .filter_map(|tag| crate::id::tag_path(tag))
                .filter(|path| !crate::id::is_builtin_path(path))
                .collect()
        };
        functions.sort();
        functions.dedup();
        functions
    }
}
