//! The on-host scan: this host's own addresses probed over the port range
//! (`NET_PORT..=NET_PORT+NET_PORT_RANGE`), skipping this peer itself.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use super::probe::probe_all;
use super::report::PathReport;
use super::table::PeerInfo;
use super::Discovery;
use crate::addrs;
use crate::config::Config;
use crate::peer::Peer;

/// The ports peers of this configuration bind, or why there is no such range.
pub(crate) fn port_range(config: &Config) -> Result<RangeInclusive<u16>, String> {
    if config.port == 0 {
        return Err(
            "NET_PORT=0 lets the OS pick any port, so there is no port range to \
                    probe; give peers a NET_PORT (and NET_PORT_RANGE) to scan"
                .into(),
        );
    }
    Ok(config.port..=config.port.saturating_add(config.port_range))
}

/// The addresses the scan probes: every port of `ports` on `ips`, this peer left out.
pub(crate) fn targets(
    peer: &Peer,
    ips: &[std::net::IpAddr],
    ports: RangeInclusive<u16>,
) -> Vec<SocketAddr> {
    let own = peer.addr();
    ips.iter()
        .flat_map(|ip| ports.clone().map(move |port| SocketAddr::new(*ip, port)))
        // Our own port on an address our listener covers is this peer itself.
        .filter(|a| !(a.port() == own.port() && (own.ip().is_unspecified() || own.ip() == a.ip())))
        .collect()
}

/// The addresses the background re-scan probes, when the on-host scan is selected and
/// there is a port range.
pub(crate) fn background_targets(peer: &Peer) -> Vec<SocketAddr> {
    let config = peer.config();
    match port_range(config) {
        Ok(ports) if config.discovery.contains(Discovery::Scan) => {
            targets(peer, &addrs::scan_targets(config), ports)
        }
        _ => Vec::new(),
    }
}

/// Runs the scan and returns the peers that answered, with the path's report.
pub(crate) async fn run(peer: &Peer) -> (Vec<PeerInfo>, PathReport) {
    let config = peer.config();
    if !config.discovery.contains(Discovery::Scan) {
        let why = format!("not selected (NET_DISCOVERY={})", config.discovery);
        return (Vec::new(), PathReport::idle(Discovery::Scan, why));
    }
    let ports = match port_range(config) {
        Ok(ports) => ports,
        Err(why) => return (Vec::new(), PathReport::idle(Discovery::Scan, why)),
    };
    let ips = addrs::scan_targets(config);
    let targets = targets(peer, &ips, ports.clone());
    let (found, tally) = probe_all(peer, targets, config.probe_timeout, Discovery::Scan).await;
    let listed: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let detail = format!(
        "ports {}..={} on {}: {}",
        ports.start(),
        ports.end(),
        listed.join(", "),
        tally.describe()
    );
    let report = PathReport::ran(Discovery::Scan, found.len(), detail);
    (found, report)
}
