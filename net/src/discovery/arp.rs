//! The ARP-neighbour scan: the live hosts of the neighbour table (/proc/net/arp, else
//! `ip neigh`, else `arp -a`), each probed over the port range. Only when asked for, and
//! never under loopback confinement.

use std::net::{IpAddr, SocketAddr};

use super::probe::probe_all;
use super::report::PathReport;
use super::scan::port_range;
use super::table::PeerInfo;
use super::Discovery;
use crate::peer::Peer;

/// The neighbour table's live entries, and where they were read.
pub(crate) struct Neighbours {
    /// The neighbours' addresses.
    pub ips: Vec<IpAddr>,
    /// Which source was read: for the report.
    pub source: &'static str,
}

/// Reads the neighbour table. Linux has /proc/net/arp; elsewhere `ip neigh` or `arp -a`.
pub(crate) fn neighbours() -> Result<Neighbours, String> {
    if let Ok(text) = std::fs::read_to_string("/proc/net/arp") {
        return Ok(Neighbours {
            ips: parse_proc_arp(&text),
            source: "/proc/net/arp",
        });
    }
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if let Some(text) = run("ip", &["neigh", "show"]) {
        return Ok(Neighbours {
            ips: parse_ip_neigh(&text),
            source: "`ip neigh`",
        });
    }
    if let Some(text) = run("arp", &["-an"]) {
        return Ok(Neighbours {
            ips: parse_arp_a(&text),
            source: "`arp -an`",
        });
    }
    Err(
        "no neighbour table: /proc/net/arp is missing and neither `ip neigh` nor `arp -an` ran"
            .into(),
    )
}

/// `/proc/net/arp`: a header line, then `IP HWtype Flags HWaddr Mask Device`. Only entries
/// with the complete flag (0x2) are live: failed lookups stay in the table with 0x0.
pub(crate) fn parse_proc_arp(text: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [ip, _hw, flags, ..] = fields.as_slice() else {
            continue;
        };
        let complete =
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 0x2 != 0);
        if let (true, Ok(ip)) = (complete, ip.parse::<IpAddr>()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// `ip neigh`: `10.0.0.2 dev eth0 lladdr 02:.. REACHABLE`. FAILED and INCOMPLETE entries
/// have no live host behind them.
pub(crate) fn parse_ip_neigh(text: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let dead = line.contains("FAILED") || line.contains("INCOMPLETE");
        if !dead && line.contains("lladdr") && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// `arp -an` (BSD, macOS): `? (192.168.1.1) at 0:11:22:33:44:55 on en0 ifscope [ethernet]`;
/// unresolved entries say `(incomplete)`.
pub(crate) fn parse_arp_a(text: &str) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for line in text.lines() {
        if line.contains("incomplete") {
            continue;
        }
        let ip = line
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(ip, _)| ip.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// Runs the neighbour scan and returns the peers that answered, with the path's report.
pub(crate) async fn run(peer: &Peer) -> (Vec<PeerInfo>, PathReport) {
    let config = peer.config();
    if !config.discovery.contains(Discovery::Arp) {
        return (
            Vec::new(),
            PathReport::idle(
                Discovery::Arp,
                "not asked for: probing every neighbour's ports is what intrusion detection \
                 flags; NET_DISCOVERY=all (or ...,arp) turns it on",
            ),
        );
    }
    if config.loopback {
        return (
            Vec::new(),
            PathReport::idle(
                Discovery::Arp,
                "off: NET_LOOPBACK confines this peer to loopback, so no neighbour is probed",
            ),
        );
    }
    let ports = match port_range(config) {
        Ok(ports) => ports,
        Err(why) => return (Vec::new(), PathReport::idle(Discovery::Arp, why)),
    };
    let table = match crate::serve::blocking(neighbours).await {
        Ok(Ok(table)) => table,
        Ok(Err(why)) => return (Vec::new(), PathReport::ran(Discovery::Arp, 0, why)),
        Err(e) => {
            let why = format!("reading the neighbour table failed: {e}");
            return (Vec::new(), PathReport::ran(Discovery::Arp, 0, why));
        }
    };
    // The listener's family decides which neighbours could be peers.
    let family_v4 = peer.addr().is_ipv4();
    let ips: Vec<IpAddr> = table
        .ips
        .into_iter()
        .filter(|ip| ip.is_ipv4() == family_v4 && !ip.is_loopback())
        .collect();
    if ips.is_empty() {
        let why = format!(
            "the neighbour table ({}) has no live entry: nothing on the LAN has talked to this \
             host yet (multicast fills no entry); ping a host, or use mDNS or NET_PEERS",
            table.source
        );
        return (Vec::new(), PathReport::ran(Discovery::Arp, 0, why));
    }
    let targets: Vec<SocketAddr> = ips
        .iter()
        .flat_map(|ip| ports.clone().map(move |port| SocketAddr::new(*ip, port)))
        .collect();
    let (found, tally) = probe_all(peer, targets, config.probe_timeout, Discovery::Arp).await;
    let detail = format!(
        "{} neighbour(s) from {} over ports {}..={}: {}",
        ips.len(),
        table.source,
        ports.start(),
        ports.end(),
        tally.describe()
    );
    let report = PathReport::ran(Discovery::Arp, found.len(), detail);
    (found, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_arp_keeps_only_complete_entries() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device
10.231.0.3       0x1         0x2         0a:11:22:33:44:55     *        eth0
10.231.0.9       0x1         0x0         00:00:00:00:00:00     *        eth0
10.231.0.4       0x1         0x6         0a:11:22:33:44:66     *        eth0
garbage
";
        let ips = parse_proc_arp(text);
        assert_eq!(
            ips,
            vec![
                "10.231.0.3".parse::<IpAddr>().unwrap(),
                "10.231.0.4".parse().unwrap()
            ]
        );
        assert!(parse_proc_arp("IP address HW type Flags\n").is_empty());
    }

    #[test]
    fn ip_neigh_skips_failed_and_incomplete() {
        let text = "10.231.0.3 dev eth0 lladdr 0a:11:22:33:44:55 REACHABLE
10.231.0.4 dev eth0 lladdr 0a:11:22:33:44:66 STALE
10.231.0.9 dev eth0 FAILED
10.231.0.8 dev eth0 INCOMPLETE
fe80::1 dev eth0 lladdr 0a:11:22:33:44:77 router STALE
";
        let ips = parse_ip_neigh(text);
        assert_eq!(ips.len(), 3);
        assert!(!ips.contains(&"10.231.0.9".parse().unwrap()));
    }

    #[test]
    fn arp_a_skips_incomplete() {
        let text = "? (192.168.1.1) at 0:11:22:33:44:55 on en0 ifscope [ethernet]
? (192.168.1.7) at (incomplete) on en0 ifscope [ethernet]
router.lan (192.168.1.254) at a:b:c:d:e:f on en0 [ethernet]
";
        let ips = parse_arp_a(text);
        assert_eq!(
            ips,
            vec![
                "192.168.1.1".parse::<IpAddr>().unwrap(),
                "192.168.1.254".parse().unwrap()
            ]
        );
    }
}
