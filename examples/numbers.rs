//! The Peers tutorial's number-theoretic computing herd: nodes that serve random numbers,
//! primes, primality, gcd and modular inverses over big integers, each flipping a coin to
//! compute a request itself or hand it to a random peer.
//!
//! ```text
//! cargo run --example numbers -- node 127.0.0.1:5000
//! cargo run --example numbers -- node 127.0.0.1:5001 127.0.0.1:5000
//! cargo run --example numbers -- node 127.0.0.1:5002 127.0.0.1:5000
//! x=$(cargo run -q --example numbers -- client 127.0.0.1:5000 get-prime 512)
//! cargo run -q --example numbers -- client 127.0.0.1:5000 is-prime $x
//! ```
//!
//! Big integers travel as decimal strings, which any language can read. The functions are
//! plain `fn`s: the peer runs them on a blocking thread, where a forward to another node is
//! a blocking `.wait()`. A node without peers (the tutorial's "loner") computes everything
//! itself.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Parser, Subcommand};
use net::PeerId;
use num_bigint::{BigInt, BigRng09, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::seq::IteratorRandom;
use serde::{Deserialize, Serialize};

/// A request the numbers cannot satisfy: a bad argument, or no answer exists (no inverse).
/// The caller receives it typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFailed {
    /// The operation asked for, e.g. `inverse`.
    pub operation: String,
    /// What was wrong, and what would work.
    pub reason: String,
}

impl std::fmt::Display for OperationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.operation, self.reason)
    }
}

impl std::error::Error for OperationFailed {}

/// The largest size in bits a request may ask for: it keeps one prime search to well
/// under a second.
const MAX_BITS: u64 = 4096;

/// This node's herd, by id (which says where each one listens): given to its peer at
/// start, and taken by the handlers as a `net::State<Herd>` parameter.
#[derive(Default)]
struct Herd(Mutex<BTreeSet<PeerId>>);

// In these bodies `self::get_random(..)` and friends are the remote calls: inside its own
// body a function's bare name is the function itself, as anywhere in Rust.

/// A random `bits`-bit number (its top bit set).
#[net::connect("numbers.get_random")]
fn get_random(bits: u64, peers: net::State<Herd>) -> Result<String, OperationFailed> {
    herd(
        &peers,
        "get_random",
        |peer| self::get_random(bits).on(peer).wait(),
        || Ok(random_bits(check_bits("get_random", bits, 1)?).to_string()),
    )
}

/// A random `bits`-bit probable prime.
#[net::connect("numbers.get_prime")]
fn get_prime(bits: u64, peers: net::State<Herd>) -> Result<String, OperationFailed> {
    herd(
        &peers,
        "get_prime",
        |peer| self::get_prime(bits).on(peer).wait(),
        || Ok(random_prime(check_bits("get_prime", bits, 2)?).to_string()),
    )
}

/// Whether `x` is a (probable) prime.
#[net::connect("numbers.is_prime")]
fn is_prime(x: String, peers: net::State<Herd>) -> Result<bool, OperationFailed> {
    herd(
        &peers,
        "is_prime",
        |peer| self::is_prime(x.clone()).on(peer).wait(),
        || {
            let x = number("is_prime", "x", &x)?;
            Ok(x.sign() == Sign::Plus && probably_prime(x.magnitude()))
        },
    )
}

/// The greatest common divisor of `x` and `y`.
#[net::connect("numbers.gcd")]
fn gcd(x: String, y: String, peers: net::State<Herd>) -> Result<String, OperationFailed> {
    herd(
        &peers,
        "gcd",
        |peer| self::gcd(x.clone(), y.clone()).on(peer).wait(),
        || {
            let (x, y) = (number("gcd", "x", &x)?, number("gcd", "y", &y)?);
            Ok(x.gcd(&y).to_string())
        },
    )
}

/// The inverse of `u` modulo `v`: the `z` in `0..v` with `(z * u) % v == 1`.
#[net::connect("numbers.inverse")]
fn inverse(u: String, v: String, peers: net::State<Herd>) -> Result<String, OperationFailed> {
    herd(
        &peers,
        "inverse",
        |peer| self::inverse(u.clone(), v.clone()).on(peer).wait(),
        || {
            let (u, v) = (number("inverse", "u", &u)?, number("inverse", "v", &v)?);
            if v.sign() != Sign::Plus {
                return Err(failed(
                    "inverse",
                    format!("the modulus v must be positive, got {v}"),
                ));
            }
            u.modinv(&v).map(|z| z.to_string()).ok_or_else(|| {
                failed(
                    "inverse",
                    format!(
                        "{u} has no inverse modulo {v}: they share the factor {}",
                        u.gcd(&v)
                    ),
                )
            })
        },
    )
}

/// Adds the calling node to this node's herd and answers with this node's id, so that
/// each side learns the other.
#[net::connect("numbers.add_peer")]
fn add_peer(caller: net::Caller, peers: net::State<Herd>) -> Option<PeerId> {
    match caller.id() {
        Some(id) => {
            if common::lock(&peers.0).insert(id.clone()) {
                say!("added peer at {}", id.addr());
            }
        }
        None => say!(
            "ignored add_peer from {:?}: it serves no port",
            caller.addr()
        ),
    }
    caller.server().map(|me| me.id().clone())
}

/// The herd's rule: with a peer to ask and heads on a coin, forward the request to a
/// random peer; else compute it here. A peer that cannot be reached is dropped and the
/// work done here instead.
fn herd<T>(
    peers: &Herd,
    operation: &str,
    forward: impl FnOnce(&PeerId) -> net::Result<Result<T, OperationFailed>>,
    compute: impl FnOnce() -> Result<T, OperationFailed>,
) -> Result<T, OperationFailed> {
    say!("{operation}");
    let chosen = match rand::random::<bool>() {
        true => common::lock(&peers.0)
            .iter()
            .choose(&mut rand::rng())
            .cloned(),
        false => None,
    };
    if let Some(peer) = chosen {
        say!("forward to {}", peer.addr());
        match forward(&peer) {
            Ok(answer) => return answer,
            Err(error) => {
                if matches!(
                    error,
                    net::Error::Unreachable { .. } | net::Error::ConnectionClosed { .. }
                ) {
                    common::lock(&peers.0).remove(&peer);
                    say!("removed dead peer: {}", peer.addr());
                }
                say!(
                    "{} failed ({error}); computing {operation} here",
                    peer.addr()
                );
            }
        }
    }
    compute()
}

fn failed(operation: &str, reason: String) -> OperationFailed {
    OperationFailed {
        operation: operation.to_owned(),
        reason,
    }
}

fn number(operation: &str, name: &str, text: &str) -> Result<BigInt, OperationFailed> {
    text.trim().parse().map_err(|_| {
        failed(
            operation,
            format!("{name} must be a decimal integer such as 42, got {text:?}"),
        )
    })
}

fn check_bits(operation: &str, bits: u64, least: u64) -> Result<u64, OperationFailed> {
    if (least..=MAX_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(failed(
            operation,
            format!("bits must be between {least} and {MAX_BITS}, got {bits}"),
        ))
    }
}

/// A uniformly random number of exactly `bits` bits.
fn random_bits(bits: u64) -> BigUint {
    let mut n = rand::rng().random_biguint(bits);
    n.set_bit(bits - 1, true);
    n
}

/// A random probable prime of exactly `bits` bits: random odd candidates until one passes.
fn random_prime(bits: u64) -> BigUint {
    loop {
        let mut candidate = random_bits(bits);
        candidate.set_bit(0, true);
        if probably_prime(&candidate) {
            return candidate;
        }
    }
}

/// Small primes: trial division by them settles most candidates before Miller-Rabin.
const SMALL_PRIMES: [u32; 25] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

/// Miller-Rabin with 32 random bases: a composite passes with probability below 4^-32.
fn probably_prime(n: &BigUint) -> bool {
    for p in SMALL_PRIMES {
        if *n == BigUint::from(p) {
            return true;
        }
        if (n % p).is_zero() {
            return false;
        }
    }
    if *n < BigUint::from(2u32) {
        return false;
    }
    let one = BigUint::one();
    let n_minus_1 = n - &one;
    // n - 1 = d * 2^s with d odd.
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    let two = BigUint::from(2u32);
    let mut rng = rand::rng();
    'bases: for _ in 0..32 {
        let a = rng.random_biguint_range(&two, &n_minus_1);
        let mut x = a.modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

#[derive(Parser)]
#[command(about = "The Peers numbers herd: nodes serving big-integer functions, and a client.")]
struct Args {
    /// Allow addresses off this machine (without it only loopback addresses are accepted).
    #[arg(long, global = true)]
    lan: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node at ADDR that joins the herd through PEERS (none: a loner), until Ctrl-C.
    Node {
        /// This node's address (host:port).
        #[arg(value_parser = common::parse_addr)]
        addr: SocketAddr,
        /// Nodes to join; each adds this node to its herd and this node adds it.
        #[arg(value_parser = common::parse_addr)]
        peers: Vec<SocketAddr>,
    },
    /// Call the node at ADDR and print the answer.
    Client {
        /// The node's address (host:port).
        #[arg(value_parser = common::parse_addr)]
        addr: SocketAddr,
        #[command(subcommand)]
        op: Op,
    },
}

#[derive(Subcommand)]
enum Op {
    /// A random BITS-bit number.
    GetRandom { bits: u64 },
    /// A random BITS-bit prime.
    GetPrime { bits: u64 },
    /// Whether X is prime (prints true or false).
    IsPrime {
        #[arg(allow_negative_numbers = true)]
        x: String,
    },
    /// The greatest common divisor of X and Y.
    Gcd {
        #[arg(allow_negative_numbers = true)]
        x: String,
        #[arg(allow_negative_numbers = true)]
        y: String,
    },
    /// The inverse of U modulo V.
    Inverse {
        #[arg(allow_negative_numbers = true)]
        u: String,
        #[arg(allow_negative_numbers = true)]
        v: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Node { addr, peers } => {
            match common::confine([&addr].into_iter().chain(&peers), args.lan) {
                Ok(()) => node(addr, peers, args.lan).await,
                Err(e) => return common::fail(e),
            }
        }
        Command::Client { addr, op } => match common::confine([&addr], args.lan) {
            Ok(()) => client(addr, op, args.lan).await,
            Err(e) => return common::fail(e),
        },
    };
    result.unwrap_or_else(common::fail)
}

/// Runs a node: serve at `addr`, join the herd through `peers`, wait for Ctrl-C.
async fn node(addr: SocketAddr, peers: Vec<SocketAddr>, lan: bool) -> Result<ExitCode, net::Error> {
    // The default peer: forwards from the handlers go out through it.
    let peer = net::start(common::node_config(addr, lan)?.state(Herd::default()))?;
    let herd = peer.state::<Herd>().expect("given to the peer just above");
    common::set_name(peer.addr());
    for other in peers {
        match add_peer().on(other).await {
            Ok(Some(id)) => {
                say!("added peer at {}", id.addr());
                common::lock(&herd.0).insert(id);
            }
            Ok(None) => say!("{other} did not say who it is; not added"),
            Err(error) => say!("could not join {other}: {error}"),
        }
    }
    say!("node ready with {} peers", common::lock(&herd.0).len());
    let _ = tokio::signal::ctrl_c().await;
    peer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs one client command against the node at `node`.
async fn client(node: SocketAddr, op: Op, lan: bool) -> Result<ExitCode, net::Error> {
    let me = net::start(common::client_config(lan)?)?;
    let answer = match op {
        Op::GetRandom { bits } => get_random(bits).on(node).await,
        Op::GetPrime { bits } => get_prime(bits).on(node).await,
        Op::IsPrime { x } => is_prime(x)
            .on(node)
            .await
            .map(|answer| answer.map(|b| b.to_string())),
        Op::Gcd { x, y } => gcd(x, y).on(node).await,
        Op::Inverse { u, v } => inverse(u, v).on(node).await,
    };
    me.shutdown().await;
    match answer? {
        Ok(value) => {
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("Oops: {failure}");
            Ok(ExitCode::from(2))
        }
    }
}
