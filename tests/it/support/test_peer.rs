//! Driving `net-test-peer` processes from the discovery tests and benchmark: spawn, send a
//! command, read its one-line answer with a deadline, kill. Stands alone (benches/discovery.rs
//! and tests/default_peer.rs include it by path), so it uses nothing else of `support`.
#![allow(dead_code)] // each includer uses a different part

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

/// The test peer program built with this package.
pub const TEST_PEER: &str = env!("CARGO_BIN_EXE_net-test-peer");

/// One running `net-test-peer`.
pub struct TestPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of its stdout, read on a thread so that reads can time out.
    lines: Receiver<String>,
    /// Its id and address, from its READY line.
    pub id: net::PeerId,
    pub addr: SocketAddr,
    /// When it was ready (ms since the epoch, its clock = ours).
    pub ready_ms: u64,
    /// Its process id as it reported it (inside a namespace too).
    pub ready_pid: u32,
}

/// The command for a loopback-confined peer binding the first free port of
/// `port..=port+range`, with every inherited `NET_*` variable removed.
pub fn loopback_command(port: u16, range: u16) -> Command {
    let mut cmd = Command::new(TEST_PEER);
    clear_net_env(&mut cmd);
    cmd.env("NET_LOOPBACK", "1")
        .env("NET_PORT", port.to_string())
        .env("NET_PORT_RANGE", range.to_string())
        // The machine is shared: give a busy peer time to answer a probe.
        .env("NET_PROBE_TIMEOUT", "2s");
    cmd
}

/// Removes inherited `NET_*` variables so that a developer's settings never leak in.
pub fn clear_net_env(cmd: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("NET_") {
            cmd.env_remove(name);
        }
    }
}

impl TestPeer {
    /// Starts `cmd` and waits for its READY line.
    pub fn start(mut cmd: Command) -> TestPeer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning net-test-peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut peer = TestPeer {
            child,
            stdin,
            lines,
            id: net::PeerId::new("127.0.0.1".parse().unwrap(), 0, None),
            addr: "127.0.0.1:0".parse().unwrap(),
            ready_ms: 0,
            ready_pid: 0,
        };
        let ready: Value = peer.expect("READY", Duration::from_secs(20));
        // A lazy peer (TEST_PEER_LAZY=1) has no id or address until it starts by itself.
        if !ready["id"].is_null() {
            peer.id = serde_json::from_value(ready["id"].clone()).expect("READY has an id");
            peer.addr = serde_json::from_value(ready["addr"].clone()).expect("READY has an addr");
        }
        peer.ready_ms = ready["ms"].as_u64().expect("READY has ms");
        peer.ready_pid = ready["pid"].as_u64().expect("READY has pid") as u32;
        peer
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writing to net-test-peer");
        stdin.flush().expect("flushing net-test-peer's stdin");
    }

    /// The next line, which must start with `word`; returns the JSON after it.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no {word} line from net-test-peer within {timeout:?}"));
        let (first, rest) = line.split_once(' ').unwrap_or((&line, "null"));
        assert_eq!(first, word, "unexpected answer: {line}");
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad JSON in {line:?}: {e}"))
    }

    /// `self`: its process-wide peer's address and whether it is a client.
    pub fn whoami(&mut self) -> (SocketAddr, bool) {
        self.send("self");
        let me = self.expect("SELF", Duration::from_secs(30));
        let addr = serde_json::from_value(me["addr"].clone()).expect("SELF has an addr");
        (addr, me["client"].as_bool().expect("SELF has client"))
    }

    /// `peers ARGS`: the peers it knows.
    pub fn peers(&mut self, args: &str) -> Vec<net::PeerInfo> {
        self.send(&format!("peers {args}"));
        let peers = self.expect("PEERS", Duration::from_secs(30));
        serde_json::from_value(peers).expect("PEERS is a list of PeerInfo")
    }

    /// `until N ARGS`: waits (inside the peer) until it knows `n` peers; returns when (ms
    /// since the epoch) and the list, or panics with the peer's discovery report.
    pub fn until(&mut self, n: usize, args: &str, timeout: Duration) -> (u64, Vec<net::PeerInfo>) {
        self.send(&format!("until {n} timeout={} {args}", timeout.as_millis()));
        self.seen(timeout + Duration::from_secs(30))
    }

    /// The answer to an `until` sent earlier: when it was reached (ms since the epoch).
    pub fn expect_seen(&mut self) -> u64 {
        self.seen(Duration::from_secs(60)).0
    }

    fn seen(&mut self, timeout: Duration) -> (u64, Vec<net::PeerInfo>) {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("an answer to until");
        if let Some(report) = line.strip_prefix("TIMEOUT ") {
            let report: String = serde_json::from_str(report).unwrap_or_default();
            panic!(
                "{} did not see enough peers in time:\n{report}",
                self.id.addr()
            );
        }
        let rest = line
            .strip_prefix("SEEN ")
            .unwrap_or_else(|| panic!("unexpected answer: {line}"));
        let (ms, list) = rest.split_once(' ').expect("SEEN ms list");
        (
            ms.parse().expect("ms"),
            serde_json::from_str(list).expect("SEEN list"),
        )
    }

    /// `report ARGS`: the discovery report's text.
    pub fn report(&mut self, args: &str) -> String {
        self.send(&format!("report {args}"));
        let report = self.expect("REPORT", Duration::from_secs(30));
        report.as_str().unwrap_or_default().to_owned()
    }

    /// `events`: the membership events it saw, one string each.
    pub fn events(&mut self) -> Vec<String> {
        self.send("events");
        serde_json::from_value(self.expect("EVENTS", Duration::from_secs(10))).unwrap()
    }

    /// `call TARGET`: the pid of the process that answered `whoami`, and its id.
    pub fn call(&mut self, target: SocketAddr) -> (u32, net::PeerId) {
        self.send(&format!("call {target}"));
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("an answer to call");
        let result: Value = match line.split_once(' ') {
            Some(("RESULT", json)) => serde_json::from_str(json).unwrap(),
            _ => panic!("call {target} failed: {line}"),
        };
        (
            result["pid"].as_u64().unwrap() as u32,
            serde_json::from_value(result["id"].clone()).unwrap(),
        )
    }

    /// `echo TARGET TEXT`: `pass_through(TEXT)` on `target`; what came back.
    pub fn echo(&mut self, target: SocketAddr, text: &str) -> String {
        self.send(&format!("echo {target} {text}"));
        let back = self.expect("ECHOED", Duration::from_secs(30));
        back.as_str().unwrap_or_default().to_owned()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.ready_pid
    }

    /// `touch ADDR`: one TCP connect from inside the peer's host, to fill neighbour tables.
    pub fn touch(&mut self, addr: SocketAddr) {
        self.send(&format!("touch {addr}"));
        self.expect("TOUCHED", Duration::from_secs(10));
    }

    /// Kills it at once (no goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to shut down cleanly (mDNS goodbye) and waits for it to exit.
    pub fn quit(mut self) {
        self.send("quit");
        self.stdin = None;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `n` loopback peers in the port range `base..=base+range` (in parallel), sorted by
/// address.
pub fn start_many(n: usize, base: u16, range: u16, extra: &[(&str, &str)]) -> Vec<TestPeer> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = loopback_command(base, range);
            for (k, v) in extra {
                cmd.env(k, v);
            }
            std::thread::spawn(move || TestPeer::start(cmd))
        })
        .collect();
    let mut peers: Vec<TestPeer> = handles
        .into_iter()
        .map(|h| h.join().expect("starting a peer"))
        .collect();
    peers.sort_by_key(|p| p.addr);
    peers
}

/// The addresses of a list of peers, sorted.
pub fn addrs(peers: &[net::PeerInfo]) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = peers.iter().map(|p| p.addr).collect();
    addrs.sort();
    addrs
}
