//! The values a peer is given at start for its handlers' `net::State<T>` parameters, one
//! per type (`Config::state`).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A shared value, erased, with its type's name for messages.
#[derive(Clone)]
pub(crate) struct Provided {
    /// The value, as `Arc<T>` erased.
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    /// `std::any::type_name::<T>()`.
    pub(crate) type_name: &'static str,
}

/// One value per type.
#[derive(Clone, Default)]
pub(crate) struct StateMap(pub(crate) BTreeMap<TypeId, Provided>);

impl StateMap {
    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        let provided = Provided {
            value,
            type_name: std::any::type_name::<T>(),
        };
        self.0.insert(TypeId::of::<T>(), provided);
    }

    pub(crate) fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let provided = self.0.get(&TypeId::of::<T>())?;
        provided.value.clone().downcast::<T>().ok()
    }

    /// The names of the types held, for messages.
    pub(crate) fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.0.values().map(|p| p.type_name).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.type_names()).finish()
    }
}

impl PartialEq for StateMap {
    /// The same values: the same types, each the very same shared value.
    fn eq(&self, other: &StateMap) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().all(|(ty, mine)| {
                other
                    .0
                    .get(ty)
                    .is_some_and(|theirs| Arc::ptr_eq(&mine.value, &theirs.value))
            })
    }
}
