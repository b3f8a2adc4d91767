//! Peers of the test process itself: the loopback config every in-process peer starts
//! from, a runtime for blocking tests, and a readiness check for peers in other processes.

use std::sync::OnceLock;
use std::time::Duration;

use super::wait::eventually_blocking;

/// A peer confined to loopback on a free port: where every in-process peer starts.
pub fn loopback() -> net::Config {
    net::Config::default().loopback(true).port(0)
}

/// A runtime for the peers of a plain blocking test (one that drives processes).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// A loopback peer of this test process for readiness checks, on a runtime of its own that
/// lives as long as the process. Not the process-wide default peer: no test in this binary
/// starts that one (see main.rs).
fn asking_peer() -> &'static net::Peer {
    static PEER: OnceLock<(tokio::runtime::Runtime, net::Peer)> = OnceLock::new();
    let (_, peer) = PEER.get_or_init(|| {
        let rt = runtime();
        let peer = net::Peer::start_on(loopback(), rt.handle().clone())
            .expect("starting the test's own loopback peer");
        (rt, peer)
    });
    peer
}

/// Waits until a net peer answers `info` at `addr`.
pub fn wait_ready(addr: &str) {
    let me = asking_peer();
    eventually_blocking(&format!("a peer to answer `info` at {addr}"), || {
        net::info()
            .on(addr)
            .via(me)
            .timeout(Duration::from_millis(500))
            .wait()
            .is_ok()
    });
}
