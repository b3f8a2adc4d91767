//! Whole programs as a user runs them: two processes calling each other (the quickstart),
//! and a bad `NET_*` value reported by name.

use crate::support::{confined, example, free_range};

#[test]
fn two_processes_call_each_other() {
    let base = free_range(3);
    let output = confined(example("quickstart"))
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
        let output = confined(example("quickstart"))
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
