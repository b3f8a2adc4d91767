//! How calls to each member have been going, so that a member whose calls keep failing
//! can be dropped from the view, and only by a member that still reaches a majority.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ids::MemberId;
use crate::sync::lock;

/// Calls in a row that must have failed, beside the time, before a member is dead.
const FAILURES_TO_DIE: u32 = 3;

/// Failures of one member since its last success.
#[derive(Clone, Copy, Debug)]
struct Failing {
    /// The first failure since the last success.
    since: Instant,
    /// How many in a row.
    count: u32,
}

/// Per member: failing since when, if failing.
#[derive(Default)]
pub struct Health {
    failing: Mutex<HashMap<MemberId, Failing>>,
}

impl Health {
    /// A call to `member` succeeded.
    pub fn ok(&self, member: &MemberId) {
        lock(&self.failing).remove(member);
    }

    /// A call to `member` failed (it did not answer, or answered as another peer).
    pub fn failed(&self, member: &MemberId) {
        lock(&self.failing)
            .entry(member.clone())
            .and_modify(|f| f.count += 1)
            .or_insert(Failing {
                since: Instant::now(),
                count: 1,
            });
    }

    /// Whether `member`'s last call failed.
    pub fn is_failing(&self, member: &MemberId) -> bool {
        lock(&self.failing).contains_key(member)
    }

    /// The members that have failed for `after` and at least three calls in a row.
    pub fn dead(&self, after: Duration) -> Vec<MemberId> {
        lock(&self.failing)
            .iter()
            .filter(|(_, f)| f.count >= FAILURES_TO_DIE && f.since.elapsed() >= after)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Forgets a member (it left the view).
    pub fn forget(&self, member: &MemberId) {
        lock(&self.failing).remove(member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_takes_time_and_repeated_failures_and_a_success_clears_it() {
        let health = Health::default();
        let m = MemberId::from("m");
        health.failed(&m);
        health.failed(&m);
        assert!(health.is_failing(&m));
        assert!(health.dead(Duration::ZERO).is_empty(), "two failures");
        health.failed(&m);
        assert_eq!(health.dead(Duration::ZERO), vec![m.clone()]);
        assert!(
            health.dead(Duration::from_secs(60)).is_empty(),
            "not for long"
        );
        health.ok(&m);
        assert!(!health.is_failing(&m) && health.dead(Duration::ZERO).is_empty());
    }
}
