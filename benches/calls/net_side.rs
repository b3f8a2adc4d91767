//! What `net` is measured doing: sequential calls, calls with 64 in flight per
//! connection, a large binary round trip, and first calls over new links.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::measure::rate;
use crate::{echo_bytes, multiply, multiply_async, Plan, IN_FLIGHT};

/// Sequential round trips of `multiply` (or its async twin) from `client` to `server`.
pub async fn round_trips(
    server: SocketAddr,
    client: net::Peer,
    plan: Plan,
    sync: bool,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(plan.round_trips);
    for i in 0..plan.warmup + plan.round_trips {
        let n = i as i64;
        let start = Instant::now();
        let product = if sync {
            multiply(n, 3).on(server).via(&client).await
        } else {
            multiply_async(n, 3).on(server).via(&client).await
        };
        let took = start.elapsed();
        assert_eq!(product.expect("a call"), n * 3);
        if i >= plan.warmup {
            samples.push(took);
        }
    }
    samples
}

/// 64 caller tasks per client peer, each making calls one after another: 64 in flight on
/// each client's single connection to the server.
pub async fn throughput(server: SocketAddr, clients: Vec<net::Peer>, plan: Plan) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for w in 0..IN_FLIGHT {
            let client = client.clone();
            let (done, stop) = (done.clone(), stop.clone());
            let base = (c * IN_FLIGHT + w) as i64;
            workers.push(async move {
                let mut n = base;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let product = multiply(n, 2).on(server).via(&client).await;
                    assert_eq!(product.expect("a call"), n * 2);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    rate(plan, workers, done, stop).await
}

/// Round trips of `size` bytes of `net::Bytes`, as argument and result.
pub async fn binary(
    server: SocketAddr,
    client: net::Peer,
    size: usize,
    warmup: usize,
    rounds: usize,
) -> Vec<Duration> {
    let data = net::Bytes::from(vec![7u8; size]);
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let start = Instant::now();
        let back = echo_bytes(data.clone())
            .on(server)
            .via(&client)
            .timeout(Duration::from_secs(30))
            .await
            .expect("a binary round trip");
        let took = start.elapsed();
        assert_eq!(back.len(), size);
        if i >= warmup {
            samples.push(took);
        }
    }
    samples
}

/// The first call of each of `clients`, which connects (and runs the hellos or the secure
/// handshake) before it calls; each client is shut down after it.
pub async fn first_calls(server: SocketAddr, clients: Vec<net::Peer>) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(clients.len());
    for client in clients {
        let start = Instant::now();
        let product = multiply(6, 7).on(server).via(&client).await;
        samples.push(start.elapsed());
        assert_eq!(product.expect("a first call"), 42);
        client.shutdown().await;
    }
    samples
}
