//! A hostile LAN, over real sockets: one test per attack of issue 11, each against a
//! peer in a child process (this test program run again as `hostile::server_process`,
//! configured by `NET_*` variables, so that its memory is its own and read from /proc),
//! while a well-behaved client calls it all along and must get every reply, right and on
//! its one connection. Each checks that the peer's memory stays within its budget and
//! that the hostile connections are closed within the documented deadlines, which the
//! tests make short. Plus the healthy cases the limits must leave alone: a thousand idle
//! client peers, and a 10 MB argument and result.
//!
//! The server's settings go through the environment only, and the tests use nothing of
//! `net` but what the library had before these limits, so the same tests run against a
//! peer without them (the limits' absence then fails them).

mod appnet;
mod claims;
mod frozen;
mod healthy;
mod links;
mod subscriptions;
mod wire;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::loopback;
use crate::support::test_peer::clear_net_env;

/// Set in the child's environment: run the server there.
const CHILD: &str = "NET_HOSTILE_TEST_SERVER";

/// The longest the well-behaved client may go without a reply before the test fails.
const PATIENCE: Duration = Duration::from_secs(3);

/// Answers its index and who called: the well-behaved client checks both.
#[net::connect("hostile.echo")]
fn echo(caller: net::Caller, i: u64) -> (u64, String) {
    let from = caller.addr().map(|a| a.to_string()).unwrap_or_default();
    (i, from)
}

/// Takes 2 ms, so that it always runs on a handler thread (never inline).
#[net::connect("hostile.medium")]
fn medium(i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    i
}

/// Holds a handler thread for `ms`.
#[net::connect("hostile.slow")]
fn slow(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// A reply of `len` bytes.
#[net::connect("hostile.blob")]
fn blob(len: usize) -> String {
    "b".repeat(len)
}

/// Returns its binary argument.
#[net::connect("hostile.echo_bytes")]
fn echo_bytes(data: net::Bytes) -> net::Bytes {
    data
}

/// The peer under attack, when this program runs as the child (otherwise nothing).
#[test]
#[ignore = "the peer under attack, started as a child process by the hostile tests"]
fn server_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = crate::support::runtime();
    let config = net::Config::from_env()
        .expect("the NET_* settings the test gave")
        .loopback(true)
        .port(0);
    let peer = net::Peer::start_on(config, rt.handle().clone()).expect("starting the server");
    println!("HOSTILE_READY {}", peer.addr());
    // Until the test closes our stdin, or dies.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// The peer under attack, in a child process.
pub struct Server {
    child: Child,
    /// Closed to stop it.
    _stdin: ChildStdin,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts the server with these `NET_*` settings (over loopback, any free port).
    pub fn start(settings: &[(&str, &str)]) -> Server {
        let exe = std::env::current_exe().expect("the test program knows its path");
        let mut cmd = Command::new(exe);
        clear_net_env(&mut cmd);
        cmd.args([
            "hostile::server_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("NET_LOOPBACK", "1")
        // A fixed threshold: large buffers are mapped and unmapped as they come and
        // go, so that RSS shows what is held rather than what malloc keeps.
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (name, value) in settings {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("starting the server process");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("HOSTILE_READY ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server process did not come up")
            .parse()
            .expect("the server's address");
        Server {
            child,
            _stdin: stdin,
            addr,
        }
    }

    /// Sends the server process `signal` (`STOP`, `CONT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The id the server's hello gives (loopback, no group: the tests set none).
    pub fn id(&self) -> net::PeerId {
        net::PeerId::new(self.addr.ip(), self.addr.port(), None)
    }

    /// The server's resident memory, in bytes.
    pub fn rss(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the server's /proc status");
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The highest RSS of `server` seen while `during` runs, sampled every 20 ms.
pub async fn peak_rss<T>(
    server: &Server,
    during: impl std::future::Future<Output = T>,
) -> (T, usize) {
    tokio::pin!(during);
    let mut peak = server.rss();
    loop {
        tokio::select! {
            out = &mut during => return (out, peak.max(server.rss())),
            _ = tokio::time::sleep(Duration::from_millis(20)) => peak = peak.max(server.rss()),
        }
    }
}

/// A server, and a client peer calling it all along on its own connection: quick calls
/// (served inline) and, one in four, calls that run on a handler thread. `finish` checks
/// that every call got its own answer on that one connection.
pub struct Fixture {
    pub server: Server,
    good: net::Peer,
    answered: watch::Receiver<u64>,
    /// What went wrong for the good client, once something did.
    failure: Arc<std::sync::Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<u64, String>>,
}

impl Fixture {
    pub async fn start(settings: &[(&str, &str)]) -> Fixture {
        let server = Server::start(settings);
        let good = net::Peer::start(loopback()).await.unwrap();
        let (count, answered) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(std::sync::Mutex::new(None));
        let (addr, me, stopped, failed) =
            (server.addr, good.clone(), stop.clone(), failure.clone());
        let task = tokio::spawn(async move {
            let result = good_client(addr, me, &count, stopped).await;
            if let Err(e) = &result {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            }
            // Only now, with the failure recorded, do the waiters hear that it stopped.
            drop(count);
            result
        });
        let fixture = Fixture {
            server,
            good,
            answered,
            failure,
            stop,
            task,
        };
        fixture.carries_on(20).await;
        fixture
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Waits until the good client has had `n` more calls answered.
    pub async fn carries_on(&self, n: u64) {
        let mut answered = self.answered.clone();
        let target = *answered.borrow() + n;
        let waited = tokio::time::timeout(PATIENCE, answered.wait_for(|&a| a >= target))
            .await
            .map(|got| got.is_ok());
        match waited {
            Ok(true) => {}
            Ok(false) => {
                let failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                panic!(
                    "the well-behaved client stopped: {}",
                    failure.unwrap_or_default()
                )
            }
            Err(_) => panic!(
                "the well-behaved client got {} of {n} replies in {PATIENCE:?}",
                *answered.borrow() + n - target
            ),
        }
    }

    /// Checks the good client once more and stops it: every call answered right, on
    /// one connection.
    pub async fn finish(self) {
        self.carries_on(10).await;
        self.stop.store(true, Ordering::SeqCst);
        let calls = self.task.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(calls >= 30, "only {calls} calls");
        assert_eq!(self.good.connection_count(), 1);
        self.good.shutdown().await;
    }
}

async fn good_client(
    server: SocketAddr,
    me: net::Peer,
    answered: &watch::Sender<u64>,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut steady = crate::support::Steady::default();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let (got, from) = if i % 4 == 0 {
            let got = medium(i)
                .on(server)
                .via(&me)
                .timeout(PATIENCE)
                .await
                .map_err(|e| format!("well-behaved call {i} (on a thread) failed: {e}"))?;
            (got, None)
        } else {
            let (got, from) = echo(i)
                .on(server)
                .via(&me)
                .timeout(PATIENCE)
                .await
                .map_err(|e| format!("well-behaved call {i} failed: {e}"))?;
            (got, Some(from))
        };
        steady.check(i, got, from)?;
        answered.send_replace(i);
    }
    Ok(i)
}

/// Waits for every task of `closing` (each ends when its hostile connection has been
/// closed, or at a cap well past `limit`, and returns how long that connection was open
/// after its own last word) and fails the test if one was open longer than `limit`. Each
/// is timed from its own start, not the first one's: on a loaded machine opening dozens
/// of attackers takes a while, and the deadline the peer promises is per connection.
pub async fn all_closed_within(what: &str, limit: Duration, closing: Vec<JoinHandle<Duration>>) {
    let mut open = Vec::new();
    for task in closing {
        open.push(task.await.expect("an attacking task panicked"));
    }
    let late = open.iter().filter(|d| **d > limit).count();
    let longest = open.iter().max().copied().unwrap_or_default();
    assert!(
        late == 0,
        "{what}: {late} of {} were still open after {limit:?} (the longest {longest:?})",
        open.len()
    );
}
