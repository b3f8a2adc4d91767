//! `net`: see and poke the mesh from a terminal (peers, info, call, watch, serve).

mod args;
mod call;
mod doctor;
mod info;
mod output;
mod peers;
mod progress;
mod serve;
mod target;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

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
    // `net peers --json | head` closes stdout early: that ends the command quietly, as
    // for any Unix tool, instead of a panic about a broken pipe.
    #[cfg(unix)]
    reset_sigpipe();
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
    quiet_logs();
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

/// `--secret-file`, for every peer this command starts.
static SECRET_FILE: OnceLock<PathBuf> = OnceLock::new();

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Some(path) = cli.secret_file {
        let _ = SECRET_FILE.set(path);
    }
    match cli.command {
        Command::Peers(args) => peers::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Info(args) => info::run(args).await,
        Command::Call(args) => call::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Serve(args) => serve::run(args).await,
    }
}

/// A peer for this command to call from: the `NET_*` settings, listening on any free port
/// so that a passing command never takes a port of the range that discovery scans.
pub(crate) async fn client_peer() -> Result<net::Peer, Failure> {
    client_peer_with(|config| config).await
}

/// [`client_peer`] with changes to its settings (e.g. the discovery paths).
pub(crate) async fn client_peer_with(
    change: impl FnOnce(net::Config) -> net::Config,
) -> Result<net::Peer, Failure> {
    let config = change(settings()?.client(true));
    Ok(net::Peer::start(config).await?)
}

/// The `NET_*` settings with the command line's global options applied.
pub(crate) fn settings() -> Result<net::Config, Failure> {
    let config = net::Config::from_env()?;
    Ok(match SECRET_FILE.get() {
        Some(path) => config.secret(net::Secret::from_file(path)?),
        None => config,
    })
}

/// The command explains what it finds (or not) itself; library logs show only errors,
/// unless NET_DEV asks for debug output.
fn quiet_logs() {
    let dev =
        std::env::var("NET_DEV").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    // Warnings meant for the user (an unknown NET_* variable, say) still show.
    let filter = if dev {
        "net=debug"
    } else {
        "net=error,net::logging=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Restores the default SIGPIPE action (Rust ignores it), so that writing to a closed
/// pipe ends the process as it ends `cat` or `grep`.
#[cfg(unix)]
fn reset_sigpipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: setting a signal's disposition to the default is async-signal-safe and
    // happens before any thread is started.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}
