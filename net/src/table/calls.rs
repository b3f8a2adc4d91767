//! The table's built-in calls between peers (`net.table.*`), each an ordinary
//! `#[net::connect]` function whose body hands the request to `handlers.rs` on the
//! serving peer. Every call names the table first; calls meant for one member name it
//! (`to`), so that a restarted peer on the same port cannot answer for the member that
//! was there. Answers are `Result<T, WireError>`: the member's typed refusal.

use super::handlers::{self, serving};
use super::ids::Key;
use super::terms::Terms;
use super::wire::{
    GetAnswer, MembersAnswer, PutAnswer, ScanAnswer, SyncKeysAnswer, WireError, WireMember,
    WireRecord, WireVersion,
};
use crate::serve::{Caller, Entry};

/// The registry entries of the table's built-ins, for the composition root's list.
pub(crate) fn builtins() -> [&'static Entry; 10] {
    [
        &__NET_ENTRY_hello,
        &__NET_ENTRY_members,
        &__NET_ENTRY_gossip,
        &__NET_ENTRY_get,
        &__NET_ENTRY_put,
        &__NET_ENTRY_scan,
        &__NET_ENTRY_sync,
        &__NET_ENTRY_sync_buckets,
        &__NET_ENTRY_sync_keys,
        &__NET_ENTRY_transfer,
    ]
}

/// A joining member announces itself: refused with `Incompatible` under other terms;
/// otherwise added to the view, which is returned.
#[crate::connect("net.table.hello")]
pub(crate) async fn hello(
    table: String,
    member: WireMember,
    terms: Terms,
    caller: Caller,
) -> Result<Vec<WireMember>, WireError> {
    handlers::hello(&serving(&caller)?, &table, member, terms)
}

/// The member's terms and view hash, and its view unless `view` (the asker's hash) is
/// the same: how non-members learn where keys live, and the members' heartbeat.
#[crate::connect("net.table.members")]
pub(crate) async fn members(
    table: String,
    view: Option<String>,
    caller: Caller,
) -> Result<MembersAnswer, WireError> {
    handlers::members(&serving(&caller)?, &table, view)
}

/// Merges the sender's view (a death found, a member that left); returns the merged
/// view's hash.
#[crate::connect("net.table.gossip")]
pub(crate) async fn gossip(
    table: String,
    terms: Terms,
    members: Vec<WireMember>,
    caller: Caller,
) -> Result<String, WireError> {
    handlers::gossip(&serving(&caller)?, &table, terms, members)
}

/// One replica's records of some keys (a batch: the reads that queued up for it).
#[crate::connect("net.table.get")]
pub(crate) async fn get(
    table: String,
    to: String,
    keys: Vec<Key>,
    caller: Caller,
) -> Result<GetAnswer, WireError> {
    handlers::get(&serving(&caller)?, &table, &to, keys).await
}

/// Writes records on one replica (each applied only if newer than what it holds; a batch:
/// the writes that queued up for it).
#[crate::connect("net.table.put")]
pub(crate) async fn put(
    table: String,
    to: String,
    records: Vec<(Key, WireRecord)>,
    caller: Caller,
) -> Result<PutAnswer, WireError> {
    handlers::put(&serving(&caller)?, &table, &to, records).await
}

/// Every record of some buckets on one replica.
#[crate::connect("net.table.scan")]
pub(crate) async fn scan(
    table: String,
    to: String,
    buckets: Vec<u16>,
    caller: Caller,
) -> Result<ScanAnswer, WireError> {
    handlers::scan(&serving(&caller)?, &table, &to, buckets).await
}

/// Anti-entropy step 1: `null` when the summary of `buckets` is the member's too, else
/// its group hashes (step 2).
#[crate::connect("net.table.sync")]
pub(crate) async fn sync(
    table: String,
    to: String,
    buckets: Vec<u16>,
    summary: String,
    caller: Caller,
) -> Result<Option<Vec<(u16, String)>>, WireError> {
    handlers::sync(&serving(&caller)?, &table, &to, buckets, summary)
}

/// Anti-entropy step 3: the member's non-empty digests (hash, count) of `buckets`.
#[crate::connect("net.table.sync_buckets")]
pub(crate) async fn sync_buckets(
    table: String,
    to: String,
    buckets: Vec<u16>,
    caller: Caller,
) -> Result<Vec<(u16, String, u32)>, WireError> {
    handlers::sync_buckets(&serving(&caller)?, &table, &to, buckets)
}

/// Anti-entropy step 4: given the asker's (key, version) lists of some buckets, the
/// records it lacks and the keys the member lacks.
#[crate::connect("net.table.sync_keys")]
pub(crate) async fn sync_keys(
    table: String,
    to: String,
    lists: Vec<(u16, Vec<(Key, WireVersion)>)>,
    caller: Caller,
) -> Result<SyncKeysAnswer, WireError> {
    handlers::sync_keys(&serving(&caller)?, &table, &to, lists).await
}

/// Records a member receives from another (the end of an anti-entropy exchange, a
/// handoff); returns how many were newer than what it held.
#[crate::connect("net.table.transfer")]
pub(crate) async fn transfer(
    table: String,
    to: String,
    records: Vec<(Key, WireRecord)>,
    caller: Caller,
) -> Result<usize, WireError> {
    handlers::transfer(&serving(&caller)?, &table, &to, records).await
}
