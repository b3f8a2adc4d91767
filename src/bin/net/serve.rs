//! `net serve`: a peer with the built-ins and a few demo functions, until Ctrl-C.

use crate::args::ServeArgs;
use crate::{settings, Failure};

/// Multiplies two numbers: a demo function to call by hand.
#[net::connect("multiply")]
fn multiply(a: f64, b: f64) -> f64 {
    a * b
}

/// Says hello to whoever calls.
#[net::connect("hello")]
fn hello(name: String, caller: net::Caller) -> String {
    match caller.addr() {
        Some(addr) => format!("hello {name}, from {addr}"),
        None => format!("hello {name}"),
    }
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut config = settings()?;
    if args.hub {
        config = config.hub(true);
    }
    if let Some(group) = args.group {
        config = config.group(group);
    }
    let peer = net::Peer::start(config).await?;
    println!(
        "serving on {} (id {}); Ctrl-C stops",
        peer.addr(),
        peer.id()
    );
    if peer.is_secured() {
        println!("secured: only peers with the same NET_SECRET can call it");
    } else {
        println!(
            "not secured: anything that can reach {} can call every function here; set \
             NET_SECRET (or --secret-file) on every peer to close the mesh",
            peer.addr()
        );
    }
    stopped().await;
    peer.shutdown().await;
    println!("stopped");
    Ok(())
}

/// Completes on Ctrl-C, or on SIGTERM where there is one.
pub(crate) async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
