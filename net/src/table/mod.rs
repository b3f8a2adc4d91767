//! The replicated table (py2p's chord DHT as [`Table`], issue 13): a dict shared by the
//! peers of a group that joined it, each key on `NET_TABLE_REPLICAS` members, surviving
//! members that leave, die, restart or are cut off.
//!
//! | file | provides |
//! | --- | --- |
//! | `api.rs` | [`Table`], [`TableOp`] (await or `.wait()`), [`TableMember`] |
//! | `ops.rs` | a quorum read with read repair, and a quorum write |
//! | `scan.rs` | a scan of every bucket, from a majority of each one's owners |
//! | `route.rs` | one call to one member, its outcome and health; learning the members |
//! | `lanes.rs` | reads and writes to one replica batched: one call in flight per replica |
//! | `calls.rs` | the built-ins `net.table.*` between peers |
//! | `handlers.rs` | what a member does when called |
//! | `member.rs` | join (store, hello, receiving a share) and unjoin (handoff, bye) |
//! | `tick.rs` | a member's background loop: heartbeats, deaths, catching up, handoff, anti-entropy |
//! | `sync.rs` | the anti-entropy exchange between two members, and its three uses |
//! | `state.rs` | what a peer holds per table: terms, clock, view, member state, replicas |
//! | `view.rs` | the members with incarnations, how views merge, their placement |
//! | `health.rs` | how calls to each member fare, and when one is dead |
//! | `wire.rs` | what the calls carry, checked on arrival |
//! | `ids.rs` | [`Key`](ids::Key) (= [`TableKey`](crate::TableKey)) and [`MemberId`](ids::MemberId) |
//! | `placement.rs` | buckets, [`Placement`](placement::Placement): `owners(key)`, what moves between two member sets |
//! | `version.rs` | [`Version`](version::Version) and the hybrid logical [`Clock`](version::Clock) |
//! | `record.rs` | [`Record`](record::Record): a value's JSON bytes or a tombstone, with its version and stored form |
//! | `quorum.rs` | `decide_write`, `decide_read`, building [`NoQuorum`](crate::NoQuorum) |
//! | `store/` | [`Store`](store::Store): one member's replicas in memory or in redb, with bucket digests |
//! | `digest.rs` | bucket digests, summaries and the comparisons of anti-entropy |
//! | `terms.rs` | the protocol version and replication factor members must share |
//! | `error.rs` | [`TableError`](error::TableError), and its `net::Error` |
//!
//! # Decisions
//!
//! - **Placement: fixed buckets, each on R members by rendezvous hashing.** A key's
//!   bucket is the top 12 bits of its xxh3 hash (4,096 buckets); a bucket's owners are
//!   the R members with the highest xxh3(member, bucket) score, primary first. Every
//!   member computes the same table from the same member set (sorted, so the order the
//!   set was learned in does not matter, and never through Rust's randomized
//!   `DefaultHasher`). A newcomer ranks in a bucket's top R for about R/(N+1) of the
//!   buckets and displaces one owner in each; nothing else moves. A leaver's buckets
//!   each take the next-ranked member; nothing else moves. Both are property tests, and
//!   the simulation (100 members, 10,000 keys) prints the figures: the newcomer
//!   received 0.0096 of the placements (1/101 = 0.0099); a leave moved exactly the 317
//!   placements the leaver held. The bucket is also the unit of handoff and of
//!   anti-entropy: the owners of a bucket hold exactly the same keys, so two members
//!   compare digests of the buckets they share, and a member hands off or pulls a
//!   bucket as one range of its store.
//!   Rejected: *a Chord ring with a successor list*: it needs 100–200 virtual nodes per
//!   member to shares within ±10%, a successor list that skips a member's own virtual
//!   nodes, and irregular key ranges per replica set; its finger tables answer a
//!   question we do not have, since every member of a LAN group knows every other one
//!   and a lookup is local. *py2p's several hash functions* (a key stored in k hash
//!   tables): two of them can land on one member, leaving fewer than R distinct copies,
//!   and its "most common value" vote compares values rather than versions.
//!   *Rendezvous per key, without buckets*: perfect balance, but the owner set differs
//!   key by key, so two members could compare only by hashing every key's owners on
//!   every exchange, and handoff could not move ranges. *Jump consistent hashing*:
//!   members must be numbered 0..N, and only the last may leave. The bucket count is
//!   part of the protocol: at 4,096 and 100 members, a member holds 101 to 156
//!   buckets (mean 123, spread about 9%); past a few hundred members shares grow
//!   uneven and the count should grow with a protocol bump.
//! - **Versions: a hybrid logical clock and last-writer-wins.** A version is
//!   `(millis, counter, writer id)`, compared in that order, so any two writes to a key
//!   are ordered and every replica keeps the same one without talking to the others.
//!   The clock follows the wall clock, never goes back, and moves past every version it
//!   observes (up to [`MAX_DRIFT`](version::MAX_DRIFT) ahead, so one broken clock
//!   cannot drag the group into its future). Rejected: *vector clocks or dotted version
//!   vectors*, which detect concurrent writes and keep both as siblings: a dict-like API
//!   (py2p's, ours) has no place for siblings, and a resolver would pick one anyway.
//!   *A plain wall clock*: ties and clocks stepping back. *A Lamport clock alone*: a
//!   writer that never saw a key would order its write by its own count, unrelated to
//!   time. What HLC does not fix, a write racing a newer-stamped write from a faster
//!   clock, the write path handles: replicas answer `Superseded(v)`, and the writer re-issues
//!   once above `v` (so a set is never lost to a write that happened before it).
//! - **Tombstones: kept for a day, and a member away longer rejoins empty.** `pop`
//!   writes a tombstone with a version, which outranks the value on every replica that
//!   missed the pop. Each replica collects its tombstones older than
//!   [`TOMBSTONE_GRACE`](record::TOMBSTONE_GRACE) (24 h) on its own. The danger is a
//!   member coming back with the old value after the tombstone is gone; so the store
//!   records when its member was last alive, and a member away for longer than the
//!   grace clears its store before rejoining (its share was re-replicated long before,
//!   so nothing is lost). Rejected: *collecting a tombstone once every replica has it*:
//!   "every replica" moves with membership, and the member that matters (away, holding
//!   the old value) is no longer a replica; *keeping tombstones for ever*: a table of
//!   short-lived keys would grow without bound.
//! - **Quorums: a majority of R, and reads return the majority's newest.** A write
//!   succeeds when a majority of the key's replicas acknowledge (a replica holding
//!   something newer acknowledges too: the write is ordered before it). A read asks the
//!   replicas and returns the newest version among a majority's answers: two majorities
//!   of one replica set share a member, so the newest acknowledged write is always
//!   among them (py2p's "most common value" becomes "majority newest"), and the answers
//!   that were older name the replicas to repair. With fewer than a majority, the
//!   error is [`NoQuorum`](quorum::NoQuorum): op, key, replicas, and how each fared
//!   ("a answered; b: timed out after 2s; c: connection refused"). No sloppy quorum or
//!   hinted handoff: a write on the minority side of a partition must fail loudly, not
//!   land on whoever is reachable. With fewer members than R, every member holds every
//!   key and the majority is of the members.
//! - **Store: memory by default, redb with NET_TABLE_DIR.** One redb file per table
//!   (`<dir>/<escaped name>.redb`), records keyed by bucket then key so a bucket is one
//!   range, every commit durable (fsync) before it returns; batches (handoff,
//!   anti-entropy) are one commit. The store applies a record only if newer than what
//!   it holds, keeps the bucket digests beside the records (rebuilt on open), and
//!   refuses loudly what it cannot read: a damaged record, a record under the wrong
//!   bucket (a file of another protocol), another layout, a file in use by another
//!   member (redb's lock). redb: pure Rust (no C toolchain), ACID with a crash-safe
//!   two-slot commit, a stable file format, typed tables, few dependencies; the 2.x
//!   line builds with our rust-version 1.85. Rejected: *sled*, whose released line has
//!   been beta since 2021 and its rewrite unreleased; *fjall*, an LSM tree with
//!   background compaction threads and a journal, built for write-heavy data far
//!   larger than a LAN table's, and a larger dependency tree; *SQLite* (rusqlite), the
//!   most proven, but C compiled into every build and SQL for a key-value need.
//! - **Anti-entropy: digests narrowed level by level.** Each bucket's digest is the
//!   XOR of xxh3-128 hashes of its (key, version) pairs, with a count, updated as
//!   records are applied. Two members compare one summary of the buckets they share;
//!   if it differs, 64 group hashes; then the bucket digests of the differing groups;
//!   then the (key, version) lists of the differing buckets; then only the records one
//!   side lacks travel. Two replicas of 1,006 keys differing in 6 exchange 128 group
//!   hashes, 154 bucket digests, 12 (key, version) pairs and the 6 records (test
//!   `two_replicas_that_differ_in_a_few_keys_converge_exchanging_only_those`).
//!   Rejected: *a Merkle tree per bucket range*: the XOR digest updates in O(1) per
//!   write without a tree to maintain, and the fixed levels give the same narrowing.
//!
//! - **Member ids: 64 random bits, kept in the store with NET_TABLE_DIR.** So a member
//!   restarted on another port is still the owner of its buckets and catches up on the
//!   keys that differ only; without NET_TABLE_DIR every start is a new member (it has
//!   nothing to keep). Rejected: *the peer id*, which names the address: a restart on
//!   another port would move the member's whole share and orphan its file.
//! - **A bucket a member gained does not count for reads until it has it.** Quorums
//!   alone are not enough when owners change: after a join or a death, the majority a
//!   read reaches may be the new owner (empty) and the one that missed the write. So a
//!   member that gains a bucket (it joined, came back, or another died) marks it
//!   pending until it has run an exchange with every old owner still alive; its
//!   answers for that bucket then carry `ready: false` and do not count towards a read's
//!   majority (its record still counts as a candidate for the newest). Writes go to it
//!   at once. A member answers only for buckets it owns in its view (`NotOwner` with its
//!   view otherwise), so a writer or reader with an old view learns the new one and
//!   tries once more, instead of counting an owner that no longer is one.
//! - **Views: per-member incarnations, merged by gossip; deaths only with a majority.**
//!   Each member lists every member with an incarnation (the time of its latest join)
//!   and alive or dead. Merging keeps the higher incarnation, and at equal ones dead,
//!   so views converge in any order (SWIM's rule). A member is dropped when its calls
//!   have failed for `dead_after` (1.5 s, three calls in a row), only by a member that
//!   reaches a majority of its view; the verdict is spread to everyone at once. A member
//!   that sees itself dead comes back under a higher incarnation and waits for all of
//!   its buckets again: after a partition heals, the minority side rejoins this way.
//!   With NET_TABLE_DIR the view is kept in the store, so a member restarted while the
//!   others are unreachable cannot form a table of its own. Rejected: *a consensus
//!   protocol for membership* (Raft): a LAN group's membership changes rarely and any
//!   member can judge deaths with a majority; *discovery's table as the membership*: it
//!   holds peers, not members, and drops a peer on one failed call. What this leaves
//!   open: a write from a peer whose view is behind, during a join, may be acknowledged by
//!   an owner that is being displaced and is not yet told so; that owner hands it to the
//!   new owners (nothing is lost), but until it has, a read that reaches the newcomer and
//!   a replica that missed the write can miss it. Views converge in a heartbeat or two,
//!   so the window is that long, and only with a replica failing at the same time.
//! - **Lanes: one get and one put call in flight per replica, the rest batched.** A
//!   table operation is three calls where a plain one is one; under load a peer would
//!   spend three times the calls. So operations to one replica queue in its lane, and
//!   what queued up while a call was out goes in the next (events' delivery lanes, same
//!   reasoning): alone an operation goes at once, with 64 in flight a call carries a
//!   dozen or more. A read asks every replica when some lane is idle (the faster two
//!   of three decide, and the third is repaired if stale), and under load, when every
//!   lane already has a call out, a rotating majority, and one more replica for each
//!   that fails or is still receiving its bucket: a third fewer replica reads per
//!   operation, which is what the client's CPU spends (gets/s with 64 in flight rose
//!   from 73,000-80,000 to 97,000-113,000 in alternating runs); the replica not asked
//!   is kept up by anti-entropy, and waiting for the slower of two costs little when
//!   calls queue anyway. Rejected: *always a majority first*: alone, a read would wait
//!   for the slower of two instead of the faster two of three.
//!
//! # How it runs
//!
//! **Calls** (built-ins `net.table.*`, `calls.rs`; the table name first, the member
//! called when one is meant; answers `Result<T, WireError>`): `hello` (a joining member
//! announces itself with its terms; refused with `Incompatible` and the callee's terms),
//! `members` (terms, view hash, and the view when the asker's hash differs: the
//! heartbeat, and how non-members route), `gossip` (merge a view), `get`, `put`, `scan`
//! (one replica's side of a read, a write, a scan), `sync`, `sync_buckets`, `sync_keys`,
//! `transfer` (the steps of anti-entropy). docs/PROTOCOL.md documents them.
//!
//! **Operations.** `set`: a version from the clock, `put` to every owner at once, done at
//! a majority; the puts still running finish in the background. A replica holding a
//! newer version acknowledges and says so, and the writer writes once more above it (a
//! lagging clock never loses a set to an earlier write). `get`: `get` from every owner
//! (a rotating majority under load, see *Lanes*), done at a majority of ready answers,
//! the newest sent to the stale ones (read repair, in the background). `pop`: a read, then a tombstone above the version read; it returns
//! the value read. `update`: sets, 64 in flight. `keys`, `values`, `items`, `len`,
//! `copy`, `popitem`: a scan asks every member for the buckets it owns and needs, for
//! every bucket, a majority of its owners. A peer that has not joined does the same: it
//! learns the members by asking the group's peers (`members`), and asks again when a
//! call fails or a member answers with another view.
//!
//! **Join**: open the store (id, view kept), say `hello` to the group's peers that
//! discovery finds and to every member their answers name, mark every owned bucket
//! pending on its owners without this member, take them (anti-entropy: the newcomer
//! lacks everything, so it receives its share in `transfer` batches), then serve. Only
//! one owner per bucket changes per join. The owner a newcomer displaced keeps the bucket
//! until it has given it to every owner, then drops it (`hand_off`, each tick).
//!
//! **Unjoin**: give every bucket held to its owners without this member (each must reach
//! a majority of them, or unjoin fails and the member stays), then mark itself dead and
//! gossip it. While it does, it refuses every exchange that would give it records
//! (`NotMember`): a receiver that still lists the leaver as an owner would otherwise hand
//! the buckets straight back and drop them before the leaver's last gossip arrives.
//! Peer shutdown unjoins every table while the links are still open; a failed handoff
//! there is reported on stderr, and the others restore the copies as after a crash.
//!
//! **Death**: a member's loop asks the failing members and two random others for their
//! view every tick (250 ms); calls failing for 1.5 s drop a member (with a majority in
//! reach). Its buckets each gain the next-ranked member, which takes them from the
//! surviving owners at once: R copies are back after detection plus one transfer.
//!
//! **Anti-entropy and partitions**: every second (jittered) a member compares the buckets
//! it shares with one other member in turn, and every 30 s it collects expired
//! tombstones and marks its store alive. The minority side of a partition keeps its view
//! and answers `NoQuorum`; after the heal the majority's gossip shows the minority's
//! members dead, they come back under new incarnations, take their buckets, and every
//! replica converges. A write that failed with `NoQuorum` may still surface later (a
//! replica on the minority side applied it): `NoQuorum` means "not known to be durable".

mod api;
mod calls;
mod digest;
mod error;
mod handlers;
mod health;
mod ids;
mod lanes;
mod member;
mod ops;
mod placement;
mod quorum;
mod record;
mod route;
mod scan;
mod state;
mod store;
mod sync;
mod terms;
mod tick;
mod version;
mod view;
mod wire;

pub use api::{Table, TableMember, TableOp};
pub(crate) use calls::builtins;

use crate::peer::{News, Peer};

/// Starts listening for news of members that went away (a goodbye, a call that found
/// one unreachable, discovery saying it left): their health turns failing at once, so the
/// heartbeats look at them next.
pub(crate) fn start(peer: &Peer) {
    peer.listen(|peer, news| match news {
        // A goodbye nobody vouches for may be an impostor's: the heartbeats will tell.
        News::Goodbye {
            addr,
            vouched: true,
        }
        | News::Unreachable { addr, .. } => failing_at(peer, *addr),
        News::Goodbye { vouched: false, .. } => {}
        News::Incoming { .. } => {}
    });
    let mut changes = peer.membership();
    let (watching, stop) = (peer.clone(), peer.shutdown_token().clone());
    let watch = async move {
        loop {
            let change = tokio::select! {
                () = stop.cancelled() => break,
                change = changes.recv() => change,
            };
            match change {
                Ok(crate::discovery::Membership::Left { peer: gone, .. }) => {
                    failing_at(&watching, gone.addr)
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    peer.tracker().spawn_on(watch, peer.runtime());
}

/// The members serving at `addr`, in every table this peer is a member of, are failing.
fn failing_at(peer: &Peer, addr: std::net::SocketAddr) {
    for state in peer.tables().joined() {
        let gone: Vec<ids::MemberId> = crate::sync::lock(&state.view)
            .alive()
            .into_iter()
            .filter(|(_, a)| *a == addr)
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            state.health.failed(&id);
        }
    }
}

/// Unjoins every table this peer is a member of (handing its keys off) while its links
/// are open; a table whose handoff fails is left as it is, with the error logged.
pub(crate) async fn before_shutdown(peer: &Peer) {
    for state in peer.tables().joined() {
        if let Err(e) = member::unjoin(peer, &state).await {
            // Seen without a tracing subscriber too: the others restore its copies as
            // after a crash, but the user should know the clean leave did not happen.
            crate::logging::warn_user(&format!(
                "leaving the table at shutdown: {e}; the other members restore its copies \
                 as they would after a crash"
            ));
        }
    }
}

/// Makes this peer's member of `table` vanish as a killed process would: no handoff, no
/// goodbye; from now on it answers the other members as a non-member, so their calls to
/// it fail. For the benchmark of recovery, which runs 100 members in one process.
pub(crate) fn vanish(peer: &Peer, table: &str) {
    if let Some(state) = peer.tables().get(table) {
        if let Some(member) = state.member() {
            member.stop.cancel();
            state.set_member(None);
        }
    }
}

/// How many keys this peer's member of `table` holds a value for, and how many buckets it
/// is still receiving; `None` if it is not a member.
pub(crate) fn held(peer: &Peer, table: &str) -> Option<(usize, usize)> {
    let member = peer.tables().get(table)?.member()?;
    let live = member.replicas.peek(|store| store.live_len());
    let pending = crate::sync::lock(&member.pending).len();
    Some((live, pending))
}

/// Sets the background timing of the tables this peer joins from now on (tests slow one
/// part down to watch another).
#[cfg(test)]
pub(crate) fn set_timing(peer: &Peer, timing: state::Timing) {
    *crate::sync::lock(&peer.tables().timing) = timing;
}

#[cfg(test)]
mod tests;
