//! Turning the PEER argument into a call target: a peer id, a unique prefix of one, or
//! host:port.

use crate::Failure;

/// The target for a PEER argument. A full id or an address needs no discovery; anything
/// else is taken as the prefix of an id and looked up among the peers discovery finds.
pub(crate) async fn resolve(me: &net::Peer, peer: &str) -> Result<net::Target, Failure> {
    let peer = peer.trim();
    if peer.is_empty() {
        return Err(Failure::Error(
            "PEER is empty; give an id or host:port".into(),
        ));
    }
    if peer.contains(':') || peer.parse::<net::PeerId>().is_ok() {
        return Ok(net::Target::from(peer));
    }
    let known = me.peers().await?;
    let matches: Vec<&net::PeerInfo> = known
        .iter()
        .filter(|p| p.id.as_str().starts_with(peer))
        .collect();
    match matches.as_slice() {
        [one] => Ok(net::Target::from(one.addr)),
        [] => Err(Failure::NoPeer(format!(
            "no peer's id starts with {peer:?} (`net peers` lists them, `net doctor` says why \
             one may be missing)"
        ))),
        several => Err(Failure::Error(format!(
            "{peer:?} is the start of {} ids ({}); give more of it",
            several.len(),
            several
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
