//! The discovery paths (on-host scan, ARP neighbours, mDNS, seeds) and the set of them a
//! peer uses (`NET_DISCOVERY`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One way of finding peers; also says, in a [`PeerInfo`](crate::PeerInfo), which way
/// found a peer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Discovery {
    /// This host's own addresses, probed over the port range.
    Scan,
    /// The hosts in the neighbour (ARP) table, probed over the port range. Off unless
    /// asked for: probing every neighbour's ports is what intrusion detection flags.
    Arp,
    /// Multicast DNS: every peer advertises itself and browses for the others.
    Mdns,
    /// `NET_PEERS` addresses, and the peers they know (peer exchange).
    Seeds,
}

impl Discovery {
    /// Every path, in the order a discovery round reports them.
    pub const ALL: [Discovery; 4] = [
        Discovery::Scan,
        Discovery::Mdns,
        Discovery::Seeds,
        Discovery::Arp,
    ];

    /// The name `NET_DISCOVERY` uses.
    pub fn name(self) -> &'static str {
        match self {
            Discovery::Scan => "scan",
            Discovery::Arp => "arp",
            Discovery::Mdns => "mdns",
            Discovery::Seeds => "seeds",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Discovery::Scan => 1,
            Discovery::Arp => 2,
            Discovery::Mdns => 4,
            Discovery::Seeds => 8,
        }
    }
}

impl fmt::Display for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The discovery paths a peer uses: `NET_DISCOVERY=scan,mdns,seeds` (the default), `all`
/// (adds `arp`) or `none`. `NET_MDNS=0` takes mDNS out whatever `NET_DISCOVERY` says.
///
/// ```
/// use net::{Discovery, DiscoveryPaths};
/// let paths: DiscoveryPaths = "scan,arp".parse().unwrap();
/// assert!(paths.contains(Discovery::Arp) && !paths.contains(Discovery::Mdns));
/// assert_eq!(DiscoveryPaths::default().to_string(), "scan,mdns,seeds");
/// assert!("scan,bluetooth".parse::<DiscoveryPaths>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscoveryPaths(u8);

impl DiscoveryPaths {
    /// No path: the peer finds nobody by itself (calls by address still work).
    pub const fn none() -> Self {
        DiscoveryPaths(0)
    }

    /// Every path, ARP-neighbour probing included.
    pub fn all() -> Self {
        Discovery::ALL.into_iter().fold(Self::none(), Self::with)
    }

    /// Whether `path` is in the set.
    pub fn contains(self, path: Discovery) -> bool {
        self.0 & path.bit() != 0
    }

    /// The set with `path` added.
    pub fn with(self, path: Discovery) -> Self {
        DiscoveryPaths(self.0 | path.bit())
    }

    /// The set without `path`.
    pub fn without(self, path: Discovery) -> Self {
        DiscoveryPaths(self.0 & !path.bit())
    }

    /// The paths in the set.
    pub fn iter(self) -> impl Iterator<Item = Discovery> {
        Discovery::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl Default for DiscoveryPaths {
    /// On-host scan, mDNS and seeds; not the ARP-neighbour scan.
    fn default() -> Self {
        DiscoveryPaths::none()
            .with(Discovery::Scan)
            .with(Discovery::Mdns)
            .with(Discovery::Seeds)
    }
}

impl fmt::Display for DiscoveryPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Discovery::name).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for DiscoveryPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiscoveryPaths({self})")
    }
}

impl FromStr for DiscoveryPaths {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let mut paths = DiscoveryPaths::none();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            paths = match word.to_ascii_lowercase().as_str() {
                "scan" | "host" | "on_host" => paths.with(Discovery::Scan),
                "arp" | "neighbours" | "neighbors" => paths.with(Discovery::Arp),
                "mdns" => paths.with(Discovery::Mdns),
                "seeds" | "seed" | "peers" => paths.with(Discovery::Seeds),
                "all" => DiscoveryPaths::all(),
                "none" => paths,
                _ => {
                    return Err(Error::Config {
                        var: "NET_DISCOVERY",
                        value: text.to_owned(),
                        reason: format!(
                            "unknown path {word:?}; expected a comma-separated list of scan, \
                             mdns, seeds, arp (or all, none)"
                        ),
                    })
                }
            };
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let all: DiscoveryPaths = "all".parse().unwrap();
        assert_eq!(all.to_string(), "scan,mdns,seeds,arp");
        let none: DiscoveryPaths = "none".parse().unwrap();
        assert_eq!(none, DiscoveryPaths::none());
        assert_eq!(none.to_string(), "none");
        let some: DiscoveryPaths = " Seeds , scan ".parse().unwrap();
        assert_eq!(some.to_string(), "scan,seeds");
        assert!(!DiscoveryPaths::default().contains(Discovery::Arp));
        let err = "scan,radio".parse::<DiscoveryPaths>().unwrap_err();
        assert!(err.to_string().contains("radio"), "{err}");
    }
}
