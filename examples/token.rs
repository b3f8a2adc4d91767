//! py-p2p's shared token: one value kept the same on every peer. A newcomer asks one
//! neighbour for the current token (a call with a reply) and greets every member (a
//! broadcast); an update is an event every member has subscribed to.
//!
//! ```text
//! cargo run --example token -- 7                  # the first peer, holding token 7
//! cargo run --example token -- 127.0.0.1:3010     # a newcomer, given any member's address
//! ```
//!
//! Type `set 4` on any peer to update the token everywhere, `show` to print it, Ctrl-D to
//! leave. Everything stays on loopback. Until discovery lands, members learn of each other
//! through the greeting rather than from `net::peers()`.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What this peer knows, given to its peer at start: the handlers take it as a
/// `net::State<Shared>` parameter, and the command loop reads it through the peer.
#[derive(Default)]
struct Shared {
    /// This peer's copy of the token.
    token: Mutex<Option<i64>>,
    /// The other members this peer knows of.
    members: Mutex<BTreeSet<SocketAddr>>,
}

impl Shared {
    fn token(&self) -> Option<i64> {
        *self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_token(&self, token: i64) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }

    fn members(&self) -> Vec<SocketAddr> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.iter().copied().collect()
    }

    fn add_members(&self, more: impl IntoIterator<Item = SocketAddr>) {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }
}

/// This process's shared state, through its peer.
fn shared(me: &net::Peer) -> net::State<Shared> {
    me.state::<Shared>()
        .expect("the peer is started with it in `run`")
}

/// What a neighbour tells a newcomer: the token and who else is here.
#[derive(Serialize, Deserialize)]
struct Welcome {
    token: Option<i64>,
    members: Vec<SocketAddr>,
}

/// A newcomer asks one neighbour (py-p2p's `send_one` with a `reply`).
#[net::connect]
fn current_token(caller: net::Caller, shared: net::State<Shared>) -> Welcome {
    let mut members = shared.members();
    members.extend(caller.server().map(|me| me.addr()));
    Welcome {
        token: shared.token(),
        members,
    }
}

/// A newcomer greets every member (py-p2p's `send` to everybody); each subscribes to the
/// newcomer's updates in return.
#[net::connect]
async fn hello(caller: net::Caller, shared: net::State<Shared>) -> Result<(), String> {
    let (Some(me), Some(newcomer)) = (caller.server(), caller.id()) else {
        return Err("hello must come from a peer that serves a port".into());
    };
    shared.add_members([newcomer.addr()]);
    me.subscribe_to(&caller)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Tells every member the new token.
#[net::event("token.update")]
fn update(token: i64) -> i64 {
    token
}

/// Every member's reactor to an update.
#[net::subscribe("token.update")]
fn on_update(token: i64, caller: net::Caller, shared: net::State<Shared>) {
    shared.set_token(token);
    let from = caller
        .id()
        .map(|id| id.addr().to_string())
        .unwrap_or_default();
    println!("[token] now {token} (update from {from})");
}

type AppResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> AppResult<()> {
    let config = net::Config::from_env()?.loopback(true);
    let me = net::start(config.state(Shared::default()))?;
    match std::env::args().nth(1) {
        Some(arg) if arg.contains(':') => join(&me, &arg).await?,
        Some(arg) => {
            let first: i64 = arg.parse().map_err(|_| {
                format!("expected a starting token (a number) or an address, got {arg:?}")
            })?;
            shared(&me).set_token(first);
            println!("[token] {first} (first peer)");
        }
        None => println!("[token] none yet (first peer)"),
    }
    println!("[token] ready at {}", me.addr());
    commands(&me).await?;
    me.shutdown().await;
    Ok(())
}

/// Joins through `neighbour`: asks it for the token, greets every member, subscribes to
/// every member's updates.
async fn join(me: &net::Peer, neighbour: &str) -> AppResult<()> {
    let welcome = current_token().on(neighbour).await?;
    if let Some(token) = welcome.token {
        shared(me).set_token(token);
    }
    println!("[token] {:?} (asked {neighbour})", welcome.token);
    shared(me).add_members(welcome.members.iter().copied());
    let mut greeted = 0;
    for (member, result) in hello().broadcast(welcome.members.clone()).await {
        match result {
            Ok(Ok(())) => greeted += 1,
            Ok(Err(e)) => eprintln!("[token] {member} refused the greeting: {e}"),
            Err(e) => eprintln!("[token] {member} did not answer: {e}"),
        }
    }
    for member in &welcome.members {
        me.subscribe_to(*member).await?;
    }
    println!("[token] greeted {greeted} members");
    Ok(())
}

/// Reads `set N`, `show` and `members` from stdin until it closes.
async fn commands(me: &net::Peer) -> AppResult<()> {
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["set", value] => match value.parse::<i64>() {
                Ok(value) => {
                    shared(me).set_token(value);
                    let report = update(value).via(me).await?;
                    println!(
                        "[token] set to {value}; told {} of {} members",
                        report.delivered().count(),
                        report.deliveries.len()
                    );
                }
                Err(_) => println!("[token] `set` takes a whole number"),
            },
            ["show"] => println!("[token] {:?}", shared(me).token()),
            ["members"] => println!("[token] members {:?}", shared(me).members()),
            [] => {}
            _ => println!("[token] commands: set N, show, members"),
        }
    }
    Ok(())
}
