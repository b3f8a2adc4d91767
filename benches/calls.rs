//! The call benchmark of issue 2: `net` calls beside a raw tokio length-prefixed TCP echo,
//! on loopback, with the targets checked (`cargo bench --bench calls`).
//!
//! Three figures, each measured for `net` and for the raw echo in the same run:
//! - sequential round trip p50 and p99 (one call at a time);
//! - calls/s with 64 calls in flight on one connection;
//! - calls/s with 4 connections x 64 in flight (4 client peers, one server).
//!
//! Client and server sides run on separate single-worker runtimes, as two processes on
//! this 2-core machine would: neither side's tasks steal the other's thread, and both
//! the `net` and the raw figures are taken with exactly the same arrangement.
//! `NET_BENCH_SHARED=1` puts both sides on one 2-worker runtime instead, for comparison;
//! `NET_BENCH_ONLY=net` (or `raw`) measures one side alone, for profiling.
//!
//! `--quick` (or `NET_BENCH_QUICK=1`) is a ~3 s smoke run; the full run takes ~25 s.
//!
//! Read the figures with the load average printed at the top. On a quiet VM a thread that
//! waits wakes slowly (~40 us: the virtual CPU was halted), so every round trip is ~90 us
//! and fixed costs weigh little; when other work keeps the CPUs busy, wake-ups are quick,
//! raw round trips drop to ~20 us, and each extra thread hand-off (a sync handler's) shows.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

#[net::connect]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

/// The same as an async fn, which runs on the server's async worker: measured beside the
/// synchronous one to show what handing a call to a handler thread costs.
#[net::connect]
async fn multiply_async(a: i64, b: i64) -> i64 {
    a * b
}

/// The raw echo's payload: about the size of a `multiply` call frame (~90 bytes), so both
/// sides move similar bytes per round trip.
const PAYLOAD: usize = 96;

/// Calls in flight per connection for the throughput figures.
const IN_FLIGHT: usize = 64;

/// Client connections for the multi-connection figure.
const CONNECTIONS: usize = 4;

/// How long each part runs; the quick run is a smoke test of the same code.
#[derive(Clone, Copy)]
struct Plan {
    /// Each figure is measured this many times, `net` and raw echo alternating, so that
    /// load from elsewhere on the machine weighs on both alike.
    rounds: usize,
    /// Sequential round trips measured per round (after `warmup` unmeasured ones).
    round_trips: usize,
    warmup: usize,
    /// How long each throughput figure is measured per round (after `warmup_for`).
    measure_for: Duration,
    warmup_for: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rounds: 1,
                round_trips: 2_000,
                warmup: 200,
                measure_for: Duration::from_millis(400),
                warmup_for: Duration::from_millis(100),
            }
        } else {
            Plan {
                rounds: 4,
                round_trips: 5_000,
                warmup: 500,
                measure_for: Duration::from_secs(1),
                warmup_for: Duration::from_millis(250),
            }
        }
    }
}

/// Which sides to measure: both normally; one alone (`NET_BENCH_ONLY=net` or `raw`) when
/// profiling.
#[derive(Clone, Copy)]
struct Sides {
    net: bool,
    raw: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let calls = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        return count(calls);
    }
    let quick = args.iter().any(|a| a == "--quick") || env_flag("NET_BENCH_QUICK");
    let shared = env_flag("NET_BENCH_SHARED");
    let sides = match std::env::var("NET_BENCH_ONLY").as_deref() {
        Ok("net") => Sides {
            net: true,
            raw: false,
        },
        Ok("raw") => Sides {
            net: false,
            raw: true,
        },
        Ok("") | Err(_) => Sides {
            net: true,
            raw: true,
        },
        Ok(other) => {
            eprintln!("NET_BENCH_ONLY={other}: expected `net` or `raw` (or unset for both)");
            std::process::exit(2);
        }
    };
    let plan = Plan::new(quick);
    let started = Instant::now();

    let (server_rt, client_rt) = if shared {
        let rt = Arc::new(runtime("bench", 2));
        (rt.clone(), rt)
    } else {
        (
            Arc::new(runtime("bench-server", 1)),
            Arc::new(runtime("bench-client", 1)),
        )
    };
    println!(
        "net call benchmark ({}, {} round(s); {}; loopback)",
        if quick { "quick run" } else { "full run" },
        plan.rounds,
        if shared {
            "client and server on one 2-worker runtime"
        } else {
            "client and server on separate 1-worker runtimes"
        }
    );

    // Other work on the machine slows both sides alike, but wake-ups the most: say how
    // busy it was.
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(load) => println!(
            "machine: {cores} cores, load average {} at start",
            load.split_whitespace().next().unwrap_or("?")
        ),
        Err(_) => println!("machine: {cores} cores"),
    }

    // The raw echo server, and the net peers: one server, four clients.
    let echo = run_on(&server_rt, spawn_echo_server()).expect("binding the echo server");
    let config = || net::Config::default().loopback(true).port(0);
    let server = net::Peer::start_on(config(), server_rt.handle().clone()).expect("server peer");
    let clients: Vec<net::Peer> = (0..CONNECTIONS)
        .map(|_| net::Peer::start_on(config(), client_rt.handle().clone()).expect("client peer"))
        .collect();
    for client in &clients {
        // Connects each client now, so that connecting is not measured.
        let first = multiply(6, 7).on(&server).via(client);
        assert_eq!(
            run_on(&client_rt, first.into_future()).expect("a first call"),
            42
        );
    }

    let mut rtt = (Vec::new(), Vec::new());
    let mut rtt_async = Vec::new();
    let mut one = (Vec::new(), Vec::new());
    let mut four = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        if sides.raw {
            rtt.1
                .extend(run_on(&client_rt, raw_round_trips(echo, plan)));
        }
        if sides.net {
            for (sync, samples) in [(true, &mut rtt.0), (false, &mut rtt_async)] {
                let (server, client) = (server.clone(), clients[0].clone());
                let trips = net_round_trips(server, client, plan, sync);
                samples.extend(run_on(&client_rt, trips));
            }
        }
        if sides.raw {
            one.1
                .push(run_on(&client_rt, raw_throughput(echo, 1, plan)));
        }
        if sides.net {
            let (server, client) = (server.clone(), clients[..1].to_vec());
            one.0
                .push(run_on(&client_rt, net_throughput(server, client, plan)));
        }
        if sides.raw {
            four.1
                .push(run_on(&client_rt, raw_throughput(echo, CONNECTIONS, plan)));
        }
        if sides.net {
            let (server, clients) = (server.clone(), clients.clone());
            four.0
                .push(run_on(&client_rt, net_throughput(server, clients, plan)));
        }
    }

    client_rt.block_on(async {
        for client in &clients {
            client.shutdown().await;
        }
    });
    server_rt.block_on(server.shutdown());

    let net_rtt = Latency::of(rtt.0);
    let async_rtt = Latency::of(rtt_async);
    let raw_rtt = Latency::of(rtt.1);
    let (net_one, raw_one) = (median(one.0), median(one.1));
    let (net_four, raw_four) = (median(four.0), median(four.1));

    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "net", "raw echo", "net/raw"
    );
    let show = |value: Option<f64>, unit: &str| match value {
        Some(v) if unit == "us" => format!("{v:>9.1} us"),
        Some(v) => format!("{v:>10.0}/s"),
        None => format!("{:>12}", "-"),
    };
    let row = |name: &str, net: Option<f64>, raw: Option<f64>, unit: &str| {
        let ratio = match (net, raw) {
            (Some(n), Some(r)) => format!("{:>7.2}x", n / r),
            _ => format!("{:>8}", "-"),
        };
        println!("{name:<34} {} {} {ratio}", show(net, unit), show(raw, unit));
    };
    let p50 = |l: &Option<Latency>| l.as_ref().map(|l| micros(l.p50));
    let p99 = |l: &Option<Latency>| l.as_ref().map(|l| micros(l.p99));
    row("round trip p50", p50(&net_rtt), p50(&raw_rtt), "us");
    row("round trip p99", p99(&net_rtt), p99(&raw_rtt), "us");
    row(
        "  (async fn) round trip p50",
        p50(&async_rtt),
        p50(&raw_rtt),
        "us",
    );
    row("calls/s, 64 in flight, 1 conn", net_one, raw_one, "/s");
    row("calls/s, 64 in flight x 4 conns", net_four, raw_four, "/s");

    println!();
    let mut met = 0;
    let mut target = |ratio: Option<f64>,
                      ok: fn(f64) -> bool,
                      text: &str,
                      show: fn(f64) -> String| {
        match ratio {
            Some(r) if ok(r) => {
                met += 1;
                println!("PASS {text} (is {})", show(r));
            }
            Some(r) => println!("MISS {text} (is {})", show(r)),
            None => println!("---- {text} (not measured)"),
        }
    };
    let ratio = |n: Option<f64>, r: Option<f64>| n.zip(r).map(|(n, r)| n / r);
    target(
        ratio(p50(&net_rtt), p50(&raw_rtt)),
        |r| r <= 1.2,
        "round trip p50 within 1.2x of raw echo",
        |r| format!("{r:.2}x"),
    );
    target(
        ratio(net_one, raw_one),
        |r| r >= 1.0 / 3.0,
        "64 in flight, 1 conn: at least 1/3 of raw echo",
        |r| format!("1/{:.2}", 1.0 / r),
    );
    target(
        ratio(net_four, raw_four),
        |r| r >= 1.0 / 8.0,
        "64 in flight x 4 conns: at least 1/8 of raw echo",
        |r| format!("1/{:.2}", 1.0 / r),
    );
    println!(
        "\n{met} of 3 targets met in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Drop the runtimes off any runtime thread; their blocking pools join here.
    drop(server_rt);
    drop(client_rt);
}

/// `--count N`: exactly `N` calls, 64 in flight on one connection, and nothing else, for
/// counting instructions per call (`valgrind --tool=callgrind`, whose counts do not depend
/// on what else the machine is doing, unlike the timed figures).
fn count(calls: u64) {
    let server_rt = runtime("bench-server", 1);
    let client_rt = runtime("bench-client", 1);
    let config = || net::Config::default().loopback(true).port(0);
    let server = net::Peer::start_on(config(), server_rt.handle().clone()).expect("server peer");
    let client = net::Peer::start_on(config(), client_rt.handle().clone()).expect("client peer");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (server, client, next) = (server.clone(), client.clone(), next.clone());
            client_rt.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= calls {
                        return;
                    }
                    let product = multiply(n as i64, 2).on(&server).via(&client).await;
                    assert_eq!(product.expect("a call"), n as i64 * 2);
                }
            })
        })
        .collect();
    client_rt.block_on(async {
        for worker in workers {
            worker.await.expect("a worker");
        }
        client.shutdown().await;
    });
    server_rt.block_on(server.shutdown());
    println!("{calls} calls in {:.2} s", started.elapsed().as_secs_f64());
}

/// Runs `work` as a task on `rt`, so that it runs on that runtime's worker like the rest
/// of its side, rather than on the main thread that `block_on` would poll it on.
fn run_on<T: Send + 'static>(rt: &Runtime, work: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(work))
        .expect("a benchmark task panicked")
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Round-trip percentiles.
struct Latency {
    p50: Duration,
    p99: Duration,
}

impl Latency {
    /// The percentiles of `samples`; `None` when there are none.
    fn of(mut samples: Vec<Duration>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Latency {
            p50: at(0.50),
            p99: at(0.99),
        })
    }
}

/// The median of per-round rates; `None` when none were measured.
fn median(mut rates: Vec<f64>) -> Option<f64> {
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    Some(rates[rates.len() / 2])
}

/// Runs `workers` for the warm-up, then counts what they complete in the measured window.
/// Each worker loops until `stop` and adds one to `done` per completed round trip.
async fn rate<Fut>(
    plan: Plan,
    workers: Vec<Fut>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> f64
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(plan.warmup_for).await;
    let before = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(plan.measure_for).await;
    let after = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("a benchmark worker panicked");
    }
    (after - before) as f64 / elapsed.as_secs_f64()
}

async fn net_round_trips(
    server: net::Peer,
    client: net::Peer,
    plan: Plan,
    sync: bool,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(plan.round_trips);
    for i in 0..plan.warmup + plan.round_trips {
        let n = i as i64;
        let start = Instant::now();
        let product = if sync {
            multiply(n, 3).on(&server).via(&client).await
        } else {
            multiply_async(n, 3).on(&server).via(&client).await
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
async fn net_throughput(server: net::Peer, clients: Vec<net::Peer>, plan: Plan) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for w in 0..IN_FLIGHT {
            let (server, client) = (server.clone(), client.clone());
            let (done, stop) = (done.clone(), stop.clone());
            let base = (c * IN_FLIGHT + w) as i64;
            workers.push(async move {
                let mut n = base;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let product = multiply(n, 2).on(&server).via(&client).await;
                    assert_eq!(product.expect("a call"), n * 2);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    rate(plan, workers, done, stop).await
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .new_codec()
}

/// The raw echo server: returns each frame as it came, one flush per burst of frames read
/// together (as `net`'s writer does), on a task per connection.
async fn spawn_echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut frames = FramedRead::new(read, codec());
                let mut sink = FramedWrite::new(write, codec());
                while let Some(Ok(frame)) = frames.next().await {
                    if sink.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                    // Echo whatever else has already arrived before flushing.
                    while let Some(Some(Ok(more))) =
                        futures_util::FutureExt::now_or_never(frames.next())
                    {
                        if sink.feed(more.freeze()).await.is_err() {
                            return;
                        }
                    }
                    if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn echo_client(
    addr: SocketAddr,
) -> (
    FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>,
    FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connecting to the echo server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, codec()),
        FramedWrite::new(write, codec()),
    )
}

async fn raw_round_trips(addr: SocketAddr, plan: Plan) -> Vec<Duration> {
    let (mut frames, mut sink) = echo_client(addr).await;
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let mut samples = Vec::with_capacity(plan.round_trips);
    for i in 0..plan.warmup + plan.round_trips {
        let start = Instant::now();
        sink.send(payload.clone()).await.expect("echo send");
        let back = frames
            .next()
            .await
            .expect("echo reply")
            .expect("echo frame");
        assert_eq!(back.len(), PAYLOAD);
        if i >= plan.warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

/// `conns` connections, each with a window of 64 frames in flight: the writer sends while
/// the window has room (flushing before it waits), the reader frees a slot per echo.
async fn raw_throughput(addr: SocketAddr, conns: usize, plan: Plan) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (mut frames, mut sink) = echo_client(addr).await;
        let window = Arc::new(Semaphore::new(IN_FLIGHT));
        let sent = Arc::new(AtomicU64::new(0));
        let (done, stop) = (done.clone(), stop.clone());
        workers.push(async move {
            let writer = {
                let (window, stop, sent) = (window.clone(), stop.clone(), sent.clone());
                tokio::spawn(async move {
                    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
                    while !stop.load(Ordering::Relaxed) {
                        let permit = match window.try_acquire() {
                            Ok(permit) => permit,
                            Err(_) => {
                                SinkExt::<Bytes>::flush(&mut sink)
                                    .await
                                    .expect("echo flush");
                                window.acquire().await.expect("window")
                            }
                        };
                        permit.forget();
                        sink.feed(payload.clone()).await.expect("echo send");
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    SinkExt::<Bytes>::flush(&mut sink)
                        .await
                        .expect("echo flush");
                    sink
                })
            };
            let mut received = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) && received == sent.load(Ordering::Relaxed) {
                    break;
                }
                let next = tokio::time::timeout(Duration::from_millis(100), frames.next()).await;
                let Ok(next) = next else { continue };
                let back = next.expect("echo reply").expect("echo frame");
                assert_eq!(back.len(), PAYLOAD);
                received += 1;
                done.fetch_add(1, Ordering::Relaxed);
                window.add_permits(1);
            }
            let _sink = writer.await.expect("echo writer");
        });
    }
    rate(plan, workers, done, stop).await
}
