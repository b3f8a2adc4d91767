//! The Peers tutorial's registry transcript, run against the `registry` example as real
//! processes: put, get, a missing key's typed error, and the continuation form.

use crate::support::{free_ports, ok, run, wait_ready, Process};

const REGISTRY: &str = "registry";

#[test]
fn the_tutorial_transcript() {
    let [port, nobody] = free_ports::<2>();
    let node_addr = format!("127.0.0.1:{port}");
    let node = Process::start(REGISTRY, &[&node_addr]);
    wait_ready(&node_addr);
    let call = |args: &[&str]| {
        let mut full = vec![node_addr.as_str()];
        full.extend_from_slice(args);
        run(REGISTRY, &full)
    };

    // >>> n.put('arrakis', 'dune'): one-way, nothing comes back.
    let put = call(&["put", "arrakis", "dune"]);
    assert_eq!((put.code, put.stdout.as_str()), (Some(0), ""), "{put:?}");
    // A one-way call returns once sent; the node's log line says it was stored.
    node.wait_for("put arrakis -> dune");

    // >>> n.get('arrakis')
    assert_eq!(ok(REGISTRY, &[&node_addr, "get", "arrakis"]), "dune");

    // >>> n.get("Muad'Dib"): the typed NoSuchKey, told apart from a failed call.
    let missing = call(&["get", "Muad'Dib"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert_eq!(missing.stdout, "Oops: no such key: Muad'Dib");

    // The continuation form: the callbacks print, the typed error reaches them too.
    let then = call(&["get", "arrakis", "--then"]);
    assert_eq!(
        (then.code, then.stdout.as_str()),
        (Some(0), "Got: arrakis -> dune")
    );
    let then_missing = call(&["get", "Maud'Dib", "--then"]);
    assert_eq!(then_missing.code, Some(0), "{then_missing:?}");
    assert_eq!(then_missing.stdout, "Oops: no such key: Maud'Dib");

    // A node that is not there is a call failure (exit 1) naming the address, in both forms.
    let absent = format!("127.0.0.1:{nobody}");
    for form in [&["get", "arrakis"][..], &["get", "arrakis", "--then"]] {
        let mut args = vec![absent.as_str()];
        args.extend_from_slice(form);
        let ran = run(REGISTRY, &args);
        assert_eq!(ran.code, Some(1), "{ran:?}");
        assert!(ran.stderr.contains("cannot reach peer"), "{ran:?}");
        assert!(ran.stderr.contains(&absent), "{ran:?}");
    }
}

#[test]
fn addresses_off_this_machine_need_lan() {
    // 0.0.0.0 is not a loopback address, and were the check broken a connect to it would
    // still stay on this machine.
    let ran = run(REGISTRY, &["0.0.0.0:9", "get", "arrakis"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("not a loopback address"), "{ran:?}");
    assert!(ran.stderr.contains("--lan"), "{ran:?}");

    let ran = run(REGISTRY, &["arrakis", "get", "dune"]);
    assert_eq!(ran.code, Some(2), "clap's usage error: {ran:?}");
    assert!(ran.stderr.contains("expected host:port"), "{ran:?}");
}
