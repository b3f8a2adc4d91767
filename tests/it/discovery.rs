//! Discovery on one host, with real peer processes confined to loopback: the on-host scan,
//! refresh, seeds with peer exchange, the thread limit, foreign services, and the
//! explanation when nothing is found. (Group and hub filters, which the process-wide peer
//! queries too, are in tests/default_peer.rs.)
//!
//! Each test owns a slice of ports (below the kernel's ephemeral range, away from the
//! default 3010) so that parallel tests never see each other's peers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::test_peer::{addrs, loopback_command, start_many, TestPeer};

fn confined(port: u16, range: u16) -> net::Config {
    net::Config::default()
        .loopback(true)
        .port(port)
        .port_range(range)
        .probe_timeout(Duration::from_secs(2))
}

#[test]
fn ten_peers_in_separate_processes_find_each_other() {
    let mut peers = start_many(10, 21000, 11, &[]);
    let all: Vec<SocketAddr> = peers.iter().map(|p| p.addr).collect();
    for peer in peers.iter_mut() {
        let found = peer.peers("");
        let others: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != peer.addr).collect();
        assert_eq!(addrs(&found), others, "as seen by {}", peer.addr);
        for p in &found {
            assert_eq!(p.found_by, net::Discovery::Scan);
            assert_eq!(p.info.id, p.id);
            assert_eq!(p.id.addr(), p.addr, "a confined peer's id says where it is");
        }
    }
    // A found peer is a call target, and the call reaches that very process.
    let target = peers[7].addr;
    let pid = peers[7].pid();
    let (answered, id) = peers[2].call(target);
    assert_eq!((answered, id), (pid, peers[7].id.clone()));
}

#[test]
fn refresh_picks_up_a_newcomer_and_drops_a_killed_peer() {
    let mut peers = start_many(3, 21200, 6, &[]);
    let mut observer = peers.remove(0);
    let before = addrs(&observer.peers(""));
    assert_eq!(before, vec![peers[0].addr, peers[1].addr]);

    let newcomer = TestPeer::start(loopback_command(21200, 6));
    let killed = peers[0].addr;
    peers[0].kill();

    // Without refresh: the cache, as app-net's peers() returns it (which the background
    // refresh may already have brought up to date: tests/it/newcomer.rs). With refresh: a
    // new round, at once.
    let mut expected = vec![peers[1].addr, newcomer.addr];
    expected.sort();
    assert_eq!(addrs(&observer.peers("refresh")), expected);
    assert_eq!(
        addrs(&observer.peers("")),
        expected,
        "the cache holds the new round"
    );

    let events = observer.events();
    assert!(
        events.contains(&format!("joined {}", newcomer.addr)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("left {killed} "))),
        "{events:?}"
    );
}

#[test]
fn joining_through_a_seed_finds_the_peers_the_seed_knows() {
    // The seed and two peers share a range; the seed has not run discovery yet.
    let cluster = start_many(3, 21300, 3, &[]);
    let seed = &cluster[0];
    let mut joiner_cmd = loopback_command(21350, 0);
    joiner_cmd
        .env("NET_DISCOVERY", "seeds")
        .env("NET_PEERS", seed.addr.to_string());
    let mut joiner = TestPeer::start(joiner_cmd);
    let found = joiner.peers("");
    let cluster_addrs: Vec<SocketAddr> = cluster.iter().map(|p| p.addr).collect();
    assert_eq!(addrs(&found), cluster_addrs);
    assert!(found.iter().all(|p| p.found_by == net::Discovery::Seeds));

    // The seed learned the joiner from the exchange (it is outside the seed's range).
    let mut cluster = cluster;
    let (_, seen) = cluster[0].until(3, "", Duration::from_secs(10));
    assert!(seen.iter().any(|p| p.addr == joiner.addr), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_found_says_which_paths_ran_and_why() {
    let lonely = net::Peer::start(confined(21400, 3)).await.unwrap();
    let report = lonely.peers().report().await.unwrap();
    assert!(report.peers.is_empty());
    let text = report.to_string();
    let scan = report.path(net::Discovery::Scan).unwrap();
    assert!(scan.ran && scan.detail.contains("3 closed"), "{text}");
    let mdns = report.path(net::Discovery::Mdns).unwrap();
    assert!(!mdns.ran && mdns.detail.contains("NET_LOOPBACK"), "{text}");
    let seeds = report.path(net::Discovery::Seeds).unwrap();
    assert!(!seeds.ran && seeds.detail.contains("NET_PEERS"), "{text}");
    let arp = report.path(net::Discovery::Arp).unwrap();
    assert!(!arp.ran && arp.detail.contains("not asked for"), "{text}");
    assert!(text.starts_with("no peers found"), "{text}");
    lonely.shutdown().await;

    // Everything asked for, but confined: nothing leaves loopback.
    let config = confined(21410, 2)
        .discovery(net::DiscoveryPaths::all())
        .seeds(["10.1.2.3:3010", "127.0.0.1:21419", "seed.example:3010"]);
    let boxed = net::Peer::start(config).await.unwrap();
    let report = boxed.peers().report().await.unwrap();
    let text = report.to_string();
    let arp = report.path(net::Discovery::Arp).unwrap();
    assert!(!arp.ran && arp.detail.contains("NET_LOOPBACK"), "{text}");
    let seeds = report.path(net::Discovery::Seeds).unwrap();
    assert!(seeds.detail.contains("1 skipped (NET_LOOPBACK"), "{text}");
    assert!(seeds.detail.contains("1 closed"), "{text}");
    // A name is not even looked up: a DNS query would leave the machine.
    assert!(seeds.detail.contains("only loopback seeds"), "{text}");
    assert!(report
        .path(net::Discovery::Mdns)
        .unwrap()
        .detail
        .contains("NET_LOOPBACK"));
    boxed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_service_is_ignored_and_a_found_peer_is_a_target() {
    // Something else on the first port of the range: an HTTP-ish server.
    let foreign = TcpListener::bind("127.0.0.1:21500").unwrap();
    std::thread::spawn(move || {
        for stream in foreign.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let a = net::Peer::start(confined(21500, 3)).await.unwrap();
    let b = net::Peer::start(confined(21500, 3)).await.unwrap();
    let report = a.peers().report().await.unwrap();
    assert_eq!(addrs(&report.peers), vec![b.addr()], "{report}");
    let scan = report.path(net::Discovery::Scan).unwrap();
    assert!(scan.detail.contains("1 not a net peer"), "{report}");

    let found = &report.peers[0];
    assert!(found.rtt > Duration::ZERO && found.rtt < Duration::from_secs(2));
    let info = net::info().on(found).via(&a).await.unwrap();
    assert_eq!(&info.id, b.id());

    // The blocking form works from plain threads; on this runtime's own thread it would
    // block a worker, which `wait` handles, and a current-thread runtime is refused.
    let a2 = a.clone();
    let from_thread = std::thread::spawn(move || a2.peers().refresh().wait())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(addrs(&from_thread), vec![b.addr()]);
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let a3 = a.clone();
    let refused = std::thread::spawn(move || current.block_on(async { a3.peers().wait() }))
        .join()
        .unwrap();
    assert!(matches!(refused, Err(net::Error::Usage(_))), "{refused:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_in_flight_never_exceed_the_thread_limit() {
    // Eleven silent services: they accept and never answer, so every probe to them runs
    // to its timeout, and the number open at once is the number in flight.
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    for port in 21601..=21611 {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (open, most) = (open.clone(), most.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let (open, most) = (open.clone(), most.clone());
                std::thread::spawn(move || {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Returns when the prober hangs up.
                    let mut sink = Vec::new();
                    let _ = stream.read_to_end(&mut sink);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    let config = confined(21600, 11)
        .thread_limit(3)
        .probe_timeout(Duration::from_millis(200));
    let peer = net::Peer::start(config).await.unwrap();
    let started = Instant::now();
    let report = peer.peers().report().await.unwrap();
    let took = started.elapsed();
    let scan = report.path(net::Discovery::Scan).unwrap();
    assert!(scan.detail.contains("11 silent"), "{report}");
    // 11 probes of 200 ms each: 3 at a time take 4 waves (800 ms); 4 at a time would
    // take 3 (600 ms), one at a time 2.2 s.
    assert!(
        took >= Duration::from_millis(750),
        "more than 3 in flight: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "probes ran one by one: {took:?}"
    );
    let most = most.load(Ordering::SeqCst);
    assert!(
        most >= 2,
        "only {most} probe(s) were ever in flight at once"
    );
    peer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_probing_each_other_at_the_same_moment_all_succeed() {
    // Each pair probes both ways at once, so each side may pool the other's connection
    // first; neither may close a connection the other is calling over.
    let mut peers = Vec::new();
    for _ in 0..10 {
        peers.push(net::Peer::start(confined(21700, 10)).await.unwrap());
    }
    let rounds: Vec<_> = peers
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { p.peers().report().await.unwrap() })
        })
        .collect();
    for round in rounds {
        let report = round.await.unwrap();
        assert_eq!(report.peers.len(), 9, "{report}");
    }
    for peer in peers {
        peer.shutdown().await;
    }
}
