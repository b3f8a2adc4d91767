//! app-net's subscription example: a hub reads lines from stdin and publishes each one as
//! the event "line"; subscribed peers print what they receive.
//!
//! ```text
//! cargo run --example simple_subscription                    # the hub: type lines
//! cargo run --example simple_subscription -- 127.0.0.1:3010  # a subscriber (another terminal)
//! ```
//!
//! Until discovery finds hubs by itself, a subscriber is given the hub's address. Everything
//! stays on loopback (this machine only). End either side with Ctrl-D.

use std::io::BufRead;
use std::process::ExitCode;

/// Publishes one line: the body shapes the payload (here it only trims the newline).
#[net::event("line")]
fn line(text: &str) -> String {
    text.trim_end().to_owned()
}

/// Runs for every line a hub publishes; `hubs_only` keeps it to hubs.
#[net::subscribe("line", hubs_only)]
fn on_line(text: String) {
    println!("[subscriber] {text}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match std::env::args().nth(1) {
        Some(hub) => subscriber(&hub).await,
        None => hub().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simple_subscription: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The hub: each line typed is published to every subscriber, with a one-line report.
async fn hub() -> Result<()> {
    let me = net::start(net::Config::from_env()?.loopback(true).hub(true))?;
    println!("[hub] ready at {}; type lines to publish them", me.addr());
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(64);
    // Reading stdin blocks, so it gets a thread of its own.
    std::thread::spawn(move || {
        for text in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.blocking_send(text).is_err() {
                break;
            }
        }
    });
    while let Some(text) = lines.recv().await {
        let report = line(&text).await?;
        println!("[hub] {report}");
    }
    me.shutdown().await;
    Ok(())
}

/// A subscriber: registers `on_line` with the hub and prints lines until stdin closes.
async fn subscriber(hub: &str) -> Result<()> {
    let me = net::start(net::Config::from_env()?.loopback(true))?;
    let events = me.subscribe_to(hub).await?;
    if !events.iter().any(|e| e == "line") {
        return Err(format!(
            "the peer at {hub} is not a hub, so `on_line` (hubs_only) did not subscribe; \
             give the address the hub printed"
        )
        .into());
    }
    println!("[subscriber] {} subscribed to {hub}", me.addr());
    // Until stdin closes (Ctrl-D, or the parent process ends it).
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    me.shutdown().await;
    Ok(())
}
