//! Turning the PEER argument into a call target.

use crate::Failure;

/// The target for a PEER argument: a peer id, host:port or socket address. (Unique id
/// prefixes resolve against discovery's cache.)
pub(crate) fn resolve(peer: &str) -> Result<net::Target, Failure> {
    let peer = peer.trim();
    if peer.is_empty() {
        return Err(Failure::Error(
            "PEER is empty; give an id or host:port".into(),
        ));
    }
    Ok(net::Target::from(peer))
}
