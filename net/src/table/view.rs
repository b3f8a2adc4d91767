//! A peer's view of a table's members: who, where, in which incarnation, alive or not;
//! how two views merge (gossip), and the placement of the alive ones.
//!
//! Merging is a join of per-member states, so views converge whatever order they are
//! exchanged in: for each member the higher incarnation wins, and at equal incarnations
//! dead beats alive. A member found dead (or that left) stays listed as dead, so that an
//! older view still listing it alive cannot bring it back; a member that comes back
//! (restart, re-admission after a partition) does so with a higher incarnation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::ids::{Key, MemberId};
use super::placement::{Bucket, Placement};
use super::terms::Terms;
use super::wire::{self, WireError, WireMember};

/// One member as a view knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its incarnation (milliseconds of its latest join).
    pub incarnation: u64,
    /// False once it left or was found dead at this incarnation.
    pub alive: bool,
}

impl Entry {
    /// Whether `self` replaces `held` in a merge.
    fn wins_over(&self, held: &Entry) -> bool {
        self.incarnation > held.incarnation
            || (self.incarnation == held.incarnation && held.alive && !self.alive)
    }
}

/// The members a peer knows for one table, and the placement of the alive ones.
pub struct View {
    /// What the members are known to be; dead ones stay.
    entries: BTreeMap<MemberId, Entry>,
    /// The table's terms (part of the hash: views of other terms never look equal).
    terms: Terms,
    /// Placement of the alive members, rebuilt when that set changes.
    placement: Arc<Placement>,
    /// Hash of the entries and terms: two members compare views by it.
    hash: u64,
    /// The hash as it travels, made once per change (every answer carries it).
    hash_hex: Arc<str>,
}

impl View {
    /// An empty view.
    pub fn new(terms: Terms) -> View {
        let mut view = View {
            entries: BTreeMap::new(),
            terms,
            placement: Arc::new(Placement::new([], replicas(terms))),
            hash: 0,
            hash_hex: Arc::from(""),
        };
        view.rehash();
        view
    }

    /// Merges one entry; returns whether the view changed.
    pub fn merge(&mut self, id: MemberId, entry: Entry) -> bool {
        let changed = match self.entries.get(&id) {
            Some(held) if !entry.wins_over(held) => false,
            _ => {
                self.entries.insert(id, entry);
                true
            }
        };
        if changed {
            self.refresh();
        }
        changed
    }

    /// Merges entries that arrived; returns whether the view changed. Entries that do
    /// not check out are skipped.
    pub fn merge_wire(&mut self, members: &[WireMember]) -> bool {
        let mut changed = false;
        for member in members.iter().take(wire::MAX_MEMBERS) {
            if let Ok(id) = member.member_id() {
                let entry = Entry {
                    addr: member.addr,
                    incarnation: member.inc,
                    alive: member.alive,
                };
                match self.entries.get(&id) {
                    Some(held) if !entry.wins_over(held) => {}
                    _ => {
                        self.entries.insert(id, entry);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.refresh();
        }
        changed
    }

    /// Marks `id` dead at its current incarnation; returns whether it was alive.
    pub fn mark_dead(&mut self, id: &MemberId) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) if entry.alive => {
                entry.alive = false;
                self.refresh();
                true
            }
            _ => false,
        }
    }

    /// The entry of `id`.
    pub fn entry(&self, id: &MemberId) -> Option<Entry> {
        self.entries.get(id).copied()
    }

    /// The alive members and their addresses.
    pub fn alive(&self) -> Vec<(MemberId, SocketAddr)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.alive)
            .map(|(id, e)| (id.clone(), e.addr))
            .collect()
    }

    /// How many members are alive.
    pub fn alive_count(&self) -> usize {
        self.entries.values().filter(|e| e.alive).count()
    }

    /// Whether `id` is alive in this view.
    pub fn is_alive(&self, id: &MemberId) -> bool {
        self.entries.get(id).is_some_and(|e| e.alive)
    }

    /// The address of a member (alive or not).
    pub fn addr_of(&self, id: &MemberId) -> Option<SocketAddr> {
        self.entries.get(id).map(|e| e.addr)
    }

    /// The placement of the alive members.
    pub fn placement(&self) -> Arc<Placement> {
        self.placement.clone()
    }

    /// The placement the alive members other than `id` would have.
    pub fn placement_without(&self, id: &MemberId) -> Placement {
        self.placement.updated(
            self.entries
                .iter()
                .filter(|(m, e)| e.alive && *m != id)
                .map(|(m, _)| m.clone()),
        )
    }

    /// The owners of `key` with their addresses, primary first.
    pub fn owners(&self, key: &Key) -> Vec<(MemberId, SocketAddr)> {
        self.bucket_owners(super::placement::bucket_of(key))
    }

    /// The owners of `bucket` with their addresses, primary first.
    pub fn bucket_owners(&self, bucket: Bucket) -> Vec<(MemberId, SocketAddr)> {
        self.placement
            .bucket_owners(bucket)
            .filter_map(|id| self.addr_of(id).map(|addr| (id.clone(), addr)))
            .collect()
    }

    /// The view's hash.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The view's hash as it travels.
    pub fn hash_hex(&self) -> Arc<str> {
        self.hash_hex.clone()
    }

    /// Every entry, for the wire.
    pub fn to_wire(&self) -> Vec<WireMember> {
        self.entries
            .iter()
            .map(|(id, e)| WireMember {
                id: id.to_string(),
                addr: e.addr,
                inc: e.incarnation,
                alive: e.alive,
            })
            .collect()
    }

    /// Parses a list of entries (a saved view), checking each.
    pub fn parse(members: &[WireMember]) -> Result<Vec<(MemberId, Entry)>, WireError> {
        wire::check_members(members)?;
        members
            .iter()
            .map(|m| {
                Ok((
                    m.member_id()?,
                    Entry {
                        addr: m.addr,
                        incarnation: m.inc,
                        alive: m.alive,
                    },
                ))
            })
            .collect()
    }

    fn refresh(&mut self) {
        let alive: Vec<&MemberId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.alive)
            .map(|(id, _)| id)
            .collect();
        // The terms are fixed at `new`, so the placement keeps their replication factor.
        if alive.iter().copied().ne(self.placement.members().iter()) {
            self.placement = Arc::new(self.placement.updated(alive.into_iter().cloned()));
        }
        self.rehash();
    }

    fn rehash(&mut self) {
        let mut hasher = Xxh3::new();
        hasher.update(&self.terms.protocol.to_be_bytes());
        hasher.update(&(self.terms.replicas as u64).to_be_bytes());
        for (id, e) in &self.entries {
            hasher.update(&(id.as_str().len() as u64).to_be_bytes());
            hasher.update(id.as_str().as_bytes());
            hasher.update(e.addr.to_string().as_bytes());
            hasher.update(&e.incarnation.to_be_bytes());
            hasher.update(&[u8::from(e.alive)]);
        }
        self.hash = hasher.digest();
        self.hash_hex = Arc::from(wire::hex64(self.hash));
    }
}

/// The replication factor of `terms` as placement wants it (validated at start: >= 1).
fn replicas(terms: Terms) -> NonZeroUsize {
    NonZeroUsize::new(terms.replicas).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(port: u16, incarnation: u64, alive: bool) -> Entry {
        Entry {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation,
            alive,
        }
    }

    #[test]
    fn merging_converges_whatever_the_order() {
        let updates = vec![
            (MemberId::from("a"), entry(1, 1, true)),
            (MemberId::from("b"), entry(2, 1, true)),
            (MemberId::from("a"), entry(1, 1, false)),
            (MemberId::from("b"), entry(3, 2, true)),
            (MemberId::from("a"), entry(4, 2, true)),
            (MemberId::from("b"), entry(2, 1, true)),
        ];
        let mut hashes = Vec::new();
        for rotation in 0..updates.len() {
            let mut view = View::new(Terms::new(3));
            let mut order = updates.clone();
            order.rotate_left(rotation);
            for (id, e) in order {
                view.merge(id, e);
            }
            assert_eq!(view.alive_count(), 2);
            assert_eq!(view.addr_of(&"a".into()).map(|a| a.port()), Some(4));
            hashes.push(view.hash());
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn dead_beats_alive_at_one_incarnation_and_placement_follows() {
        let mut view = View::new(Terms::new(2));
        for (n, id) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(view.merge(id.into(), entry(n as u16, 1, true)));
        }
        assert_eq!(view.placement().members().len(), 3);
        let before = view.hash();
        assert!(view.mark_dead(&"b".into()));
        assert!(
            !view.merge("b".into(), entry(1, 1, true)),
            "an old alive entry"
        );
        assert_eq!(view.placement().members().len(), 2);
        assert_ne!(view.hash(), before);
        let wire = view.to_wire();
        let mut other = View::new(Terms::new(2));
        other.merge_wire(&wire);
        assert_eq!(other.hash(), view.hash());
        assert!(View::new(Terms::new(3)).hash() != View::new(Terms::new(2)).hash());
    }
}
