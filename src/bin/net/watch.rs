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
    let stop = crate::serve::stopped();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = rescan.tick() => {
                let found = watch_new(me, args, &mut watched, &tx).await?;
                if found > 0 {
                    eprintln!("watching {:?} on {} peer(s)", args.event, watched.len());
                }
            }
            Some((from, payload)) = events.recv() => print(args, from, payload),
            _ = &mut stop => return Ok(()),
        }
    }
}

/// Subscribes to the event on every matching peer not watched yet; returns how many.
async fn watch_new(
    me: &net::Peer,
    args: &WatchArgs,
    watched: &mut BTreeSet<SocketAddr>,
    tx: &mpsc::UnboundedSender<(SocketAddr, Value)>,
) -> Result<usize, Failure> {
    let peers = me
        .peers()
        .groups(args.groups.iter().cloned())
        .refresh()
        .await?;
    let mut added = 0;
    for peer in peers {
        if watched.contains(&peer.addr) {
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
    Ok(added)
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
