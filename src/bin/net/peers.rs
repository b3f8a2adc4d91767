//! `net peers`: a table (or JSON) of the peers discovery finds.

use crate::args::PeersArgs;
use crate::{client_peer_with, output, progress, Failure};

pub(crate) async fn run(args: PeersArgs) -> Result<(), Failure> {
    let arp = args.arp;
    let me = client_peer_with(|config| {
        if arp {
            let paths = config.discovery.with(net::Discovery::Arp);
            config.discovery(paths)
        } else {
            config
        }
    })
    .await?;
    let mut query = me.peers().groups(args.groups.iter().cloned());
    if args.hubs {
        query = query.hubs_only();
    }
    if args.on_host {
        query = query.on_host();
    }
    if args.refresh {
        query = query.refresh();
    }
    let spinner = progress::spinner("discovering peers");
    let report = query.report().await;
    spinner.finish_and_clear();
    me.shutdown().await;
    let report = report?;
    if args.json {
        output::json(&report.peers);
        return Ok(());
    }
    if report.peers.is_empty() {
        // Nothing found is an answer, not a failure; say why on stderr.
        eprintln!("{report}");
        return Ok(());
    }
    let rows: Vec<[String; 8]> = report
        .peers
        .iter()
        .map(|p| {
            [
                p.id.to_string(),
                p.addr.to_string(),
                if p.app_net { "app-net" } else { "net" }.into(),
                p.group.clone().unwrap_or_else(|| "-".into()),
                if p.hub { "yes" } else { "no" }.into(),
                // The program's own functions, each once: not the built-ins, not aliases.
                p.info.functions().len().to_string(),
                p.found_by.name().to_owned(),
                format!("{:.1} ms", p.rtt.as_secs_f64() * 1000.0),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "ADDRESS",
            "KIND",
            "GROUP",
            "HUB",
            "FUNCTIONS",
            "FOUND BY",
            "RTT",
        ],
        &rows,
    );
    Ok(())
}
