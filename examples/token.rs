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

/// This peer's copy of the token.
static TOKEN: Mutex<Option<i64>> = Mutex::new(None);
/// The other members this peer knows of.
static MEMBERS: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());

fn token() -> Option<i64> {
    *TOKEN.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_token(token: i64) {
    *TOKEN.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
}

fn members() -> Vec<SocketAddr> {
    MEMBERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

/// What a neighbour tells a newcomer: the token and who else is here.
#[derive(Serialize, Deserialize)]
struct Welcome {
    token: Option<i64>,
    members: Vec<SocketAddr>,
}

/// A newcomer asks one neighbour (py-p2p's `send_one` with a `reply`).
#[net::connect]
fn current_token(caller: net::Caller) -> Welcome {
    let mut members = members();
    members.extend(caller.server().map(|me| me.addr()));
    Welcome {
        token: token(),
        members,
    }
}

/// A newcomer greets every member (py-p2p's `send` to everybody); each subscribes to the
/// newcomer's updates in return.
#[net::connect]
async fn hello(caller: net::Caller) -> Result<(), String> {
    let (Some(me), Some(newcomer)) = (caller.server(), caller.id()) else {
        return Err("hello must come from a peer that serves a port".into());
    };
    MEMBERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(newcomer.addr());
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
fn on_update(token: i64, caller: net::Caller) {
    set_token(token);
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
    let me = net::start(net::Config::from_env()?.loopback(true))?;
    match std::env::args().nth(1) {
        Some(arg) if arg.contains(':') => join(&me, &arg).await?,
        Some(arg) => {
            let first: i64 = arg.parse().map_err(|_| {
                format!("expected a starting token (a number) or an address, got {arg:?}")
            })?;
            set_token(first);
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
        set_token(token);
    }
    println!("[token] {:?} (asked {neighbour})", welcome.token);
    MEMBERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(welcome.members.iter().copied());
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
                    set_token(value);
                    let report = update(value).via(me).await?;
                    println!(
                        "[token] set to {value}; told {} of {} members",
                        report.delivered().count(),
                        report.deliveries.len()
                    );
                }
                Err(_) => println!("[token] `set` takes a whole number"),
            },
            ["show"] => println!("[token] {:?}", token()),
            ["members"] => println!("[token] members {:?}", members()),
            [] => {}
            _ => println!("[token] commands: set N, show, members"),
        }
    }
    Ok(())
}
