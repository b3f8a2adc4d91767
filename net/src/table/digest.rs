//! Digests for anti-entropy: one per bucket over the (key, version) pairs a replica
//! holds, a summary over many buckets, and the comparisons that tell two replicas
//! which buckets, then which keys, they must exchange.
//!
//! The exchange between two members that share buckets narrows down level by level,
//! each step sent only where the one before found a difference: (1) one
//! [`summary`](BucketDigests::summary) of the shared buckets; if equal, done (the usual
//! case, 16 bytes). (2) One hash per group of [`GROUP_SIZE`] buckets
//! ([`groups`](BucketDigests::groups)). (3) The per-bucket digests of the differing
//! groups ([`sparse`](BucketDigests::sparse)). (4) The (key, version) lists of the
//! differing buckets; [`reconcile`] names the keys each side must send, and only those
//! records travel. [`differing`] compares the lists of steps (2) and (3).

use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

use super::ids::Key;
use super::placement::{Bucket, BUCKETS};
use super::version::Version;

/// Buckets per group of step (2): 64 groups of 64, so that neither the group list nor
/// one group's bucket list is more than about a kilobyte and a half.
pub const GROUP_SIZE: u16 = 64;

/// Seed of the entry hashes: protocol, as the placement seeds are.
const ENTRY_SEED: u64 = 0x6e65_742e_6467_7331; // "net.dgs1"

/// The digest of one bucket: an order-free combination of its entries' hashes, so that
/// applying or removing one record updates it without reading the others.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct Digest {
    /// XOR of the 128-bit hashes of the entries. Keys are unique within a bucket, so no
    /// entry can cancel a copy of itself; a chance collision needs 2^64 entries.
    pub hash: u128,
    /// How many entries: two buckets with equal hashes but different counts differ.
    /// Kept with wrapping arithmetic, so that adding and removing are exact inverses.
    pub count: u32,
}

impl Digest {
    /// Whether the bucket holds nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The hash of one entry: its key and its version (a version names one write, so the
/// value need not be hashed).
pub fn entry_hash(key: &Key, version: &Version) -> u128 {
    let mut bytes = Vec::with_capacity(key.as_bytes().len() + 32);
    // Lengths first, so that no two (key, writer) pairs share a byte string.
    bytes.extend_from_slice(&(key.as_bytes().len() as u64).to_be_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&version.millis.to_be_bytes());
    bytes.extend_from_slice(&version.counter.to_be_bytes());
    bytes.extend_from_slice(version.writer.as_str().as_bytes());
    xxh3_128_with_seed(&bytes, ENTRY_SEED)
}

/// The digests of every bucket of one replica, kept up to date as records change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BucketDigests {
    /// One per bucket, indexed by bucket number.
    digests: Vec<Digest>,
}

impl Default for BucketDigests {
    fn default() -> BucketDigests {
        BucketDigests {
            digests: vec![Digest::default(); BUCKETS as usize],
        }
    }
}

impl BucketDigests {
    /// Adds an entry to `bucket`.
    pub fn add(&mut self, bucket: Bucket, key: &Key, version: &Version) {
        let digest = &mut self.digests[bucket.index() as usize];
        digest.hash ^= entry_hash(key, version);
        digest.count = digest.count.wrapping_add(1);
    }

    /// Removes an entry that was added to `bucket`.
    pub fn remove(&mut self, bucket: Bucket, key: &Key, version: &Version) {
        let digest = &mut self.digests[bucket.index() as usize];
        digest.hash ^= entry_hash(key, version);
        digest.count = digest.count.wrapping_sub(1);
    }

    /// The digest of `bucket`.
    pub fn get(&self, bucket: Bucket) -> Digest {
        self.digests[bucket.index() as usize]
    }

    /// Step (1): one hash over the digests of `buckets`.
    pub fn summary(&self, buckets: &[Bucket]) -> u128 {
        self.hash_of(buckets.iter().copied())
    }

    /// Step (2): one hash per group of [`GROUP_SIZE`] buckets over the digests of the
    /// `buckets` (in order, as placement lists them) in it, for the groups where any of
    /// them holds something; sorted.
    pub fn groups(&self, buckets: &[Bucket]) -> Vec<(u16, u128)> {
        let mut out = Vec::new();
        for chunk in buckets.chunk_by(|a, b| group_of(*a) == group_of(*b)) {
            if chunk.iter().any(|&b| !self.get(b).is_empty()) {
                out.push((group_of(chunk[0]), self.hash_of(chunk.iter().copied())));
            }
        }
        out
    }

    /// Step (3): the non-empty digests among `buckets` that lie in one of `groups`.
    pub fn sparse(&self, buckets: &[Bucket], groups: &[u16]) -> Vec<(Bucket, Digest)> {
        buckets
            .iter()
            .filter(|&&b| groups.contains(&group_of(b)))
            .map(|&b| (b, self.get(b)))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    fn hash_of(&self, buckets: impl Iterator<Item = Bucket>) -> u128 {
        let mut hasher = Xxh3::with_seed(ENTRY_SEED);
        for bucket in buckets {
            let digest = self.get(bucket);
            if !digest.is_empty() {
                hasher.update(&bucket.index().to_be_bytes());
                hasher.update(&digest.hash.to_be_bytes());
                hasher.update(&digest.count.to_be_bytes());
            }
        }
        hasher.digest128()
    }
}

/// The group of step (2) a bucket belongs to.
pub fn group_of(bucket: Bucket) -> u16 {
    bucket.index() / GROUP_SIZE
}

/// Steps (2) and (3): the names (groups or buckets) whose hashes differ between two
/// lists sorted by name, as [`BucketDigests::groups`] and [`BucketDigests::sparse`]
/// make them; a name missing from one list is empty there.
pub fn differing<N: Ord + Copy, H: PartialEq>(mine: &[(N, H)], theirs: &[(N, H)]) -> Vec<N> {
    let (mut a, mut b) = (mine.iter().peekable(), theirs.iter().peekable());
    let mut out = Vec::new();
    loop {
        match (a.peek(), b.peek()) {
            (Some((na, ha)), Some((nb, hb))) => match na.cmp(nb) {
                std::cmp::Ordering::Equal => {
                    if ha != hb {
                        out.push(*na);
                    }
                    a.next();
                    b.next();
                }
                std::cmp::Ordering::Less => {
                    out.push(*na);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(*nb);
                    b.next();
                }
            },
            (Some((na, _)), None) => {
                out.push(*na);
                a.next();
            }
            (None, Some((nb, _))) => {
                out.push(*nb);
                b.next();
            }
            (None, None) => return out,
        }
    }
}

/// Step (4)'s outcome for one bucket: which records each side must send the other.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Reconciled {
    /// Keys the other side holds newer (or only there): it sends them to me.
    pub i_lack: Vec<Key>,
    /// Keys I hold newer (or only here): I send them.
    pub they_lack: Vec<Key>,
}

/// Compares two (key, version) lists of one bucket, each sorted by key (as the store
/// lists them).
pub fn reconcile(mine: &[(Key, Version)], theirs: &[(Key, Version)]) -> Reconciled {
    let (mut a, mut b) = (mine.iter().peekable(), theirs.iter().peekable());
    let mut out = Reconciled::default();
    loop {
        match (a.peek(), b.peek()) {
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Equal => {
                    if va > vb {
                        out.they_lack.push(ka.clone());
                    } else if vb > va {
                        out.i_lack.push(kb.clone());
                    }
                    a.next();
                    b.next();
                }
                std::cmp::Ordering::Less => {
                    out.they_lack.push(ka.clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.i_lack.push(kb.clone());
                    b.next();
                }
            },
            (Some((ka, _)), None) => {
                out.they_lack.push(ka.clone());
                a.next();
            }
            (None, Some((kb, _))) => {
                out.i_lack.push(kb.clone());
                b.next();
            }
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ids::MemberId;
    use crate::table::placement::{bucket_of, Placement};
    use crate::table::record::Record;
    use crate::table::store::Store;
    use std::collections::BTreeSet;
    use std::num::NonZeroUsize;

    fn v(millis: u64) -> Version {
        Version {
            millis,
            counter: 0,
            writer: MemberId::from("w"),
        }
    }

    fn b(n: u16) -> Bucket {
        Bucket::new(n).expect("in range")
    }

    fn d(hash: u128, count: u32) -> Digest {
        Digest { hash, count }
    }

    #[test]
    fn differing_buckets_include_those_one_side_lacks() {
        let mine = [(b(1), d(5, 1)), (b(3), d(7, 2)), (b(9), d(1, 1))];
        let theirs = [(b(2), d(5, 1)), (b(3), d(7, 2)), (b(9), d(1, 2))];
        assert_eq!(differing(&mine, &theirs), [b(1), b(2), b(9)]);
        assert!(differing(&mine, &mine).is_empty());
        assert_eq!(
            differing::<Bucket, Digest>(&[], &theirs),
            [b(2), b(3), b(9)]
        );
        assert_eq!(differing(&[(1u16, 5u128), (4, 1)], &[(1, 6), (4, 1)]), [1]);
    }

    #[test]
    fn reconcile_names_the_keys_each_side_must_send() {
        let k = |s: &str| Key::from(s);
        let mine = [(k("a"), v(1)), (k("b"), v(5)), (k("c"), v(2))];
        let theirs = [(k("b"), v(4)), (k("c"), v(3)), (k("d"), v(1))];
        let out = reconcile(&mine, &theirs);
        assert_eq!(out.they_lack, [k("a"), k("b")]);
        assert_eq!(out.i_lack, [k("c"), k("d")]);
        assert_eq!(reconcile(&mine, &mine), Reconciled::default());
    }

    #[test]
    fn the_summary_sees_every_difference_but_not_empty_buckets() {
        let mut a = BucketDigests::default();
        let all: Vec<Bucket> = Bucket::all().collect();
        let empty = a.summary(&all);
        assert_eq!(a.summary(&all[..10]), empty, "empty buckets do not count");
        let key = Key::from("k");
        a.add(bucket_of(&key), &key, &v(1));
        assert_ne!(a.summary(&all), empty);
        a.remove(bucket_of(&key), &key, &v(1));
        assert_eq!(a.summary(&all), empty);
        assert_eq!(a, BucketDigests::default());
    }

    /// What one exchange between two replicas cost.
    #[derive(Default, Debug)]
    struct Traffic {
        groups: usize,
        digests: usize,
        pairs: usize,
        records: usize,
        buckets: BTreeSet<Bucket>,
    }

    /// Runs the three steps of the module docs between `a` and `b` over `shared`.
    fn exchange(a: &mut Store, b: &mut Store, shared: &[Bucket]) -> Traffic {
        let mut traffic = Traffic::default();
        if a.digests().summary(shared) == b.digests().summary(shared) {
            return traffic;
        }
        let (ga, gb) = (a.digests().groups(shared), b.digests().groups(shared));
        traffic.groups = ga.len() + gb.len();
        let groups = differing(&ga, &gb);
        let (da, db) = (
            a.digests().sparse(shared, &groups),
            b.digests().sparse(shared, &groups),
        );
        traffic.digests = da.len() + db.len();
        for bucket in differing(&da, &db) {
            traffic.buckets.insert(bucket);
            let (va, vb) = (
                a.versions(bucket).expect("lists"),
                b.versions(bucket).expect("lists"),
            );
            traffic.pairs += va.len() + vb.len();
            let plan = reconcile(&va, &vb);
            let take = |from: &Store, keys: &[Key]| -> Vec<(Key, Record)> {
                keys.iter()
                    .map(|k| (k.clone(), from.get(k).expect("reads").expect("listed")))
                    .collect()
            };
            let (to_b, to_a) = (take(a, &plan.they_lack), take(b, &plan.i_lack));
            traffic.records += to_b.len() + to_a.len();
            b.apply_all(to_b).expect("applies");
            a.apply_all(to_a).expect("applies");
        }
        traffic
    }

    #[test]
    fn two_replicas_that_differ_in_a_few_keys_converge_exchanging_only_those() {
        let key = |i: usize| Key::from(format!("key-{i}"));
        let value =
            |i: usize, millis: u64| Record::encode(&key(i), v(millis), &i).expect("encodes");
        let (mut a, mut b) = (Store::memory(), Store::memory());
        let common: Vec<(Key, Record)> = (0..1_000).map(|i| (key(i), value(i, 1))).collect();
        a.apply_all(common.clone()).expect("applies");
        b.apply_all(common).expect("applies");

        // b took three newer writes, a two new keys and a pop, while apart.
        let touched = [3, 500, 999, 1_000, 1_001, 42];
        for i in [3, 500, 999] {
            b.apply(&key(i), value(i, 2)).expect("applies");
        }
        for i in [1_000, 1_001] {
            a.apply(&key(i), value(i, 2)).expect("applies");
        }
        a.apply(&key(42), Record::tombstone(v(3))).expect("pops");

        let shared: Vec<Bucket> = Bucket::all().collect();
        let traffic = exchange(&mut a, &mut b, &shared);
        let expected: BTreeSet<Bucket> = touched.iter().map(|&i| bucket_of(&key(i))).collect();
        println!(
            "anti-entropy: 1,006 keys, 6 differing: {} group hashes, {} bucket digests, {} \
             (key, version) pairs, {} records exchanged over {} buckets",
            traffic.groups,
            traffic.digests,
            traffic.pairs,
            traffic.records,
            traffic.buckets.len()
        );
        assert_eq!(traffic.buckets, expected, "only the touched buckets");
        assert_eq!(traffic.records, 6, "only the differing records");
        assert!(traffic.pairs < 100, "a few buckets' lists, not the table");
        assert!(
            traffic.digests < 6 * 2 * GROUP_SIZE as usize,
            "a few groups' digests"
        );

        assert_eq!(a.digests(), b.digests());
        assert_eq!(a.records().expect("lists"), b.records().expect("lists"));
        assert_eq!(a.live_len(), 1_001);
        let again = exchange(&mut a, &mut b, &shared);
        assert_eq!(
            (again.groups, again.records),
            (0, 0),
            "converged: the summary matches"
        );
    }

    #[test]
    fn members_compare_only_the_buckets_they_share() {
        let members: Vec<MemberId> = ["a", "b", "c", "d", "e"].map(MemberId::from).to_vec();
        let placement = Placement::new(members.clone(), NonZeroUsize::new(3).expect("3"));
        let (ma, mb) = (&members[0], &members[1]);
        let shared = placement.shared(ma, mb);
        assert!(!shared.is_empty());
        // a also holds buckets b does not: what a holds there must not count.
        let mut a = Store::memory();
        let mut b = Store::memory();
        for i in 0..400 {
            let key = Key::from(format!("k{i}"));
            let record = Record::encode(&key, v(1), &i).expect("encodes");
            let bucket = bucket_of(&key);
            if placement.holds(ma, bucket) {
                a.apply(&key, record.clone()).expect("applies");
            }
            if placement.holds(mb, bucket) {
                b.apply(&key, record).expect("applies");
            }
        }
        assert_ne!(a.digests(), b.digests());
        assert_eq!(a.digests().summary(&shared), b.digests().summary(&shared));
        assert_eq!(exchange(&mut a, &mut b, &shared).records, 0);
    }
}
