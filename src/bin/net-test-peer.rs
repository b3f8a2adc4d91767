//! A peer process for the discovery tests and benchmark: configured by `NET_*`, driven by
//! one-line commands on stdin, answering one line each on stdout.
//!
//! Commands: `peers [refresh] [group=G] [hubs] [onhost]`, `until N [refresh] [timeout=MS]
//! [filters]`, `report [refresh]`, `events`, `call HOST:PORT`, `echo HOST:PORT TEXT`,
//! `touch HOST:PORT`, `self`, `table NAME join|members|len|get KEY|set KEY JSON`, `quit`.
//! Answers start with a word (`READY`, `PEERS`, `SEEN`, `TIMEOUT`, `REPORT`, `EVENTS`,
//! `RESULT`, `ECHOED`, `TOUCHED`, `SELF`, `TABLE`, `ERROR`) followed by JSON.
//!
//! With `TEST_PEER_LAZY=1` it starts no peer itself (its READY has no id): the first
//! command that needs one starts the process-wide peer by itself, as a program that only
//! calls does.
//!
//! It refuses to run unconfined (without `NET_LOOPBACK=1`) in the machine's own network
//! namespace: outside a namespace a test made, a peer must never multicast or probe the
//! real interface.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// Lets a test check that a call really crossed to this process.
#[net::connect("net_test_peer::whoami")]
fn whoami() -> u32 {
    std::process::id()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// True when this process may be in the machine's own network namespace: its namespace is
/// the one named by `TEST_PEER_HOME_NETNS` (the test's own, which the test passes), or that
/// of PID 1, or neither can be read (assume the worst).
fn in_root_namespace() -> bool {
    let Ok(own) = std::fs::read_link("/proc/self/ns/net") else {
        return true;
    };
    if let Ok(home) = std::env::var("TEST_PEER_HOME_NETNS") {
        return own.to_string_lossy() == home;
    }
    match std::fs::read_link("/proc/1/ns/net") {
        Ok(init) => own == init,
        Err(_) => true,
    }
}

/// The `peers()` query a command's words describe.
fn query(words: &[&str]) -> net::Peers {
    let mut q = net::peers();
    for word in words {
        match *word {
            "refresh" => q = q.refresh(),
            "hubs" => q = q.hubs_only(),
            "onhost" => q = q.on_host(),
            w => {
                if let Some(g) = w.strip_prefix("group=") {
                    q = q.group(g);
                }
            }
        }
    }
    q
}

/// One `table NAME ...` command on the process-wide peer's table `name`.
fn table(name: &str, words: &[&str]) -> Result<serde_json::Value, String> {
    let table = net::Table::<serde_json::Value>::new(name);
    let done = |r: net::Result<()>| r.map(|()| serde_json::Value::Null);
    let answer = match words {
        ["join"] => done(table.join().wait()),
        ["members"] => table.members().wait().map(|m| json!(m)),
        ["len"] => table.len().wait().map(|n| json!(n)),
        ["get", key] => table.get(*key).wait().map(|v| json!(v)),
        ["set", key, value] => {
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            done(table.set(*key, value).wait())
        }
        _ => return Err(format!("unknown table command {words:?}")),
    };
    answer.map_err(|e| e.to_string())
}

fn main() {
    let config = match net::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("net-test-peer: {e}");
            std::process::exit(2);
        }
    };
    if !config.loopback && in_root_namespace() {
        eprintln!(
            "net-test-peer: refusing to run without NET_LOOPBACK=1 in the machine's own network \
             namespace; run it inside a namespace the test created"
        );
        std::process::exit(2);
    }
    let lazy = std::env::var("TEST_PEER_LAZY").is_ok_and(|v| v == "1");
    let peer = if lazy {
        None
    } else {
        match net::start(config) {
            Ok(peer) => Some(peer),
            Err(e) => {
                eprintln!("net-test-peer: {e}");
                std::process::exit(3);
            }
        }
    };
    // Drained when `events` is asked, not by a thread of its own: every event the peer
    // sent before the question is in the answer (a thread could still be behind, and a
    // test that asks right after a refresh would miss that refresh's events).
    let mut membership = peer.as_ref().map(|peer| peer.membership());
    let mut events = Vec::<String>::new();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("net-test-peer: {e}");
            std::process::exit(3);
        }
    };
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say(format!(
        "READY {}",
        json!({
            "id": peer.as_ref().map(|p| p.id()),
            "addr": peer.as_ref().map(|p| p.addr()),
            "pid": std::process::id(),
            "ms": now_ms() as u64
        })
    ));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["peers", rest @ ..] => match query(rest).wait() {
                Ok(peers) => say(format!("PEERS {}", json!(peers))),
                Err(e) => say(format!("ERROR {}", json!(e.to_string()))),
            },
            ["until", n, rest @ ..] => {
                let want: usize = n.parse().unwrap_or(usize::MAX);
                let timeout = rest
                    .iter()
                    .find_map(|w| w.strip_prefix("timeout="))
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(5000);
                let deadline = Instant::now() + Duration::from_millis(timeout);
                loop {
                    match query(rest).wait() {
                        Ok(peers) if peers.len() >= want => {
                            say(format!("SEEN {} {}", now_ms(), json!(peers)));
                            break;
                        }
                        Ok(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Ok(_) => {
                            let report = rt.block_on(query(rest).report());
                            let text = report.map_or_else(|e| e.to_string(), |r| r.to_string());
                            say(format!("TIMEOUT {}", json!(text)));
                            break;
                        }
                        Err(e) => {
                            say(format!("ERROR {}", json!(e.to_string())));
                            break;
                        }
                    }
                }
            }
            ["report", rest @ ..] => match rt.block_on(query(rest).report()) {
                Ok(report) => say(format!("REPORT {}", json!(report.to_string()))),
                Err(e) => say(format!("ERROR {}", json!(e.to_string()))),
            },
            ["events"] => {
                if let Some(membership) = membership.as_mut() {
                    drain(membership, &mut events);
                }
                say(format!("EVENTS {}", json!(events)));
            }
            ["call", target] => {
                let pid = whoami().on(*target).wait();
                let info = net::info().on(*target).wait();
                match (pid, info) {
                    (Ok(pid), Ok(info)) => {
                        say(format!("RESULT {}", json!({"pid": pid, "id": info.id})))
                    }
                    (Err(e), _) | (_, Err(e)) => say(format!("ERROR {}", json!(e.to_string()))),
                }
            }
            ["echo", target, text] => {
                // The text goes out as an argument and comes back as the result, so a
                // capture of the wire shows whether either crossed it in the clear.
                match net::pass_through(json!(text)).on(*target).wait() {
                    Ok(back) => say(format!("ECHOED {back}")),
                    Err(e) => say(format!("ERROR {}", json!(e.to_string()))),
                }
            }
            ["touch", target] => {
                // One TCP connect, refused or not: it makes the kernel resolve the
                // neighbour, as any unicast traffic does.
                let reached = target.parse::<SocketAddr>().ok().map(|addr| {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
                });
                say(format!("TOUCHED {}", json!(reached)));
            }
            ["table", name, rest @ ..] => say(match table(name, rest) {
                Ok(answer) => format!("TABLE {answer}"),
                Err(e) => format!("ERROR {}", json!(e)),
            }),
            ["self"] => match net::local_peer() {
                Ok(me) => say(format!(
                    "SELF {}",
                    json!({"id": me.id(), "addr": me.addr(), "client": me.config().client})
                )),
                Err(e) => say(format!("ERROR {}", json!(e.to_string()))),
            },
            ["quit"] => break,
            _ => say(format!(
                "ERROR {}",
                json!(format!("unknown command {line:?}"))
            )),
        }
    }
    if let Some(peer) = peer.or_else(|| net::local_peer().ok()) {
        rt.block_on(peer.shutdown());
    }
}

/// Everything `membership` holds now, one line per event, onto `log`.
fn drain(
    membership: &mut tokio::sync::broadcast::Receiver<net::Membership>,
    log: &mut Vec<String>,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        let line = match membership.try_recv() {
            Ok(net::Membership::Joined(p)) => format!("joined {}", p.addr),
            Ok(net::Membership::Updated(p)) => format!("updated {}", p.addr),
            Ok(net::Membership::Left { peer, reason }) => format!("left {} {reason}", peer.addr),
            Ok(_) => "other".to_owned(),
            Err(TryRecvError::Lagged(n)) => format!("lagged {n}"),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        };
        log.push(line);
    }
}
