//! The `net` command line run as a user runs it: against a `net serve` process, checking
//! output, JSON and exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const NET: &str = env!("CARGO_BIN_EXE_net");

/// A `net serve` child, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra_env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(NET);
    command
        .arg("serve")
        .env("NET_LOOPBACK", "1")
        .env("NET_PORT", "0")
        .stdout(Stdio::piped());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("serving on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Served { child, addr }
}

fn net(args: &[&str]) -> Output {
    Command::new(NET)
        .args(args)
        .env("NET_LOOPBACK", "1")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn call_prints_results_as_json() {
    let served = serve(&[]);
    let out = net(&["call", &served.addr, "multiply", "5", "10"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "50.0");
    let out = net(&[
        "call",
        &served.addr,
        "pass_through",
        r#"{"a": [1, null, "x"]}"#,
    ]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value, serde_json::json!({"a": [1, null, "x"]}));
    let out = net(&["call", &served.addr, "hello", "world"]);
    assert!(
        stdout(&out).contains("hello world, from 127.0.0.1:"),
        "{}",
        stdout(&out)
    );
    let out = net(&["call", &served.addr, "multiply", "--args", "[2, 4]"]);
    assert_eq!(stdout(&out).trim(), "8.0");
}

#[test]
fn errors_go_to_stderr_with_exit_codes() {
    let served = serve(&[]);
    let out = net(&["call", &served.addr, "no.such.function"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("INVALID_CONNECTION"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let out = net(&["call", &served.addr, "multiply", "1", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("rejected the arguments"),
        "{}",
        stderr(&out)
    );
    let out = net(&["call", &served.addr, "multiply", "--args", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--args must be a JSON array"),
        "{}",
        stderr(&out)
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let out = net(&["call", &dead_addr, "multiply", "1", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&dead_addr), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one-line errors");
    let out = net(&["call", "not-a-peer", "multiply"]);
    assert_eq!(out.status.code(), Some(2));
    let out = net(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn info_is_readable_and_json() {
    let served = serve(&[("NET_GROUP", "lab")]);
    let out = net(&["info", &served.addr]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("address        {}", served.addr)),
        "{text}"
    );
    assert!(text.contains("group          lab"), "{text}");
    assert!(text.contains("net::serve::multiply"), "{text}");
    let out = net(&["info", &served.addr, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["group"], "lab");
    assert_eq!(
        format!("{}:{}", info["host"].as_str().unwrap(), info["port"]),
        served.addr
    );
}

#[test]
fn help_lists_every_subcommand_with_examples() {
    let out = net(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for sub in ["info", "call", "serve"] {
        assert!(stdout(&out).contains(sub), "{sub}");
    }
    let out = net(&["call", "--help"]);
    assert!(stdout(&out).contains("Examples:"));
}
