//! Discovery benchmark: time until every peer sees every other.
//!
//! - 10 and 20 peers on one host (loopback-confined on-host scan), in one process and as
//!   separate processes, beside a raw tokio floor: the same number of connect + one-byte
//!   echo exchanges with the same concurrency limit;
//! - 4 namespace hosts by mDNS (from the last peer's start);
//! - 4 namespace hosts by the ARP-neighbour scan with NET_THREAD_LIMIT=5 (neighbour tables
//!   filled first).
//!
//! Targets: 20 on one host within 0.5 s, mDNS across namespaces within 1 s, ARP within
//! 2 s. Run with `cargo bench --bench discovery` (add `-- host`, `-- mdns` or `-- arp` for
//! one part); the namespace parts need root.

#[path = "../tests/it/support/netns.rs"]
mod netns;
#[path = "../tests/it/support/test_peer.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util_lite::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use netns::{skip_unless_root, Lab};
use support::{clear_net_env, TestPeer, TEST_PEER};

const RUNS: usize = 3;

/// `futures::future::join_all` without the dependency: the root package has none.
mod futures_util_lite {
    pub async fn join_all<F>(futures: Vec<F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.expect("a benchmark task panicked"));
        }
        out
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn confined(port: u16, range: u16) -> net::Config {
    net::Config::default()
        .loopback(true)
        .port(port)
        .port_range(range)
}

fn summary(label: &str, times: &mut [Duration], target: Option<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    let verdict = match target {
        Some(t) if worst <= t => format!("  (target {} ms: met)", t.as_millis()),
        Some(t) => format!("  (target {} ms: MISSED)", t.as_millis()),
        None => String::new(),
    };
    println!(
        "{label:<52} median {:>7.1} ms  worst {:>7.1} ms{verdict}",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
}

/// `n` peers in this process; every one runs its first `peers()` at once.
async fn in_process(n: usize, base: u16) -> Duration {
    let mut peers = Vec::new();
    for _ in 0..n {
        peers.push(
            net::Peer::start(confined(base, n as u16 + 1))
                .await
                .expect("starting a peer"),
        );
    }
    let started = Instant::now();
    let queries: Vec<_> = peers
        .iter()
        .map(|p| {
            let p = p.clone();
            async move { p.peers().report().await }
        })
        .collect();
    let seen = join_all(queries).await;
    let took = started.elapsed();
    for report in seen {
        let report = report.expect("peers()");
        assert_eq!(report.peers.len(), n - 1, "{report}");
    }
    for peer in peers {
        peer.shutdown().await;
    }
    took
}

/// The floor: `n` raw tokio echo servers, and `n` clients each doing connect + one-byte
/// echo with every other server, at most 5 at once per client.
async fn raw_floor(n: usize) -> Duration {
    let mut addrs = Vec::new();
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                });
            }
        });
    }
    let started = Instant::now();
    let clients: Vec<_> = (0..n)
        .map(|me| {
            let addrs = addrs.clone();
            async move {
                let limit = Arc::new(Semaphore::new(5));
                let probes: Vec<_> = addrs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != me)
                    .map(|(_, a)| {
                        let (a, limit) = (*a, limit.clone());
                        async move {
                            let _permit = limit.acquire().await.unwrap();
                            let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
                            s.write_all(b"x").await.unwrap();
                            let mut b = [0u8; 1];
                            s.read_exact(&mut b).await.unwrap();
                        }
                    })
                    .collect();
                join_all(probes).await;
            }
        })
        .collect();
    join_all(clients).await;
    started.elapsed()
}

/// `n` peer processes on one host; time from the command to every peer having seen every
/// other (each process timestamps its own answer).
fn processes(n: usize, base: u16) -> Duration {
    let mut peers = support::start_many(n, base, n as u16 + 1, &[("NET_PROBE_TIMEOUT", "1s")]);
    let sent = now_ms();
    for peer in peers.iter_mut() {
        peer.send(&format!("until {} timeout=10000", n - 1));
    }
    let mut last = 0;
    for peer in peers.iter_mut() {
        let seen = peer.expect_seen();
        last = last.max(seen);
    }
    Duration::from_millis(last.saturating_sub(sent))
}

fn lan_peer(lab: &Lab, i: usize, env: &[(&str, &str)]) -> TestPeer {
    let mut cmd = lab.command(i, TEST_PEER);
    clear_net_env(&mut cmd);
    cmd.env("NET_PORT", "24010")
        .env("NET_PORT_RANGE", "2")
        .env("NET_PROBE_TIMEOUT", "500ms");
    for (k, v) in env {
        cmd.env(k, v);
    }
    TestPeer::start(cmd)
}

/// 4 namespace hosts by mDNS: from the last peer's start to every peer seeing the other 3.
fn mdns(run: usize) -> (Duration, Duration) {
    let lab = Lab::create(4, 10 + run as u8).expect("namespace LAN");
    let service = format!("_nb{}x{run}._tcp.local.", std::process::id() % 10_000);
    let env = [
        ("NET_DISCOVERY", "mdns"),
        ("NET_MDNS_SERVICE", service.as_str()),
    ];
    let first_spawn = now_ms();
    let mut peers: Vec<TestPeer> = (0..4).map(|i| lan_peer(&lab, i, &env)).collect();
    let last_ready = peers.iter().map(|p| p.ready_ms).max().unwrap();
    for peer in peers.iter_mut() {
        peer.send("until 3 timeout=10000");
    }
    let last = peers.iter_mut().map(|p| p.expect_seen()).max().unwrap();
    drop(peers);
    (
        Duration::from_millis(last.saturating_sub(last_ready)),
        Duration::from_millis(last.saturating_sub(first_spawn)),
    )
}

/// 4 namespace hosts by the ARP-neighbour scan, NET_THREAD_LIMIT=5, neighbour tables
/// filled first.
fn arp(run: usize) -> Duration {
    let lab = Lab::create(4, 20 + run as u8).expect("namespace LAN");
    let env = [("NET_DISCOVERY", "arp"), ("NET_THREAD_LIMIT", "5")];
    let mut peers: Vec<TestPeer> = (0..4).map(|i| lan_peer(&lab, i, &env)).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        for (j, host) in lab.hosts.iter().enumerate() {
            if i != j {
                peer.touch(SocketAddr::new(IpAddr::V4(host.ip), 9));
            }
        }
    }

    let sent = now_ms();
    for peer in peers.iter_mut() {
        peer.send("until 3 timeout=10000");
    }
    let last = peers.iter_mut().map(|p| p.expect_seen()).max().unwrap();
    drop(peers);
    Duration::from_millis(last.saturating_sub(sent))
}

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("discovery: time until every peer sees every other ({RUNS} runs each)");
    for n in [10, 20].into_iter().filter(|_| wanted("host")) {
        let mut floor: Vec<Duration> = (0..RUNS).map(|_| rt.block_on(raw_floor(n))).collect();
        summary(
            &format!("raw tokio floor, {n} hosts' worth of probes"),
            &mut floor,
            None,
        );
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|run| rt.block_on(in_process(n, 23000 + (run as u16) * 50)))
            .collect();
        let target = (n == 20).then_some(Duration::from_millis(500));
        summary(
            &format!("{n} peers on one host, one process (scan)"),
            &mut times,
            target,
        );
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|run| processes(n, 23200 + (run as u16) * 50))
            .collect();
        summary(
            &format!("{n} peers on one host, {n} processes (scan)"),
            &mut times,
            target,
        );
    }
    if !(wanted("mdns") || wanted("arp"))
        || skip_unless_root("benches/discovery.rs namespace figures (mDNS, ARP)")
    {
        return;
    }
    if wanted("mdns") {
        mdns_figures();
    }
    if wanted("arp") {
        let mut times: Vec<Duration> = (0..RUNS).map(arp).collect();
        summary(
            "4 namespaces by ARP scan, NET_THREAD_LIMIT=5",
            &mut times,
            Some(Duration::from_secs(2)),
        );
    }
}

fn mdns_figures() {
    let (mut from_last, mut from_first): (Vec<_>, Vec<_>) = (0..RUNS).map(mdns).unzip();
    summary(
        "4 namespaces by mDNS, from the last peer's start",
        &mut from_last,
        Some(Duration::from_secs(1)),
    );
    summary(
        "4 namespaces by mDNS, from the first spawn",
        &mut from_first,
        None,
    );
}
