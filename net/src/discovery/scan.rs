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
    let own = peer.addr();
    let targets: Vec<SocketAddr> = ips
        .iter()
        .flat_map(|ip| ports.clone().map(move |port| SocketAddr::new(*ip, port)))
        // Our own port on an address our listener covers is this peer itself.
        .filter(|a| !(a.port() == own.port() && (own.ip().is_unspecified() || own.ip() == a.ip())))
        .collect();
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
