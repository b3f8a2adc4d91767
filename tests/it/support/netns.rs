//! A LAN made of network namespaces: one bridge (STP and multicast snooping off, no
//! address, no uplink) and one namespace per host joined to it by a veth pair, with a
//! private address the test assigns and no default route, so nothing can leave it. Needs
//! root; everything is removed on drop (veths before namespaces, as deleting a namespace
//! removes its veth asynchronously).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// One simulated host.
pub struct Host {
    /// Its namespace's name.
    pub ns: String,
    /// The root-side end of its veth pair (on the bridge).
    pub veth: String,
    /// Its address on the LAN.
    pub ip: Ipv4Addr,
}

/// The bridge and its hosts.
pub struct Lab {
    pub bridge: String,
    pub hosts: Vec<Host>,
}

/// Whether this process may create namespaces (is root).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Prints the loud skip line and returns true when the lab cannot be built here.
pub fn skip_unless_root(what: &str) -> bool {
    if is_root() && Command::new("ip").arg("-V").output().is_ok() {
        return false;
    }
    eprintln!(
        "\n==================== SKIPPED (needs root): {what} ====================\n\
         It builds a LAN from network namespaces, which needs root and iproute2 (`ip`).\n\
         CI runs as root; run `sudo -E cargo test --test it lan` to run it here.\n"
    );
    true
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds `n` hosts at 10.231.`subnet`.1.. on a fresh bridge. Names are unique per
    /// process and lab, and short enough for Linux's 15-character interface names.
    pub fn create(n: usize, subnet: u8) -> Result<Lab, String> {
        let tag = format!(
            "nd{}{}",
            std::process::id() % 100_000,
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            bridge: format!("{tag}b"),
            hosts: Vec::new(),
        };
        let b = lab.bridge.clone();
        ip(&[
            "link",
            "add",
            "name",
            &b,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        // Written before `up`, so the bridge itself never sends IPv6 traffic.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{b}/disable_ipv6"), "1");
        ip(&["link", "set", &b, "up"])?;
        for i in 0..n {
            let host = Host {
                ns: format!("{tag}h{i}"),
                veth: format!("{tag}v{i}"),
                ip: Ipv4Addr::new(10, 231, subnet, i as u8 + 1),
            };
            let inner = format!("{tag}p{i}");
            let ns = host.ns.clone();
            let veth = host.veth.clone();
            let addr = format!("{}/24", host.ip);
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(host);
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &b, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", ns.as_str()];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["link", "set", &inner, "name", "eth0"])?;
            inside(&["addr", "add", &addr, "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
            inside(&["link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// A command running `program` inside host `i`'s namespace. It is told this process's
    /// namespace, so `net-test-peer` can check that it really runs elsewhere.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i].ns, program]);
        if let Ok(home) = std::fs::read_link("/proc/self/ns/net") {
            cmd.env("TEST_PEER_HOME_NETNS", home);
        }
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["link", "del", &host.veth]);
        }
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
