//! A LAN made of network namespaces: one bridge (STP and multicast snooping off, no
//! address, no uplink) and one namespace per host joined to it by a veth pair, with a
//! private address the test assigns and no default route, so nothing can leave it. Needs
//! root; everything is removed on drop (veths before namespaces, as deleting a namespace
//! removes its veth asynchronously).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

/// A packet capture of everything that crosses a lab's bridge (tcpdump, to a file).
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// The capture so far, as raw bytes (pcap headers included; payloads are uncut).
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap_or_default()
    }

    /// The TCP payloads captured so far, in order, each with its source and destination
    /// ports. A record tcpdump is still writing is left for the next call.
    pub fn segments(&self) -> Vec<Segment> {
        parse_pcap(&self.bytes())
    }
}

/// One TCP segment off the wire.
pub struct Segment {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

impl Segment {
    /// Whether it went from or to `port`.
    pub fn touches(&self, port: u16) -> bool {
        self.src_port == port || self.dst_port == port
    }
}

/// A classic pcap file (tcpdump's -w, this machine's byte order) of Ethernet frames
/// carrying IPv4 and TCP; anything else is skipped.
fn parse_pcap(bytes: &[u8]) -> Vec<Segment> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
    };
    assert_eq!(
        u32_at(20).unwrap_or(1),
        1,
        "the capture's link type is not Ethernet"
    );
    let mut segments = Vec::new();
    let mut at = 24;
    while let Some(len) = u32_at(at + 8) {
        let Some(frame) = bytes.get(at + 16..at + 16 + len as usize) else {
            break;
        };
        at += 16 + len as usize;
        // Ethernet (14 bytes), IPv4 (0x0800) with protocol TCP (6).
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
            continue;
        }
        let ip = &frame[14..];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let tcp = &ip[usize::from(ip[0] & 0x0f) * 4..total];
        if tcp.len() < 20 {
            continue;
        }
        let data_at = usize::from(tcp[12] >> 4) * 4;
        segments.push(Segment {
            src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
            dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
            payload: tcp.get(data_at..).unwrap_or_default().to_vec(),
        });
    }
    segments
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Whether tcpdump is installed; prints the loud skip line when it is not, unless
/// `NET_REQUIRE_CAPTURE=1` (CI installs it and sets that), where its absence fails.
pub fn skip_unless_tcpdump(what: &str) -> bool {
    if Command::new("tcpdump").arg("--version").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var_os("NET_REQUIRE_CAPTURE").is_none(),
        "{what} needs tcpdump (NET_REQUIRE_CAPTURE is set): apt-get install tcpdump"
    );
    eprintln!(
        "\n==================== SKIPPED (needs tcpdump): {what} ====================\n\
         It captures the lab's bridge to check what crosses the wire.\n\
         Debian: apt-get install tcpdump (.ci/run installs it).\n"
    );
    true
}

impl Lab {
    /// Starts capturing the bridge's TCP traffic; returns once tcpdump is listening.
    pub fn capture(&self) -> Result<Capture, String> {
        let file = std::env::temp_dir().join(format!("{}.pcap", self.bridge));
        let mut child = Command::new("tcpdump")
            // Packet-buffered (-U) so that the file grows as packets arrive; stay root
            // (-Z) so that it can write where we ask; whole packets (-s 0).
            .args([
                "-i",
                &self.bridge,
                "-U",
                "-n",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&file)
            .arg("tcp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting tcpdump: {e}"))?;
        let stderr = child.stderr.take().ok_or("tcpdump's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // tcpdump says "listening on IFACE" once its socket is bound; anything before that
        // is an error worth showing.
        let mut said = String::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(line)) => said.push_str(&line),
                _ => {
                    let _ = child.kill();
                    return Err(format!("tcpdump did not start: {said}"));
                }
            }
        }
        // Keep draining its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Capture { child, file })
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
