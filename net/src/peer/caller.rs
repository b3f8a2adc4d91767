//! `Caller::server`, attached from the peer layer: the serving layer holds the peer
//! erased, and only this layer knows what it is.

use super::{Peer, PeerInner};
use crate::serve::Caller;

impl Caller {
    /// The local peer serving this call (for local calls: the process-wide peer, if it
    /// runs).
    pub fn server(&self) -> Option<Peer> {
        let host = self.host()?.clone();
        host.downcast::<PeerInner>()
            .ok()
            .map(|inner| Peer { inner })
    }
}

impl Caller {
    /// The peer serving this call, or the process-wide one (started if need be) for a
    /// local call: the peer a built-in describes or acts for.
    pub(crate) fn serving_peer(&self) -> crate::Result<Peer> {
        match self.server() {
            Some(peer) => Ok(peer),
            None => super::local_peer(),
        }
    }
}
