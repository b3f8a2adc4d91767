//! `net doctor`: run every discovery path and explain what each found, or why not.

use crate::args::DoctorArgs;
use crate::{client_peer_with, output, progress, Failure};

pub(crate) async fn run(args: DoctorArgs) -> Result<(), Failure> {
    // As in the library: the ARP-neighbour scan only when asked for.
    let arp = args.arp && !args.no_arp;
    let me = client_peer_with(|config| {
        let all = net::DiscoveryPaths::all();
        let paths = if arp {
            all
        } else {
            all.without(net::Discovery::Arp)
        };
        config.discovery(paths)
    })
    .await?;
    let config = me.config().clone();
    let spinner = progress::spinner("running every discovery path");
    let report = me.peers().refresh().report().await;
    spinner.finish_and_clear();
    me.shutdown().await;
    let report = report?;

    let last = config.port.saturating_add(config.port_range);
    if args.json {
        let paths: Vec<serde_json::Value> = report
            .paths
            .iter()
            .map(|p| {
                serde_json::json!({
                    "path": p.path.name(), "ran": p.ran, "found": p.found, "detail": p.detail,
                })
            })
            .collect();
        output::json(&serde_json::json!({
            "group": config.group,
            "ports": [config.port, last],
            "loopback": config.loopback,
            "secured": config.secret.is_some(),
            "paths": paths,
            "peers": report.peers,
        }));
        return Ok(());
    }
    println!(
        "this peer: group {}, ports {}..={} (NET_PORT, NET_PORT_RANGE), {}",
        config.group.as_deref().unwrap_or("none"),
        config.port,
        last,
        if config.loopback {
            "confined to loopback (NET_LOOPBACK)"
        } else {
            "on the LAN"
        }
    );
    if config.secret.is_some() {
        println!("security: secured (NET_SECRET); only peers with the same secret are listed");
    } else {
        println!(
            "security: none; any program that can reach ports {}..={} can call every \
             function of the peers there, and read what they send. Set NET_SECRET (or \
             NET_SECRET_FILE) on every peer to close the mesh",
            config.port, last
        );
    }
    for path in &report.paths {
        let verdict = match (path.ran, path.found) {
            (false, _) => "skipped",
            (true, 0) => "found nothing",
            (true, _) => "ok",
        };
        println!(
            "{:<6} {:<13} found {:<3} {}",
            path.path.name(),
            verdict,
            path.found,
            path.detail
        );
    }
    let found = report.peers.len();
    println!("{found} peer(s) in all");
    if found == 0 {
        println!(
            "hint: start one with `net serve` (or any net program) and run this again; on a \
             LAN, check that the other machines use the same NET_PORT range and allow it through \
             their firewall"
        );
    }
    if let Some(group) = &config.group {
        let elsewhere: Vec<String> = report
            .peers
            .iter()
            .filter(|p| p.group.as_deref() != Some(group))
            .map(|p| format!("{} ({})", p.addr, p.group.as_deref().unwrap_or("no group")))
            .collect();
        if !elsewhere.is_empty() {
            println!(
                "hint: {} peer(s) are in other groups than {group:?} and group filters will \
                 leave them out: {}",
                elsewhere.len(),
                elsewhere.join(", ")
            );
        }
    }
    Ok(())
}
