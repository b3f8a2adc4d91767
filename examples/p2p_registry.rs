//! The Peers tutorial's P2P registry: nodes that each keep a store and a list of peers,
//! answer `get` by a randomized depth-first search of the overlay (caching what they
//! find), and `get_all` by a breadth-first search that reaches each node with one message.
//!
//! ```text
//! cargo run --example p2p_registry -- node 127.0.0.1:5000
//! cargo run --example p2p_registry -- node 127.0.0.1:5001 127.0.0.1:5000
//! cargo run --example p2p_registry -- node 127.0.0.1:5002 127.0.0.1:5000
//! cargo run --example p2p_registry -- node 127.0.0.1:5003 127.0.0.1:5001 127.0.0.1:5002
//! cargo run --example p2p_registry -- client 127.0.0.1:5000 put arrakis dune
//! cargo run --example p2p_registry -- client 127.0.0.1:5003 get arrakis
//! cargo run --example p2p_registry -- client 127.0.0.1:5003 get-all arrakis
//! ```
//!
//! A node serves the plain registry's tags too (`registry.put`, `registry.get`), so the
//! `registry` example's client works against it unchanged, as in the tutorial.
//!
//! `get_all` differs from the tutorial's on purpose. There each node forwards the query
//! to its unvisited peers in parallel, which on the tutorial's own diamond reaches the far
//! node twice (5 messages for 4 nodes), although the text promises N. Here the node asked
//! runs the breadth-first search itself: it asks each level of the overlay in parallel
//! for its value and peers, and asks every node exactly once, so a query costs exactly N
//! messages for N nodes (the client's included); `p2p.stats` counts them.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clap::{Parser, Subcommand};
use net::PeerId;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

/// Raised by `get` when no node has the key; the same type as the plain registry's, so
/// either client receives it typed.
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

/// What one node answers a breadth-first search: its value, and its peers for the next
/// level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Visit {
    /// The node's own value for the key, if any.
    pub value: Option<String>,
    /// The node's peers.
    pub peers: Vec<PeerId>,
}

/// How many search messages this node received and sent, for checking that `get_all`
/// costs one message per node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// `get_all` requests from clients plus breadth-first visits from other nodes.
    pub get_all_received: u64,
    /// Breadth-first visits this node sent for `get_all` requests it ran.
    pub get_all_sent: u64,
    /// `get` requests from clients plus depth-first searches from other nodes.
    pub search_received: u64,
    /// Depth-first searches this node sent on.
    pub search_sent: u64,
}

/// This node's state, given to its peer at start (`Config::state`): the registered
/// functions take it as a `net::State<Node>` parameter, which the serving peer fills in.
#[derive(Default)]
struct Node {
    /// This node's store.
    values: Mutex<BTreeMap<String, String>>,
    /// This node's neighbours in the overlay, by id (which says where each one listens).
    peers: Mutex<BTreeSet<PeerId>>,
    /// The message counters behind [`Stats`].
    get_all_received: AtomicU64,
    get_all_sent: AtomicU64,
    search_received: AtomicU64,
    search_sent: AtomicU64,
}

impl Node {
    fn local(&self, key: &str) -> Option<String> {
        common::lock(&self.values).get(key).cloned()
    }

    fn peer_set(&self) -> BTreeSet<PeerId> {
        common::lock(&self.peers).clone()
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// This node's id: that of the peer serving the call (always known for remote calls).
fn me(caller: &net::Caller) -> Option<PeerId> {
    caller.server().map(|peer| peer.id().clone())
}

/// Maps `key` to `value` here (one-way, as the tutorial's `put` event).
#[net::connect("registry.put", oneway)]
fn put(key: String, value: String, node: net::State<Node>) {
    common::lock(&node.values).insert(key.clone(), value.clone());
    say!("put {key} -> {value}");
}

/// A client's `get`: the value from this node or, failing that, from the first node a
/// depth-first search of the overlay finds it on.
#[net::connect("registry.get")]
async fn get(
    key: String,
    caller: net::Caller,
    node: net::State<Node>,
) -> Result<String, NoSuchKey> {
    count(&node.search_received);
    search_from(&node, key, BTreeSet::new(), &caller).await
}

/// A node's `get` on behalf of another: `visited` holds the nodes this search has reached
/// or will reach by another path, which it must not ask again.
#[net::connect("p2p.search")]
async fn search(
    key: String,
    visited: BTreeSet<PeerId>,
    caller: net::Caller,
    node: net::State<Node>,
) -> Result<String, NoSuchKey> {
    count(&node.search_received);
    search_from(&node, key, visited, &caller).await
}

/// The tutorial's `get`: answer locally, else ask unvisited peers one at a time in random
/// order, and keep the first value found.
async fn search_from(
    node: &Node,
    key: String,
    visited: BTreeSet<PeerId>,
    caller: &net::Caller,
) -> Result<String, NoSuchKey> {
    if let Some(value) = node.local(&key) {
        return Ok(value);
    }
    let peers = node.peer_set();
    let mut order: Vec<PeerId> = peers.difference(&visited).cloned().collect();
    order.shuffle(&mut rand::rng());
    // Our peers will be reached from here: nobody further on needs to ask them.
    let mut pruned = visited;
    pruned.extend(peers);
    pruned.extend(me(caller));
    for peer in order {
        count(&node.search_sent);
        // `search` here is the remote function: this handler only awaits another node.
        match search(key.clone(), pruned.clone()).on(&peer).await {
            Ok(Ok(value)) => return Ok(remember(node, key, value)),
            Ok(Err(NoSuchKey { .. })) => {}
            Err(error) => peer_failed(node, &peer, &error),
        }
    }
    Err(NoSuchKey { key })
}

/// The tutorial's `_cc`: cache a value found elsewhere, unless a value appeared here while
/// the search ran (a parallel search or a put), which then wins.
fn remember(node: &Node, key: String, found: String) -> String {
    let mut values = common::lock(&node.values);
    match values.get(&key) {
        Some(mine) => {
            say!("ignored value: {key} -> {found}");
            mine.clone()
        }
        None => {
            say!("cached value: {key} -> {found}");
            values.insert(key, found.clone());
            found
        }
    }
}

/// Drops a neighbour that cannot be reached any more; other failures (a timeout, a bad
/// reply) leave the overlay as it is.
fn peer_failed(node: &Node, peer: &PeerId, error: &net::Error) {
    match error {
        net::Error::Unreachable { .. } | net::Error::ConnectionClosed { .. } => {
            if common::lock(&node.peers).remove(peer) {
                say!("removed dead peer: {} ({error})", peer.addr());
            }
        }
        _ => say!("peer {} failed: {error}", peer.addr()),
    }
}

/// Every value the overlay holds for `key`: a breadth-first search run from here, asking
/// each level in parallel and every node exactly once.
#[net::connect("p2p.get_all")]
async fn get_all(key: String, caller: net::Caller, node: net::State<Node>) -> BTreeSet<String> {
    count(&node.get_all_received);
    let mut values: BTreeSet<String> = node.local(&key).into_iter().collect();
    let neighbours = node.peer_set();
    let mut seen: BTreeSet<PeerId> = me(&caller).into_iter().collect();
    let mut level: Vec<PeerId> = neighbours
        .iter()
        .filter(|peer| seen.insert((*peer).clone()))
        .cloned()
        .collect();
    while !level.is_empty() {
        let mut replies = JoinSet::new();
        for peer in level.drain(..) {
            count(&node.get_all_sent);
            let call = visit(key.clone()).on(&peer);
            replies.spawn(async move { (peer, call.await) });
        }
        while let Some(reply) = replies.join_next().await {
            // A task only ends early if the runtime shuts down; that node adds nothing.
            let Ok((peer, reply)) = reply else { continue };
            match reply {
                Ok(found) => {
                    values.extend(found.value);
                    let next = found.peers.into_iter();
                    level.extend(next.filter(|p| seen.insert(p.clone())));
                }
                Err(error) if neighbours.contains(&peer) => peer_failed(&node, &peer, &error),
                // Not our link to repair: its own neighbours drop it when they find it dead.
                Err(error) => say!("{} did not answer: {error}", peer.addr()),
            }
        }
    }
    values
}

/// One step of another node's breadth-first search: this node's value and peers.
#[net::connect("p2p.visit")]
fn visit(key: String, node: net::State<Node>) -> Visit {
    count(&node.get_all_received);
    Visit {
        value: node.local(&key),
        peers: node.peer_set().into_iter().collect(),
    }
}

/// Adds the calling node to this node's peers, and answers with this node's id so that
/// the caller adds it back: each side learns the other. The caller is known from
/// `net::Caller`, not from an argument it could get wrong.
#[net::connect("p2p.add_peer")]
fn add_peer(caller: net::Caller, node: net::State<Node>) -> Option<PeerId> {
    match caller.id() {
        Some(id) => {
            if common::lock(&node.peers).insert(id.clone()) {
                say!("add peer {}", id.addr());
            }
        }
        None => say!(
            "ignored add_peer from {:?}: it serves no port",
            caller.addr()
        ),
    }
    me(&caller)
}

/// This node's peers' addresses.
#[net::connect("p2p.peers")]
fn neighbours(node: net::State<Node>) -> Vec<SocketAddr> {
    node.peer_set().iter().map(PeerId::addr).collect()
}

/// This node's message counts.
#[net::connect("p2p.stats")]
fn stats(node: net::State<Node>) -> Stats {
    Stats {
        get_all_received: node.get_all_received.load(Ordering::Relaxed),
        get_all_sent: node.get_all_sent.load(Ordering::Relaxed),
        search_received: node.search_received.load(Ordering::Relaxed),
        search_sent: node.search_sent.load(Ordering::Relaxed),
    }
}

#[derive(Parser)]
#[command(about = "The Peers P2P registry: overlay nodes with get/get_all, and a client.")]
struct Args {
    /// Allow addresses off this machine (without it only loopback addresses are accepted).
    #[arg(long, global = true)]
    lan: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node at ADDR that joins the overlay through PEERS, until Ctrl-C.
    Node {
        /// This node's address (host:port).
        #[arg(value_parser = common::parse_addr)]
        addr: SocketAddr,
        /// Nodes to connect to; each adds this node to its peers and this node adds it.
        #[arg(value_parser = common::parse_addr)]
        peers: Vec<SocketAddr>,
    },
    /// Call the node at ADDR.
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
    /// Map KEY to VALUE on that node (one-way).
    Put { key: String, value: String },
    /// Print a value of KEY, searching the overlay; a missing key exits with 2.
    Get { key: String },
    /// Print every value of KEY in the overlay, as a JSON array.
    GetAll { key: String },
    /// Print the node's peers, as a JSON array of addresses.
    Peers,
    /// Print the node's message counts, as JSON.
    Stats,
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

/// Runs a node: serve at `addr`, join the overlay through `peers`, wait for Ctrl-C.
async fn node(addr: SocketAddr, peers: Vec<SocketAddr>, lan: bool) -> Result<ExitCode, net::Error> {
    // The default peer: the handlers' calls to other nodes go out through it.
    let peer = net::start(common::node_config(addr, lan)?.state(Node::default()))?;
    let state = peer.state::<Node>().expect("given to the peer just above");
    common::set_name(peer.addr());
    for other in peers {
        match add_peer().on(other).await {
            Ok(Some(id)) => {
                say!("add peer {}", id.addr());
                common::lock(&state.peers).insert(id);
            }
            Ok(None) => say!("{other} did not say who it is; not added"),
            Err(error) => say!("could not join {other}: {error}"),
        }
    }
    say!("node ready with {} peers", common::lock(&state.peers).len());
    let _ = tokio::signal::ctrl_c().await;
    peer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs one client command against the node at `node`.
async fn client(node: SocketAddr, op: Op, lan: bool) -> Result<ExitCode, net::Error> {
    let me = net::start(common::client_config(lan)?)?;
    let code = run(node, op).await;
    // Shutting down sends what is still queued, such as a one-way put, before exiting.
    me.shutdown().await;
    code
}

async fn run(node: SocketAddr, op: Op) -> Result<ExitCode, net::Error> {
    match op {
        Op::Put { key, value } => put(key, value).on(node).await?,
        Op::Get { key } => match get(key).on(node).await? {
            Ok(value) => println!("{value}"),
            Err(missing) => {
                println!("Oops: {missing}");
                return Ok(ExitCode::from(2));
            }
        },
        Op::GetAll { key } => println!("{}", json(&get_all(key).on(node).await?)),
        Op::Peers => println!("{}", json(&neighbours().on(node).await?)),
        Op::Stats => println!("{}", json(&stats().on(node).await?)),
    }
    Ok(ExitCode::SUCCESS)
}

fn json(value: &impl Serialize) -> String {
    // Sets of strings, addresses and counters always encode.
    serde_json::to_string(value).unwrap_or_default()
}
