//! What the limits must leave alone: a thousand idle client peers, which reconnect after
//! the idle limit, and a 10 MB argument and result under tight budgets.

use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::json;

use super::{echo, echo_bytes, Server};
use crate::support::{eventually, loopback};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_client_peers_reconnect_after_the_idle_limit() {
    let server = Server::start(&[("NET_IDLE_TIMEOUT", "1s")]);
    let addr = server.addr;
    let starts = (0..1000).map(|_| net::Peer::start(loopback().client(true)));
    let clients: Vec<net::Peer> = join_all(starts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // A hundred at a time: a thousand connects at once overflow the listen backlog, and
    // the dropped SYNs are retried a second or more later.
    let round = |n: u64| {
        let calls = clients.iter().enumerate().map(move |(i, client)| {
            let i = n * 10_000 + i as u64;
            async move {
                let (got, _) = echo(i)
                    .on(addr)
                    .via(client)
                    .timeout(Duration::from_secs(20))
                    .await
                    .unwrap_or_else(|e| panic!("client call {i}: {e}"));
                assert_eq!(got, i);
            }
        });
        futures_util::stream::iter(calls)
            .buffer_unordered(100)
            .collect::<Vec<()>>()
    };
    round(1).await;
    // Idle: the server parts every link, politely.
    eventually("every idle link parted", || {
        clients.iter().all(|c| c.connection_count() == 0)
    })
    .await;
    // The next call reconnects (and may be parted again by the time all are done).
    round(2).await;
    assert!(clients.iter().all(|c| c.connection_count() <= 1));
    join_all(clients.iter().map(|c| c.shutdown())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_argument_and_result_pass_tight_limits() {
    let server = Server::start(&[
        ("NET_MAX_FRAME", "16M"),
        ("NET_CONN_MEMORY", "32M"),
        ("NET_PEER_MEMORY", "64M"),
        ("NET_FRAME_TIMEOUT", "1s"),
    ]);
    let me = net::Peer::start(loopback()).await.unwrap();
    let data: Vec<u8> = (0..10 << 20).map(|i| (i % 251) as u8).collect();
    let back = echo_bytes(net::Bytes::from(data.clone()))
        .on(server.addr)
        .via(&me)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(back == data, "the 10 MB binary came back changed");
    let text = "t".repeat(10 << 20);
    let back = net::pass_through(json!(text))
        .on(server.addr)
        .via(&me)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(back.as_str().map(str::len), Some(text.len()));
    me.shutdown().await;
}
