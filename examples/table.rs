//! A scoreboard kept in a replicated table (`net::Table`): members store it, any program
//! adds points or prints the board through any member, and the board stays whole when
//! members are killed.
//!
//! ```text
//! cargo run --example table -- member 127.0.0.1:5000                  # terminal 1
//! cargo run --example table -- member 127.0.0.1:5001 127.0.0.1:5000   # terminal 2
//! cargo run --example table -- member 127.0.0.1:5002 127.0.0.1:5000   # terminal 3
//! cargo run --example table -- add 127.0.0.1:5000 ada 3               # ada: 3
//! cargo run --example table -- add 127.0.0.1:5001 ada 2               # ada: 5
//! cargo run --example table -- board 127.0.0.1:5002                   # ada 5
//! cargo run --example table -- owners 127.0.0.1:5000 ada              # the three members
//! ```

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The table every program here uses.
const TABLE: &str = "scores";

#[derive(Parser)]
#[command(about = "A scoreboard in a replicated table: members store it, clients use it.")]
struct Args {
    /// Allow addresses off this machine (without it only loopback addresses are accepted).
    #[arg(long, global = true)]
    lan: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve at ADDR as a member of the scoreboard until Ctrl-C (which hands its scores
    /// to the other members before it leaves).
    Member {
        /// Where to serve.
        #[arg(value_parser = common::parse_addr)]
        addr: SocketAddr,
        /// Members already running, to join through.
        #[arg(value_parser = common::parse_addr)]
        seeds: Vec<SocketAddr>,
    },
    /// Add POINTS to NAME's score, through the member at MEMBER.
    Add {
        /// Any member.
        #[arg(value_parser = common::parse_addr)]
        member: SocketAddr,
        /// The player.
        name: String,
        /// Points to add.
        points: u64,
    },
    /// Print the board, best first.
    Board {
        /// Any member.
        #[arg(value_parser = common::parse_addr)]
        member: SocketAddr,
    },
    /// Print the members holding NAME's score.
    Owners {
        /// Any member.
        #[arg(value_parser = common::parse_addr)]
        member: SocketAddr,
        /// The player.
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::fail(e),
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        Command::Member { addr, seeds } => {
            common::confine(seeds.iter().chain([&addr]), args.lan)?;
            let config =
                common::node_config(addr, args.lan)?.seeds(seeds.iter().map(ToString::to_string));
            let peer = net::start_with_runtime(config, tokio::runtime::Handle::current())?;
            common::set_name(peer.addr());
            let scores = net::Table::<u64>::new(TABLE);
            scores.join().await?;
            let members = scores.members().await?.len();
            say!("joined the scoreboard: {members} member(s)");
            let _ = tokio::signal::ctrl_c().await;
            peer.shutdown().await;
            say!("left the scoreboard; its scores are with the other members");
        }
        Command::Add {
            member,
            name,
            points,
        } => {
            let scores = client(member, args.lan)?;
            // Read, add, write back: two clients adding to one name at the same moment
            // may lose one addition (the later write wins), as with a dict shared
            // without a lock.
            let now = scores.get(name.as_str()).await?.unwrap_or(0) + points;
            scores.set(name.as_str(), now).await?;
            println!("{name}: {now}");
        }
        Command::Board { member } => {
            let mut board = client(member, args.lan)?.items().await?;
            board.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for (name, score) in board {
                println!("{} {score}", name.as_str().unwrap_or("?"));
            }
        }
        Command::Owners { member, name } => {
            for owner in client(member, args.lan)?.owners(name.as_str()).await? {
                println!("{} ({})", owner.addr, owner.id);
            }
        }
    }
    Ok(())
}

/// The scoreboard on a client peer that finds the members through `member`.
fn client(member: SocketAddr, lan: bool) -> Result<net::Table<u64>, Box<dyn std::error::Error>> {
    common::confine([&member], lan)?;
    let config = common::client_config(lan)?.seeds([member.to_string()]);
    net::start_with_runtime(config, tokio::runtime::Handle::current())?;
    Ok(net::Table::new(TABLE))
}
