//! Running programs as real processes in tests: the built examples and binaries on a
//! loopback-only environment, a guard that collects a process's output line by line, talks
//! to its stdin and kills it on drop, and waiting for a line with a deadline (woken by each
//! new line, not polling).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::test_peer::clear_net_env;
use super::wait::{eventually_blocking, DEADLINE};

/// The prefix of the lines a process wrote to stderr, in [`Process::lines`].
pub const STDERR: &str = "stderr: ";

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

/// A command for `program` confined to loopback, with every `NET_*` variable of the
/// developer's shell removed, so that only what the test sets applies.
pub fn confined(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    clear_net_env(&mut command);
    command.env("NET_LOOPBACK", "1");
    command
}

/// An example's command as the Peers tests run it: confined, with a call timeout that
/// bounds every client.
fn example_command(name: &str, args: &[&str]) -> Command {
    let mut command = confined(example(name));
    command.args(args).env("NET_TIMEOUT", "5s");
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

/// Runs example `name args` to completion. Clients are bounded by their own call timeout
/// (`NET_TIMEOUT=5s`) and connect timeout.
pub fn run(name: &str, args: &[&str]) -> Ran {
    let output = example_command(name, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name} {args:?}: {e}"));
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

/// Runs example `name args`, insists that it succeeded, and returns what it printed.
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

/// A running program, killed when dropped. Its output is collected line by line (stderr
/// lines prefixed [`STDERR`]) and printed if the test fails.
pub struct Process {
    label: String,
    child: Child,
    /// Open until [`Process::close_stdin`]: closing it is how several examples are told
    /// to leave.
    stdin: Option<ChildStdin>,
    lines: Arc<Lines>,
    /// How many stdout lines [`Process::next_line`] has handed out.
    read: usize,
    /// How long a wait on this process may take.
    patience: Duration,
}

impl Process {
    /// Starts example `name args` as the Peers tests run it (see [`run`]).
    pub fn start(name: &str, args: &[&str]) -> Process {
        Process::spawn(
            &format!("{name} {}", args.join(" ")),
            example_command(name, args),
        )
    }

    /// Starts `command`, called `label` in messages.
    pub fn spawn(label: &str, mut command: Command) -> Process {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}"));
        let lines = Arc::new(Lines::default());
        if let Some(out) = child.stdout.take() {
            collect(out, "", lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, STDERR, lines.clone());
        }
        Process {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            read: 0,
            patience: DEADLINE,
        }
    }

    /// Lets waits on this process take up to `patience` (for slow starters such as Python).
    pub fn patience(mut self, patience: Duration) -> Process {
        self.patience = patience;
        self
    }

    /// Its name in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// How many lines so far contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }

    /// The lines so far that start with `prefix`, without it.
    pub fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect()
    }

    /// Waits until a line containing `text` has been printed, and returns it.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("a line containing {text:?}"), |lines| {
            lines.iter().find(|l| l.contains(text)).cloned()
        })
    }

    /// Waits until a line starting with `prefix` has been printed, and returns the rest
    /// of it.
    pub fn wait_after(&self, prefix: &str) -> String {
        self.wait_until(&format!("a line starting with {prefix:?}"), |lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        })
    }

    /// The next stdout line not handed out before, waiting for it (for programs that
    /// answer each request with one line).
    pub fn next_line(&mut self) -> String {
        let skip = self.read;
        let line = self.wait_until("one more line on stdout", |lines| {
            lines
                .iter()
                .filter(|l| !l.starts_with(STDERR))
                .nth(skip)
                .cloned()
        });
        self.read += 1;
        line
    }

    /// Writes one line to its stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{}'s stdin is closed", self.label));
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| {
                panic!("writing {line:?} to {}: {e}", self.label);
            });
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes its stdin (the examples' signal to leave) and waits for it to exit.
    pub fn finish(&mut self) -> ExitStatus {
        self.close_stdin();
        let mut status = None;
        let label = self.label.clone();
        eventually_blocking(&format!("{label} to exit"), || {
            status = self.child.try_wait().expect("waiting for a child");
            status.is_some()
        });
        status.expect("eventually returned once it exited")
    }

    /// Its process id, while it runs (for signals a test sends).
    pub fn pid(&mut self) -> Option<u32> {
        matches!(self.child.try_wait(), Ok(None)).then(|| self.child.id())
    }

    /// Kills it (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        // A reader thread that panicked holding the lock left whole lines behind.
        self.lines.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits, woken by each new line, until `found` finds something in the lines.
    fn wait_until(&self, what: &str, found: impl Fn(&[String]) -> Option<String>) -> String {
        let deadline = Instant::now() + self.patience;
        let mut lines = self.lock();
        loop {
            if let Some(hit) = found(&lines) {
                return hit;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} printed no {what} within {:?}; it printed:\n{}",
                self.label,
                self.patience,
                lines.join("\n")
            );
            lines = self
                .lines
                .grown
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
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
            lines
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{prefix}{line}"));
            lines.grown.notify_all();
        }
    });
}
