//! The bus: news that travels up from the core to the services (a goodbye, an unreachable
//! peer, a peer that called in), so that no low layer calls a high one. Services subscribe
//! when they start; the news is handed to them synchronously, in order, on the thread
//! that has it, so listeners must be quick and never block.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use super::Peer;
use crate::id::PeerId;
use crate::link::Link;

/// One piece of news.
#[derive(Debug)]
pub(crate) enum News<'a> {
    /// A serving peer opened a link to us and said who it is. Only a claim: ask over
    /// `link` before trusting it.
    Incoming {
        /// The id it claimed (its host checked against the link's address).
        id: &'a PeerId,
        /// The link it came over.
        link: &'a Arc<Link>,
    },
    /// The peer serving at `addr` said goodbye: it is shutting down.
    Goodbye {
        /// Its serving address.
        addr: SocketAddr,
        /// The goodbye came over a link this peer opened to `addr`, or one the peer there
        /// confirmed as its own (`pairing.rs`); otherwise it is only a claim, and the
        /// peer at `addr` is asked before it is believed gone.
        vouched: bool,
    },
    /// A call found the peer at `addr` unreachable.
    Unreachable {
        /// The address called.
        addr: SocketAddr,
        /// Why, for the membership stream.
        reason: &'a str,
    },
}

/// A listener.
type Listener = dyn Fn(&Peer, &News<'_>) + Send + Sync;

/// The listeners of one peer.
#[derive(Default)]
pub(super) struct Bus {
    listeners: RwLock<Vec<Arc<Listener>>>,
}

impl Peer {
    /// Hands every piece of news from now on to `listener`.
    pub(crate) fn listen(&self, listener: impl Fn(&Peer, &News<'_>) + Send + Sync + 'static) {
        let mut listeners = self
            .inner
            .bus
            .listeners
            .write()
            .unwrap_or_else(|p| p.into_inner());
        listeners.push(Arc::new(listener));
    }

    /// Tells every listener.
    pub(crate) fn publish(&self, news: &News<'_>) {
        let listeners: Vec<Arc<Listener>> = self
            .inner
            .bus
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for listener in listeners {
            listener(self, news);
        }
    }
}
