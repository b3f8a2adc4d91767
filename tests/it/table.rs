//! The replicated table across processes: `net serve --join` members on loopback,
//! SIGKILLed, restarted with NET_TABLE_DIR, leaving, and refusing other terms; the `net
//! table` command line; the scoreboard example; and (as root) a member cut off by `ip
//! link set down` in a LAN of network namespaces. A client peer in this process reads and
//! writes; what one replica holds is asked of it directly (`net.table.get`, see
//! docs/PROTOCOL.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::netns::{skip_unless_root, Lab};
use crate::support::test_peer::{clear_net_env, TestPeer, TEST_PEER};
use crate::support::{confined, eventually_blocking, free_ports, free_range, runtime, Process};

const NET: &str = env!("CARGO_BIN_EXE_net");

/// A `net` command on loopback that scans `base..=base+range`.
fn net_command(base: u16, range: u16, env: &[(&str, &str)]) -> Command {
    let mut command = confined(NET);
    command
        .env("NET_PORT", base.to_string())
        .env("NET_PORT_RANGE", range.to_string())
        .env("NET_TIMEOUT", "3s");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// A `net serve --join TABLE` member process, SIGKILLed when dropped.
struct Member {
    process: Process,
    addr: SocketAddr,
}

impl Member {
    /// Starts a member of `table` and waits until it has joined.
    fn start(table: &str, base: u16, range: u16, env: &[(&str, &str)]) -> Member {
        let mut command = net_command(base, range, env);
        command.args(["serve", "--join", table]);
        let process = Process::spawn(&format!("net serve --join {table}"), command);
        let serving = process.wait_after("serving on ");
        let addr = serving
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {serving:?}"));
        process.wait_for("joined table");
        Member { process, addr }
    }

    /// SIGTERM: a clean stop, which unjoins (hands off) first; waits until it has stopped.
    fn terminate(&mut self) {
        let pid = self.process.pid().expect("the member still runs");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        self.process.wait_for("stopped");
    }

    /// SIGKILL: no goodbye, no handoff.
    fn kill(&mut self) {
        self.process.kill();
    }
}

/// Starts `n` members at once.
fn members(n: usize, table: &str, base: u16, range: u16, env: &[(&str, &str)]) -> Vec<Member> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| Member::start(table, base, range, env)))
            .collect();
        starting
            .into_iter()
            .map(|t| t.join().expect("a member starts"))
            .collect()
    })
}

/// A peer of this process that scans `base..=base+range` and has not joined any table.
struct Client {
    peer: net::Peer,
    _runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(base: u16, range: u16, replicas: usize) -> Client {
        let runtime = runtime();
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

    /// The members, as a member tells the client.
    fn members(&self, name: &str) -> Vec<net::TableMember> {
        self.table(name).members().wait().unwrap_or_default()
    }

    /// What the member `at` holds for `key` in its own store.
    fn held(&self, name: &str, at: &net::TableMember, key: &str) -> Held {
        let answer = net::call_tag::<Value>("net.table.get", json!([name, at.id, [key]]))
            .on(at.addr)
            .via(&self.peer)
            .timeout(Duration::from_secs(3))
            .wait();
        match answer {
            Ok(answer) => match &answer["found"][0] {
                Value::Null => Held::NotOwner,
                found => match &found["record"] {
                    Value::Null => Held::Nothing,
                    record if record["deleted"] == json!(true) => Held::Tombstone,
                    record => Held::Value(record["value"].as_i64().expect("a number")),
                },
            },
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

/// Whether every key of `keys` reads back its value `i`.
fn read_back(table: &net::Table<i64>, keys: impl IntoIterator<Item = usize>) -> bool {
    keys.into_iter()
        .all(|i| matches!(table.get(key(i)).wait(), Ok(Some(v)) if v == i as i64))
}

#[test]
fn five_members_lose_two_then_a_sixth_joins_and_every_key_has_r_copies_again() {
    let table = "five";
    let base = free_range(8);
    let mut members = members(5, table, base, 7, &[]);
    let client = Client::new(base, 7, 3);
    eventually_blocking("the client to see five members", || {
        client.members(table).len() == 5
    });
    let t = client.table(table);
    t.update((0..1000).map(|i| (key(i), i as i64)))
        .wait()
        .expect("1,000 writes");
    assert_eq!(t.len().wait().expect("counts"), 1000);

    members[1].kill();
    members[3].kill();
    eventually_blocking("every key to read back after two SIGKILLs", || {
        read_back(&t, 0..1000)
    });

    members.push(Member::start(table, base, 7, &[]));
    let sixth = members[5].addr;
    eventually_blocking("four members", || client.members(table).len() == 4);
    let alive = client.members(table);
    let mut share = 0;
    eventually_blocking("three copies of every key, on its owners", || {
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
    assert!(read_back(&t, 0..1000));
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
    let client = Client::new(base, 5, 3);
    eventually_blocking("three members", || client.members(table).len() == 3);
    let t = client.table(table);
    t.update((0..100).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes");
    let find = |id: &str| client.members(table).into_iter().find(|m| m.id == id);
    let x_id = client
        .members(table)
        .into_iter()
        .find(|m| m.addr == members[0].addr)
        .expect("member 0 is listed")
        .id;

    // Member 0 dies; meanwhile 50 more keys, and k1 is popped; then the others die too.
    members[0].kill();
    t.update((100..150).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes without it");
    assert_eq!(t.pop(key(1)).wait().expect("pops"), Some(1));
    for m in &mut members[1..] {
        m.kill();
    }

    // Alone, it comes back with what it had, and knows it is not the whole table.
    members[0] = start(0);
    let x = find(&x_id).expect("the restarted member keeps its id");
    assert_eq!(x.addr, members[0].addr);
    assert_eq!(client.held(table, &x, &key(50)), Held::Value(50), "kept");
    assert_eq!(
        client.held(table, &x, &key(1)),
        Held::Value(1),
        "missed the pop"
    );
    assert_eq!(
        client.held(table, &x, &key(120)),
        Held::Nothing,
        "missed the write"
    );
    let err = t.get(key(50)).wait().expect_err("one of three members");
    assert!(matches!(err, net::Error::NoQuorum(_)), "{err}");

    // The others come back: it catches up, and the popped key stays gone.
    members[1] = start(1);
    members[2] = start(2);
    eventually_blocking("the restarted member to catch up", || {
        find(&x_id).is_some_and(|x| {
            client.held(table, &x, &key(120)) == Held::Value(120)
                && client.held(table, &x, &key(1)) == Held::Tombstone
        })
    });
    eventually_blocking("every key to read back, k1 gone", || {
        t.get(key(1)).wait().is_ok_and(|v| v.is_none())
            && read_back(&t, (0..150).filter(|&i| i != 1))
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
    let mut members = members(4, table, base, 5, &[("NET_TABLE_REPLICAS", "2")]);
    let client = Client::new(base, 5, 2);
    eventually_blocking("four members", || client.members(table).len() == 4);
    let t = client.table(table);
    t.update((0..400).map(|i| (key(i), i as i64)))
        .wait()
        .expect("writes");
    members[0].terminate();
    let said = members[0].process.lines();
    assert!(
        !said.iter().any(|l| l.contains("leaving the table")),
        "the handoff failed: {said:#?}"
    );
    let rest = client.members(table);
    assert_eq!(rest.len(), 3, "{rest:?}");
    // Right as it exits, every key is on its two owners among the three left: the leaver
    // gave them what it held before it said goodbye.
    for i in 0..400 {
        let held: Vec<Held> = rest
            .iter()
            .map(|m| client.held(table, m, &key(i)))
            .collect();
        let copies = held.iter().filter(|h| **h == Held::Value(i as i64)).count();
        assert_eq!(copies, 2, "{}: the three left hold {held:?}", key(i));
    }
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
fn members_with_another_replication_factor_are_refused_loudly() {
    let table = "terms";
    let base = free_range(4);
    let _member = Member::start(table, base, 3, &[]);
    let other = [("NET_TABLE_REPLICAS", "2")];
    let out = run(base, 3, &other, &["serve", "--join", table]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NET_TABLE_REPLICAS=3") && stderr.contains("NET_TABLE_REPLICAS=2"),
        "{stderr}"
    );
    let out = run(base, 3, &other, &["table", table, "get", "k"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NET_TABLE_REPLICAS=3"),
        "{}",
        text(&out.stderr)
    );
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
    // Text that starts like JSON must be JSON: a typo is pointed out, not stored.
    let out = net(&["table", table, "set", "ada", r#"{"name": Ada}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not valid JSON"),
        "{}",
        text(&out.stderr)
    );
    let out = net(&["table", table, "get", "ada"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).ok(),
        Some(json!({"name": "Ada"}))
    );
    assert_eq!(text(&net(&["table", table, "keys"]).stdout), "ada\nalan");
    let out = net(&["table", table, "items", "--json"]);
    let items: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(items, json!({"ada": {"name": "Ada"}, "alan": "turing"}));
    let out = text(&net(&["table", table, "items"]).stdout);
    assert!(out.contains("alan  \"turing\""), "{out}");
    let out = text(&net(&["table", table, "owners", "ada"]).stdout);
    assert_eq!(out.lines().count(), 4, "a header and three owners: {out}");
    assert_eq!(
        text(&net(&["table", table, "pop", "alan"]).stdout),
        "\"turing\""
    );
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

#[test]
fn the_scoreboard_example_keeps_its_board_when_a_member_is_killed() {
    use crate::support::ok;
    let [a, b, c] = free_ports::<3>();
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let mut first = Process::start("table", &["member", &addr(a)]);
    first.wait_for("joined the scoreboard");
    let others: Vec<Process> = [b, c]
        .iter()
        .map(|&port| Process::start("table", &["member", &addr(port), &addr(a)]))
        .collect();
    for member in &others {
        member.wait_for("joined the scoreboard");
    }
    assert_eq!(ok("table", &["add", &addr(a), "ada", "3"]), "ada: 3");
    assert_eq!(ok("table", &["add", &addr(b), "ada", "2"]), "ada: 5");
    assert_eq!(ok("table", &["add", &addr(c), "alan", "4"]), "alan: 4");
    assert_eq!(ok("table", &["board", &addr(c)]), "ada 5\nalan 4");
    let owners = ok("table", &["owners", &addr(a), "ada"]);
    assert_eq!(owners.lines().count(), 3, "{owners}");
    first.kill();
    assert_eq!(ok("table", &["board", &addr(b)]), "ada 5\nalan 4");
}

/// A test peer inside host `i` of `lab`, a member of `table`, seeded with every host.
fn lan_member(lab: &Lab, i: usize, table: &str, port: u16) -> TestPeer {
    let seeds: Vec<String> = lab
        .hosts
        .iter()
        .map(|h| format!("{}:{port}", h.ip))
        .collect();
    let mut cmd = lab.command(i, TEST_PEER);
    clear_net_env(&mut cmd);
    cmd.env("NET_PORT", port.to_string())
        .env("NET_PORT_RANGE", "0")
        .env("NET_DISCOVERY", "seeds")
        .env("NET_PEERS", seeds.join(","))
        .env("NET_TIMEOUT", "2s");
    let mut peer = TestPeer::start(cmd);
    ask(&mut peer, &format!("table {table} join")).expect("joins");
    peer
}

/// One `table ...` command of a test peer: its answer, or the error's text.
fn ask(peer: &mut TestPeer, line: &str) -> Result<Value, String> {
    peer.send(line);
    match peer.answer(Duration::from_secs(30)) {
        (word, value) if word == "TABLE" => Ok(value),
        (_, value) => Err(value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned)),
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

#[test]
fn a_member_cut_off_gets_no_quorum_while_the_majority_goes_on_and_all_converge() {
    if skip_unless_root("tests/it/table.rs a_member_cut_off_gets_no_quorum...") {
        return;
    }
    let lab = Lab::create(3, 7).expect("building the namespace LAN");
    let (table, port) = ("lan", 24110);
    let mut peers: Vec<TestPeer> = (0..3).map(|i| lan_member(&lab, i, table, port)).collect();
    let members = format!("table {table} members");
    let three = |p: &mut TestPeer| {
        ask(p, &members).is_ok_and(|m| m.as_array().is_some_and(|a| a.len() == 3))
    };
    eventually_blocking("every member to know three", || peers.iter_mut().all(three));
    let set = |p: &mut TestPeer, i: usize| ask(p, &format!("table {table} set {} {i}", key(i)));
    let get = |p: &mut TestPeer, i: usize| ask(p, &format!("table {table} get {}", key(i)));
    for i in 0..50 {
        set(&mut peers[0], i).expect("writes before the cut");
    }
    // Cut host 2 off mid-write: the majority side goes on.
    ip(&["link", "set", &lab.hosts[2].veth, "down"]);
    for i in 50..100 {
        set(&mut peers[0], i).expect("the majority side writes");
        assert_eq!(get(&mut peers[1], i), Ok(json!(i)));
    }
    let err = set(&mut peers[2], 1000).expect_err("the cut-off member alone");
    assert!(err.contains("no quorum"), "{err}");
    let err = get(&mut peers[2], 3).expect_err("the cut-off member alone");
    assert!(err.contains("no quorum"), "{err}");

    ip(&["link", "set", &lab.hosts[2].veth, "up"]);
    eventually_blocking("everyone to converge after the heal", || {
        peers
            .iter_mut()
            .all(|p| three(p) && (0..100).all(|i| get(p, i) == Ok(json!(i))))
    });
}
