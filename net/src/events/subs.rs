//! Who subscribed to what on a publishing peer: each event's subscribers, added and
//! removed in constant time whatever their number, and counted per subscribing host and
//! in total against caps, so that nobody can fill the table or make each registration
//! scan it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Most subscriptions one host (IP address) may hold on a peer.
pub(crate) const MAX_PER_HOST: usize = 1_000;

/// Most subscriptions a peer holds in total.
pub(crate) const MAX_TOTAL: usize = 10_000;

/// A subscriber of one event: where, and which handler.
pub(crate) type Sub = (SocketAddr, Arc<str>);

/// The subscribers of one event, in an order that removals may change.
#[derive(Default)]
pub(crate) struct EventSubs {
    list: Vec<Sub>,
    /// Where each is in `list`.
    index: HashMap<Sub, usize>,
}

impl EventSubs {
    pub(crate) fn list(&self) -> &[Sub] {
        &self.list
    }

    fn insert(&mut self, sub: Sub) -> bool {
        if self.index.contains_key(&sub) {
            return false;
        }
        self.index.insert(sub.clone(), self.list.len());
        self.list.push(sub);
        true
    }

    fn remove(&mut self, sub: &Sub) -> bool {
        let Some(at) = self.index.remove(sub) else {
            return false;
        };
        self.list.swap_remove(at);
        if let Some(moved) = self.list.get(at) {
            self.index.insert(moved.clone(), at);
        }
        true
    }
}

/// Every event's subscribers, with the counts the caps are checked against.
#[derive(Default)]
pub(crate) struct Subs {
    by_event: BTreeMap<String, EventSubs>,
    /// Subscriptions per subscriber address, for pruning and lanes.
    per_addr: HashMap<SocketAddr, usize>,
    /// Subscriptions per subscribing host, for [`MAX_PER_HOST`].
    per_host: HashMap<IpAddr, usize>,
    total: usize,
}

impl Subs {
    /// Adds a subscriber: `Ok(false)` if it was there already; `Err` says which cap it
    /// would pass.
    pub(crate) fn add(&mut self, event: &str, addr: SocketAddr, tag: &str) -> Result<bool, String> {
        let sub: Sub = (addr, tag.into());
        if self
            .by_event
            .get(event)
            .is_some_and(|e| e.index.contains_key(&sub))
        {
            return Ok(false);
        }
        let host = self.per_host.get(&addr.ip()).copied().unwrap_or(0);
        if host >= MAX_PER_HOST {
            return Err(format!(
                "{} already holds {MAX_PER_HOST} subscriptions on this peer, the most one host \
                 may; withdraw some first",
                addr.ip()
            ));
        }
        if self.total >= MAX_TOTAL {
            return Err(format!(
                "this peer holds {MAX_TOTAL} subscriptions, the most it takes; try again later"
            ));
        }
        self.by_event
            .entry(event.to_owned())
            .or_default()
            .insert(sub);
        *self.per_addr.entry(addr).or_default() += 1;
        *self.per_host.entry(addr.ip()).or_default() += 1;
        self.total += 1;
        Ok(true)
    }

    /// Removes a subscriber; false if it was not there.
    pub(crate) fn remove(&mut self, event: &str, addr: SocketAddr, tag: &str) -> bool {
        let Some(subs) = self.by_event.get_mut(event) else {
            return false;
        };
        if !subs.remove(&(addr, tag.into())) {
            return false;
        }
        if subs.list.is_empty() {
            self.by_event.remove(event);
        }
        self.counted_out(addr, 1);
        true
    }

    /// Removes every subscription of `addr` (with handler `tag` only, if given); true if
    /// there was one.
    pub(crate) fn remove_addr(&mut self, addr: SocketAddr, tag: Option<&str>) -> bool {
        if !self.per_addr.contains_key(&addr) {
            return false;
        }
        let mut removed = 0;
        self.by_event.retain(|_, subs| {
            let gone: Vec<Sub> = subs
                .list
                .iter()
                .filter(|(a, t)| *a == addr && tag.is_none_or(|tag| **t == *tag))
                .cloned()
                .collect();
            for sub in &gone {
                subs.remove(sub);
            }
            removed += gone.len();
            !subs.list.is_empty()
        });
        self.counted_out(addr, removed);
        removed > 0
    }

    fn counted_out(&mut self, addr: SocketAddr, n: usize) {
        if n == 0 {
            return;
        }
        self.total -= n;
        count_down(&mut self.per_host, addr.ip(), n);
        count_down(&mut self.per_addr, addr, n);
    }

    /// The subscribers of `event`.
    pub(crate) fn of(&self, event: &str) -> Option<&EventSubs> {
        self.by_event.get(event)
    }

    /// Whether `addr` holds any subscription.
    pub(crate) fn has_addr(&self, addr: SocketAddr) -> bool {
        self.per_addr.contains_key(&addr)
    }

    /// Every event with a subscriber, sorted.
    pub(crate) fn events(&self) -> Vec<String> {
        self.by_event.keys().cloned().collect()
    }
}

/// Takes `n` from `key`'s count, forgetting it at zero.
fn count_down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, n: usize) {
    if let Some(count) = map.get_mut(&key) {
        *count = count.saturating_sub(n);
        if *count == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_removes_in_any_order_and_counts_against_the_caps() {
        let mut subs = Subs::default();
        let at = |host: u8, port: u16| SocketAddr::from(([10, 0, 0, host], port));
        for port in 1..=MAX_PER_HOST as u16 {
            assert_eq!(subs.add("e", at(1, port), "t"), Ok(true));
        }
        assert_eq!(
            subs.add("e", at(1, 1), "t"),
            Ok(false),
            "a repeat is no error"
        );
        let err = subs.add("f", at(1, 9999), "t").unwrap_err();
        assert!(err.contains("10.0.0.1") && err.contains("1000"), "{err}");
        assert_eq!(subs.add("e", at(2, 1), "t"), Ok(true), "another host may");
        // Removing from the middle keeps the rest findable.
        assert!(subs.remove("e", at(1, 500), "t"));
        assert!(!subs.remove("e", at(1, 500), "t"));
        assert!(subs.remove("e", at(1, 1000), "t"));
        assert!(subs.remove("e", at(1, 1), "t"));
        assert_eq!(subs.of("e").unwrap().list().len(), MAX_PER_HOST - 3 + 1);
        assert_eq!(subs.add("f", at(1, 9999), "t"), Ok(true), "room again");
        assert!(subs.remove_addr(at(2, 1), None));
        assert!(!subs.has_addr(at(2, 1)));
        for port in 2..=999 {
            if port != 500 {
                assert!(subs.remove("e", at(1, port), "t"), "{port}");
            }
        }
        assert!(subs.of("e").is_none());
        assert_eq!(subs.events(), ["f"]);
    }

    #[test]
    fn the_total_is_capped() {
        let mut subs = Subs::default();
        for i in 0..MAX_TOTAL {
            let addr = SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8], 1));
            assert_eq!(subs.add("e", addr, "t"), Ok(true));
        }
        let err = subs
            .add("e", SocketAddr::from(([10, 2, 0, 0], 1)), "t")
            .unwrap_err();
        assert!(err.contains("10000"), "{err}");
    }
}
