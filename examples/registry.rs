//! The Peers tutorial's first example: a registry node that stores key-value pairs for
//! remote clients, and a client to put, get, and see a missing key's typed error.
//!
//! ```text
//! cargo run --example registry -- 127.0.0.1:5000                        # terminal 1: the node
//! cargo run --example registry -- 127.0.0.1:5000 put arrakis dune       # terminal 2
//! cargo run --example registry -- 127.0.0.1:5000 get arrakis            # dune
//! cargo run --example registry -- 127.0.0.1:5000 get "Muad'Dib"         # Oops: no such key
//! cargo run --example registry -- 127.0.0.1:5000 get arrakis --then     # Got: arrakis -> dune
//! ```

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// Raised by `get` for a key with no value. It crosses the wire typed: the caller's
/// `get(key).on(node).await?` is `Err(NoSuchKey { .. })`, not a string to pick apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoSuchKey {
    /// The key that was asked for.
    pub key: String,
}

impl std::fmt::Display for NoSuchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no such key: {}", self.key)
    }
}

impl std::error::Error for NoSuchKey {}

/// The node's store, given to its peer at start: the functions below take it as a
/// `net::State<Store>` parameter, which the serving peer fills in.
#[derive(Default)]
struct Store(Mutex<BTreeMap<String, String>>);

/// Maps `key` to `value`. One-way, as the tutorial's `put` event: callers do not wait for
/// it to run, and it returns nothing. The custom tag lets a separately built client (or
/// the P2P registry, which serves the same tags) agree on the function.
#[net::connect("registry.put", oneway)]
fn put(key: String, value: String, store: net::State<Store>) {
    common::lock(&store.0).insert(key.clone(), value.clone());
    // Logged once stored, so that the line also says the value can now be read.
    say!("put {key} -> {value}");
}

/// The value mapped to `key`, or the typed `NoSuchKey`.
#[net::connect("registry.get")]
fn get(key: String, store: net::State<Store>) -> Result<String, NoSuchKey> {
    common::lock(&store.0)
        .get(&key)
        .cloned()
        .ok_or(NoSuchKey { key })
}

#[derive(Parser)]
#[command(
    about = "The Peers registry: a node serving put/get, and a client for it.",
    after_help = "With no command, serve the registry at ADDR until Ctrl-C. With a command, \
                  call the node at ADDR.\n\nExample: registry 127.0.0.1:5000 & registry \
                  127.0.0.1:5000 put arrakis dune"
)]
struct Args {
    /// The node's address (host:port): where to serve, or where the node to call is.
    #[arg(value_parser = common::parse_addr)]
    addr: SocketAddr,
    /// Allow an address off this machine (without it only loopback addresses are accepted).
    #[arg(long, global = true)]
    lan: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Map KEY to VALUE (a one-way call: it returns once sent).
    Put { key: String, value: String },
    /// Print the value of KEY; a missing key prints the typed error and exits with 2.
    Get {
        key: String,
        /// Use the continuation form: hand callbacks to `.then(on_ok, on_err)`.
        #[arg(long)]
        then: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = common::confine([&args.addr], args.lan) {
        return common::fail(e);
    }
    let result = match args.command {
        None => serve(args.addr, args.lan).await,
        Some(command) => client(args.addr, args.lan, command).await,
    };
    result.unwrap_or_else(common::fail)
}

/// Runs the node until Ctrl-C.
async fn serve(addr: SocketAddr, lan: bool) -> Result<ExitCode, net::Error> {
    let peer = net::start(common::node_config(addr, lan)?.state(Store::default()))?;
    common::set_name(peer.addr());
    say!("registry serving");
    let _ = tokio::signal::ctrl_c().await;
    peer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs one command against the node at `node`.
async fn client(node: SocketAddr, lan: bool, command: Command) -> Result<ExitCode, net::Error> {
    // This process's own peer: the calls go out through it.
    let me = net::start(common::client_config(lan)?)?;
    let code = run(node, command).await;
    // Shutting down sends what is still queued, such as a one-way put, before exiting.
    me.shutdown().await;
    code
}

async fn run(node: SocketAddr, command: Command) -> Result<ExitCode, net::Error> {
    match command {
        Command::Put { key, value } => {
            put(key, value).on(node).await?;
            Ok(ExitCode::SUCCESS)
        }
        // The synchronous convention: wait for the reply, then look at it.
        Command::Get { key, then: false } => match get(key).on(node).await? {
            Ok(value) => {
                println!("{value}");
                Ok(ExitCode::SUCCESS)
            }
            Err(missing) => {
                println!("Oops: {missing}");
                Ok(ExitCode::from(2))
            }
        },
        // The continuation convention: hand over what to do with the answer, and carry on.
        // `on_ok` gets the value; `on_err` gets what went wrong, as in Peers: the
        // function's typed error (`Failure::Returned`) or a failed call (unreachable node,
        // timeout, ...: `Failure::Call`).
        Command::Get { key, then: true } => {
            let failed = Arc::new(AtomicBool::new(false));
            let failed_in_callback = failed.clone();
            let done = get(key.clone()).on(node).then(
                move |value| println!("Got: {key} -> {value}"),
                move |failure| match failure {
                    net::Failure::Returned(missing) => println!("Oops: {missing}"),
                    net::Failure::Call(error) => {
                        eprintln!("error: {error}");
                        failed_in_callback.store(true, Ordering::Relaxed);
                    }
                },
            )?;
            // Wait until a callback has run before this process exits.
            let _ = done.await;
            Ok(match failed.load(Ordering::Relaxed) {
                true => ExitCode::FAILURE,
                false => ExitCode::SUCCESS,
            })
        }
    }
}
