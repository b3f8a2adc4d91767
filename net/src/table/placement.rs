//! Which members hold which keys: keys fall into [`BUCKETS`] buckets by a stable hash,
//! and each bucket lives on the R members that rank highest for it under rendezvous
//! (highest-random-weight) hashing. The choice is argued in the module docs (`mod.rs`).

use std::collections::BTreeSet;
use std::num::NonZeroUsize;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::ids::{Key, MemberId};

/// How many buckets the key space is cut into: the unit of placement, of handoff and of
/// anti-entropy. Part of the table protocol: members with another count place keys
/// elsewhere. At 4,096, each of 100 members holds about 123 buckets at R = 3 (101 to
/// 156 in the test, a spread of about 9%), while the digests of one member's buckets
/// stay a few kilobytes.
pub const BUCKETS: u16 = 4096;

/// Seeds that keep the hashes of the table apart from each other (a key's bucket and a
/// member's rank must not correlate). Changing one re-places every key: protocol.
const BUCKET_SEED: u64 = 0x6e65_742e_7462_6c31; // "net.tbl1"
const RANK_SEED: u64 = 0x6e65_742e_726e_6b31; // "net.rnk1"

/// One of the [`BUCKETS`] parts of the key space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Bucket(u16);

impl Bucket {
    /// The bucket numbered `n`, if `n < BUCKETS`.
    pub fn new(n: u16) -> Option<Bucket> {
        (n < BUCKETS).then_some(Bucket(n))
    }

    /// The bucket's number, below [`BUCKETS`].
    pub fn index(self) -> u16 {
        self.0
    }

    /// Every bucket, in order.
    pub fn all() -> impl Iterator<Item = Bucket> {
        (0..BUCKETS).map(Bucket)
    }
}

/// The bucket `key` falls in: the same on every member, build and run.
pub fn bucket_of(key: &Key) -> Bucket {
    // The top bits: BUCKETS is a power of two and xxh3's bits are all good.
    Bucket(
        (xxh3_64_with_seed(key.as_bytes(), BUCKET_SEED) >> (64 - BUCKETS.trailing_zeros())) as u16,
    )
}

/// The owners of every bucket for one member set: built once per membership change,
/// then `owners` is a lookup.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The members, sorted and without duplicates, so that the order they were learned
    /// in cannot change the answer.
    members: Vec<MemberId>,
    /// The replication factor asked for (NET_TABLE_REPLICAS).
    replicas: NonZeroUsize,
    /// Copies each bucket actually has: the replication factor, or every member when
    /// there are fewer.
    width: usize,
    /// `width` member indices per bucket, highest rank (the primary) first.
    owners: Vec<u32>,
}

impl Placement {
    /// The placement of every bucket on `members` with `replicas` copies each. The order
    /// and repetition of `members` do not matter.
    pub fn new(members: impl IntoIterator<Item = MemberId>, replicas: NonZeroUsize) -> Placement {
        let members = sorted(members);
        let width = replicas.get().min(members.len());
        let mut owners = Vec::with_capacity(BUCKETS as usize * width);
        let mut best = Vec::with_capacity(width + 1);
        let everyone: Vec<u32> = (0..members.len() as u32).collect();
        for bucket in Bucket::all() {
            rank(bucket, &members, &everyone, width, &mut best);
            owners.extend(best.iter().map(|&(_, index)| index));
        }
        Placement {
            members,
            replicas,
            width,
            owners,
        }
    }

    /// The placement on `members`, the same as [`Placement::new`] gives, computed from
    /// this one: when a few members came or went, a bucket none of whose owners left is
    /// ranked among its old owners and the newcomers alone (a member that was outranked
    /// by every owner still is), and only a bucket that lost an owner is ranked over
    /// everyone. A join at 100 members thus costs ~R+1 hashes a bucket, not 100: every
    /// member rebuilds its placement on every view change.
    pub fn updated(&self, members: impl IntoIterator<Item = MemberId>) -> Placement {
        let members = sorted(members);
        let came: Vec<u32> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| self.members.binary_search(m).is_err())
            .map(|(i, _)| i as u32)
            .collect();
        let went = self
            .members
            .iter()
            .filter(|m| members.binary_search(m).is_err())
            .count();
        if came.len() + went > INCREMENTAL_CHANGES || self.width == 0 {
            return Placement::new(members, self.replicas);
        }
        // Old member index -> new index (None: it went).
        let moved: Vec<Option<u32>> = self
            .members
            .iter()
            .map(|m| members.binary_search(m).ok().map(|i| i as u32))
            .collect();
        let width = self.replicas.get().min(members.len());
        let everyone: Vec<u32> = (0..members.len() as u32).collect();
        let mut owners = Vec::with_capacity(BUCKETS as usize * width);
        let mut best = Vec::with_capacity(width + 1);
        let mut candidates = Vec::with_capacity(self.width + came.len());
        for bucket in Bucket::all() {
            let start = bucket.0 as usize * self.width;
            let old = &self.owners[start..start + self.width];
            candidates.clear();
            let mut lost_one = false;
            for &index in old {
                match moved[index as usize] {
                    Some(now) => candidates.push(now),
                    None => lost_one = true,
                }
            }
            if lost_one {
                rank(bucket, &members, &everyone, width, &mut best);
            } else {
                candidates.extend_from_slice(&came);
                // Ascending, as `new` meets them, so that ties break alike.
                candidates.sort_unstable();
                rank(bucket, &members, &candidates, width, &mut best);
            }
            owners.extend(best.iter().map(|&(_, index)| index));
        }
        Placement {
            members,
            replicas: self.replicas,
            width,
            owners,
        }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[MemberId] {
        &self.members
    }

    /// The replication factor asked for.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn replicas(&self) -> NonZeroUsize {
        self.replicas
    }

    /// Copies each key has: the replication factor, or the member count when smaller.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn width(&self) -> usize {
        self.width
    }

    /// The members holding `key`, primary first (py2p's `find`). Empty with no members.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn owners(&self, key: &Key) -> Vec<MemberId> {
        self.bucket_owners(bucket_of(key)).cloned().collect()
    }

    /// The members holding `bucket`, primary first.
    pub fn bucket_owners(&self, bucket: Bucket) -> impl ExactSizeIterator<Item = &MemberId> {
        let start = bucket.0 as usize * self.width;
        self.owners[start..start + self.width]
            .iter()
            .map(|&index| &self.members[index as usize])
    }

    /// Whether `member` holds `bucket`.
    pub fn holds(&self, member: &MemberId, bucket: Bucket) -> bool {
        self.bucket_owners(bucket).any(|owner| owner == member)
    }

    /// The buckets `member` holds, in order.
    pub fn buckets_of(&self, member: &MemberId) -> Vec<Bucket> {
        Bucket::all().filter(|&b| self.holds(member, b)).collect()
    }

    /// The buckets both `a` and `b` hold: what the two compare in anti-entropy.
    pub fn shared(&self, a: &MemberId, b: &MemberId) -> Vec<Bucket> {
        Bucket::all()
            .filter(|&bucket| self.holds(a, bucket) && self.holds(b, bucket))
            .collect()
    }

    /// What moves from `self` (the old member set) to `new`: per bucket whose owner set
    /// changed, who gained it and who lost it. Rank changes among the same owners are
    /// not moves: no data travels for them.
    pub fn changes(&self, new: &Placement) -> Changes {
        let mut changes = Vec::new();
        for bucket in Bucket::all() {
            let old: BTreeSet<&MemberId> = self.bucket_owners(bucket).collect();
            let now: BTreeSet<&MemberId> = new.bucket_owners(bucket).collect();
            if old != now {
                changes.push(Change {
                    bucket,
                    gained: now.difference(&old).map(|&m| m.clone()).collect(),
                    lost: old.difference(&now).map(|&m| m.clone()).collect(),
                });
            }
        }
        Changes { changes }
    }
}

/// Members that may come and go at once for [`Placement::updated`] to rank only the
/// buckets they touch; past it, every bucket is ranked afresh.
const INCREMENTAL_CHANGES: usize = 8;

/// `members` sorted and without duplicates, so that the order they were learned in
/// cannot change the answer.
fn sorted(members: impl IntoIterator<Item = MemberId>) -> Vec<MemberId> {
    members
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The `width` highest-ranked of `candidates` (indices into `members`, ascending) for
/// `bucket`, highest first, into `best`.
fn rank(
    bucket: Bucket,
    members: &[MemberId],
    candidates: &[u32],
    width: usize,
    best: &mut Vec<(u64, u32)>,
) {
    let seed = xxh3_64_with_seed(&bucket.0.to_be_bytes(), RANK_SEED);
    best.clear();
    for &index in candidates {
        let score = xxh3_64_with_seed(members[index as usize].as_str().as_bytes(), seed);
        // Highest score first; on a tie the smaller id (members are sorted, and the
        // earlier index was inserted first and stays ahead).
        let at = best.partition_point(|&(s, _)| s >= score);
        if at < width {
            best.insert(at, (score, index));
            best.truncate(width);
        }
    }
}

/// One bucket whose owners changed between two placements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The bucket.
    pub bucket: Bucket,
    /// Members that hold it now and did not: they must receive its records.
    pub gained: Vec<MemberId>,
    /// Members that held it and no longer do: they hand it off, then may drop it.
    pub lost: Vec<MemberId>,
}

/// Every bucket whose owners changed between two placements, in bucket order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changed buckets.
    pub changes: Vec<Change>,
}

#[cfg_attr(not(test), allow(dead_code))] // the tests' and simulation's view of a change
impl Changes {
    /// The buckets `member` must now receive.
    pub fn gained_by(&self, member: &MemberId) -> Vec<Bucket> {
        self.changes
            .iter()
            .filter(|c| c.gained.contains(member))
            .map(|c| c.bucket)
            .collect()
    }

    /// The buckets `member` no longer holds.
    pub fn lost_by(&self, member: &MemberId) -> Vec<Bucket> {
        self.changes
            .iter()
            .filter(|c| c.lost.contains(member))
            .map(|c| c.bucket)
            .collect()
    }

    /// Bucket placements that moved (one per member gaining a bucket).
    pub fn placements_gained(&self) -> usize {
        self.changes.iter().map(|c| c.gained.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).expect("tests use a positive replication factor")
    }

    fn members(n: usize) -> Vec<MemberId> {
        (0..n)
            .map(|i| MemberId::from(format!("member-{i:03}")))
            .collect()
    }

    fn keys(n: usize) -> Vec<Key> {
        (0..n).map(|i| Key::from(format!("key-{i}"))).collect()
    }

    fn owner_set(placement: &Placement, key: &Key) -> BTreeSet<MemberId> {
        placement.owners(key).into_iter().collect()
    }

    #[test]
    fn a_key_has_r_distinct_owners_primary_first() {
        let placement = Placement::new(members(10), r(3));
        for key in keys(200) {
            let owners = placement.owners(&key);
            assert_eq!(owners.len(), 3);
            assert_eq!(owner_set(&placement, &key).len(), 3, "{key}: {owners:?}");
            assert_eq!(
                placement.bucket_owners(bucket_of(&key)).next(),
                owners.first()
            );
        }
    }

    #[test]
    fn fewer_members_than_replicas_means_every_member_holds_everything() {
        let placement = Placement::new(members(2), r(3));
        assert_eq!(placement.width(), 2);
        assert_eq!(placement.replicas().get(), 3);
        assert_eq!(owner_set(&placement, &Key::from("k")).len(), 2);
        assert!(Placement::new(Vec::new(), r(3))
            .owners(&Key::from("k"))
            .is_empty());
    }

    /// Frozen figures: if these change, members of different builds place keys
    /// differently, which is a protocol change (bump `terms::PROTOCOL`).
    #[test]
    fn placement_is_pinned_across_builds_and_machines() {
        let placement = Placement::new(members(5), r(3));
        let pinned = [
            ("alpha", 1151, ["member-003", "member-004", "member-002"]),
            ("beta", 937, ["member-002", "member-001", "member-000"]),
            ("gamma", 2022, ["member-004", "member-002", "member-001"]),
        ];
        for (key, bucket, owners) in pinned {
            let key = Key::from(key);
            assert_eq!(bucket_of(&key).index(), bucket, "{key}");
            let found: Vec<String> = placement
                .owners(&key)
                .iter()
                .map(|m| m.to_string())
                .collect();
            assert_eq!(found, owners, "{key}");
        }
    }

    #[test]
    fn buckets_are_shared_evenly() {
        let ms = members(100);
        let placement = Placement::new(ms.clone(), r(3));
        let mean = f64::from(BUCKETS) * 3.0 / 100.0;
        let counts: Vec<usize> = ms.iter().map(|m| placement.buckets_of(m).len()).collect();
        let min = counts.iter().min().copied().unwrap_or_default();
        let max = counts.iter().max().copied().unwrap_or_default();
        println!("buckets per member at 100 members, R=3: mean {mean:.1}, min {min}, max {max}");
        for (member, &count) in ms.iter().zip(&counts) {
            let off = (count as f64 - mean).abs() / mean;
            assert!(off < 0.35, "{member} holds {count} buckets, mean {mean:.1}");
        }
    }

    /// The figure the issue asks for: 100 members, 10,000 keys, one joins, then one
    /// leaves.
    #[test]
    fn simulation_one_joins_then_one_leaves_among_100() {
        let before = members(100);
        let keys = keys(10_000);
        let old = Placement::new(before.clone(), r(3));

        let newcomer = MemberId::from("member-100");
        let joined = Placement::new(before.iter().cloned().chain([newcomer.clone()]), r(3));
        let mut received = 0;
        for key in &keys {
            let (was, now) = (owner_set(&old, key), owner_set(&joined, key));
            let gained: Vec<_> = now.difference(&was).collect();
            let lost: Vec<_> = was.difference(&now).collect();
            match gained.as_slice() {
                [] => assert!(lost.is_empty(), "{key} moved without the newcomer"),
                [only] => {
                    assert_eq!(**only, newcomer, "{key} moved to an old member");
                    assert_eq!(lost.len(), 1, "{key}: the newcomer displaced one owner");
                    received += 1;
                }
                more => panic!("{key} gained {more:?}"),
            }
        }
        let placements = keys.len() * 3;
        let fraction = received as f64 / placements as f64;
        println!(
            "join at 100 members: the newcomer received {received} of {placements} key \
             placements = {fraction:.4} (1/101 = {:.4}); nothing else moved",
            1.0 / 101.0
        );
        assert!(
            (0.6 / 101.0..1.4 / 101.0).contains(&fraction),
            "fraction {fraction}"
        );

        let leaver = MemberId::from("member-042");
        let left = Placement::new(before.iter().filter(|m| **m != leaver).cloned(), r(3));
        let mut moved = 0;
        let mut held = 0;
        for key in &keys {
            let (was, now) = (owner_set(&old, key), owner_set(&left, key));
            if was.contains(&leaver) {
                held += 1;
                let lost: Vec<_> = was.difference(&now).collect();
                assert_eq!(lost, [&leaver], "{key}: only the leaver's copy moves");
                assert_eq!(now.difference(&was).count(), 1, "{key}: one new owner");
                moved += 1;
            } else {
                assert_eq!(was, now, "{key} moved though the leaver did not hold it");
            }
        }
        println!(
            "leave at 100 members: {moved} key placements moved, exactly the {held} the \
             leaver held; the other {} keys kept their owners",
            keys.len() - held
        );
        assert!(held > 0);
    }

    #[test]
    fn changes_name_the_buckets_gained_and_lost() {
        let old = Placement::new(members(6), r(3));
        let newcomer = MemberId::from("member-new");
        let new = Placement::new(members(6).into_iter().chain([newcomer.clone()]), r(3));
        let changes = old.changes(&new);
        let gained = changes.gained_by(&newcomer);
        assert_eq!(gained, new.buckets_of(&newcomer));
        assert_eq!(changes.placements_gained(), gained.len());
        let lost: usize = members(6).iter().map(|m| changes.lost_by(m).len()).sum();
        assert_eq!(lost, gained.len(), "every gained placement displaced one");
        assert!(old.changes(&old).changes.is_empty());
    }

    fn member_set() -> impl Strategy<Value = Vec<MemberId>> {
        proptest::collection::btree_set("[a-z0-9]{1,12}", 1..24)
            .prop_map(|set| set.into_iter().map(MemberId::from).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn order_and_repetition_of_members_do_not_matter(
            members in member_set(),
            replicas in 1usize..5,
            seed in any::<u64>(),
        ) {
            let mut shuffled = members.clone();
            shuffled.extend(members.iter().take(3).cloned());
            // A deterministic shuffle from the seed.
            let n = shuffled.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(i as u64 + 1) >> 7) as usize % (i + 1);
                shuffled.swap(i, j);
            }
            let a = Placement::new(members, r(replicas));
            let b = Placement::new(shuffled, r(replicas));
            prop_assert_eq!(&a.owners, &b.owners);
            prop_assert_eq!(a.members(), b.members());
        }

        #[test]
        fn an_updated_placement_is_the_placement_made_afresh(
            members in member_set(),
            came in proptest::collection::vec("[A-Z]{1,8}", 0..4),
            went in 0usize..4,
            replicas in 1usize..5,
        ) {
            let old = Placement::new(members.clone(), r(replicas));
            let now: Vec<MemberId> = members
                .iter()
                .skip(went)
                .cloned()
                .chain(came.into_iter().map(MemberId::from))
                .collect();
            let fresh = Placement::new(now.clone(), r(replicas));
            let updated = old.updated(now);
            prop_assert_eq!(updated.members(), fresh.members());
            prop_assert_eq!(&updated.owners, &fresh.owners);
            prop_assert_eq!(updated.width, fresh.width);
        }

        #[test]
        fn a_join_moves_only_what_the_newcomer_takes(
            members in member_set(),
            newcomer in "[A-Z]{1,8}",
            replicas in 1usize..5,
        ) {
            let newcomer = MemberId::from(newcomer);
            let old = Placement::new(members.clone(), r(replicas));
            let new = Placement::new(members.into_iter().chain([newcomer.clone()]), r(replicas));
            for change in old.changes(&new).changes {
                prop_assert_eq!(&change.gained, &vec![newcomer.clone()]);
                // Below R members the newcomer adds a copy; at R or more it displaces one.
                prop_assert!(change.lost.len() == usize::from(old.width() == replicas));
            }
        }

        #[test]
        fn a_leave_moves_only_the_leavers_buckets(
            members in member_set(),
            pick in any::<prop::sample::Index>(),
            replicas in 1usize..5,
        ) {
            let leaver = pick.get(&members).clone();
            let old = Placement::new(members.clone(), r(replicas));
            let new = Placement::new(members.into_iter().filter(|m| *m != leaver), r(replicas));
            for bucket in Bucket::all() {
                let was: BTreeSet<_> = old.bucket_owners(bucket).collect();
                let now: BTreeSet<_> = new.bucket_owners(bucket).collect();
                if was.contains(&leaver) {
                    let lost: Vec<&MemberId> = was.difference(&now).copied().collect();
                    prop_assert_eq!(lost, vec![&leaver]);
                    prop_assert!(now.difference(&was).count() <= 1);
                } else {
                    prop_assert_eq!(was, now);
                }
            }
        }
    }
}
