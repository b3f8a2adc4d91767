//! What the browser and the start-up queries hear, turned into table entries: each
//! instance's TXT is checked (id, protocol), the peer is probed and added; a goodbye
//! removes it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mdns_sd::{DaemonEvent, Receiver, ResolvedService, ServiceEvent};

use super::query as mdns_query;
use super::Mdns;
use crate::config::Discovery;
use crate::discovery::probe::{probe, Probe};
use crate::id::PeerId;
use crate::peer::Peer;
use crate::sync::lock;
use crate::wire::PROTOCOL_VERSION;

/// When, after start-up, to send the start-up query again (it goes out at once, too):
/// early and often, so a lost packet costs a fraction of a second; afterwards newcomers
/// announce themselves to our browser.
const REQUERY_AT_MS: [u64; 5] = [150, 400, 900, 2000, 4000];

/// Handles the browser's events until the peer shuts down.
pub(super) async fn browse_loop(peer: Peer, mdns: Arc<Mdns>, mut events: Receiver<ServiceEvent>) {
    let shutdown = peer.shutdown_token().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.recv_async() => match event {
                Ok(event) => handle(&peer, &mdns, event),
                // The daemon stopped (shutdown) or dropped us for falling behind.
                Err(_) => {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    match mdns.daemon.browse(&mdns.service) {
                        Ok(fresh) => events = fresh,
                        Err(_) => break,
                    }
                }
            },
        }
    }
}

/// Sends the start-up queries (see `REQUERY_AT_MS` and `mdns_query`) from a port of our
/// own on each advertised address, and learns the peers in the unicast answers.
pub(super) async fn startup_queries(peer: Peer, mdns: Arc<Mdns>, ips: Vec<IpAddr>) {
    let shutdown = peer.shutdown_token().clone();
    let mut sockets = Vec::new();
    for ip in ips.into_iter().filter(IpAddr::is_ipv4) {
        // Bound to the interface's address, the kernel sends the multicast out of that
        // interface, even on a host without any route (a test namespace).
        match tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(socket) => sockets.push(Arc::new(socket)),
            Err(e) => mdns.note(format!("start-up query socket on {ip}: {e}")),
        }
    }
    for socket in &sockets {
        let (peer2, mdns, socket) = (peer.clone(), mdns.clone(), socket.clone());
        let read = async move {
            let mut buf = vec![0u8; 9000];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                    break;
                };
                for txt in mdns_query::parse_txt(&buf[..len], &mdns.service) {
                    let port = txt
                        .get("id")
                        .and_then(|id| id.parse::<PeerId>().ok())
                        .map_or(0, |id| id.port());
                    learned(&peer2, &mdns, &txt.instance, &txt, vec![from.ip()], port);
                }
            }
        };
        let stop = shutdown.clone();
        peer.tracker().spawn_on(
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = read => {}
                }
            },
            peer.runtime(),
        );
    }
    let query = mdns_query::build_query(&mdns.service, 0);
    for ms in std::iter::once(0).chain(REQUERY_AT_MS) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until((mdns.started + Duration::from_millis(ms)).into()) => {}
        }
        for socket in &sockets {
            if let Err(e) = socket.send_to(&query, mdns_query::GROUP).await {
                mdns.note(format!("start-up query: {e}"));
            }
        }
    }
}

fn handle(peer: &Peer, mdns: &Arc<Mdns>, event: ServiceEvent) {
    match event {
        ServiceEvent::ServiceResolved(service) => {
            let ResolvedService {
                fullname,
                addresses,
                port,
                txt_properties,
                ..
            } = *service;
            let txt = mdns_query::TxtAnswer {
                instance: fullname.clone(),
                entries: txt_properties
                    .iter()
                    .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                    .collect(),
            };
            let ips = addresses.iter().map(|a| a.to_ip_addr()).collect();
            learned(peer, mdns, &fullname, &txt, ips, port);
        }
        ServiceEvent::ServiceRemoved(_, fullname) => {
            let known = lock(&mdns.instances).remove(&fullname);
            if let Some((id, _)) = known {
                peer.discovery()
                    .table
                    .remove(&id, "it said goodbye over mDNS");
            }
        }
        _ => {}
    }
}

/// An instance seen by the browser or in a start-up answer: checks its TXT, then probes
/// it (in the background) and adds it to the table.
fn learned(
    peer: &Peer,
    mdns: &Arc<Mdns>,
    fullname: &str,
    txt: &mdns_query::TxtAnswer,
    seen_at: Vec<IpAddr>,
    port: u16,
) {
    let Some(Ok(id)) = txt.get("id").map(str::parse::<PeerId>) else {
        return mdns.note(format!("{fullname} advertises no valid peer id"));
    };
    if &id == peer.id() {
        mdns.heard_self.store(true, Ordering::Release);
        return;
    }
    let proto = txt.get("proto").and_then(|p| p.parse::<u32>().ok());
    if proto != Some(PROTOCOL_VERSION) {
        let note = format!(
            "{fullname} speaks net protocol {}, this peer {PROTOCOL_VERSION}: ignored; upgrade \
             the older side",
            proto.map_or_else(|| "?".to_owned(), |p| p.to_string())
        );
        tracing::warn!(%note, "incompatible peer on mDNS");
        return mdns.note(note);
    }
    // A peer on the other side of the shared secret is not even probed (peers before the
    // secure flag existed never had a secret).
    let secured = txt.get("secure") == Some("1");
    if secured != peer.is_secured() {
        return mdns.note(format!(
            "{fullname} {}: ignored (NET_SECRET)",
            if secured {
                "requires a shared secret, which this peer has not"
            } else {
                "has no shared secret, which this peer requires"
            }
        ));
    }
    // The id's host first: it is the address the peer itself considers its own.
    let mut ips: Vec<IpAddr> = vec![id.host()];
    ips.extend(seen_at);
    ips.retain(|ip| !ip.is_loopback() && ip.is_ipv4() == peer.addr().is_ipv4());
    ips.dedup();
    let known = lock(&mdns.instances)
        .get(fullname)
        .map(|(known, _)| known == &id);
    if known == Some(true) && peer.discovery().table.get(&id).is_some() {
        return;
    }
    lock(&mdns.instances).insert(fullname.to_owned(), (id.clone(), ips.clone()));
    mdns.resolved.fetch_add(1, Ordering::AcqRel);
    mdns.in_flight.send_modify(|n| *n += 1);
    let (peer2, mdns2) = (peer.clone(), mdns.clone());
    let task = async move {
        let timeout = peer2.config().probe_timeout;
        let mut last = String::from("no usable address");
        for ip in ips {
            match probe(&peer2, SocketAddr::new(ip, port), timeout, Discovery::Mdns).await {
                Probe::Found(info) => {
                    peer2.discovery().table.upsert(*info);
                    last.clear();
                    break;
                }
                other => last = format!("{other:?}"),
            }
        }
        if !last.is_empty() {
            mdns2.note(format!("{} did not answer a probe ({last})", id.addr()));
        }
        mdns2.in_flight.send_modify(|n| *n -= 1);
    };
    peer.tracker().spawn_on(task, peer.runtime());
}

/// Keeps the daemon's errors for the report.
pub(super) async fn watch_daemon(
    mdns: Arc<Mdns>,
    events: Receiver<DaemonEvent>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.recv_async() => match event {
                Ok(DaemonEvent::Error(e)) => mdns.note(format!("daemon error: {e}")),
                Ok(_) => {}
                Err(_) => break,
            },
        }
    }
}
