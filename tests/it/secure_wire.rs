//! What a secured mesh puts on a real wire: two hosts of a namespace LAN, a capture of
//! their bridge, one call with a marker for an argument. With NET_SECRET, the marker (and
//! the hellos) never cross in the clear; without it, the same call shows the marker, which
//! proves the capture sees the calls at all. Needs root and tcpdump; otherwise it prints a
//! loud SKIPPED line.

use std::net::{IpAddr, SocketAddr};

use crate::support::eventually_blocking;
use crate::support::netns::{skip_unless_root, skip_unless_tcpdump, Lab, Segment};
use crate::support::test_peer::{clear_net_env, TestPeer, TEST_PEER};

const SECURED: u16 = 24110;
const PLAIN: u16 = 24120;

/// A peer on host `i`: no discovery traffic, only the calls the test makes.
fn peer(lab: &Lab, i: usize, port: u16, secret: Option<&str>) -> TestPeer {
    let mut cmd = lab.command(i, TEST_PEER);
    clear_net_env(&mut cmd);
    cmd.env("NET_PORT", port.to_string())
        .env("NET_PORT_RANGE", "0")
        .env("NET_DISCOVERY", "seeds")
        .env("NET_MDNS", "0");
    if let Some(secret) = secret {
        cmd.env("NET_SECRET", secret);
    }
    TestPeer::start(cmd)
}

#[test]
fn a_secured_call_crosses_the_wire_encrypted() {
    let what = "it::secure_wire::a_secured_call_crosses_the_wire_encrypted";
    if skip_unless_root(what) || skip_unless_tcpdump(what) {
        return;
    }
    let lab = Lab::create(2, 3).expect("building the namespace LAN");
    let capture = lab.capture().expect("capturing the bridge");
    let at = |port| SocketAddr::new(IpAddr::V4(lab.hosts[1].ip), port);
    let secret = "a secret for the capture test, long enough";

    let secret_marker = format!("SECRET-MARKER-{}", std::process::id());
    let mut caller = peer(&lab, 0, SECURED, Some(secret));
    let server = peer(&lab, 1, SECURED, Some(secret));
    assert_eq!(caller.echo(at(SECURED), &secret_marker), secret_marker);
    let server_id = server.id.to_string();
    server.quit();
    caller.quit();

    // The same call without a secret; once its marker is in the file, everything the
    // secured peers sent before it is too (the capture is in order).
    let plain_marker = format!("PLAIN-MARKER-{}", std::process::id());
    let mut caller = peer(&lab, 0, PLAIN, None);
    let _server = peer(&lab, 1, PLAIN, None);
    assert_eq!(caller.echo(at(PLAIN), &plain_marker), plain_marker);
    eventually_blocking("the plain call in the capture", || {
        stream(&capture.segments(), PLAIN).contains(&plain_marker)
    });

    let segments = capture.segments();
    let secured = stream(&segments, SECURED);
    assert!(
        secured.contains("Noise_NNpsk0_25519_AESGCM_BLAKE2s"),
        "the capture holds no secure handshake: it missed the secured peers"
    );
    for clear in [
        secret_marker.as_str(),
        &server_id,
        "\"hello\"",
        "pass_through",
        secret,
    ] {
        assert!(
            !secured.contains(clear),
            "{clear:?} crossed the wire in the clear in the secured peers' traffic"
        );
    }
}

/// Every payload byte to or from `port`, in capture order, as (lossy) text.
fn stream(segments: &[Segment], port: u16) -> String {
    let bytes: Vec<u8> = segments
        .iter()
        .filter(|s| s.touches(port))
        .flat_map(|s| s.payload.iter().copied())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
