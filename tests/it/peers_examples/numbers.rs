//! The Peers tutorial's numbers transcript through a herd of three `numbers` nodes run as
//! real processes: a 512-bit prime, its primality, a random number coprime to it, and its
//! inverse; bad arguments come back as the typed `OperationFailed`.

use crate::support::{eventually_blocking, free_ports, ok, run, Process};
use num_bigint::BigUint;
use num_traits::One;

const NUMBERS: &str = "numbers";

const OPERATIONS: [&str; 5] = ["get_random", "get_prime", "is_prime", "gcd", "inverse"];

#[test]
fn a_herd_of_three() {
    let ports = free_ports::<3>();
    let [a1, a2, a3] = ports.map(|p| format!("127.0.0.1:{p}"));
    let n1 = Process::start(NUMBERS, &["node", &a1]);
    n1.wait_for("node ready with 0 peers");
    let n2 = Process::start(NUMBERS, &["node", &a2, &a1]);
    n2.wait_for("node ready with 1 peers");
    let n3 = Process::start(NUMBERS, &["node", &a3, &a1]);
    n3.wait_for("node ready with 1 peers");
    n1.wait_for(&format!("added peer at {a2}"));
    n1.wait_for(&format!("added peer at {a3}"));

    let call = |args: &[&str]| {
        let mut full = vec!["client", a1.as_str()];
        full.extend_from_slice(args);
        ok(NUMBERS, &full)
    };
    let number = |text: String| -> BigUint {
        text.parse()
            .unwrap_or_else(|_| panic!("not a decimal number: {text:?}"))
    };

    // >>> x = n.get_prime(512); n.is_prime(x)
    let x = number(call(&["get-prime", "512"]));
    assert_eq!(x.bits(), 512);
    assert_eq!(call(&["is-prime", &x.to_string()]), "true");
    // >>> y = n.get_random(512); n.GCD(x, y)
    let y = number(call(&["get-random", "512"]));
    assert_eq!(y.bits(), 512);
    assert_eq!(call(&["gcd", &x.to_string(), &y.to_string()]), "1");
    // >>> z = n.inverse(y, x); (z * y) % x
    let z = number(call(&["inverse", &y.to_string(), &x.to_string()]));
    assert!(z < x);
    assert_eq!((&z * &y) % &x, BigUint::one());
    // A composite is not prime (x * y has two 512-bit factors).
    assert_eq!(call(&["is-prime", &(&x * &y).to_string()]), "false");

    // Bad arguments: the typed OperationFailed, wherever in the herd it was computed.
    let client = |args: &[&str]| {
        let mut full = vec!["client", a1.as_str()];
        full.extend_from_slice(args);
        run(NUMBERS, &full)
    };
    let bad = client(&["is-prime", "twelve"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert_eq!(
        bad.stdout,
        "Oops: is_prime failed: x must be a decimal integer such as 42, got \"twelve\""
    );
    let bad = client(&["inverse", "6", "9"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stdout.contains("6 has no inverse modulo 9"), "{bad:?}");
    let bad = client(&["get-prime", "1"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(
        bad.stdout.contains("bits must be between 2 and 4096"),
        "{bad:?}"
    );

    // Every hop is logged: each request is logged by n1, which it entered at, and again by
    // each node it was forwarded to.
    let requests = 9;
    let handled_by = |node: &Process| {
        let is_operation = |line: &String| {
            OPERATIONS
                .iter()
                .any(|op| line.ends_with(&format!(": {op}")))
        };
        node.lines().iter().filter(|l| is_operation(l)).count()
    };
    let forwarded_by = |node: &Process| node.count(": forward to 127.0.0.1:");
    let herd = [&n1, &n2, &n3];
    eventually_blocking("n1 logs every request", || handled_by(&n1) >= requests);
    eventually_blocking("each forward is logged by the node it went to", || {
        let handled: usize = herd.iter().map(|n| handled_by(n)).sum();
        let forwarded: usize = herd.iter().map(|n| forwarded_by(n)).sum();
        handled == requests + forwarded
    });
}
