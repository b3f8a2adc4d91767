//! Whole programs as a user runs them: two processes calling each other (the quickstart),
//! and a bad `NET_*` value reported by name.

use std::path::PathBuf;
use std::process::Command;

/// An example binary; `cargo test` builds every example before it runs the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .expect("target directory layout");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// A port range of three free ports, so the demo cannot collide with other tests.
fn free_range() -> u16 {
    (41_000u16..60_000)
        .step_by(11)
        .find(|base| {
            (*base..=base + 2).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .expect("some free ports")
}

#[test]
fn two_processes_call_each_other() {
    let base = free_range();
    let output = Command::new(example("quickstart"))
        .env("NET_LOOPBACK", "1")
        .env("NET_PORT", base.to_string())
        .env("NET_PORT_RANGE", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "[second] multiply(5, 10) on 127.0.0.1:{base} = 50"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "[first]  multiply(6, 7) on 127.0.0.1:{} = 42",
            base + 1
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("the second copy exited (exit status: 0)"),
        "{stdout}"
    );
}

#[test]
fn a_bad_environment_value_is_named() {
    for (var, value) in [
        ("NET_PORT", "abc"),
        ("NET_TIMEOUT", "soon"),
        ("NET_IS_HUB", "perhaps"),
        ("NET_MAX_FRAME", "tiny"),
    ] {
        let output = Command::new(example("quickstart"))
            .env("NET_LOOPBACK", "1")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{var}={value} was accepted");
        assert!(
            stderr.contains(&format!("invalid {var}=\"{value}\"")),
            "{var}={value}: {stderr}"
        );
    }
}
