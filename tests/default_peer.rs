//! Tests of the process-wide default peer (`net::start`, `net::peers()` and friends), in a
//! binary of their own: the default peer is one per process, it subscribes by itself to the
//! peers it finds with every `#[net::subscribe]` handler linked in, and `.local()` calls see
//! it as their server. In tests/it it would reach into every other test.

#[path = "it/support/test_peer.rs"]
mod test_peer;

use std::net::SocketAddr;
use std::time::Duration;

use test_peer::{addrs, loopback_command, TestPeer};

fn confined(port: u16, range: u16) -> net::Config {
    net::Config::default()
        .loopback(true)
        .port(port)
        .port_range(range)
        .probe_timeout(Duration::from_secs(2))
}

/// Group and hub filters, asked of a peer process and then of this process's own default
/// peer. Its ports (21100..=21106) are its own among the discovery tests' (tests/it/discovery.rs).
#[test]
fn group_and_hub_filters() {
    let groups = [
        ("render", true),
        ("render", false),
        ("audio", true),
        ("audio", false),
    ];
    let mut members = Vec::new();
    for (group, hub) in groups {
        let mut cmd = loopback_command(21100, 6);
        cmd.env("NET_GROUP", group)
            .env("NET_IS_HUB", if hub { "1" } else { "0" });
        members.push(TestPeer::start(cmd));
    }
    let mut observer = TestPeer::start(loopback_command(21100, 6));
    let by_name = |i: usize| members[i].addr;
    let expect = |mut v: Vec<SocketAddr>| {
        v.sort();
        v
    };
    assert_eq!(observer.peers("").len(), 4);
    assert_eq!(
        addrs(&observer.peers("group=render")),
        expect(vec![by_name(0), by_name(1)])
    );
    assert_eq!(
        addrs(&observer.peers("group=render hubs")),
        vec![by_name(0)]
    );
    assert_eq!(
        addrs(&observer.peers("hubs")),
        expect(vec![by_name(0), by_name(2)])
    );
    assert_eq!(observer.peers("group=audio group=render").len(), 4);
    assert_eq!(observer.peers("group=video").len(), 0);
    assert_eq!(observer.peers("onhost").len(), 4);
    let hub = &observer.peers("group=audio hubs")[0];
    assert!(hub.hub && hub.group.as_deref() == Some("audio"));

    // app-net's form, from this process's own default peer, synchronously.
    net::start(confined(21100, 6)).unwrap();
    let audio_hubs = net::peer_group("audio", true, false).wait().unwrap();
    assert_eq!(addrs(&audio_hubs), vec![by_name(2)]);
    let render = net::peer_group("render", false, true).wait().unwrap();
    assert_eq!(render.len(), 2);
}

/// A program that only calls (its process-wide peer starts by itself, on its first
/// `.on()`; it has no subscriptions) is a client: it takes no port of the range, others do
/// not list it, and it still gets its answers. `NET_CLIENT` decides either way. Its ports
/// (21150..=21153) are its own among the discovery tests'.
#[test]
fn a_program_that_only_calls_is_a_client() {
    let (base, range) = (21150, 3);
    let in_range = |addr: SocketAddr| (base..=base + range).contains(&addr.port());
    let server = TestPeer::start(loopback_command(base, range));

    let mut lazy_cmd = loopback_command(base, range);
    lazy_cmd.env("TEST_PEER_LAZY", "1");
    let mut lazy = TestPeer::start(lazy_cmd);
    let (pid, id) = lazy.call(server.addr);
    assert_eq!((pid, id), (server.pid(), server.id.clone()));
    let (addr, client) = lazy.whoami();
    assert!(client && !in_range(addr), "the lazy peer took {addr}");

    // NET_CLIENT=0: the same program serves on the range after all.
    let mut serving_cmd = loopback_command(base, range);
    serving_cmd
        .env("TEST_PEER_LAZY", "1")
        .env("NET_CLIENT", "0");
    let mut serving = TestPeer::start(serving_cmd);
    serving.call(server.addr);
    let (serving_addr, client) = serving.whoami();
    assert!(!client && in_range(serving_addr), "{serving_addr}");

    // NET_CLIENT=1: a program that starts its peer with net::start is a client too.
    let mut forced_cmd = loopback_command(base, range);
    forced_cmd.env("NET_CLIENT", "1");
    let forced = TestPeer::start(forced_cmd);
    assert!(!in_range(forced.addr), "{}", forced.addr);

    // The server lists the serving one only, asked afresh.
    let mut server = server;
    let listed = addrs(&server.peers("refresh"));
    assert_eq!(
        listed,
        vec![serving_addr],
        "clients {addr} and {} are not listed",
        forced.addr
    );
}
