//! `net watch EVENT`: subscribe to an event on every (filtered) peer discovery finds, and
//! print each event as it arrives until Ctrl-C.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::args::WatchArgs;
use crate::{client_peer, Failure};

/// How often to look for publishers that started after the command.
const RESCAN: Duration = Duration::from_secs(2);

pub(crate) async fn run(args: WatchArgs) -> Result<(), Failure> {
    let me = client_peer().await?;
    let result = watch(&me, &args).await;
    me.shutdown().await;
    result
}

async fn watch(me: &net::Peer, args: &WatchArgs) -> Result<(), Failure> {
    let (tx, mut events) = mpsc::unbounded_channel::<(SocketAddr, Value)>();
    let mut watched = BTreeSet::new();
    let mut rescan = tokio::time::interval(RESCAN);
    let mut said_waiting = false;
    let stop = crate::serve::stopped();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = rescan.tick() => {
                let found = watch_new(me, args, &mut watched, &tx).await?;
                if found.added > 0 {
                    eprintln!("watching {:?} on {} peer(s)", args.event, watched.len());
                } else if watched.is_empty() && !said_waiting {
                    said_waiting = true;
                    eprintln!("{}", waiting(args, &found.published));
                }
            }
            Some((from, payload)) = events.recv() => print(args, from, payload),
            _ = &mut stop => return Ok(()),
        }
    }
}

/// What one look for publishers found.
struct Found {
    /// Peers newly watched.
    added: usize,
    /// Every event the peers found publish, for a "did you mean".
    published: BTreeSet<String>,
}

/// Why nothing prints yet: no peer publishes the event (with the closest event that
/// peers do publish).
fn waiting(args: &WatchArgs, published: &BTreeSet<String>) -> String {
    let mut text = format!("no peer found publishes {:?} yet", args.event);
    let closest = published
        .iter()
        .map(|e| (e, strsim::normalized_damerau_levenshtein(&args.event, e)))
        .filter(|(_, score)| *score >= 0.6)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((event, _)) = closest {
        text.push_str(&format!("; did you mean {event:?}?"));
    }
    if !published.is_empty() {
        let list: Vec<&str> = published.iter().map(String::as_str).collect();
        text.push_str(&format!(" (the peers found publish {})", list.join(", ")));
    }
    text.push_str("; waiting for one to start (Ctrl-C stops)");
    text
}

/// Subscribes to the event on every matching peer that publishes it and is not watched
/// yet. (A Python app-net peer does not say what it publishes: it is watched anyway.)
async fn watch_new(
    me: &net::Peer,
    args: &WatchArgs,
    watched: &mut BTreeSet<SocketAddr>,
    tx: &mpsc::UnboundedSender<(SocketAddr, Value)>,
) -> Result<Found, Failure> {
    // The table the background refresh keeps current.
    let peers = me.peers().groups(args.groups.iter().cloned()).await?;
    let mut added = 0;
    let published = peers
        .iter()
        .flat_map(|p| p.info.events.iter().cloned())
        .collect();
    for peer in peers {
        let publishes = peer.app_net || peer.info.events.contains(&args.event);
        if watched.contains(&peer.addr) || !publishes {
            continue;
        }
        match me.watch(&args.event, peer.addr).await {
            Ok(mut payloads) => {
                watched.insert(peer.addr);
                added += 1;
                let tx = tx.clone();
                let from = peer.addr;
                tokio::spawn(async move {
                    while let Some(payload) = payloads.recv().await {
                        if tx.send((from, payload)).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => eprintln!("net: cannot watch {}: {e}", peer.addr),
        }
    }
    Ok(Found { added, published })
}

fn print(args: &WatchArgs, from: SocketAddr, payload: Value) {
    if args.json {
        println!(
            "{}",
            json!({"from": from.to_string(), "event": args.event, "args": payload})
        );
        return;
    }
    // One argument prints as itself; several as the JSON array.
    let shown = match &payload {
        Value::Array(items) if items.len() == 1 => items[0].to_string(),
        other => other.to_string(),
    };
    println!("{from} {} {shown}", args.event);
}
