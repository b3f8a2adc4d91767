//! The Peers tutorial's P2P registry transcript on its diamond (5000 <- 5001, 5002 <- 5003),
//! run against the `p2p_registry` example as real processes: caching along a search path,
//! competing values, get_all at one message per node, and a dead node dropped by the
//! neighbours that try it.

use std::collections::BTreeSet;

use crate::support::{eventually_blocking, free_ports, ok, run, Process};
use serde_json::Value;

const P2P: &str = "p2p_registry";

fn client(addr: &str, args: &[&str]) -> String {
    let mut full = vec!["client", addr];
    full.extend_from_slice(args);
    ok(P2P, &full)
}

fn get(addr: &str, key: &str) -> String {
    client(addr, &["get", key])
}

fn get_all(addr: &str, key: &str) -> BTreeSet<String> {
    serde_json::from_str(&client(addr, &["get-all", key])).expect("get-all prints a JSON array")
}

fn peers(addr: &str) -> BTreeSet<String> {
    serde_json::from_str(&client(addr, &["peers"])).expect("peers prints a JSON array")
}

fn stats(addr: &str) -> Value {
    serde_json::from_str(&client(addr, &["stats"])).expect("stats prints JSON")
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// Puts `key -> value` at `addr` and waits for `node` to log it stored (a put is one-way).
fn put(node: &Process, addr: &str, key: &str, value: &str) {
    assert_eq!(client(addr, &["put", key, value]), "");
    node.wait_for(&format!("put {key} -> {value}"));
}

#[test]
fn the_tutorial_diamond() {
    let ports = free_ports::<4>();
    let [a1, a2, a3, a4] = ports.map(|p| format!("127.0.0.1:{p}"));
    let n1 = Process::start(P2P, &["node", &a1]);
    n1.wait_for("node ready with 0 peers");
    let n2 = Process::start(P2P, &["node", &a2, &a1]);
    n2.wait_for("node ready with 1 peers");
    let mut n3 = Process::start(P2P, &["node", &a3, &a1]);
    n3.wait_for("node ready with 1 peers");
    let n4 = Process::start(P2P, &["node", &a4, &a2, &a3]);
    n4.wait_for("node ready with 2 peers");
    for (node, joined) in [(&n1, &a2), (&n1, &a3), (&n2, &a4), (&n3, &a4)] {
        node.wait_for(&format!("add peer {joined}"));
    }
    // Each side learned the other: n1 and n4 link to n2 and n3, which do not link.
    assert_eq!(peers(&a1), set(&[&a2, &a3]));
    assert_eq!(peers(&a2), set(&[&a1, &a4]));
    assert_eq!(peers(&a3), set(&[&a1, &a4]));
    assert_eq!(peers(&a4), set(&[&a2, &a3]));

    // >>> n1.get_all('arrakis') == (); n1.put('arrakis', 'dune')
    assert_eq!(get_all(&a1, "arrakis"), set(&[]));
    put(&n1, &a1, "arrakis", "dune");

    // >>> n4.get('arrakis'): found at n1 through n2 or n3 (the search order is random),
    // cached on the way back by that middle node and by n4.
    assert_eq!(get(&a4, "arrakis"), "dune");
    n4.wait_for("cached value: arrakis -> dune");
    let cached = |n: &Process| n.count("cached value: arrakis -> dune");
    eventually_blocking("n2 or n3 logs the cached value", || {
        cached(&n2) + cached(&n3) > 0
    });
    assert_eq!(
        cached(&n2) + cached(&n3),
        1,
        "exactly one middle node was on the path"
    );
    assert_eq!(n1.count("cached value"), 0, "n1 had the value itself");

    // A missing key is the typed error, through the overlay too.
    let missing = run(P2P, &["client", &a4, "get", "Muad'Dib"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert_eq!(missing.stdout, "Oops: no such key: Muad'Dib");
    // The plain registry's client works against a P2P node unchanged (same tags).
    assert_eq!(ok("registry", &[&a4, "get", "arrakis"]), "dune");

    // Competing values.
    put(&n2, &a2, "arrakis", "atreides territory");
    put(&n3, &a3, "arrakis", "harkonnen territory");
    assert_eq!(get(&a2, "arrakis"), "atreides territory");
    assert_eq!(get(&a3, "arrakis"), "harkonnen territory");
    assert_eq!(get(&a1, "arrakis"), "dune");
    assert_eq!(get(&a4, "arrakis"), "dune");

    // >>> n4.get_all('arrakis'), costing exactly one message per node: the client's to n4,
    // and n4's one visit to each of the other three.
    let addrs = [&a1, &a2, &a3, &a4];
    let count = |field: &str| -> Vec<u64> {
        addrs
            .iter()
            .map(|a| stats(a)[field].as_u64().expect("a counter"))
            .collect()
    };
    let (received, sent) = (count("get_all_received"), count("get_all_sent"));
    assert_eq!(
        get_all(&a4, "arrakis"),
        set(&["atreides territory", "dune", "harkonnen territory"])
    );
    let delta = |after: Vec<u64>, before: &[u64]| -> Vec<u64> {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    };
    assert_eq!(delta(count("get_all_received"), &received), [1, 1, 1, 1]);
    assert_eq!(delta(count("get_all_sent"), &sent), [0, 0, 0, 3]);

    // World order: n4 turns fremen, n3 dies.
    put(&n4, &a4, "arrakis", "fremen territory");
    n3.kill();

    // >>> n1.get_all('arrakis'): n1 finds n3 dead and drops it; n4 is asked but does not
    // try n3 (the search was pruned), so it still lists it.
    let after_death = set(&["atreides territory", "dune", "fremen territory"]);
    assert_eq!(get_all(&a1, "arrakis"), after_death);
    n1.wait_for(&format!("removed dead peer: {a3}"));
    assert_eq!(peers(&a1), set(&[&a2]));
    assert_eq!(peers(&a4), set(&[&a2, &a3]));

    // >>> n4.get_all('arrakis'): now n4 finds it dead.
    assert_eq!(get_all(&a4, "arrakis"), after_death);
    n4.wait_for(&format!("removed dead peer: {a3}"));
    assert_eq!(peers(&a4), set(&[&a2]));

    // >>> n2.put('arrakis', 'fremen territory'); n1.get_all('arrakis'): converged.
    put(&n2, &a2, "arrakis", "fremen territory");
    assert_eq!(get_all(&a1, "arrakis"), set(&["dune", "fremen territory"]));
}
