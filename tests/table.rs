//! The replicated table across processes: `net serve --join` members on loopback,
//! SIGKILLed, restarted with NET_TABLE_DIR, leaving, and refusing other terms; the `net
//! table` command line; and (as root) a member cut off by `ip link set down` in a LAN of
//! network namespaces. A client peer in this process reads and writes; what one replica
//! holds is asked of it directly (`net.table.get`, docs/PROTOCOL.md).

#[path = "discovery/netns.rs"]
mod netns;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::free_range;

const NET: &str = env!("CARGO_BIN_EXE_net");
const TEST_PEER: &str = env!("CARGO_BIN_EXE_net-test-peer");

/// How long membership changes may take to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// Polls `check` until it holds, or fails with `what` after `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines a process printed, and a signal for each new one.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grown: Condvar,
}

/// A `net serve --join NAME` member process, SIGKILLed when dropped.
struct Member {
    child: Child,
    lines: Arc<Lines>,
    addr: SocketAddr,
}

/// The command line of a member (or any `net` command) on loopback in `base..=base+range`.
fn net_command(base: u16, range: u16, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(NET);
    for (name, _) in std::env::vars() {
        if name.starts_with("NET_") {
            command.env_remove(name);
        }
    }
    command
        .env("NET_LOOPBACK", "1")
        .env("NET_PORT", base.to_string())
        .env("NET_PORT_RANGE", range.to_string())
        .env("NET_TIMEOUT", "3s");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

impl Member {
    /// Starts a member of `table` and waits until it has joined.
    fn start(table: &str, base: u16, range: u16, env: &[(&str, &str)]) -> Member {
        let mut child = net_command(base, range, env)
            .args(["serve", "--join", table])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting net serve");
        let lines = Arc::new(Lines::default());
        for (stream, prefix) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "stderr: ",
            ),
        ] {
            let (Some(stream), lines) = (stream, lines.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lines.lock().unwrap().push(format!("{prefix}{line}"));
                    lines.grown.notify_all();
                }
            });
        }
        let mut member = Member {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let serving = member.wait_for("serving on ");
        member.addr = serving
            .trim_start_matches("serving on ")
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {serving:?}"));
        member.wait_for("joined table");
        member
    }

    /// Waits for a line containing `text` (or the process to end), and returns it.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + SETTLE;
        let mut lines = self.lines.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {text:?} within {SETTLE:?}:\n{}",
                lines.join("\n")
            );
            lines = self.lines.grown.wait_timeout(lines, left).unwrap().0;
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends a signal by name (`TERM`) to the member, which must still run (so that the
    /// pid is still its own).
    fn signal(&mut self, name: &str) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "the member has exited"
        );
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// SIGKILL: no goodbye, no handoff.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- member {} ---", self.addr);
            for line in self.lines.lines.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// Starts `n` members at once.
fn members(n: usize, table: &str, base: u16, range: u16, env: &[(&str, &str)]) -> Vec<Member> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let starting: Vec<_> = (0..n)
        .map(|_| {
            let (table, env) = (table.to_owned(), env.clone());
            std::thread::spawn(move || {
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Member::start(&table, base, range, &env)
            })
        })
        .collect();
    starting
        .into_iter()
        .map(|t| t.join().expect("a member starts"))
        .collect()
}

/// A client peer of this process that scans `base..=base+range` and has not joined.
struct Client {
    peer: net::Peer,
    _runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(base: u16, range: u16) -> Client {
        Client::with_replicas(base, range, net::DEFAULT_TABLE_REPLICAS)
    }

    fn with_replicas(base: u16, range: u16, replicas: usize) -> Client {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let config = net::Config::default()
            .loopback(true)
            .port(base)
            .port_range(range)
            .client(true)
            .table_replicas(replicas)
            .timeout(Duration::from_secs(3));
        let peer = runtime
            .block_on(net::Peer::start(config))
            .expect("the client starts");
        Client {
            peer,
            _runtime: runtime,
        }
    }

    fn table(&self, name: &str) -> net::Table<i64> {
        self.peer.table(name)
    }

    /// The members as the members say (the client asks one).
    fn members(&self, name: &str) -> Vec<net::TableMember> {
        self.table(name).members().wait().unwrap_or_default()
    }

    /// What the member at `at` holds for `key` in its own store.
    fn held(&self, name: &str, at: &net::TableMember, key: &str) -> Held {
        let answer = net::call_tag::<Value>("net.table.get", json!([name, at.id, key]))
            .on(at.addr)
            .via(&self.peer)
            .timeout(Duration::from_secs(3))
            .wait();
        match answer {
            Ok(answer) => match &answer["record"] {
                Value::Null => Held::Nothing,
                record if record["deleted"] == json!(true) => Held::Tombstone,
                record => Held::Value(record["value"].as_i64().expect("a number")),
            },
            Err(e) if e.to_string().contains("not_owner") => Held::NotOwner,
            Err(e) => Held::Failed(e.to_string()),
        }
    }
}

/// One replica's state of one key.
#[derive(Debug, PartialEq)]
enum Held {
    Value(i64),
    Tombstone,
    Nothing,
    NotOwner,
    Failed(String),
}

fn key(i: usize) -> String {
    format!("k{i}")
}

/// Every key `0..n` reads back its value `i` (the first that does not, otherwise).
fn all_read_back(table: &net::Table<i64>, n: usize) -> Result<(), String> {
    for i in 0..n {
        match table.get(key(i)).wait() {
            Ok(Some(v)) if v == i as i64 => {}
            other => return Err(format!("{}: {other:?}", key(i))),
        }
    }
    Ok(())
}

#[test]
fn five_members_lose_two_then_a_sixth_joins_and_every_key_has_r_copies_again() {
    let table = "five";
    let base = free_range(8);
    let mut members = members(5, table, base, 7, &[]);
    let client = Client::new(base, 7);
    eventually("the client sees five members", SETTLE, || {
        client.members(table).len() == 5
    });
    let t = client.table(table);
    t.update((0..1000).map(|i| (key(i), i as i64)))
        .wait()
        .expect("1,000 writes");
    assert_eq!(t.len().wait().expect("counts"), 1000);

    members[1].kill();
    members[3].kill();
    let mut last = String::new();
    eventually("every key reads back after two SIGKILLs", SETTLE, || {
        all_read_back(&t, 1000).map_err(|e| last = e).is_ok()
    });

    members.push(Member::start(table, base, 7, &[]));
    let sixth = members[5].addr;
    eventually("four members", SETTLE, || client.members(table).len() == 4);
    let alive = client.members(table);
    let mut share = 0;
    eventually("R copies of every key on its owners", SETTLE, || {
        share = 0;
        (0..1000).all(|i| {
            let held: Vec<Held> = alive
                .iter()
                .map(|m| client.held(table, m, &key(i)))
                .collect();
            let copies = held.iter().filter(|h| **h == Held::Value(i as i64)).count();
            let owners = held.iter().filter(|h| **h != Held::NotOwner).count();
            if let Some(at) = alive.iter().position(|m| m.addr == sixth) {
                share += usize::from(held[at] == Held::Value(i as i64));
            }
            copies == 3 && owners == 3
        })
    });
    // Three copies on four members: about three quarters of the keys each.
    assert!(
        (600..=900).contains(&share),
        "the sixth member holds {share} of 1,000 keys"
    );
    assert_eq!(all_read_back(&t, 1000), Ok(()), "{last}");
}

#[test]
fn a_restarted_member_keeps_its_replicas_catches_up_and_a_pop_it_missed_stays() {
    let table = "restart";
    let base = free_range(6);
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| std::env::temp_dir().join(format!("net-table-it-{}-{i}", std::process::id())))
        .collect();
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let start = |i: usize| {
        let dir = dirs[i].display().to_string();
        Member::start(table, base, 5, &[("NET_TABLE_DIR", dir.as_str())])
    };
    let mut members: Vec<Member> = (0..3).map(start).collect();
    let client = Client::new(base, 5);
    eventually("three members", SETTLE, || client.members(table).len() == 3);
    let t = client.table(table);
    t.update((0..100).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes");
    let x_id = client
        .members(table)
        .into_iter()
        .find(|m| m.addr == members[0].addr)
        .expect("member 0 is listed")
        .id;

    // Member 0 dies; meanwhile 50 more keys, and k1 is popped.
    members[0].kill();
    t.update((100..150).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes without it");
    assert_eq!(t.pop(key(1)).wait().expect("pops"), Some(1));
    for m in &mut members[1..] {
        m.kill();
    }

    // Alone, it comes back with what it had (and knows it is not the whole table).
    members[0] = start(0);
    let x = client
        .members(table)
        .into_iter()
        .find(|m| m.id == x_id)
        .expect("the restarted member keeps its id");
    assert_eq!(x.addr, members[0].addr);
    assert_eq!(
        client.held(table, &x, &key(50)),
        Held::Value(50),
        "kept on disk"
    );
    assert_eq!(
        client.held(table, &x, &key(1)),
        Held::Value(1),
        "it missed the pop"
    );
    assert_eq!(
        client.held(table, &x, &key(120)),
        Held::Nothing,
        "it missed the write"
    );
    let err = t.get(key(50)).wait().expect_err("one of three members");
    assert!(matches!(err, net::Error::NoQuorum(_)), "{err}");

    // The others come back: it catches up, and the popped key stays gone.
    members[1] = start(1);
    members[2] = start(2);
    eventually("it catches up", SETTLE, || {
        let x = client.members(table).into_iter().find(|m| m.id == x_id);
        x.is_some_and(|x| {
            client.held(table, &x, &key(120)) == Held::Value(120)
                && client.held(table, &x, &key(1)) == Held::Tombstone
        })
    });
    eventually("every key reads back, k1 gone", SETTLE, || {
        t.get(key(1)).wait().is_ok_and(|v| v.is_none())
            && (0..150)
                .filter(|&i| i != 1)
                .all(|i| t.get(key(i)).wait().ok() == Some(Some(i as i64)))
    });
    drop(members);
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_member_that_leaves_hands_off_every_key_before_it_exits() {
    let table = "leave";
    let base = free_range(6);
    let env = [("NET_TABLE_REPLICAS", "2")];
    let mut members = members(4, table, base, 5, &env);
    let client = Client::with_replicas(base, 5, 2);
    eventually("four members", SETTLE, || client.members(table).len() == 4);
    let t = client.table(table);
    t.update((0..400).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes");

    let mut leaving = members.remove(0);
    leaving.signal("TERM");
    leaving.wait_for("stopped");
    let rest = client.members(table);
    assert_eq!(rest.len(), 3, "{rest:?}");
    // Right as it exits, every key is on its two owners among the three left: the
    // leaver gave them what it held before it said goodbye.
    for i in 0..400 {
        let copies = rest
            .iter()
            .filter(|m| client.held(table, m, &key(i)) == Held::Value(i as i64))
            .count();
        assert_eq!(copies, 2, "{}", key(i));
    }
}

#[test]
fn members_with_another_replication_factor_are_refused_loudly() {
    let table = "terms";
    let base = free_range(4);
    let _member = Member::start(table, base, 3, &[]);
    let out = net_command(base, 3, &[("NET_TABLE_REPLICAS", "2")])
        .args(["serve", "--join", table])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NET_TABLE_REPLICAS=3") && stderr.contains("NET_TABLE_REPLICAS=2"),
        "{stderr}"
    );
    let out = run(
        base,
        3,
        &[("NET_TABLE_REPLICAS", "2")],
        &["table", table, "get", "k"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NET_TABLE_REPLICAS=3"),
        "{}",
        text(&out.stderr)
    );
}

fn run(base: u16, range: u16, env: &[(&str, &str)], args: &[&str]) -> Output {
    net_command(base, range, env)
        .args(args)
        .output()
        .expect("runs net")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[test]
fn the_command_line_reads_and_writes_a_table() {
    let table = "cli";
    let base = free_range(5);
    let _members = members(3, table, base, 4, &[]);
    let net = |args: &[&str]| run(base, 4, &[], args);
    let out = net(&["table", table, "set", "ada", r#"{"name": "Ada"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(net(&["table", table, "set", "alan", "turing"])
        .status
        .success());
    let out = net(&["table", table, "get", "ada"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).ok(),
        Some(json!({"name": "Ada"}))
    );
    let out = net(&["table", table, "keys"]);
    assert_eq!(text(&out.stdout), "ada\nalan");
    let out = net(&["table", table, "items", "--json"]);
    let items: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(items, json!({"ada": {"name": "Ada"}, "alan": "turing"}));
    let out = net(&["table", table, "items"]);
    assert!(
        text(&out.stdout).contains("alan  \"turing\""),
        "{}",
        text(&out.stdout)
    );
    let out = net(&["table", table, "owners", "ada"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "a header and three owners"
    );
    let out = net(&["table", table, "pop", "alan"]);
    assert_eq!(text(&out.stdout), "\"turing\"");
    let out = net(&["table", table, "get", "alan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no key \"alan\""),
        "{}",
        text(&out.stderr)
    );
    // A table nobody joined: no member to reach.
    let out = net(&["table", "nobody", "get", "k"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no members"),
        "{}",
        text(&out.stderr)
    );
}

/// A test peer inside host `i` of `lab`, a member of `table`, seeded with every host.
fn lan_member(lab: &netns::Lab, i: usize, table: &str, port: u16) -> LanPeer {
    let seeds: Vec<String> = lab
        .hosts
        .iter()
        .map(|h| format!("{}:{port}", h.ip))
        .collect();
    let mut cmd = lab.command(i, TEST_PEER);
    for (name, _) in std::env::vars() {
        if name.starts_with("NET_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NET_PORT", port.to_string())
        .env("NET_PORT_RANGE", "0")
        .env("NET_DISCOVERY", "seeds")
        .env("NET_PEERS", seeds.join(","))
        .env("NET_TIMEOUT", "2s");
    let mut peer = LanPeer::start(cmd);
    peer.ask(&format!("table {table} join")).expect("joins");
    peer
}

/// A `net-test-peer` process driven line by line.
struct LanPeer {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LanPeer {
    fn start(mut cmd: Command) -> LanPeer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning net-test-peer");
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines.recv_timeout(SETTLE).expect("a READY line");
        assert!(ready.starts_with("READY"), "{ready}");
        LanPeer {
            child,
            stdin,
            lines,
        }
    }

    /// One command; its answer's JSON, or the error's text.
    fn ask(&mut self, line: &str) -> Result<Value, String> {
        use std::io::Write;
        writeln!(self.stdin, "{line}").expect("writing to the peer");
        let answer = self.lines.recv_timeout(SETTLE).expect("an answer");
        let (word, rest) = answer.split_once(' ').unwrap_or((&answer, "null"));
        let value: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
        match word {
            "TABLE" => Ok(value),
            _ => Err(value.as_str().map_or_else(|| answer.clone(), str::to_owned)),
        }
    }
}

impl Drop for LanPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

#[test]
fn a_member_cut_off_gets_no_quorum_while_the_majority_goes_on_and_all_converge() {
    if netns::skip_unless_root("tests/table.rs a_member_cut_off_gets_no_quorum...") {
        return;
    }
    let lab = netns::Lab::create(3, 7).expect("building the namespace LAN");
    let (table, port) = ("lan", 24110);
    let mut peers: Vec<LanPeer> = (0..3).map(|i| lan_member(&lab, i, table, port)).collect();
    eventually("every member knows three", SETTLE, || {
        peers.iter_mut().all(|p| {
            p.ask(&format!("table {table} members"))
                .is_ok_and(|m| m.as_array().is_some_and(|a| a.len() == 3))
        })
    });
    let set = |p: &mut LanPeer, i: usize| p.ask(&format!("table {table} set {} {i}", key(i)));
    for i in 0..50 {
        set(&mut peers[0], i).expect("writes before the cut");
    }
    // Cut host 2 off mid-write: the majority side goes on.
    ip(&["link", "set", &lab.hosts[2].veth, "down"]);
    for i in 50..100 {
        set(&mut peers[0], i).expect("the majority side writes");
        assert_eq!(
            peers[1].ask(&format!("table {table} get {}", key(i))),
            Ok(json!(i))
        );
    }
    let err = set(&mut peers[2], 1000).expect_err("the cut-off member alone");
    assert!(err.contains("no quorum"), "{err}");
    let err = peers[2]
        .ask(&format!("table {table} get {}", key(3)))
        .expect_err("alone");
    assert!(err.contains("no quorum"), "{err}");

    ip(&["link", "set", &lab.hosts[2].veth, "up"]);
    eventually("everyone converges after the heal", SETTLE, || {
        peers.iter_mut().all(|p| {
            p.ask(&format!("table {table} members"))
                .is_ok_and(|m| m.as_array().is_some_and(|a| a.len() == 3))
                && (0..100).all(|i| p.ask(&format!("table {table} get {}", key(i))) == Ok(json!(i)))
        })
    });
}

#[test]
fn the_scoreboard_example_keeps_its_board_when_a_member_is_killed() {
    let [a, b, c] = support::free_ports::<3>();
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let mut first = support::Process::start("table", &["member", &addr(a)]);
    first.wait_for("joined the scoreboard");
    let others: Vec<support::Process> = [b, c]
        .iter()
        .map(|&port| support::Process::start("table", &["member", &addr(port), &addr(a)]))
        .collect();
    for member in &others {
        member.wait_for("joined the scoreboard");
    }
    assert_eq!(
        support::ok("table", &["add", &addr(a), "ada", "3"]),
        "ada: 3"
    );
    assert_eq!(
        support::ok("table", &["add", &addr(b), "ada", "2"]),
        "ada: 5"
    );
    assert_eq!(
        support::ok("table", &["add", &addr(c), "alan", "4"]),
        "alan: 4"
    );
    assert_eq!(support::ok("table", &["board", &addr(c)]), "ada 5\nalan 4");
    let owners = support::ok("table", &["owners", &addr(a), "ada"]);
    assert_eq!(owners.lines().count(), 3, "{owners}");
    first.kill();
    assert_eq!(support::ok("table", &["board", &addr(b)]), "ada 5\nalan 4");
}
