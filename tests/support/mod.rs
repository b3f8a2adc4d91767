//! Running the example programs as real processes in tests: finding the built example,
//! free loopback ports, a guard that collects a process's output and kills it on drop,
//! and waiting for readiness or a log line with a deadline instead of sleeping.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a node may take to come up, or a log line to appear.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The built example program `name` (target/debug/examples/NAME). `cargo test` builds
/// every example before running tests.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/debug/deps/TEST -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "the example program {} is missing; run these tests through `cargo test` (which \
         builds the examples first) or build it with `cargo build --example {name}`",
        path.display()
    );
    path
}

/// `N` distinct free ports on 127.0.0.1: all bound at once, so none repeats, then freed
/// for the nodes to take.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port"))
        .collect();
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("a bound port").port();
    }
    ports
}

/// The first of `n` consecutive free ports on 127.0.0.1, for peers that bind a
/// `NET_PORT` range. Each call of a test binary gets a range of its own (parallel tests in
/// one binary never share one), and binaries start at different places.
pub fn free_range(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = 30_000 + (std::process::id() % 1_000) * 25;
    loop {
        let offset = NEXT.fetch_add(u32::from(n) + 1, Ordering::Relaxed);
        let base = 30_000 + (start - 30_000 + offset) % 29_000;
        let base = u16::try_from(base).expect("below 59,000");
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

/// The Python of the app-net virtualenv that `tests/python/setup.sh` makes, or `None`
/// after a loud SKIP line naming `test` (written to stderr past the harness's capture, so
/// it shows). With `NET_REQUIRE_APPNET=1` (CI) a missing venv fails the test instead.
pub fn appnet_python(test: &str) -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/appnet-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var_os("NET_REQUIRE_APPNET").is_some_and(|v| v == "1") {
        panic!(
            "NET_REQUIRE_APPNET=1 but there is no app-net venv at {}; run `bash \
             tests/python/setup.sh`",
            python.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n=== SKIP {test}: no app-net venv at {}; run `bash tests/python/setup.sh` ===\n",
        python.display()
    );
    None
}

/// An example's command with an environment that keeps it on loopback whatever the
/// developer's shell has set.
fn command(name: &str, args: &[&str]) -> Command {
    let mut command = Command::new(example(name));
    command.args(args);
    for var in [
        "NET_HOST",
        "NET_PEERS",
        "NET_GROUP",
        "NET_PORT",
        "NET_PORT_RANGE",
    ] {
        command.env_remove(var);
    }
    command.env("NET_LOOPBACK", "1").env("NET_TIMEOUT", "5s");
    command
}

/// What a finished client printed.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output, trimmed.
    pub stdout: String,
    /// Standard error, trimmed.
    pub stderr: String,
}

/// Runs `name args` to completion. Clients are bounded by their own call timeout
/// (`NET_TIMEOUT=5s`) and connect timeout.
pub fn run(name: &str, args: &[&str]) -> Ran {
    let output = command(name, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name} {args:?}: {e}"));
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

/// Runs `name args`, insists that it succeeded, and returns what it printed.
pub fn ok(name: &str, args: &[&str]) -> String {
    let ran = run(name, args);
    assert_eq!(ran.code, Some(0), "{name} {args:?} failed: {ran:?}");
    ran.stdout
}

/// Lines a process printed so far, and a signal for each new one.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grown: Condvar,
}

/// A running example program, killed when dropped. Its output is collected line by line
/// (stderr lines prefixed `stderr: `) and printed if the test fails.
pub struct Process {
    label: String,
    child: Child,
    lines: Arc<Lines>,
}

impl Process {
    /// Starts `name args`.
    pub fn start(name: &str, args: &[&str]) -> Process {
        let mut child = command(name, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} {args:?}: {e}"));
        let lines = Arc::new(Lines::default());
        if let Some(out) = child.stdout.take() {
            collect(out, "", lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, "stderr: ", lines.clone());
        }
        Process {
            label: format!("{name} {}", args.join(" ")),
            child,
            lines,
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lines.lock().unwrap().clone()
    }

    /// How many lines so far contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }

    /// Waits until a line containing `text` has been printed, and returns it.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut lines = self.lines.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} printed no line containing {text:?} within {DEADLINE:?}; it printed:\n{}",
                self.label,
                lines.join("\n")
            );
            lines = self.lines.grown.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Kills the process (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- output of {} ---", self.label);
            for line in self.lines() {
                eprintln!("{line}");
            }
        }
    }
}

/// Reads `stream` line by line into `lines` on a thread of its own, which ends with the
/// process.
fn collect(stream: impl Read + Send + 'static, prefix: &'static str, lines: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.lines.lock().unwrap().push(format!("{prefix}{line}"));
            lines.grown.notify_all();
        }
    });
}

/// Polls `condition` until it holds, panicking with `what` after [`DEADLINE`].
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This test process's own peer, on loopback, for readiness checks.
fn test_peer() -> &'static net::Peer {
    static PEER: OnceLock<net::Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        net::start(net::Config::default().loopback(true).port(0))
            .expect("starting the test's own loopback peer")
    })
}

/// Waits until a net peer answers `info` at `addr`.
pub fn wait_ready(addr: &str) {
    test_peer();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = net::info()
            .on(addr)
            .timeout(Duration::from_millis(500))
            .wait();
        match answer {
            Ok(_) => return,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no peer answered at {addr} within {DEADLINE:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
