//! The services' state, held by the peer without the peer knowing the services: one value
//! per type, made on first use from the peer's settings (discovery's table, events'
//! subscribers, the table's replicas).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Peer;
use crate::sync::lock;

/// A service's state of one peer.
pub(crate) trait Service: Any + Send + Sync {
    /// The state of a peer just brought up.
    fn new(peer: &Peer) -> Self;
}

/// Each service's state by its type.
#[derive(Default)]
pub(super) struct Services {
    by_type: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Peer {
    /// The state of service `S` on this peer, made on first use.
    pub(crate) fn service<S: Service>(&self) -> Arc<S> {
        let found = lock(&self.inner.services.by_type)
            .get(&TypeId::of::<S>())
            .cloned();
        let any = match found {
            Some(any) => any,
            None => {
                // Made outside the lock: a service's `new` may ask for another's state.
                let made: Arc<dyn Any + Send + Sync> = Arc::new(S::new(self));
                lock(&self.inner.services.by_type)
                    .entry(TypeId::of::<S>())
                    .or_insert(made)
                    .clone()
            }
        };
        // Stored under its own TypeId, so the downcast cannot fail.
        match any.downcast::<S>() {
            Ok(state) => state,
            Err(_) => unreachable!("a service's state is stored under its own type"),
        }
    }
}
