//! The call benchmark: `net` calls beside a raw tokio length-prefixed TCP echo on
//! loopback, measured in the same run, with the targets of issue 14 checked
//! (`cargo bench --bench calls`).
//!
//! Figures, each for `net` and for the raw echo, rounds alternating so that load from
//! elsewhere weighs on both alike:
//! - sequential round trip p50 and p99 (a synchronous function, and an async one);
//! - calls/s with 64 calls in flight on one connection, and on 4 connections;
//! - a 10 MB binary round trip (`net::Bytes` argument and result) beside the raw echo of
//!   a 10 MB frame.
//!
//! Two arrangements:
//! - in one process (the default): client and server on separate single-worker runtimes,
//!   as two processes on this 2-core machine would be, neither stealing the other's
//!   thread;
//! - `--processes`: the server in a second process (this program, started with `--serve`),
//!   each side on a default multi-thread runtime, as users run them.
//!
//! `--quick` is a ~5 s smoke run. `--count N` makes exactly N calls, 64 in flight, and
//! nothing else, for counting instructions with `valgrind --tool=callgrind` (counts do not
//! depend on what else the machine does; timed figures do).
//!
//! Read the figures with the load average printed at the top. On a quiet VM a thread that
//! waits wakes slowly (~40 us: the virtual CPU was halted), so every round trip is slow
//! and fixed costs weigh little; when other work keeps the CPUs busy, wake-ups are quick,
//! raw round trips drop to ~20 us, and every extra wake-up shows.

mod net_side;
mod raw;

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

#[net::connect]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

/// The same as an async fn: measured beside the synchronous one.
#[net::connect]
async fn multiply_async(a: i64, b: i64) -> i64 {
    a * b
}

/// Returns its binary argument: the 10 MB round trip.
#[net::connect("bench.echo_bytes")]
fn echo_bytes(data: net::Bytes) -> net::Bytes {
    data
}

/// The raw echo's payload: about the size of a `multiply` call frame (~90 bytes), so both
/// sides move similar bytes per round trip.
const PAYLOAD: usize = 96;

/// Calls in flight per connection for the throughput figures.
const IN_FLIGHT: usize = 64;

/// Client connections for the multi-connection figure.
const CONNECTIONS: usize = 4;

/// The large binary round trip.
const LARGE: usize = 10 << 20;

/// How long each part runs; the quick run is a smoke test of the same code.
#[derive(Clone, Copy)]
struct Plan {
    /// Each figure is measured this many times, `net` and raw echo alternating.
    rounds: usize,
    /// Sequential round trips measured per round (after `warmup` unmeasured ones).
    round_trips: usize,
    warmup: usize,
    /// How long each throughput figure is measured per round (after `warmup_for`).
    measure_for: Duration,
    warmup_for: Duration,
    /// 10 MB round trips per round.
    large_trips: usize,
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
                large_trips: 3,
            }
        } else {
            Plan {
                rounds: 4,
                round_trips: 5_000,
                warmup: 500,
                measure_for: Duration::from_secs(1),
                warmup_for: Duration::from_millis(250),
                large_trips: 8,
            }
        }
    }
}

fn config() -> net::Config {
    net::Config::default()
        .loopback(true)
        .port(0)
        .max_frame(32 << 20)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        return serve();
    }
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let calls = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        return count(calls);
    }
    let quick = args.iter().any(|a| a == "--quick") || env_flag("NET_BENCH_QUICK");
    let processes = args.iter().any(|a| a == "--processes") || env_flag("NET_BENCH_PROCESSES");
    let plan = Plan::new(quick);
    let started = Instant::now();

    let server = Server::start(processes);
    let client_rt = if processes {
        Runtime::new().expect("building a tokio runtime")
    } else {
        runtime("bench-client", 1)
    };
    println!(
        "net call benchmark ({}, {} round(s); {}; loopback)",
        if quick { "quick run" } else { "full run" },
        plan.rounds,
        if processes {
            "client and server in two processes, each on a default multi-thread runtime"
        } else {
            "client and server in one process on separate 1-worker runtimes"
        }
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(load) => println!(
            "machine: {cores} cores, load average {} at start",
            load.split_whitespace().next().unwrap_or("?")
        ),
        Err(_) => println!("machine: {cores} cores"),
    }

    let (net_addr, echo_addr) = (server.net, server.echo);
    let clients: Vec<net::Peer> = (0..CONNECTIONS)
        .map(|_| net::Peer::start_on(config(), client_rt.handle().clone()).expect("client peer"))
        .collect();
    for client in &clients {
        // Connects each client now, so that connecting is not measured.
        let first = std::future::IntoFuture::into_future(multiply(6, 7).on(net_addr).via(client));
        assert_eq!(run_on(&client_rt, first).expect("a first call"), 42);
    }

    let mut rtt = (Vec::new(), Vec::new());
    let mut rtt_async = Vec::new();
    let mut one = (Vec::new(), Vec::new());
    let mut four = (Vec::new(), Vec::new());
    let mut large = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        rtt.1.extend(run_on(
            &client_rt,
            raw::round_trips(echo_addr, PAYLOAD, plan.warmup, plan.round_trips),
        ));
        for (sync, samples) in [(true, &mut rtt.0), (false, &mut rtt_async)] {
            let trips = net_side::round_trips(net_addr, clients[0].clone(), plan, sync);
            samples.extend(run_on(&client_rt, trips));
        }
        one.1
            .push(run_on(&client_rt, raw::throughput(echo_addr, 1, plan)));
        one.0.push(run_on(
            &client_rt,
            net_side::throughput(net_addr, clients[..1].to_vec(), plan),
        ));
        four.1.push(run_on(
            &client_rt,
            raw::throughput(echo_addr, CONNECTIONS, plan),
        ));
        four.0.push(run_on(
            &client_rt,
            net_side::throughput(net_addr, clients.clone(), plan),
        ));
        large.1.extend(run_on(
            &client_rt,
            raw::round_trips(echo_addr, LARGE, 1, plan.large_trips),
        ));
        large.0.extend(run_on(
            &client_rt,
            net_side::binary(net_addr, clients[0].clone(), LARGE, 1, plan.large_trips),
        ));
    }

    client_rt.block_on(async {
        for client in &clients {
            client.shutdown().await;
        }
    });
    drop(server);

    let (net_rtt, raw_rtt) = (Latency::of(rtt.0), Latency::of(rtt.1));
    let async_rtt = Latency::of(rtt_async);
    let (net_large, raw_large) = (Latency::of(large.0), Latency::of(large.1));
    let (net_one, raw_one) = (median(one.0), median(one.1));
    let (net_four, raw_four) = (median(four.0), median(four.1));

    println!();
    println!(
        "{:<36} {:>12} {:>12} {:>8}",
        "", "net", "raw echo", "net/raw"
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    row("round trip p50", us(net_rtt.p50), us(raw_rtt.p50), "us");
    row("round trip p99", us(net_rtt.p99), us(raw_rtt.p99), "us");
    row(
        "  (async fn) round trip p50",
        us(async_rtt.p50),
        us(raw_rtt.p50),
        "us",
    );
    row("calls/s, 64 in flight, 1 conn", net_one, raw_one, "/s");
    row("calls/s, 64 in flight x 4 conns", net_four, raw_four, "/s");
    row(
        "10 MB binary round trip p50",
        ms(net_large.p50),
        ms(raw_large.p50),
        "ms",
    );

    println!();
    let mut met = 0;
    let mut target = |ok: bool, text: String| {
        met += usize::from(ok);
        println!("{} {text}", if ok { "PASS" } else { "MISS" });
    };
    let p50_ratio = us(net_rtt.p50) / us(raw_rtt.p50);
    target(
        p50_ratio <= 1.3,
        format!("round trip p50 within 1.3x of raw echo (is {p50_ratio:.2}x)"),
    );
    let async_ratio = us(async_rtt.p50) / us(net_rtt.p50);
    target(
        async_ratio <= 1.05,
        format!("async fn no slower than sync fn (p50 is {async_ratio:.2}x the sync one's)"),
    );
    let one_ratio = net_one / raw_one;
    target(
        one_ratio >= 1.0 / 3.0,
        format!(
            "64 in flight, 1 conn: at least 1/3 of raw echo (is 1/{:.2})",
            1.0 / one_ratio
        ),
    );
    let four_ratio = net_four / raw_four;
    target(
        four_ratio >= 1.0 / 4.0,
        format!(
            "64 in flight x 4 conns: at least 1/4 of raw echo (is 1/{:.2})",
            1.0 / four_ratio
        ),
    );
    let large_ratio = ms(net_large.p50) / ms(raw_large.p50);
    target(
        large_ratio <= 2.0,
        format!("10 MB binary round trip within 2x of raw transfer (is {large_ratio:.2}x)"),
    );
    println!(
        "\n{met} of 5 targets met in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn row(name: &str, net: f64, raw: f64, unit: &str) {
    let show = |v: f64| match unit {
        "/s" => format!("{v:>10.0}/s"),
        _ => format!("{v:>9.1} {unit}"),
    };
    println!("{name:<36} {} {} {:>7.2}x", show(net), show(raw), net / raw);
}

/// The serving side: a `net` peer and the raw echo server, here on a runtime of their
/// own, or in a second process.
struct Server {
    net: SocketAddr,
    echo: SocketAddr,
    /// The in-process server's runtime and peer, kept until the end.
    local: Option<(Runtime, net::Peer)>,
    /// The second process; it ends when its stdin closes.
    child: Option<Child>,
}

impl Server {
    fn start(processes: bool) -> Server {
        if !processes {
            let rt = runtime("bench-server", 1);
            let echo = run_on(&rt, raw::spawn_echo_server()).expect("binding the echo server");
            let peer = net::Peer::start_on(config(), rt.handle().clone()).expect("server peer");
            return Server {
                net: peer.addr(),
                echo,
                local: Some((rt, peer)),
                child: None,
            };
        }
        let exe = std::env::current_exe().expect("this program's path");
        let mut child = Command::new(exe)
            .arg("--serve")
            .env("NET_LOOPBACK", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the server process");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the server's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's first line");
        let mut words = line.split_whitespace();
        let (Some("ready"), Some(net), Some(echo)) = (words.next(), words.next(), words.next())
        else {
            panic!("the server process said {line:?}");
        };
        Server {
            net: net.parse().expect("the server's net address"),
            echo: echo.parse().expect("the server's echo address"),
            local: None,
            child: Some(child),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((rt, peer)) = self.local.take() {
            rt.block_on(peer.shutdown());
        }
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// `--serve`: the server process of `--processes`. Prints `ready NET ECHO` and serves
/// until its stdin closes.
fn serve() {
    let rt = Runtime::new().expect("building a tokio runtime");
    let echo = rt
        .block_on(raw::spawn_echo_server())
        .expect("binding the echo server");
    let peer = net::Peer::start_on(config(), rt.handle().clone()).expect("server peer");
    println!("ready {} {echo}", peer.addr());
    let _ = std::io::stdout().flush();
    let mut rest = String::new();
    while std::io::stdin().read_line(&mut rest).is_ok_and(|n| n > 0) {}
    rt.block_on(peer.shutdown());
}

/// `--count N`: exactly `N` calls, 64 in flight on one connection, and nothing else.
fn count(calls: u64) {
    let server_rt = runtime("bench-server", 1);
    let client_rt = runtime("bench-client", 1);
    let server = net::Peer::start_on(config(), server_rt.handle().clone()).expect("server peer");
    let client = net::Peer::start_on(config(), client_rt.handle().clone()).expect("client peer");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (server, client, next) = (server.addr(), client.clone(), next.clone());
            client_rt.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= calls {
                        return;
                    }
                    let product = multiply(n as i64, 2).on(server).via(&client).await;
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

/// Percentiles of a set of samples.
struct Latency {
    p50: Duration,
    p99: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// The median of per-round rates.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or_default()
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
