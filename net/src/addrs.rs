//! This host's interface addresses (through if-addrs): which ones a peer advertises, which
//! ones the on-host scan probes, and whether an address is this host's own.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::Config;

/// One usable address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    /// The interface's name, e.g. `eth0`, so mDNS can be told which ones to use.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Names of the interfaces that container engines and VM managers create: a peer
/// advertising those gives other hosts an address they cannot reach (the users' common
/// complaint about other libraries).
const BRIDGE_PREFIXES: [&str; 13] = [
    "docker",
    "br-",
    "virbr",
    "veth",
    "cni",
    "flannel",
    "cali",
    "weave",
    "vethernet",
    "lxcbr",
    "lxdbr",
    "podman",
    "kube-bridge",
];

/// Whether `name` is a container or VM bridge interface.
pub(crate) fn is_container_bridge(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    BRIDGE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Every address of every interface that is up, loopback included.
pub(crate) fn all() -> Vec<Iface> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.is_oper_up() || i.is_loopback())
        .map(|i| Iface {
            ip: i.ip(),
            name: i.name,
        })
        .collect()
}

/// The addresses other hosts can reach this peer at, best first: the bound address when it
/// is a specific one; otherwise every non-loopback address of the listener's family, with
/// container bridges and link-local addresses left out whenever a real one exists. Empty
/// under loopback confinement.
pub(crate) fn advertised(config: &Config) -> Vec<Iface> {
    if config.loopback || config.host.is_loopback() {
        return Vec::new();
    }
    let ifaces = all();
    if !config.host.is_unspecified() {
        let name = ifaces
            .iter()
            .find(|i| i.ip == config.host)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        return vec![Iface {
            name,
            ip: config.host,
        }];
    }
    choose(ifaces, config.host.is_ipv4())
}

/// The selection rule of [`advertised`], apart so it can be tested on made-up interfaces.
fn choose(ifaces: Vec<Iface>, ipv4: bool) -> Vec<Iface> {
    let mut usable: Vec<Iface> = ifaces
        .into_iter()
        .filter(|i| !i.ip.is_loopback() && i.ip.is_ipv4() == ipv4)
        .collect();
    if usable.iter().any(|i| !is_container_bridge(&i.name)) {
        usable.retain(|i| !is_container_bridge(&i.name));
    }
    if usable.iter().any(|i| !is_link_local(i.ip)) {
        usable.retain(|i| !is_link_local(i.ip));
    }
    usable
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The address to put in the peer's id when the routing table names none (a host or
/// namespace without a default route): the best advertised address.
pub(crate) fn fallback_host(config: &Config) -> Option<IpAddr> {
    advertised(config).first().map(|i| i.ip)
}

/// The addresses the on-host scan probes: 127.0.0.1 always; when not confined to loopback
/// also this host's other IPv4 addresses (peers bound to one specific address answer only
/// there). Probing them never leaves the machine.
pub(crate) fn scan_targets(config: &Config) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if config.loopback {
        return ips;
    }
    for iface in all() {
        if iface.ip.is_ipv4() && !iface.ip.is_loopback() && !ips.contains(&iface.ip) {
            ips.push(iface.ip);
        }
    }
    ips
}

/// Whether `ip` belongs to this host (loopback or one of its interfaces).
pub(crate) fn is_own(ip: IpAddr, own: &[IpAddr]) -> bool {
    ip.is_loopback() || ip.is_unspecified() || own.contains(&ip)
}

/// This host's addresses, for [`is_own`].
pub(crate) fn own_ips() -> Vec<IpAddr> {
    all().into_iter().map(|i| i.ip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> Iface {
        Iface {
            name: name.into(),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn bridges_and_loopback_are_left_out_when_a_real_address_exists() {
        let chosen = choose(
            vec![
                iface("lo", "127.0.0.1"),
                iface("docker0", "172.17.0.1"),
                iface("br-1a2b", "172.18.0.1"),
                iface("eth0", "192.168.1.20"),
                iface("eth0", "fe80::1"),
                iface("wlan0", "169.254.3.4"),
            ],
            true,
        );
        assert_eq!(chosen, vec![iface("eth0", "192.168.1.20")]);
    }

    #[test]
    fn a_bridge_is_still_better_than_nothing() {
        let chosen = choose(
            vec![iface("lo", "127.0.0.1"), iface("docker0", "172.17.0.1")],
            true,
        );
        assert_eq!(chosen, vec![iface("docker0", "172.17.0.1")]);
        assert!(choose(vec![iface("lo", "127.0.0.1")], true).is_empty());
    }

    #[test]
    fn loopback_confinement_advertises_nothing() {
        let config = Config::default().loopback(true);
        assert!(advertised(&config).is_empty());
        assert_eq!(scan_targets(&config), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    }
}
