//! docs/PROTOCOL.md is enough to write a client: tests/clients/client.py, plain Python written
//! from the document alone, calls a real peer, and what it got back is checked here. The
//! client is told this module's path, from which it computes the default tags.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::support::loopback;

/// Called by its default tag, computed by the client from the path `it::protocol_client::multiply`.
#[net::connect]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[derive(Debug, Serialize, Deserialize)]
enum LookupError {
    NoSuchKey { key: String },
}

/// A typed error for the client to receive as `raised`.
#[net::connect("protocol_client::lookup")]
fn lookup(key: String) -> Result<String, LookupError> {
    match key.as_str() {
        "answer" => Ok("42".to_owned()),
        _ => Err(LookupError::NoSuchKey { key }),
    }
}

#[net::connect]
fn explode() -> i64 {
    panic!("boom")
}

/// Answers after `ms`, so that a later fast call overtakes it.
#[net::connect("protocol_client::slow")]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// How many `wait_for_cancel` calls were stopped before finishing.
static CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// Counts a `wait_for_cancel` that is dropped (cancelled) rather than finished.
struct CountIfDropped;

impl Drop for CountIfDropped {
    fn drop(&mut self) {
        CANCELLED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs for 10 s unless cancelled; the client cancels it.
#[net::connect("protocol_client::wait_for_cancel")]
async fn wait_for_cancel() -> bool {
    let guard = CountIfDropped;
    tokio::time::sleep(Duration::from_secs(10)).await;
    std::mem::forget(guard);
    false
}

#[net::connect("protocol_client::cancelled_count")]
fn cancelled_count() -> usize {
    CANCELLED.load(Ordering::SeqCst)
}

/// What one-way `record` calls left behind.
static RECORDED: Mutex<Vec<Value>> = Mutex::new(Vec::new());

#[net::connect("protocol_client::record", oneway)]
fn record(value: Value) {
    RECORDED.lock().unwrap().push(value);
}

#[net::connect("protocol_client::recorded")]
fn recorded() -> Vec<Value> {
    RECORDED.lock().unwrap().clone()
}

/// Calls the client's own `pass_through` back over the connection the call came in on.
#[net::connect("protocol_client::ask_back")]
async fn ask_back(caller: net::Caller, value: Value) -> Result<Value, String> {
    net::pass_through(value)
        .on(&caller)
        .await
        .map_err(|e| e.to_string())
}

fn python3_present() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_written_from_protocol_md_calls_a_peer() {
    if !python3_present() {
        // Straight to stderr: the test harness captures eprintln! of passing tests.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIP protocol_client: python3 not found, the Python client was not run ***\n"
        );
        return;
    }
    let peer = net::Peer::start(loopback()).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/client.py");
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(peer.addr().to_string())
        .arg(module_path!())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("client.py did not finish within 30 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client.py failed:\n{stderr}");
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("client.py printed no JSON ({e}):\n{stderr}"));

    // Handshake: the peer's hello, and its id decoded by the client.
    assert_eq!(out["hello"]["protocol"], 1);
    assert_eq!(out["hello"]["id"], peer.id().to_string());
    assert_eq!(out["hello"]["max_frame"], peer.config().max_frame);
    assert_eq!(
        out["peer"],
        json!({"host": "127.0.0.1", "port": peer.addr().port(), "group": null})
    );

    // Every outcome kind.
    let value = json!({"dict": {"nested": {"k": "v"}}, "list": [1, -2, 3.5, "", null, true, false],
                       "empty": "", "unicode": "héllo ✓"});
    assert_eq!(out["pass_through"], json!({ "ok": value }));
    assert_eq!(out["multiply"], json!({"ok": 42}));
    assert_eq!(out["kwargs"], json!({"ok": 42}));
    assert_eq!(out["lookup_ok"], json!({"ok": "42"}));
    assert_eq!(
        out["lookup_err"],
        json!({"raised": {"NoSuchKey": {"key": "nope"}}})
    );
    assert_eq!(
        out["null"],
        json!({"flag": {"name": "NULL", "detail": null}})
    );
    let unknown = &out["unknown"]["flag"];
    assert_eq!(unknown["name"], "INVALID_CONNECTION", "{out}");
    assert!(
        unknown["detail"]
            .as_array()
            .unwrap()
            .contains(&json!("pass_through (net::builtins::pass_through)")),
        "{unknown}"
    );
    assert_eq!(out["panic"]["panic"]["message"], "boom");
    let location = out["panic"]["panic"]["location"].as_str().unwrap();
    assert!(location.contains("protocol_client::explode"), "{location}");
    let bad = out["bad_args"]["bad_args"]["message"].as_str().unwrap();
    assert!(bad.contains("(a, b)") && bad.contains("six"), "{bad}");

    // Built-ins, and the default tag the client computed from the document.
    assert_eq!(out["info"]["ok"]["port"], peer.addr().port());
    assert_eq!(out["info"]["ok"]["protocol"], 1);
    let tag = out["multiply_tag"].as_str().unwrap();
    assert_eq!(tag, multiply(0, 0).tag());
    assert_eq!(
        out["connections"]["ok"][tag],
        format!("{}::multiply", module_path!()),
        "{}",
        out["connections"]
    );

    // Replies out of order, matched by id.
    assert_eq!(out["order"], json!(["fast", "slow"]));
    assert_eq!(out["slow"], json!({"ok": 300}));
    assert_eq!(out["fast"], json!({"ok": "fast"}));

    // Cancel stopped the work; one-way ran and answered nothing.
    assert!(out["cancelled_count"]["ok"].as_u64().unwrap() >= 1, "{out}");
    assert!(out["recorded"]["ok"]
        .as_array()
        .unwrap()
        .contains(&json!({"note": [1, 2, 3]})));
    assert_eq!(out["stray_replies"], json!([]));

    // The reverse channel: the peer called the client, with an id of its own.
    assert_eq!(out["ask_back"], json!({"ok": {"back": [true, null]}}));
    let served = out["served"].as_array().unwrap();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["tag"], "pass_through");
    assert_eq!(served[0]["args"], json!([{"back": [true, null]}]));
    assert!(served[0]["timeout_ms"].as_u64().is_some_and(|t| t > 0));

    peer.shutdown().await;
}
