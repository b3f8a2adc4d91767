//! The command line's shape: subcommands, their arguments and help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// See and poke the mesh of net peers.
///
/// Settings come from the NET_* environment variables (NET_PORT, NET_PORT_RANGE,
/// NET_LOOPBACK, NET_TIMEOUT, NET_SECRET, ...), as for any net program. A mesh without
/// NET_SECRET is open: anything that can reach its ports can call every function.
#[derive(Debug, Parser)]
#[command(name = "net", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 remote or usage error, 2 no such peer or \
                        unreachable."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read the mesh secret from this file (as NET_SECRET_FILE does): only peers with the
    /// same secret can call, or be called by, this command.
    #[arg(long, global = true, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the peers discovery finds: id, address, group, hub, functions, path, round trip.
    #[command(
        after_help = "Examples:\n  net peers\n  net peers --group render --hubs\n  net \
                            peers --on-host --json\n  net peers --arp   # also probe the \
                            neighbours' ports (LAN only)"
    )]
    Peers(PeersArgs),
    /// Run every discovery path and say what each found, or why it found nothing.
    #[command(
        after_help = "Examples:\n  net doctor\n  NET_GROUP=render net doctor\n  net doctor \
                            --json\n  net doctor --arp   # also probe the neighbours' ports \
                            (LAN only)"
    )]
    Doctor(DoctorArgs),
    /// Show a peer's info: id, address, group, user, program, functions, flags.
    #[command(
        after_help = "Examples:\n  net info 127.0.0.1:3010\n  net info 127.0.0.1:3010 --json"
    )]
    Info(InfoArgs),
    /// Call a function on a peer and print the result as JSON.
    #[command(
        after_help = "Each ARG is a JSON value (5, 2.5, true, null, '[1, 2]', '{\"a\": 1}', \
                            '\"quoted text\"'); a plain word that is not JSON is taken as a \
                            string, and text that starts like JSON but is not valid JSON is an \
                            error. Options may come before or after the arguments; put -- \
                            before an argument that starts with --.\nTAG is a tag, a \
                            function's path, or its name when that is unique on the \
                            peer.\n\nExamples:\n  net call 127.0.0.1:3010 \
                            multiply 5 10\n  net call 127.0.0.1:3010 pass_through '{\"a\": [1, \
                            2]}'\n  net call 127.0.0.1:3010 registry.get arrakis --timeout 2s\n  \
                            net call 127.0.0.1:3010 multiply --args '[5, 10]'"
    )]
    Call(CallArgs),
    /// Subscribe to an event on every peer found and print each one until Ctrl-C.
    #[command(
        after_help = "Each event prints as `FROM EVENT ARGS` (ARGS as JSON), or as one \
                            JSON object per line with --json.\n\nExamples:\n  net watch \
                            line\n  net watch temperature --group lab --json"
    )]
    Watch(WatchArgs),
    /// Run a peer with the built-ins until Ctrl-C: a ready target for trying things.
    #[command(after_help = "Examples:\n  net serve\n  NET_GROUP=lab net serve --hub")]
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PeersArgs {
    /// Keep peers of this group (repeat for several).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// Keep hubs only.
    #[arg(long)]
    pub hubs: bool,
    /// Keep peers on this machine only.
    #[arg(long)]
    pub on_host: bool,
    /// Discover afresh (the command always starts fresh; kept for app-net's vocabulary).
    #[arg(long)]
    pub refresh: bool,
    /// Also probe the ARP neighbours' ports (what intrusion detection may flag).
    #[arg(long)]
    pub arp: bool,
    /// Print the peers as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Also probe the ARP neighbours' ports (what intrusion detection may flag); off
    /// unless asked, as in the library.
    #[arg(long)]
    pub arp: bool,
    /// The ARP-neighbour scan is off already; kept so that old scripts still run.
    #[arg(long, hide = true)]
    pub no_arp: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// The peer: its id, a unique prefix of one (as `net peers` shows), or host:port.
    pub peer: String,
    /// Print the info as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The peer: its id, a unique prefix of one (as `net peers` shows), or host:port.
    pub peer: String,
    /// The function: a tag, a path such as `app::multiply`, or a unique name.
    pub tag: String,
    /// Arguments, each a JSON value (a plain word is a string).
    #[arg(allow_negative_numbers = true, conflicts_with = "args")]
    pub arg: Vec<String>,
    /// All arguments as one JSON array instead.
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    /// How long to wait for the reply (250ms, 2s, 1m); default NET_TIMEOUT.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The event's name, as in `#[net::event("name")]`.
    pub event: String,
    /// Watch peers of this group only (repeat for several).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// Print one JSON object per event.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Mark the peer as its group's hub (as NET_IS_HUB=1).
    #[arg(long)]
    pub hub: bool,
    /// The peer's group (as NET_GROUP).
    #[arg(long)]
    pub group: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!(
            "`{text}` is not a duration such as 250ms, 2s or 1m"
        )),
    }
}
