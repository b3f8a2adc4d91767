//! The replicated table (py2p's chord DHT as `net::Table`, issue 13): where keys live,
//! how writes are ordered, how a read or write is decided from the replicas' answers,
//! how a member stores its replicas, and how two members find what differs between
//! them. This is the table's core; the calls between members that use it are phase 2,
//! planned at the end of these notes.
//!
//! | file | provides |
//! | --- | --- |
//! | `ids.rs` | [`Key`](ids::Key) (bytes, usually text) and [`MemberId`](ids::MemberId) |
//! | `placement.rs` | buckets, [`Placement`](placement::Placement): `owners(key)`, what moves between two member sets |
//! | `version.rs` | [`Version`](version::Version) and the hybrid logical [`Clock`](version::Clock) |
//! | `record.rs` | [`Record`](record::Record): a value's JSON bytes or a tombstone, with its version and stored form |
//! | `quorum.rs` | `decide_write`, `decide_read`, [`NoQuorum`](quorum::NoQuorum) |
//! | `store/` | [`Store`](store::Store): one member's replicas in memory or in redb, with bucket digests |
//! | `digest.rs` | bucket digests, summaries and the comparisons of anti-entropy |
//! | `terms.rs` | the protocol version and replication factor members must share |
//! | `error.rs` | [`TableError`](error::TableError) |
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
//!   clock, phase 2 handles: replicas answer `Superseded(v)`, and the writer re-issues
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
//! # Phase 2: the table on the layered core (for review)
//!
//! **State the peer holds** (the typed per-peer service-state map): per table name, a
//! `TableState` with its [`Terms`](terms::Terms), its [`Clock`](version::Clock) (writer
//! id = the member id), whether this peer joined, its `Store` (behind a mutex; disk
//! work on the blocking pool), and the *view*: the members known (id, address), the
//! `Placement` built from them (an `Arc`, swapped on change), a view hash (of the
//! sorted member ids and the terms) and, per member, when a call to it last succeeded
//! or failed. Member id: a random id kept in the store's meta table with
//! NET_TABLE_DIR (so a member restarted on another port keeps its buckets and catches
//! up on the differing keys only), a fresh one per start without it (nothing to keep).
//! Alternative, simpler: the peer id; then a restart on another port moves its share.
//!
//! **Calls** (built-ins under `net.table.*`, first argument the table name, keys as a
//! string when UTF-8 and `{"b64": ...}` otherwise, records as
//! `{millis, counter, writer, value}` with the value as raw JSON):
//! - `hello(table, member, terms) -> Result<Vec<member>, TableError>`: a joining
//!   member announces itself; the callee refuses other terms with `Incompatible`
//!   (both values named, on both sides), adds it to its view and returns its view.
//! - `bye(table, member)`: after an unjoin's handoff; the callee drops it from its view.
//! - `members(table) -> (Vec<member>, view hash)`: how a non-member learns where to
//!   route; asked of the group's peers until one that joined answers, again when a
//!   call fails or a replica reports another view hash.
//! - `get(table, key) -> Option<record>` and `put(table, key, record) -> WriteAck`: one
//!   replica's read and write (`put` also carries read repair and single handoffs).
//! - `put_many(table, Vec<(key, record)>) -> usize`: batches (update, handoff,
//!   transfers); one store commit.
//! - `scan(table, buckets) -> Vec<(key, record)>`: for keys/values/items/len/copy/
//!   popitem; the caller asks each bucket of a majority of its owners and merges by
//!   version, `NoQuorum` naming the first bucket short of one.
//! - `sync(table, view hash, level, hashes) -> differing names` for levels summary,
//!   groups and buckets, and `sync_keys(table, bucket, Vec<(key, version)>) ->
//!   (records the caller lacks, keys the callee lacks)`: the anti-entropy steps of
//!   `digest.rs`; the caller then `put_many`s what the callee lacks. A different view
//!   hash answers "views differ" with the callee's members, and both merge views first.
//!
//! **Operations.** `set`: owners from the view, `clock.tick()`, `put` to all owners at
//! once, done at a majority (`decide_write`; the stragglers finish in the background,
//! not cancelled); on `superseded_by`, observe it and re-issue once. `get`: `get` from
//! all owners, decide at a majority (`decide_read`), send the newest to the stale ones
//! (read repair, not awaited), decode. `pop`: a read, then a tombstone above its
//! version; it returns the value read (two racing pops may both return it, as two
//! racing dict pops in two processes would without a lock). `update`: `put_many` per
//! owner, decided per key. A peer that has not joined does the same, holding nothing.
//!
//! **Membership.** A member learns the others from three sources: `hello` (sent on
//! join to every group peer discovery reports and to NET_PEERS, and to each group peer
//! discovery's membership stream reports later; a peer that has not joined answers
//! "not a member"), the member lists `hello` and `sync` return (gossip, so views
//! converge), and failures. A member is dropped from the view when discovery says it
//! left, or after its calls failed for a grace (about 3 s, several anti-entropy
//! intervals' worth of attempts), *but only by a member that reaches a majority of its
//! current view*: the minority side of a partition keeps its view and so answers
//! `NoQuorum`, instead of re-placing every key on itself and accepting writes.
//!
//! **Join.** The newcomer sends `hello`, builds the placement with itself, and pulls
//! every bucket it gained by anti-entropy with that bucket's other owners (it has
//! nothing, so it receives everything, in `put_many` batches). Only one owner per
//! bucket changes per join, so reads and writes stay correct meanwhile: the two old
//! owners still form a majority, and the newcomer's empty answer is simply stale and
//! repaired. The displaced owner keeps the bucket until a sync shows the newcomer's
//! digest equal, then drops it.
//!
//! **Unjoin.** The leaver computes the placement without itself, `put_many`s each
//! bucket it holds to the owners that gain it, and only when each is acknowledged sends
//! `bye` and stops serving; if a gaining owner cannot be reached, `unjoin` returns the
//! error and the peer stays a member (nothing is lost). At peer shutdown this runs
//! before the links close, as events' unsubscribe does.
//!
//! **Death.** When a member is dropped from the view, each of its buckets gets the
//! next-ranked member, which pulls it by anti-entropy from the surviving owners at
//! once; R copies are back after detection plus one transfer (the figure the issue's
//! benchmark measures).
//!
//! **Anti-entropy and partitions.** Every member, every few seconds (jittered), syncs
//! with one co-owner in turn over the buckets they share, also collects expired
//! tombstones and marks its store alive. After a partition heals, `hello`s and the
//! views' gossip re-admit the members the majority had dropped; their placements move
//! back and the same syncs bring every replica to the newest version of every key. A
//! write that failed with `NoQuorum` may still surface later (a replica on the
//! minority side applied it): `NoQuorum` means "not known to be durable", as in every
//! quorum system. A member whose store says it was away longer than the tombstone
//! grace clears it before `hello`.
//!
//! **What the peer must offer.** The per-peer service-state map (the `TableState`s);
//! on the bus: a group peer appeared (id, address, group), a peer departed (discovery
//! says it left), a call to a peer failed at the link (refused, closed, timed out), and
//! shutdown starting (to unjoin while links are open); a task tracker for the sync
//! timers; calls to a peer by address from inside a handler; config fields
//! `table_replicas` (NET_TABLE_REPLICAS, default 3, at least 1) and `table_dir`
//! (NET_TABLE_DIR); and in `net::Error` a `NoQuorum(Box<NoQuorum>)` variant (users
//! match on it) beside one `Table(TableError)` for the rest (store, corrupt, encode,
//! decode, incompatible).

mod digest;
mod error;
mod ids;
mod placement;
mod quorum;
mod record;
mod store;
mod terms;
mod version;
