//! Events per second from one publisher to 1 and to 10 subscribers, counted when every
//! subscriber's handler has run (delivered, not just sent), with batching on (the
//! default) and off (one delivery call per event), beside a raw tokio TCP fan-out of the
//! same messages measured in the same run. All peers run in this process, on loopback.
//!
//! `cargo bench --bench events` (a few seconds once built).

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Handler runs, across all subscribers.
static DELIVERED: AtomicU64 = AtomicU64::new(0);

#[net::event("bench.tick")]
fn tick(n: u64) -> (u64, String) {
    (n, format!("event {n}"))
}

#[net::subscribe("bench.tick")]
fn on_tick(n: u64, text: String) {
    let _ = (n, text);
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

fn config() -> net::Config {
    net::Config::default().loopback(true).port(0)
}

/// Publishes `events` as fast as they queue and returns events/s once every subscriber
/// has run every one.
async fn run(subscribers: usize, events: u64, batch: usize) -> f64 {
    net::__private::set_batch_limit(batch);
    let publisher = net::Peer::start(config()).await.unwrap();
    let mut peers = Vec::new();
    for _ in 0..subscribers {
        let peer = net::Peer::start(config()).await.unwrap();
        peer.subscribe_to(&publisher).await.unwrap();
        peers.push(peer);
    }
    // Warm the connections.
    let report = tick(0).via(&publisher).await.unwrap();
    assert!(report.all_delivered(), "{report}");
    DELIVERED.store(0, Ordering::Relaxed);

    let started = Instant::now();
    for n in 1..events {
        tick(n).via(&publisher).spawn().unwrap();
    }
    let report = tick(events).via(&publisher).await.unwrap();
    let elapsed = started.elapsed();
    assert!(report.all_delivered(), "{report}");
    let expected = events * subscribers as u64;
    assert_eq!(
        DELIVERED.load(Ordering::Relaxed),
        expected,
        "lost deliveries"
    );

    for peer in peers {
        peer.shutdown().await;
    }
    publisher.shutdown().await;
    events as f64 / elapsed.as_secs_f64()
}

/// Plain calls of the handler, 256 in flight, in no particular order: the ceiling of
/// delivering with sequence numbers and reordering on the subscriber, which would add a
/// reorder buffer on top. Returns calls/s.
async fn pipelined(calls: u64) -> f64 {
    let caller = net::Peer::start(config()).await.unwrap();
    let callee = net::Peer::start(config()).await.unwrap();
    on_tick(0, String::new())
        .on(&callee)
        .via(&caller)
        .await
        .unwrap();
    let started = Instant::now();
    let mut next = 0;
    while next < calls {
        let mut set = tokio::task::JoinSet::new();
        for n in next..(next + 256).min(calls) {
            let call = on_tick(n, format!("event {n}")).on(&callee).via(&caller);
            set.spawn(call.into_future());
        }
        next += 256;
        while let Some(done) = set.join_next().await {
            done.unwrap().unwrap();
        }
    }
    let elapsed = started.elapsed();
    caller.shutdown().await;
    callee.shutdown().await;
    calls as f64 / elapsed.as_secs_f64()
}

/// The same messages (`[n, "event n"]` as JSON, length-prefixed) written to `readers` raw
/// TCP connections; each reader confirms once it has read all of them.
async fn raw(readers: usize, messages: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..readers {
            streams.push(listener.accept().await.unwrap().0);
        }
        streams
    });
    let mut writers = Vec::new();
    for _ in 0..readers {
        writers.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut done = Vec::new();
    for stream in accept.await.unwrap() {
        done.push(tokio::spawn(async move {
            stream.set_nodelay(true).unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut buf = Vec::new();
            for _ in 0..messages {
                let len = read.read_u32().await.unwrap() as usize;
                buf.resize(len, 0);
                read.read_exact(&mut buf).await.unwrap();
            }
            write.write_u8(1).await.unwrap();
        }));
    }
    let started = Instant::now();
    let mut senders = Vec::new();
    for stream in writers {
        senders.push(tokio::spawn(async move {
            stream.set_nodelay(true).unwrap();
            let (mut read, write) = stream.into_split();
            let mut write = BufWriter::new(write);
            for n in 0..messages {
                let frame = format!("[{n},\"event {n}\"]");
                write.write_u32(frame.len() as u32).await.unwrap();
                write.write_all(frame.as_bytes()).await.unwrap();
            }
            write.flush().await.unwrap();
            read.read_u8().await.unwrap();
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let elapsed = started.elapsed();
    for reader in done {
        reader.await.unwrap();
    }
    messages as f64 / elapsed.as_secs_f64()
}

/// The round trip of one awaited publication to one subscriber, and of a plain call of
/// the same handler, medians over `rounds`.
async fn latency(rounds: usize) -> (Duration, Duration) {
    net::__private::set_batch_limit(256);
    let publisher = net::Peer::start(config()).await.unwrap();
    let subscriber = net::Peer::start(config()).await.unwrap();
    subscriber.subscribe_to(&publisher).await.unwrap();
    let mut times = Vec::with_capacity(rounds);
    for n in 0..rounds as u64 {
        let started = Instant::now();
        let report = tick(n).via(&publisher).await.unwrap();
        times.push(started.elapsed());
        assert!(report.all_delivered());
    }
    let mut calls = Vec::with_capacity(rounds);
    for n in 0..rounds as u64 {
        let started = Instant::now();
        on_tick(n, String::new())
            .on(&subscriber)
            .via(&publisher)
            .await
            .unwrap();
        calls.push(started.elapsed());
    }
    subscriber.shutdown().await;
    publisher.shutdown().await;
    (median(times), median(calls))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("events: one publisher, in-process subscribers on loopback, 2 worker threads");
        println!(
            "{:>12}  {:<27} {:>8} {:>14} {:>16}",
            "subscribers", "delivery", "events", "events/s", "deliveries/s"
        );
        for (subscribers, events) in [(1usize, 50_000u64), (10, 10_000)] {
            for (label, batch, events) in [
                ("batched (default)", 256, events),
                ("one call per event", 1, events / 5),
            ] {
                let rate = run(subscribers, events, batch).await;
                println!(
                    "{subscribers:>12}  {label:<27} {events:>8} {rate:>14.0} {:>16.0}",
                    rate * subscribers as f64
                );
            }
            if subscribers == 1 {
                let rate = pipelined(events / 2).await;
                println!(
                    "{subscribers:>12}  {:<27} {:>8} {rate:>14.0} {rate:>16.0}",
                    "pipelined calls, unordered",
                    events / 2
                );
            }
            let rate = raw(subscribers, events).await;
            println!(
                "{subscribers:>12}  {:<27} {events:>8} {rate:>14.0} {:>16.0}",
                "raw tokio TCP fan-out",
                rate * subscribers as f64
            );
        }
        let (publication, call) = latency(2_000).await;
        println!(
            "one awaited publication to 1 subscriber, publish to report: median {publication:?} \
             (a plain call of the same handler: {call:?})"
        );
    });
}
