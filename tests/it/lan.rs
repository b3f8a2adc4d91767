//! Discovery across hosts: a LAN of network namespaces on a private bridge, one peer
//! process per host. mDNS and, separately, the ARP-neighbour scan must each find every
//! other host's peer, and calls must cross hosts. Needs root (CI is root); otherwise it
//! prints a loud SKIPPED line.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::support::eventually_blocking;
use crate::support::netns::{skip_unless_root, Lab};
use crate::support::test_peer::{clear_net_env, TestPeer, TEST_PEER};

const PORT: u16 = 24010;

/// A peer on host `i` of `lab`, unconfined (its namespace is its whole world).
fn lan_peer(lab: &Lab, i: usize, env: &[(&str, &str)]) -> TestPeer {
    let mut cmd = lab.command(i, TEST_PEER);
    clear_net_env(&mut cmd);
    cmd.env("NET_PORT", PORT.to_string())
        .env("NET_PORT_RANGE", "2")
        .env("NET_PROBE_TIMEOUT", "500ms");
    for (k, v) in env {
        cmd.env(k, v);
    }
    TestPeer::start(cmd)
}

/// A service type of this run only, so concurrent runs never see each other.
fn unique_service() -> String {
    format!("_nt{}._tcp.local.", std::process::id() % 100_000)
}

fn host_ips(peers: &[net::PeerInfo]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = peers.iter().map(|p| p.addr.ip()).collect();
    ips.sort();
    ips
}

fn others(lab: &Lab, me: usize) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = lab
        .hosts
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != me)
        .map(|(_, h)| IpAddr::V4(h.ip))
        .collect();
    ips.sort();
    ips
}

#[test]
fn mdns_finds_every_host_and_calls_cross_hosts() {
    if skip_unless_root("it::lan::mdns_finds_every_host_and_calls_cross_hosts") {
        return;
    }
    let lab = Lab::create(4, 1).expect("building the namespace LAN");
    let service = unique_service();
    let env = [
        ("NET_DISCOVERY", "mdns"),
        ("NET_MDNS_SERVICE", service.as_str()),
    ];
    let mut peers: Vec<TestPeer> = (0..4).map(|i| lan_peer(&lab, i, &env)).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        // The id names the host's LAN address even without a default route.
        assert_eq!(peer.id.host(), IpAddr::V4(lab.hosts[i].ip), "host {i}'s id");
        let (_, seen) = peer.until(3, "", Duration::from_secs(10));
        assert_eq!(host_ips(&seen), others(&lab, i), "as seen from host {i}");
        for p in &seen {
            assert_eq!(p.found_by, net::Discovery::Mdns);
            assert_eq!(p.addr.port(), PORT);
            assert_eq!(
                p.id.addr(),
                p.addr,
                "advertised and reached at its own address"
            );
        }
    }

    // A late joiner (a second peer on host 0) is seen by every browser, and sees them all.
    let mut late = lan_peer(&lab, 0, &env);
    for peer in peers.iter_mut() {
        let (_, seen) = peer.until(4, "", Duration::from_secs(5));
        assert!(seen.iter().any(|p| p.id == late.id), "{seen:?}");
    }
    let (_, seen) = late.until(4, "", Duration::from_secs(5));
    assert_eq!(seen.len(), 4, "{seen:?}");
    late.quit();

    // Calls cross hosts, and reach the process on the other host.
    let target = SocketAddr::new(IpAddr::V4(lab.hosts[3].ip), PORT);
    let (pid, id) = peers[0].call(target);
    assert_eq!((pid, id), (peers[3].pid(), peers[3].id.clone()));

    // A clean shutdown says goodbye: the others drop it without being asked to refresh
    // (the late joiner's goodbye above has been seen by then, or is on its way).
    let leaving = peers.pop().expect("four peers");
    leaving.quit();
    for peer in peers.iter_mut() {
        let id = peer.id.clone();
        eventually_blocking(&format!("{id} to see {target} leave"), || {
            peer.events()
                .iter()
                .any(|e| e.starts_with(&format!("left {target} ")))
        });
        assert!(peer.peers("").iter().all(|p| p.addr != target));
    }
}

#[test]
fn arp_neighbour_scan_finds_every_host() {
    if skip_unless_root("it::lan::arp_neighbour_scan_finds_every_host") {
        return;
    }
    let lab = Lab::create(4, 2).expect("building the namespace LAN");
    let env = [("NET_DISCOVERY", "arp"), ("NET_THREAD_LIMIT", "5")];
    let mut peers: Vec<TestPeer> = (0..4).map(|i| lan_peer(&lab, i, &env)).collect();

    // Nothing has talked yet, so the neighbour tables are empty, and the report says so.
    let report = peers[0].report("");
    assert!(report.contains("no live entry"), "{report}");

    // Any unicast fills them: one connect to a closed port of every other host.
    for (i, peer) in peers.iter_mut().enumerate() {
        for (j, host) in lab.hosts.iter().enumerate() {
            if i != j {
                peer.touch(SocketAddr::new(IpAddr::V4(host.ip), 9));
            }
        }
    }

    for (i, peer) in peers.iter_mut().enumerate() {
        let (_, seen) = peer.until(3, "refresh", Duration::from_secs(10));
        assert_eq!(host_ips(&seen), others(&lab, i), "as seen from host {i}");
        assert!(seen.iter().all(|p| p.found_by == net::Discovery::Arp));
    }
    let report = peers[1].report("refresh");
    assert!(report.contains("3 neighbour(s)"), "{report}");

    let target = SocketAddr::new(IpAddr::V4(lab.hosts[0].ip), PORT);
    let (pid, id) = peers[2].call(target);
    assert_eq!((pid, id), (peers[0].pid(), peers[0].id.clone()));
}
