//! What replication costs, and how membership changes at scale, on loopback:
//!
//! 1. get and set latency (p50, p99, one at a time) and throughput (64 in flight) from a
//!    peer that has not joined, against a table of 5 members, beside one peer serving a
//!    HashMap through plain calls, measured in the same run (each member, the HashMap
//!    peer and the client on its own 1-worker runtime). Targets: get p50 within 1.5x and
//!    set p50 within 2x of the plain call; ops/s at least 1/3 of it.
//! 2. 100 members in one process (one 2-worker runtime), 10,000 keys: one more joins
//!    (the fraction of all copies it receives, about 1/101), then one vanishes as a
//!    killed process would (the time until it is dropped, and until every key has R
//!    copies again). Its set-up is bounded ([`SET_UP_LIMIT`]); it takes about 15 s on
//!    this project's 2-core VM. Three things stood in its way: every view change made
//!    every member rank 4,096 buckets over all members (now `Placement::updated`);
//!    discovery copied its whole peer table, function lists and all, for every
//!    `known_peers` answer and probe, O(N³) over the mesh (now shared entries: 80
//!    members set up in 7.9 s instead of 44.7 s); and each pair of members held two
//!    links, ~20,000 sockets, this VM's open-files limit (now one link per pair,
//!    `peer/pairing.rs`: ~11,000 at the peak of the set-up).
//!
//! `NET_BENCH_SHARED=1` puts part 1's peers on one 2-worker runtime instead.
//!
//! `cargo bench --bench table` (two to three minutes once built); `--quick` (or
//! `NET_BENCH_QUICK=1`) is a smoke run with 20 members and 2,000 keys; `NET_BENCH_ONLY=cost`
//! (or `scale`) runs one part alone, for profiling; `NET_BENCH_MEMBERS=N` sizes the
//! simulation.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The plain baseline: one peer's HashMap.
static MAP: Mutex<Option<HashMap<String, Value>>> = Mutex::new(None);

#[net::connect("bench.kv.get")]
fn kv_get(key: String) -> Option<Value> {
    MAP.lock().ok()?.as_ref()?.get(&key).cloned()
}

#[net::connect("bench.kv.set")]
fn kv_set(key: String, value: Value) {
    if let Ok(mut map) = MAP.lock() {
        map.get_or_insert_with(HashMap::new).insert(key, value);
    }
}

const TABLE: &str = "bench";

/// How much each part does.
#[derive(Clone, Copy)]
struct Plan {
    /// Keys written before latencies are measured.
    keys: usize,
    /// Sequential operations per latency figure.
    sequential: usize,
    /// How long each throughput figure is measured.
    measure_for: Duration,
    /// Members of the simulation, and its keys.
    members: usize,
    sim_keys: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("NET_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick {
        Plan {
            keys: 200,
            sequential: 300,
            measure_for: Duration::from_millis(500),
            members: 20,
            sim_keys: 2_000,
        }
    } else {
        Plan {
            keys: 1_000,
            sequential: 3_000,
            measure_for: Duration::from_secs(2),
            members: 100,
            sim_keys: 10_000,
        }
    };
    let mut plan = plan;
    if let Some(n) = std::env::var("NET_BENCH_MEMBERS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        plan.members = n;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    println!(
        "net table benchmark ({}; loopback; machine: {cores} cores, load average {load})",
        if quick { "quick run" } else { "full run" }
    );
    let only = std::env::var("NET_BENCH_ONLY").unwrap_or_default();
    if only != "scale" {
        replication_cost(plan);
    }
    if only != "cost" {
        membership_at_scale(plan);
    }
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn config() -> net::Config {
    net::Config::default().loopback(true).port(0)
}

/// Percentile `p` (0..=100) of sorted samples, in microseconds.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Runs `op` `n` times one after another; the sorted latencies.
async fn sequential<F, Fut>(n: usize, mut op: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        op(i).await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

/// Operations per second with 64 in flight for `plan.measure_for`.
async fn throughput<F, Fut>(plan: Plan, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + plan.measure_for;
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|w| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < deadline {
                    op(i).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 64;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn replication_cost(plan: Plan) {
    // Apart: each member, the HashMap peer and the client on a 1-worker runtime of its own
    // (as separate programs would be). Shared: all on one 2-worker runtime, so that fewer
    // sleeping threads must wake per operation.
    let shared = std::env::var("NET_BENCH_SHARED").is_ok_and(|v| v == "1");
    let one = Arc::new(runtime("shared", 2));
    let rt = |name: &str| match shared {
        true => one.clone(),
        false => Arc::new(runtime(name, 1)),
    };
    let member_rts: Vec<_> = (0..5).map(|i| rt(&format!("member-{i}"))).collect();
    let kv_rt = rt("kv");
    let client_rt = rt("client");
    let mut members = Vec::new();
    for rt in &member_rts {
        let seeds: Vec<String> = members
            .iter()
            .map(|m: &net::Peer| m.addr().to_string())
            .collect();
        let peer = net::Peer::start_on(config().seeds(seeds), rt.handle().clone()).expect("member");
        rt.block_on(peer.table::<Value>(TABLE).join().into_future())
            .expect("joins");
        members.push(peer);
    }
    let kv = net::Peer::start_on(config(), kv_rt.handle().clone()).expect("kv peer");
    let seeds = [members[0].addr().to_string()];
    let client =
        net::Peer::start_on(config().seeds(seeds), client_rt.handle().clone()).expect("client");
    let table = client.table::<Value>(TABLE);
    let keys = plan.keys;
    client_rt.block_on(async {
        while table.members().await.map_or(0, |m| m.len()) < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        table
            .update((0..keys).map(|i| (format!("k{i}"), Value::from(i))))
            .await
            .expect("preloads the table");
        for i in 0..keys {
            kv_set(format!("k{i}"), Value::from(i))
                .on(&kv)
                .via(&client)
                .await
                .expect("preloads");
        }
    });

    let (kv_addr, c) = (kv.addr(), client.clone());
    let kv_get_op = move |i: usize| {
        let c = c.clone();
        async move {
            let got = kv_get(format!("k{}", i % keys)).on(kv_addr).via(&c).await;
            assert!(got.expect("a plain get").is_some());
        }
    };
    let c = client.clone();
    let kv_set_op = move |i: usize| {
        let c = c.clone();
        async move {
            kv_set(format!("k{}", i % keys), Value::from(i))
                .on(kv_addr)
                .via(&c)
                .await
                .expect("a plain set");
        }
    };
    let t = table.clone();
    let get_op = move |i: usize| {
        let t = t.clone();
        async move {
            assert!(t
                .get(format!("k{}", i % keys))
                .await
                .expect("a table get")
                .is_some());
        }
    };
    let t = table.clone();
    let set_op = move |i: usize| {
        let t = t.clone();
        async move {
            t.set(format!("k{}", i % keys), Value::from(i))
                .await
                .expect("a table set");
        }
    };

    let n = plan.sequential;
    let (kv_gets, gets, kv_sets, sets) = client_rt.block_on(async {
        (
            sequential(n, &kv_get_op).await,
            sequential(n, &get_op).await,
            sequential(n, &kv_set_op).await,
            sequential(n, &set_op).await,
        )
    });
    let (kv_get_rate, get_rate, kv_set_rate, set_rate) = client_rt.block_on(async {
        (
            throughput(plan, kv_get_op.clone()).await,
            throughput(plan, get_op.clone()).await,
            throughput(plan, kv_set_op.clone()).await,
            throughput(plan, set_op.clone()).await,
        )
    });
    println!(
        "\n1. a table of 5 members (R=3) from a non-member, beside a HashMap behind plain calls \
         ({})",
        if shared {
            "all on one 2-worker runtime"
        } else {
            "each peer on a 1-worker runtime of its own"
        }
    );
    println!(
        "   {:<8} {:>11} {:>11} {:>8} {:>11} {:>11}   target",
        "", "table p50", "plain p50", "ratio", "table p99", "plain p99"
    );
    for (name, table, plain, target) in
        [("get", &gets, &kv_gets, 1.5), ("set", &sets, &kv_sets, 2.0)]
    {
        let ratio = percentile(table, 50) / percentile(plain, 50);
        println!(
            "   {name:<8} {:>8.1} µs {:>8.1} µs {:>7.2}x {:>8.1} µs {:>8.1} µs   within {target}x: {}",
            percentile(table, 50),
            percentile(plain, 50),
            ratio,
            percentile(table, 99),
            percentile(plain, 99),
            if ratio <= target { "yes" } else { "NO" }
        );
    }
    println!(
        "   {:<8} {:>11} {:>11} {:>8}   target",
        "64 in flight", "table", "plain", "share"
    );
    for (name, table, plain) in [
        ("get/s", get_rate, kv_get_rate),
        ("set/s", set_rate, kv_set_rate),
    ] {
        println!(
            "   {name:<12} {table:>7.0} {plain:>11.0}    1/{:.1}   at least 1/3: {}",
            plain / table,
            if table * 3.0 >= plain { "yes" } else { "NO" }
        );
    }
    client_rt.block_on(client.shutdown());
    kv_rt.block_on(kv.shutdown());
    for (peer, rt) in members.iter().zip(&member_rts) {
        rt.block_on(peer.shutdown());
    }
}

/// The sum of live keys the members hold, and how many buckets they are still receiving.
fn held(members: &[net::Peer]) -> (usize, usize) {
    members
        .iter()
        .filter_map(|m| net::__private::table_held(m, TABLE))
        .fold((0, 0), |(live, pending), (l, p)| (live + l, pending + p))
}

/// How long the simulation's members may take to join and be seen.
const SET_UP_LIMIT: Duration = Duration::from_secs(90);

/// Raises this process's open-files limit as far as it may (to the hard limit, or to
/// `want` where raising that is allowed) and returns it: the simulation's members link
/// to each other in both directions, two sockets a link, all in this process.
fn allow_open_files(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: limit.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            return limit.rlim_max;
        }
        limit.rlim_cur
    }
}

fn membership_at_scale(plan: Plan) {
    // Each pair of members shares one link (`peer/pairing.rs`), two sockets in this one
    // process, and briefly two links while the second is checked and retired.
    let files = allow_open_files(65_536);
    // n members: n(n-1)/2 pairs of 2 sockets, about n², and a thousand files to spare.
    let fit = (files.saturating_sub(1_000) as f64).sqrt() as usize;
    let n = plan.members.min(fit);
    if n < plan.members {
        println!(
            "\n(the open-files limit, {files}, holds the links of {n} members in one process, \
             not {})",
            plan.members
        );
    }
    let rt = runtime("sim", 2);
    let started = Instant::now();
    let first = rt.block_on(net::Peer::start(config())).expect("a member");
    rt.block_on(first.table::<Value>(TABLE).join().into_future())
        .expect("joins");
    let seeds = [first.addr().to_string()];
    let mut members = vec![first];
    // The set-up is bounded like everything else here: on a machine too slow for `n`
    // members in one process it says so and stops, rather than running on.
    let set_up_by = started + SET_UP_LIMIT;
    let too_slow = |what: &str| {
        println!(
            "\n2. {n} members in one process: not set up within {SET_UP_LIMIT:?} ({what}); \
             skipped (--quick runs 20)"
        );
    };
    // Joined ten at a time: each says hello to every member its seed knows.
    while members.len() < n {
        if Instant::now() > set_up_by {
            return too_slow(&format!("{} of {n} joined", members.len()));
        }
        let batch = (n - members.len()).min(10);
        let joined: Vec<net::Peer> = rt.block_on(async {
            let joins = (0..batch).map(|_| async {
                let peer = net::Peer::start(config().seeds(seeds.clone()))
                    .await
                    .expect("a member");
                peer.table::<Value>(TABLE).join().await.expect("joins");
                peer
            });
            futures_util::future::join_all(joins).await
        });
        members.extend(joined);
    }
    let client = rt
        .block_on(net::Peer::start(config().seeds(seeds.clone())))
        .expect("client");
    let table = client.table::<Value>(TABLE);
    let keys = plan.sim_keys;
    let copies = keys * net::DEFAULT_TABLE_REPLICAS;
    let settled = |members: &[net::Peer], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while held(members) != (copies, 0) {
            assert!(
                Instant::now() < deadline,
                "{what}: still {:?} of {copies}",
                held(members)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let seen = rt.block_on(async {
        loop {
            let seen = table.members().await.map_or(0, |m| m.len());
            if seen >= n || Instant::now() > set_up_by {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    if seen < n {
        return too_slow(&format!("a client sees {seen} of {n} members"));
    }
    rt.block_on(async {
        table
            .update((0..keys).map(|i| (format!("k{i}"), Value::from(i))))
            .await
            .expect("writes the keys");
    });
    settled(&members, "the writes");
    println!(
        "\n2. {n} members in one process, {keys} keys, R=3 (set up in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let joining = Instant::now();
    let newcomer = rt
        .block_on(net::Peer::start(config().seeds(seeds.clone())))
        .expect("a member");
    rt.block_on(newcomer.table::<Value>(TABLE).join().into_future())
        .expect("joins");
    let joined = joining.elapsed();
    let (received, owed) = net::__private::table_held(&newcomer, TABLE).expect("a member");
    members.push(newcomer);
    settled(&members, "after the join");
    println!(
        "   one joins: it received {received} of {copies} copies = {:.4} (1/{} = {:.4}); join \
         took {:.0} ms ({owed} buckets still owed then), handoffs done after {:.0} ms",
        received as f64 / copies as f64,
        n + 1,
        1.0 / (n + 1) as f64,
        joined.as_secs_f64() * 1e3,
        joining.elapsed().as_secs_f64() * 1e3
    );

    let dead = members.remove(members.len() / 2);
    let (lost, _) = net::__private::table_held(&dead, TABLE).expect("a member");
    let killed = Instant::now();
    net::__private::table_vanish(&dead, TABLE);
    let mut dropped = None;
    let deadline = killed + Duration::from_secs(120);
    loop {
        if dropped.is_none() {
            let views = rt
                .block_on(table.members().into_future())
                .map_or(0, |m| m.len());
            if views == n {
                dropped = Some(killed.elapsed());
            }
        }
        if dropped.is_some() && held(&members) == (copies, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "R copies not restored: {:?}",
            held(&members)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "   one dies holding {lost} copies: dropped from the view after {:.0} ms, every key \
         has R copies again after {:.0} ms",
        dropped.map_or(0.0, |d| d.as_secs_f64() * 1e3),
        killed.elapsed().as_secs_f64() * 1e3
    );
    rt.block_on(async {
        for peer in members.iter().chain([&dead, &client]) {
            peer.shutdown().await;
        }
    });
}
