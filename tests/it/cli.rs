//! The `net` command line run as a user runs it: against a `net serve` process, checking
//! output, JSON and exit codes.

use std::process::Output;

use crate::support::{confined, example, free_range, Process, STDERR};

const NET: &str = env!("CARGO_BIN_EXE_net");

/// A `net serve` process (killed when dropped) and the address it serves on.
struct Served {
    _process: Process,
    addr: String,
}

fn serve(extra_env: &[(&str, &str)]) -> Served {
    serve_with(&[], extra_env)
}

fn serve_with(args: &[&str], extra_env: &[(&str, &str)]) -> Served {
    let mut command = confined(NET);
    command
        .arg("serve")
        .args(args)
        .env("NET_PORT", "0")
        .envs(extra_env.iter().copied());
    let mut process = Process::spawn("net serve", command);
    let line = process.next_line();
    let security = process.next_line();
    assert!(
        security.contains("secured"),
        "unexpected second line: {security:?}"
    );
    let addr = line
        .strip_prefix("serving on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Served {
        _process: process,
        addr,
    }
}

fn net(args: &[&str]) -> Output {
    net_with(args, &[])
}

fn net_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    confined(NET)
        .args(args)
        .envs(env.iter().copied())
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

#[test]
fn peers_lists_served_peers_as_a_table_and_json() {
    let base = free_range(4);
    let range = [
        ("NET_PORT", base.to_string()),
        ("NET_PORT_RANGE", "3".to_owned()),
    ];
    let env: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plain = serve(&env);
    let mut lab_env = env.clone();
    lab_env.push(("NET_GROUP", "lab"));
    lab_env.push(("NET_IS_HUB", "1"));
    let lab = serve(&lab_env);

    let out = net_with(&["peers"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("ID"), "{table}");
    for addr in [&plain.addr, &lab.addr] {
        assert!(table.contains(addr.as_str()), "{addr} missing:\n{table}");
    }
    assert!(table.contains("scan"), "{table}");

    let out = net_with(&["peers", "--group", "lab", "--hubs", "--json"], &env);
    let peers: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let peers = peers.as_array().unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0]["addr"], lab.addr.as_str());
    assert_eq!(peers[0]["hub"], true);

    // A unique prefix of an id names the peer.
    let id = peers[0]["id"].as_str().unwrap();
    let out = net_with(&["info", &id[..6], "--json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["id"], id);
    let out = net_with(&["info", "zzzz"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no peer's id starts with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_explains_an_empty_network() {
    let base = free_range(3).to_string();
    let env = [("NET_PORT", base.as_str()), ("NET_PORT_RANGE", "2")];
    let out = net_with(&["doctor"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("ports {base}..=")), "{text}");
    assert!(text.contains("scan   found nothing"), "{text}");
    assert!(text.contains("nothing listening"), "{text}");
    assert!(text.contains("NET_LOOPBACK"), "{text}");
    assert!(text.contains("0 peer(s) in all"), "{text}");
    assert!(text.contains("hint: start one with `net serve`"), "{text}");
    // An empty `net peers` says why on stderr, and prints nothing on stdout.
    let out = net_with(&["peers"], &env);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("no peers found"), "{}", stderr(&out));
}

#[test]
fn watch_prints_published_events() {
    let base = free_range(3).to_string();
    let env = [("NET_PORT", base.as_str()), ("NET_PORT_RANGE", "2")];
    let mut command = confined(example("simple_subscription"));
    command.envs(env);
    let mut hub = Process::spawn("simple_subscription hub", command);
    let line = hub.next_line();
    assert!(line.starts_with("[hub] ready at"), "{line}");

    let mut command = confined(NET);
    command.args(["watch", "line", "--json"]).envs(env);
    let mut watch = Process::spawn("net watch", command);
    // Its first line on stderr. Every wait here has a deadline, so the test fails instead
    // of hanging if events never come.
    let status = watch.wait_after(STDERR);
    assert!(
        status.contains("watching \"line\" on 1 peer(s)"),
        "{status}"
    );

    hub.say("hello watchers");
    hub.say("second line");
    let got: Vec<serde_json::Value> = (0..2)
        .map(|_| serde_json::from_str(&watch.next_line()).unwrap())
        .collect();
    watch.kill();
    hub.finish();
    let hub_addr = line
        .trim_start_matches("[hub] ready at ")
        .split(';')
        .next()
        .unwrap();
    assert_eq!(got[0]["from"], hub_addr);
    assert_eq!(got[0]["event"], "line");
    assert_eq!(got[0]["args"], serde_json::json!(["hello watchers"]));
    assert_eq!(got[1]["args"], serde_json::json!(["second line"]));
}

#[test]
fn call_takes_options_after_the_arguments_and_explains_bad_ones() {
    let served = serve(&[]);
    let out = net(&[
        "call",
        &served.addr,
        "multiply",
        "6",
        "7",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42.0");
    let out = net(&["call", &served.addr, "multiply", "-2", "3"]);
    assert_eq!(stdout(&out).trim(), "-6.0", "{}", stderr(&out));
    let out = net(&["call", &served.addr, "multiply", "1", "2", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("3 arguments given, the function takes 2 (a, b)"),
        "{}",
        stderr(&out)
    );
    let out = net(&["call", &served.addr, "pass_through", "{a: 1}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("argument 1 `{a: 1}` is not valid JSON"),
        "{}",
        stderr(&out)
    );
    // A plain word is still a string.
    let out = net(&["call", &served.addr, "pass_through", "word"]);
    assert_eq!(stdout(&out).trim(), "\"word\"");
    let out = net(&["call", &served.addr, "multiplx", "1", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("did you mean \"multiply\""), "{text}");
    assert!(
        !text.contains("pass_through"),
        "built-ins are not listed: {text}"
    );
}

#[test]
fn peers_count_the_programs_own_functions_and_show_round_trips_in_ms() {
    let base = free_range(3);
    let env = [
        ("NET_PORT", base.to_string()),
        ("NET_PORT_RANGE", "2".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _served = serve(&env);
    let out = net_with(&["peers"], &env);
    let table = stdout(&out);
    let row = table.lines().nth(1).unwrap_or_default().to_owned();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // ID ADDRESS KIND GROUP HUB FUNCTIONS ...: `net serve` has multiply and hello.
    assert_eq!(
        cells.get(2..6),
        Some(&["net", "-", "no", "2"][..]),
        "{table}"
    );
    let out = net_with(&["peers", "--json"], &env);
    let peers: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(peers[0]["rtt_ms"].is_f64(), "{peers}");
    assert!(peers[0].get("rtt").is_none(), "{peers}");
}

#[test]
fn info_lists_the_events_a_peer_publishes() {
    let mut command = confined(example("simple_subscription"));
    command.env("NET_PORT", "0");
    let mut hub = Process::spawn("simple_subscription hub", command);
    let line = hub.next_line();
    let addr = line
        .trim_start_matches("[hub] ready at ")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let out = net(&["info", &addr]);
    assert!(
        stdout(&out).contains("events         line"),
        "{}",
        stdout(&out)
    );
    hub.finish();
}

#[test]
fn watch_says_when_no_peer_publishes_the_event() {
    let base = free_range(3).to_string();
    let env = [("NET_PORT", base.as_str()), ("NET_PORT_RANGE", "2")];
    let mut command = confined(example("simple_subscription"));
    command.envs(env);
    let mut hub = Process::spawn("simple_subscription hub", command);
    hub.next_line();
    let mut command = confined(NET);
    command.args(["watch", "lnie"]).envs(env);
    let mut watch = Process::spawn("net watch lnie", command);
    let said = watch.wait_after(STDERR);
    assert!(
        said.contains("no peer found publishes \"lnie\" yet"),
        "{said}"
    );
    assert!(said.contains("did you mean \"line\"?"), "{said}");
    watch.kill();
    hub.finish();
}

#[test]
fn doctor_reports_as_json_and_probes_neighbours_only_when_asked() {
    let base = free_range(3).to_string();
    let env = [("NET_PORT", base.as_str()), ("NET_PORT_RANGE", "2")];
    let out = net_with(&["doctor", "--json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let paths = report["paths"].as_array().unwrap();
    let arp = paths.iter().find(|p| p["path"] == "arp").unwrap();
    assert_eq!(arp["ran"], false, "{arp}");
    assert!(
        arp["detail"].as_str().unwrap().contains("not asked for"),
        "{arp}"
    );
    let scan = paths.iter().find(|p| p["path"] == "scan").unwrap();
    assert_eq!(scan["ran"], true, "{scan}");
    assert_eq!(report["peers"], serde_json::json!([]));
}

#[test]
fn a_secret_file_closes_the_mesh_and_doctor_says_when_it_is_open() {
    let dir = std::env::temp_dir().join(format!("net-cli-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "the cli test's mesh secret\n").unwrap();
    let path = file.to_str().unwrap();

    let served = serve_with(&["--secret-file", path], &[]);
    let out = net(&["call", &served.addr, "pass_through", "hi"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("requires a shared secret"),
        "{}",
        stderr(&out)
    );
    let out = net(&[
        "call",
        &served.addr,
        "pass_through",
        "hi",
        "--secret-file",
        path,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "\"hi\"");
    let out = net_with(&["info", &served.addr], &[("NET_SECRET_FILE", path)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = net(&[
        "call",
        &served.addr,
        "pass_through",
        "hi",
        "--secret-file",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the secret"),
        "{}",
        stderr(&out)
    );

    let base = free_range(1).to_string();
    let env = [("NET_PORT", base.as_str()), ("NET_PORT_RANGE", "0")];
    let open = stdout(&net_with(&["doctor"], &env));
    assert!(
        open.contains("security: none; any program that can reach"),
        "{open}"
    );
    let closed = stdout(&net_with(&["doctor", "--secret-file", path], &env));
    assert!(closed.contains("security: secured"), "{closed}");
    std::fs::remove_dir_all(&dir).unwrap();
}
