//! Loopback ports for tests: free ones for nodes to take, ranges for peers that scan a
//! `NET_PORT` range, and addresses where nothing listens.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where [`free_range`] hands out ranges: below the kernel's ephemeral ports (32768 and up
/// on Linux), so that no peer started on port 0 by a concurrent test lands in a range
/// another test scans; above the fixed ranges of the discovery tests (21000..21800).
const RANGES: std::ops::Range<u32> = 22_000..32_000;

/// `N` distinct free ports on 127.0.0.1: all bound at once, so none repeats, then freed
/// for the nodes to take.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port"))
        .collect();
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("a bound port").port();
    }
    ports
}

/// The first of `n` consecutive free ports on 127.0.0.1, for peers that bind and scan a
/// `NET_PORT` range. Each call gets a range of its own (parallel tests never share one),
/// and test processes start at different places.
pub fn free_range(n: u16) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = RANGES.end - RANGES.start;
    let start = (std::process::id() % 400) * 25;
    loop {
        let offset = NEXT.fetch_add(u32::from(n) + 1, Ordering::Relaxed);
        let base = RANGES.start + (start + offset) % (span - u32::from(n));
        let base = u16::try_from(base).expect("RANGES lies below 65536");
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

/// A loopback address nothing listens on: bound, then released.
pub fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a free loopback port")
}
