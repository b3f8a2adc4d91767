//! The table over real loopback sockets, peers in one process: operations through
//! members and non-members, read repair, joins, unjoins and deaths, mismatched terms.
//! (Processes, SIGKILL and network namespaces are in the root `tests/`.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ids::{Key, MemberId};
use super::route::{self, Replica};
use super::state::Timing;
use super::{calls, set_timing, Table};
use crate::sync::lock;
use crate::{Config, Error, Peer};

/// Background work fast enough for tests to watch it.
fn quick() -> Timing {
    Timing {
        tick: Duration::from_millis(50),
        dead_after: Duration::from_millis(300),
        sync_every: Duration::from_millis(200),
        call_timeout: Duration::from_secs(1),
        heartbeat: Duration::from_millis(500),
    }
}

async fn peer(seeds: &[SocketAddr], replicas: usize, timing: Timing) -> Peer {
    let config = Config::default()
        .loopback(true)
        .port(0)
        .timeout(Duration::from_secs(3))
        .table_replicas(replicas)
        .seeds(seeds.iter().map(ToString::to_string));
    let peer = Peer::start(config).await.expect("a loopback peer starts");
    set_timing(&peer, timing);
    peer
}

/// `n` members of `name`, each seeded with the first.
async fn members(n: usize, name: &str, timing: Timing) -> Vec<Peer> {
    let first = peer(&[], 3, timing).await;
    first
        .table::<i64>(name)
        .join()
        .await
        .expect("the first joins");
    let mut all = vec![first];
    for _ in 1..n {
        let seed = all[0].addr();
        let p = peer(&[seed], 3, timing).await;
        p.table::<i64>(name).join().await.expect("joins");
        all.push(p);
    }
    all
}

/// Polls `check` until it holds, for at most ten seconds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The member id of `peer` in table `name`.
fn id_of(peer: &Peer, name: &str) -> MemberId {
    let state = peer.tables().get(name).expect("used the table");
    state.member().expect("a member").id.clone()
}

/// What one replica holds for `key` (its own answer, not a quorum's), asked from `from`.
async fn held(from: &Peer, name: &str, replica: &Peer, key: &str) -> Option<i64> {
    let to = id_of(replica, name).to_string();
    let answer = calls::get(name.to_owned(), to, vec![Key::from(key)])
        .on(replica.addr())
        .via(from)
        .await
        .expect("the replica answers")
        .expect("the replica is a member");
    let found = answer
        .found
        .into_iter()
        .next()
        .flatten()
        .expect("it owns the key");
    let record = found.record?.into_record().expect("a good record");
    record.decode::<i64>(&Key::from(key)).expect("a number")
}

async fn views_agree(peers: &[Peer], name: &str, n: usize) -> bool {
    peers.iter().all(|p| {
        let state = p.tables().get(name).expect("used");
        let alive = lock(&state.view).alive_count();
        alive == n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_reads_and_writes_through_the_members() {
    let name = "ops";
    let members = members(3, name, quick()).await;
    eventually("every member knows three", async || {
        views_agree(&members, name, 3).await
    })
    .await;
    let client = peer(&[members[0].addr()], 3, quick()).await;
    let table = client.table::<i64>(name);
    assert!(!table.is_member());
    table
        .update((0..40).map(|i| (format!("k{i}"), i)))
        .await
        .expect("40 writes");
    assert_eq!(table.get("k7").await.expect("reads"), Some(7));
    assert_eq!(table.get("nothing").await.expect("reads"), None);
    assert_eq!(table.len().await.expect("counts"), 40);
    assert_eq!(table.pop("k7").await.expect("pops"), Some(7));
    assert_eq!(table.pop("k7").await.expect("pops"), None);
    assert_eq!(table.get("k7").await.expect("reads"), None);
    let keys = table.keys().await.expect("keys");
    assert_eq!(keys.len(), 39);
    assert!(!keys.contains(&Key::from("k7")));
    let items = table.items().await.expect("items");
    assert!(items
        .iter()
        .all(|(k, v)| k.as_str() == Some(&format!("k{v}"))));
    let copy = table.copy().await.expect("copy");
    assert_eq!(copy.get(&Key::from("k3")), Some(&3));
    let values: i64 = table.values().await.expect("values").iter().sum();
    assert_eq!(values, (0..40).sum::<i64>() - 7);
    let (key, value) = table.popitem().await.expect("popitem").expect("not empty");
    assert_eq!(key.as_str(), Some(format!("k{value}").as_str()));
    assert_eq!(table.len().await.expect("counts"), 38);
    let owners = table.owners("k1").await.expect("owners");
    assert_eq!(owners.len(), 3);
    let addrs: Vec<SocketAddr> = members.iter().map(Peer::addr).collect();
    assert!(owners.iter().all(|o| addrs.contains(&o.addr)));
    // A member reads what the non-member wrote, and bytes keys work like text keys.
    let on_member = members[1].table::<i64>(name);
    assert_eq!(on_member.get("k3").await.expect("reads"), Some(3));
    on_member
        .set(&b"\xffraw"[..], -1)
        .await
        .expect("a binary key");
    assert_eq!(table.get(&b"\xffraw"[..]).await.expect("reads"), Some(-1));
    // A value of another type is a clear error naming the key.
    let strings = client.table::<String>(name);
    let err = strings.get("k3").await.expect_err("3 is not a string");
    assert!(err.to_string().contains("\"k3\""), "{err}");
    let err = table
        .get(vec![0u8; 5000])
        .await
        .expect_err("too long a key");
    assert!(matches!(err, Error::Usage(_)), "{err}");
    for p in members.iter().chain([&client]) {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_repairs_a_stale_replica() {
    let name = "repair";
    // No periodic anti-entropy: only the read can repair.
    let timing = Timing {
        sync_every: Duration::from_secs(3600),
        ..quick()
    };
    let members = members(3, name, timing).await;
    eventually("every member knows three", async || {
        views_agree(&members, name, 3).await
    })
    .await;
    // Nor may a member still be taking its share from the others.
    eventually("every member holds its share", async || {
        members
            .iter()
            .all(|m| super::held(m, name).is_some_and(|(_, owed)| owed == 0))
    })
    .await;
    let client = peer(&[members[0].addr()], 3, timing).await;
    let table = client.table::<i64>(name);
    table.set("k", 1).await.expect("writes");
    eventually("the first write on every replica", async || {
        held(&client, name, &members[2], "k").await == Some(1)
    })
    .await;
    // A newer write reaches two replicas only: the third is stale.
    let state = client.tables().get(name).expect("used");
    let record =
        super::record::Record::encode(&Key::from("k"), state.clock.tick(), &2i64).expect("encodes");
    let wire = super::wire::WireRecord::from_record(&record);
    for m in &members[..2] {
        let to = Replica {
            id: id_of(m, name),
            addr: m.addr(),
        };
        route::put(
            &client,
            &state,
            &to,
            &Key::from("k"),
            wire.clone(),
            Duration::from_secs(2),
        )
        .await
        .expect("put on one replica");
    }
    assert_eq!(
        held(&client, name, &members[2], "k").await,
        Some(1),
        "stale"
    );
    assert_eq!(table.get("k").await.expect("reads"), Some(2));
    eventually("the stale replica is repaired", async || {
        held(&client, name, &members[2], "k").await == Some(2)
    })
    .await;
    for p in members.iter().chain([&client]) {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_receives_its_share_and_an_unjoin_hands_off() {
    let name = "moves";
    let mut members = members(3, name, quick()).await;
    let client = peer(&[members[0].addr()], 3, quick()).await;
    let table = client.table::<i64>(name);
    table
        .update((0..300).map(|i| (format!("k{i}"), i)))
        .await
        .expect("writes");
    let newcomer = peer(&[members[0].addr()], 3, quick()).await;
    newcomer.table::<i64>(name).join().await.expect("joins");
    members.push(newcomer);
    eventually("every member knows four", async || {
        views_agree(&members, name, 4).await
    })
    .await;
    // Every key on exactly its three owners, the newcomer's share on the newcomer.
    eventually("R copies of every key, on its owners", async || {
        let mut ok = true;
        for i in 0..300 {
            let key = format!("k{i}");
            let owners = table.owners(key.as_str()).await.expect("owners");
            for m in &members {
                let owns = owners.iter().any(|o| o.addr == m.addr());
                let has = local(m, name, &key).is_some();
                ok &= owns == has;
            }
        }
        ok
    })
    .await;
    let share = (0..300)
        .filter(|i| local(&members[3], name, &format!("k{i}")).is_some())
        .count();
    // Three copies on four members: about three quarters of the keys.
    assert!(
        (180..=270).contains(&share),
        "the newcomer holds {share} of 300"
    );

    // The first member leaves: what it held is on the others, nothing lost.
    let leaver = members.remove(0);
    leaver.table::<i64>(name).unjoin().await.expect("hands off");
    assert!(!leaver.table::<i64>(name).is_member());
    eventually("the others know three", async || {
        views_agree(&members, name, 3).await
    })
    .await;
    for i in 0..300 {
        assert_eq!(
            table.get(format!("k{i}")).await.expect("reads"),
            Some(i),
            "k{i}"
        );
    }
    for p in members.iter().chain([&client, &leaver]) {
        p.shutdown().await;
    }
}

/// What a member's own store holds for `key` (no call).
fn local(member: &Peer, name: &str, key: &str) -> Option<i64> {
    let state = member.tables().get(name)?;
    let m = state.member()?;
    let key = Key::from(key);
    let record = m.replicas.peek(|s| s.get(&key)).ok()??;
    record.decode(&key).ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_dropped_and_its_keys_get_r_copies_again() {
    let name = "death";
    let members = members(5, name, quick()).await;
    eventually("every member knows five", async || {
        views_agree(&members, name, 5).await
    })
    .await;
    let client = peer(&[members[0].addr()], 3, quick()).await;
    let table = client.table::<i64>(name);
    table
        .update((0..200).map(|i| (format!("k{i}"), i)))
        .await
        .expect("writes");
    // Member 4 stops answering as a member (its calls fail) without handing anything off.
    let state = members[4].tables().get(name).expect("used");
    state.member().expect("a member").stop.cancel();
    state.set_member(None);
    let alive = &members[..4];
    eventually("the others drop it", async || {
        views_agree(alive, name, 4).await
    })
    .await;
    eventually("every key on three members again", async || {
        (0..200).all(|i| {
            let key = format!("k{i}");
            alive
                .iter()
                .filter(|m| local(m, name, &key).is_some())
                .count()
                == 3
        })
    })
    .await;
    for i in 0..200 {
        assert_eq!(table.get(format!("k{i}")).await.expect("reads"), Some(i));
    }
    for p in members.iter().chain([&client]) {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_another_replication_factor_refuse_each_other_loudly() {
    let name = "terms";
    let a = peer(&[], 3, quick()).await;
    a.table::<i64>(name).join().await.expect("joins");
    let b = peer(&[a.addr()], 2, quick()).await;
    let err = b.table::<i64>(name).join().await.expect_err("other terms");
    assert!(
        matches!(
            err,
            Error::TableIncompatible {
                their_replicas: 3,
                our_replicas: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("NET_TABLE_REPLICAS=3") && text.contains("NET_TABLE_REPLICAS=2"),
        "{text}"
    );
    assert!(!b.table::<i64>(name).is_member());
    // A non-member with other terms would place keys elsewhere: refused too.
    let err = b
        .table::<i64>(name)
        .get("k")
        .await
        .expect_err("other terms");
    assert!(matches!(err, Error::TableIncompatible { .. }), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_members_is_no_quorum_that_says_so() {
    let lonely = peer(&[], 3, quick()).await;
    let err = lonely
        .table::<i64>("nobody")
        .get("k")
        .await
        .expect_err("no members");
    let Error::NoQuorum(no) = &err else {
        panic!("{err}")
    };
    assert!(no.replicas.is_empty());
    assert!(err.to_string().contains("net serve --join nobody"), "{err}");
    let err = Table::<i64>::new("").get("k").await.expect_err("no name");
    assert!(matches!(err, Error::Usage(_)), "{err}");
    lonely.shutdown().await;
}
