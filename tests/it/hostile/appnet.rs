//! Attacks on the app-net path (a connection whose first byte is `{`): requests that
//! trickle a byte at a time, unfinished requests of megabytes, and more trickling
//! connections than the peer has slots.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::until_closed;
use super::{all_closed_within, peak_rss, Fixture};

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appnet_requests_are_held_to_their_deadline_and_budget() {
    const BUDGET: usize = 24 * MIB;
    let fx = Fixture::start(&[
        ("NET_MAX_FRAME", "4M"),
        ("NET_CONN_MEMORY", "8M"),
        ("NET_PEER_MEMORY", "24M"),
        ("NET_FRAME_TIMEOUT", "1s"),
        ("NET_MAX_CONNECTIONS", "40"),
    ])
    .await;
    let before = fx.server.rss();
    let mut closing = Vec::new();
    let mut attack = |opening: Vec<u8>, trickle: bool| {
        let addr = fx.addr();
        closing.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let opened = Instant::now();
            let (mut read, mut write) = stream.into_split();
            tokio::spawn(async move {
                if write.write_all(&opening).await.is_err() {
                    return;
                }
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if trickle && write.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            });
            // Answered (a TimeoutError or MemoryError packet) or dropped for a newcomer;
            // closed either way.
            until_closed(&mut read, Duration::from_secs(10)).await;
            opened.elapsed()
        }));
    };
    // One byte every 300 ms, from more connections than the peer has slots.
    for _ in 0..48 {
        attack(
            br#"{"connection": "pass_through", "args": [""#.to_vec(),
            true,
        );
    }
    // Megabytes of a request that never ends.
    for _ in 0..12 {
        let mut big = br#"{"connection": "pass_through", "args": [""#.to_vec();
        big.resize(big.len() + 3 * MIB + MIB / 2, b'a');
        attack(big, false);
    }
    // Meanwhile a newcomer's request is answered, and the framed client carries on.
    let served = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut stream = TcpStream::connect(fx.addr()).await.unwrap();
        stream
            .write_all(br#"{"connection": "pass_through", "args": [5]}"#)
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut reply))
            .await
            .expect("a newcomer's app-net request was locked out")
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&reply), "5");
        fx.carries_on(10).await;
        all_closed_within("slow app-net requests", Duration::from_secs(4), closing).await;
    };
    let ((), peak) = peak_rss(&fx.server, served).await;
    assert!(
        peak < before + BUDGET + 16 * MIB,
        "the peer grew by {} MiB under unfinished app-net requests (budget {} MiB)",
        (peak - before) / MIB,
        BUDGET / MIB
    );
    fx.finish().await;
}
