//! app-net's basic example: one function, two processes calling each other.
//!
//! `cargo run --example quickstart` starts a peer, then starts a second copy of this
//! program; each calls `multiply` on the other. Both stay on loopback (this machine only).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// The function both processes serve and call.
#[net::connect]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

/// Tells the second copy to exit; one-way, so the caller does not wait for the exit.
#[net::connect(oneway)]
fn quit(quit: net::State<Quit>) {
    let _ = quit.0.lock().map(|tx| tx.send(()));
}

/// How `quit` reaches the second copy's main thread: given to its peer at start.
struct Quit(Mutex<mpsc::Sender<()>>);

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Confined to loopback: the demo needs no network beyond this machine.
    let me = net::start(net::Config::from_env()?.loopback(true))?;
    match std::env::args().nth(1) {
        Some(first) => second(me, &first),
        None => first(me),
    }
}

/// The first copy: starts the second, waits for its address, calls it, stops it.
fn first(me: net::Peer) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "[first]  peer {} started; starting a second copy",
        me.addr()
    );
    let mut child = Command::new(std::env::current_exe()?)
        .arg(me.addr().to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the second copy has no stdout")?;
    let mut second_addr = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(addr) = line.strip_prefix("[second] ready at ") {
            second_addr = Some(addr.to_owned());
            break;
        }
    }
    let second_addr = second_addr.ok_or("the second copy exited before it was ready")?;

    let product = multiply(6, 7).on(&second_addr).wait()?;
    println!("[first]  multiply(6, 7) on {second_addr} = {product}");
    let info = net::info().on(&second_addr).wait()?;
    println!(
        "[first]  the second copy is {} run by {:?}, serving {}",
        info.executable,
        info.user,
        info.functions().join(", ")
    );
    quit().on(&second_addr).wait()?;
    let status = child.wait()?;
    println!("[first]  the second copy exited ({status}); done");
    Ok(())
}

/// The second copy: calls the first, says where it listens, serves until told to quit.
fn second(me: net::Peer, first: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (tx, rx) = mpsc::channel();
    me.provide(Quit(Mutex::new(tx)));
    println!("[second] peer {} started", me.addr());
    let product = multiply(5, 10).on(first).wait()?;
    println!("[second] multiply(5, 10) on {first} = {product}");
    println!("[second] ready at {}", me.addr());
    // Serve until the first copy calls quit (or give up after a while).
    let _ = rx.recv_timeout(Duration::from_secs(30));
    Ok(())
}
