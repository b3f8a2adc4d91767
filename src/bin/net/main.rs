//! `net`: see and poke the mesh from a terminal (peers, info, call, watch, serve).

mod args;
mod call;
mod info;
mod output;
mod serve;
mod target;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Exit codes: 0 success, 1 remote or usage error, 2 no such peer or unreachable.
pub(crate) enum Failure {
    /// A usage error or an error from the peer.
    Error(String),
    /// The peer does not exist or cannot be reached.
    NoPeer(String),
}

impl From<net::Error> for Failure {
    fn from(error: net::Error) -> Failure {
        match error {
            net::Error::Unreachable { .. } | net::Error::InvalidTarget { .. } => {
                Failure::NoPeer(error.to_string())
            }
            other => Failure::Error(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors exit 1 (clap's
            // default 2 means "no such peer" here).
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("net: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("net: {message}");
            ExitCode::from(1)
        }
        Err(Failure::NoPeer(message)) => {
            eprintln!("net: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Info(args) => info::run(args).await,
        Command::Call(args) => call::run(args).await,
        Command::Serve(args) => serve::run(args).await,
    }
}

/// A peer for this command to call from: the `NET_*` settings, on any free port, so that
/// a passing command never takes a port of the range that discovery scans.
pub(crate) async fn client_peer() -> Result<net::Peer, Failure> {
    let config = net::Config::from_env()?.port(0);
    Ok(net::Peer::start(config).await?)
}
