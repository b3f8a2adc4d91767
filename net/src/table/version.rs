//! Versions that order every write to a key the same way on every replica, and the
//! hybrid logical clock that stamps them.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ids::MemberId;

/// How far ahead of this machine's clock a version seen from elsewhere may be and still
/// move our clock forward. A member with a wildly wrong clock (or a hostile one) would
/// otherwise drag every clock it talks to into its future, for good.
pub const MAX_DRIFT: Duration = Duration::from_secs(60);

/// The version of one write: a hybrid logical clock reading and the writer's id.
///
/// Versions are compared field by field: wall-clock milliseconds, then the counter that
/// orders writes within one millisecond (and writes made after observing a newer
/// version), then the writer's id, which breaks the tie between two writers that read
/// the same clock value. So any two versions are ordered, and every replica orders them
/// alike without talking to the others.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Milliseconds since the Unix epoch, as the writer's clock read them (or later, when
    /// the writer had seen a newer version).
    pub millis: u64,
    /// Orders versions with equal `millis`.
    pub counter: u32,
    /// Who wrote: the last tie-breaker. A writer need not be a member.
    pub writer: MemberId,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.millis, self.counter, self.writer)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

/// A version seen from elsewhere was too far in the future to adopt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "version {seen} is {ahead_ms} ms ahead of this machine's clock (at most {} ms \
     allowed): is the clock of {} wrong?",
    MAX_DRIFT.as_millis(),
    seen.writer
)]
pub struct ClockDrift {
    /// The version that was refused.
    pub seen: Version,
    /// How far ahead of our wall clock it was.
    pub ahead_ms: u64,
}

/// A hybrid logical clock (Kulkarni et al., 2014): readings follow the wall clock, never
/// go backwards, are unique per writer, and are later than every version the writer
/// has observed. A writer that read a key before writing it thus writes a newer version
/// even if its wall clock lags the previous writer's.
pub struct Clock {
    /// The id stamped on every version.
    writer: MemberId,
    /// The last reading, `(millis, counter)`.
    last: Mutex<(u64, u32)>,
    /// The wall clock in milliseconds; a parameter so tests can skew and freeze it.
    wall: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Clock {
    /// A clock stamping `writer` on the system's wall clock.
    pub fn new(writer: MemberId) -> Clock {
        Clock::with_wall(writer, system_millis)
    }

    /// A clock over another wall clock (milliseconds since the epoch).
    pub fn with_wall(writer: MemberId, wall: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock {
            writer,
            last: Mutex::new((0, 0)),
            wall: Box::new(wall),
        }
    }

    /// A new version, later than every version this clock returned or observed.
    pub fn tick(&self) -> Version {
        let wall = (self.wall)();
        let mut last = self.lock();
        *last = if wall > last.0 {
            (wall, 0)
        } else if last.1 == u32::MAX {
            // Four billion writes in one millisecond: borrow the next millisecond.
            (last.0 + 1, 0)
        } else {
            (last.0, last.1 + 1)
        };
        Version {
            millis: last.0,
            counter: last.1,
            writer: self.writer.clone(),
        }
    }

    /// Takes note of a version seen elsewhere, so that the next tick is later than it.
    /// A version more than [`MAX_DRIFT`] ahead of the wall clock is refused (the clock
    /// stays as it was); the record carrying it is still ordered by it on every replica.
    pub fn observe(&self, seen: &Version) -> Result<(), ClockDrift> {
        let wall = (self.wall)();
        let limit = wall.saturating_add(MAX_DRIFT.as_millis() as u64);
        if seen.millis > limit {
            return Err(ClockDrift {
                seen: seen.clone(),
                ahead_ms: seen.millis - wall,
            });
        }
        let mut last = self.lock();
        *last = (*last).max((seen.millis, seen.counter));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u32)> {
        // The guarded pair is written in one assignment, so a panic elsewhere while it
        // was held cannot leave it half-written: a poisoned lock is still sound.
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Milliseconds since the Unix epoch on this machine's clock (0 before 1970).
pub fn system_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn v(millis: u64, counter: u32, writer: &str) -> Version {
        Version {
            millis,
            counter,
            writer: MemberId::from(writer),
        }
    }

    fn frozen(at: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
        let now = Arc::new(AtomicU64::new(at));
        let read = now.clone();
        (now, move || read.load(Ordering::Relaxed))
    }

    #[test]
    fn versions_order_by_time_then_counter_then_writer() {
        assert!(v(1, 9, "z") < v(2, 0, "a"));
        assert!(v(2, 0, "z") < v(2, 1, "a"));
        assert!(v(2, 1, "a") < v(2, 1, "b"));
        assert_eq!(v(5, 2, "m").to_string(), "5.2@m");
    }

    #[test]
    fn a_frozen_wall_clock_still_gives_increasing_versions() {
        let (_, wall) = frozen(1_000);
        let clock = Clock::with_wall(MemberId::from("w"), wall);
        let a = clock.tick();
        let b = clock.tick();
        assert!(a < b);
        assert_eq!((b.millis, b.counter), (1_000, 1));
    }

    #[test]
    fn a_clock_going_backwards_does_not_go_backwards() {
        let (now, wall) = frozen(5_000);
        let clock = Clock::with_wall(MemberId::from("w"), wall);
        let a = clock.tick();
        now.store(4_000, Ordering::Relaxed);
        assert!(clock.tick() > a);
    }

    #[test]
    fn a_lagging_writer_that_observed_a_version_writes_after_it() {
        let (_, fast_wall) = frozen(10_000);
        let (_, slow_wall) = frozen(9_000);
        let fast = Clock::with_wall(MemberId::from("fast"), fast_wall);
        let slow = Clock::with_wall(MemberId::from("slow"), slow_wall);
        let first = fast.tick();
        assert!(
            slow.tick() < first,
            "without observing, the lagging clock is older"
        );
        slow.observe(&first).expect("within the drift bound");
        assert!(slow.tick() > first);
    }

    #[test]
    fn a_version_from_far_in_the_future_is_refused() {
        let (_, wall) = frozen(1_000);
        let clock = Clock::with_wall(MemberId::from("w"), wall);
        let future = v(1_000 + MAX_DRIFT.as_millis() as u64 + 1, 0, "broken");
        let err = clock.observe(&future).expect_err("beyond the bound");
        assert!(err.to_string().contains("broken"), "{err}");
        assert_eq!(clock.tick().millis, 1_000, "the clock did not jump");
    }

    #[test]
    fn one_clock_shared_by_threads_never_repeats_a_version() {
        let (_, wall) = frozen(7);
        let clock = Arc::new(Clock::with_wall(MemberId::from("w"), wall));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..1_000).map(|_| clock.tick()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<Version> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("ticking does not panic"))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "every reading is unique");
    }

    #[test]
    fn the_counter_overflowing_borrows_the_next_millisecond() {
        let (_, wall) = frozen(3);
        let clock = Clock::with_wall(MemberId::from("w"), wall);
        clock.observe(&v(3, u32::MAX, "x")).expect("not ahead");
        let next = clock.tick();
        assert_eq!((next.millis, next.counter), (4, 0));
    }
}
