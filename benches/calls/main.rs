//! The call benchmark: `net` calls beside a raw tokio length-prefixed TCP echo on
//! loopback, measured in the same run, with the targets of issue 14 checked
//! (`cargo bench --bench calls`).
//!
//! Figures, each for `net` and for the raw echo, rounds alternating so that load from
//! elsewhere weighs on both alike:
//! - sequential round trip p50 and p99 (a synchronous function, and an async one);
//! - calls/s with 64 calls in flight on one connection, and on 4 connections;
//! - a 10 MB binary round trip (`net::Bytes` argument and result) beside the raw echo of
//!   a 10 MB frame;
//! - the same calls between peers that share a NET_SECRET (every link encrypted, issue
//!   12), beside the plain ones, and the first call over a new link (connect and hellos,
//!   or connect and the secure handshake).
//!
//! Two arrangements:
//! - in one process (the default): client and server on separate single-worker runtimes,
//!   as two processes on this 2-core machine would be, neither stealing the other's
//!   thread;
//! - `--processes`: the server in a second process (this program, started with `--serve`),
//!   each side on a default multi-thread runtime, as users run them.
//!
//! `--quick` is a ~5 s smoke run. `--count N` makes exactly N calls, 64 in flight, and
//! nothing else (`--secured`: over a secured link; `--size BYTES`: N sequential binary
//! round trips of that size instead), for counting instructions
//! with `valgrind --tool=callgrind` or CPU time with `perf stat` (counts do not depend on
//! what else the machine does; timed figures do).
//!
//! Read the figures with the load average printed at the top. On a quiet VM a thread that
//! waits wakes slowly (~40 us: the virtual CPU was halted), so every round trip is slow
//! and fixed costs weigh little; when other work keeps the CPUs busy, wake-ups are quick,
//! raw round trips drop to ~20 us, and every extra wake-up shows.

mod measure;
mod net_side;
mod raw;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use measure::{env_flag, median, run_on, runtime, Latency};
use server::Server;

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

/// Fresh client peers per round whose first call is timed (connection set-up).
const NEW_LINKS: usize = 10;

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

/// Plain and secured samples of one figure.
#[derive(Default)]
struct Pair<T> {
    plain: Vec<T>,
    secured: Vec<T>,
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

/// `config` with the mesh secret every secured peer of the benchmark shares.
fn secured(config: net::Config) -> net::Config {
    config.secret(net::Secret::new("the call benchmark's mesh secret, 32b"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        return server::serve();
    }
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let calls = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let size = args
            .iter()
            .position(|a| a == "--size")
            .and_then(|at| args.get(at + 1)?.parse().ok());
        return count(calls, args.iter().any(|a| a == "--secured"), size);
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

    let (net_addr, secured_addr, echo_addr) = (server.net, server.secured, server.echo);
    let start_client =
        |config| net::Peer::start_on(config, client_rt.handle().clone()).expect("client peer");
    let clients: Vec<net::Peer> = (0..CONNECTIONS).map(|_| start_client(config())).collect();
    let secured_client = start_client(secured(config()));
    for (client, server) in clients
        .iter()
        .map(|c| (c, net_addr))
        .chain([(&secured_client, secured_addr)])
    {
        // Connects each client now, so that connecting is not measured.
        let first = std::future::IntoFuture::into_future(multiply(6, 7).on(server).via(client));
        assert_eq!(run_on(&client_rt, first).expect("a first call"), 42);
    }

    let mut raw_rtt = Vec::new();
    let mut rtt = Pair::default();
    let mut rtt_async = Vec::new();
    let mut one = (Vec::new(), Pair::default());
    let mut four = (Vec::new(), Vec::new());
    let mut large = (Vec::new(), Pair::default());
    let mut setup = Pair::default();
    for _ in 0..plan.rounds {
        raw_rtt.extend(run_on(
            &client_rt,
            raw::round_trips(echo_addr, PAYLOAD, plan.warmup, plan.round_trips),
        ));
        for (sync, samples) in [(true, &mut rtt.plain), (false, &mut rtt_async)] {
            let trips = net_side::round_trips(net_addr, clients[0].clone(), plan, sync);
            samples.extend(run_on(&client_rt, trips));
        }
        let trips = net_side::round_trips(secured_addr, secured_client.clone(), plan, true);
        rtt.secured.extend(run_on(&client_rt, trips));
        one.0
            .push(run_on(&client_rt, raw::throughput(echo_addr, 1, plan)));
        one.1.plain.push(run_on(
            &client_rt,
            net_side::throughput(net_addr, clients[..1].to_vec(), plan),
        ));
        one.1.secured.push(run_on(
            &client_rt,
            net_side::throughput(secured_addr, vec![secured_client.clone()], plan),
        ));
        four.1.push(run_on(
            &client_rt,
            raw::throughput(echo_addr, CONNECTIONS, plan),
        ));
        four.0.push(run_on(
            &client_rt,
            net_side::throughput(net_addr, clients.clone(), plan),
        ));
        large.0.extend(run_on(
            &client_rt,
            raw::round_trips(echo_addr, LARGE, 1, plan.large_trips),
        ));
        large.1.plain.extend(run_on(
            &client_rt,
            net_side::binary(net_addr, clients[0].clone(), LARGE, 1, plan.large_trips),
        ));
        large.1.secured.extend(run_on(
            &client_rt,
            net_side::binary(
                secured_addr,
                secured_client.clone(),
                LARGE,
                1,
                plan.large_trips,
            ),
        ));
        for (server, config, samples) in [
            (net_addr, config(), &mut setup.plain),
            (secured_addr, secured(config()), &mut setup.secured),
        ] {
            let fresh = (0..NEW_LINKS)
                .map(|_| start_client(config.clone()))
                .collect();
            samples.extend(run_on(&client_rt, net_side::first_calls(server, fresh)));
        }
    }

    client_rt.block_on(async {
        for client in clients.into_iter().chain([secured_client]) {
            client.shutdown().await;
        }
    });
    drop(server);

    let (net_rtt, raw_rtt) = (Latency::of(rtt.plain), Latency::of(raw_rtt));
    let secured_rtt = Latency::of(rtt.secured);
    let async_rtt = Latency::of(rtt_async);
    let (net_large, raw_large) = (Latency::of(large.1.plain), Latency::of(large.0));
    let secured_large = Latency::of(large.1.secured);
    let (net_one, raw_one) = (median(one.1.plain), median(one.0));
    let secured_one = median(one.1.secured);
    let (net_four, raw_four) = (median(four.0), median(four.1));
    let (plain_setup, secured_setup) = (Latency::of(setup.plain), Latency::of(setup.secured));

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
    println!(
        "{:<36} {:>12} {:>12} {:>8}",
        "NET_SECRET", "secured", "plain net", "sec/plain"
    );
    row("round trip p50", us(secured_rtt.p50), us(net_rtt.p50), "us");
    row("round trip p99", us(secured_rtt.p99), us(net_rtt.p99), "us");
    row("calls/s, 64 in flight, 1 conn", secured_one, net_one, "/s");
    row(
        "10 MB binary round trip p50",
        ms(secured_large.p50),
        ms(net_large.p50),
        "ms",
    );
    row(
        "first call over a new link p50",
        us(secured_setup.p50),
        us(plain_setup.p50),
        "us",
    );

    println!();
    let mut met = 0;
    let mut targets = 0;
    let mut target = |ok: bool, text: String| {
        met += usize::from(ok);
        targets += 1;
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
    let secured_p50 = us(secured_rtt.p50) / us(net_rtt.p50);
    target(
        secured_p50 <= 1.15,
        format!("secured round trip p50 within 1.15x of plain (is {secured_p50:.2}x)"),
    );
    let secured_one_ratio = secured_one / net_one;
    target(
        secured_one_ratio >= 0.8,
        format!("secured, 64 in flight: at least 0.8x plain (is {secured_one_ratio:.2}x)"),
    );
    let secured_large_ratio = ms(net_large.p50) / ms(secured_large.p50);
    target(
        secured_large_ratio >= 0.7,
        format!("secured 10 MB: at least 0.7x plain throughput (is {secured_large_ratio:.2}x)"),
    );
    println!(
        "\n{met} of {targets} targets met in {:.1} s",
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

/// `--count N`: exactly `N` calls, 64 in flight on one connection (secured or plain),
/// or `N` binary round trips of `size` bytes one after another, and nothing else.
fn count(calls: u64, secure: bool, size: Option<usize>) {
    let server_rt = runtime("bench-server", 1);
    let client_rt = runtime("bench-client", 1);
    let config = || if secure { secured(config()) } else { config() };
    let server = net::Peer::start_on(config(), server_rt.handle().clone()).expect("server peer");
    let client = net::Peer::start_on(config(), client_rt.handle().clone()).expect("client peer");
    let started = Instant::now();
    if let Some(size) = size {
        let trips = net_side::binary(server.addr(), client.clone(), size, 0, calls as usize);
        run_on(&client_rt, trips);
        client_rt.block_on(client.shutdown());
        server_rt.block_on(server.shutdown());
        println!(
            "{calls} round trips of {size} bytes in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        return;
    }
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
