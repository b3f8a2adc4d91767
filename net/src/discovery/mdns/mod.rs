//! mDNS through mdns-sd: every peer advertises itself (TXT: id, group, hub, protocol) on its
//! usable interfaces and browses for the others, querying early and often at start-up; a
//! goodbye (ServiceRemoved) drops a peer. Off under loopback confinement.
//!
//! Why no loopback-only mode: mdns-sd joins the multicast group on every interface the
//! moment its daemon starts, before any interface can be disabled, and that alone sends
//! IGMP reports out of the real interfaces. A confined peer therefore runs no daemon at
//! all; the on-host scan finds the peers of its own machine.
//!
//! This file starts, advertises, says goodbye and reports; `browse.rs` turns what the
//! browser and the start-up queries hear into table entries; `query.rs` builds those
//! queries and reads their answers.

mod browse;
mod query;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, Receiver, ServiceDaemon, ServiceEvent, ServiceInfo};

use super::report::PathReport;
use super::Discovery;
use crate::addrs;
use crate::id::PeerId;
use crate::peer::Peer;
use crate::sync::lock;
use crate::wire::PROTOCOL_VERSION;

/// How long the first discovery round lets mDNS answer before reporting: the start-up
/// query goes out at once and running peers answer it by unicast within milliseconds;
/// this also covers the re-query at 150 ms, should the first packet be lost.
const SETTLE: Duration = Duration::from_millis(200);

/// How long the goodbye may take at shutdown.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most notes (errors, oddities) kept for the report.
const MAX_NOTES: usize = 8;

/// Whether mDNS runs for a peer, and if not, why.
pub(crate) enum MdnsState {
    /// Not started; the reason is the report's.
    Off(String),
    /// The daemon could not start or register.
    Failed(String),
    /// Advertising and browsing.
    Running(Arc<Mdns>),
}

/// A running mDNS advertiser and browser.
pub(crate) struct Mdns {
    /// The mdns-sd daemon (its own thread); shut down after the goodbye.
    daemon: ServiceDaemon,
    /// The service type browsed and advertised.
    service: String,
    /// Our instance's full name, for the goodbye.
    fullname: String,
    /// The interfaces advertised on, for the report.
    interfaces: Vec<String>,
    /// When browsing began, for the report and the first round's settle time.
    started: Instant,
    /// Resolved instances by full name: the peer's id and the addresses it advertised, so
    /// ServiceRemoved finds the peer and an unchanged re-resolution needs no probe.
    instances: Mutex<HashMap<String, (PeerId, Vec<IpAddr>)>>,
    /// Set when our own announcement came back: multicast works on this host.
    heard_self: AtomicBool,
    /// Other peers' instances resolved, found or not.
    resolved: AtomicUsize,
    /// Probes of resolved instances still running; the first round waits for them to be
    /// none (a watch, so the wait is a signal, not a poll).
    in_flight: tokio::sync::watch::Sender<usize>,
    /// Errors and oddities for the report (daemon errors, bad TXT, unreachable peers).
    notes: Mutex<Vec<String>>,
}

/// Starts advertising and browsing for `peer`, unless mDNS is off for it.
pub(crate) fn start(peer: &Peer) -> MdnsState {
    let config = peer.config();
    if !config.discovery.contains(Discovery::Mdns) {
        return MdnsState::Off(format!(
            "off (NET_DISCOVERY={}, or NET_MDNS=0)",
            config.discovery
        ));
    }
    if config.loopback {
        return MdnsState::Off(
            "off: NET_LOOPBACK confines this peer to loopback (an mDNS daemon would join the \
             multicast group on every interface); the on-host scan covers this machine"
                .into(),
        );
    }
    let ifaces = addrs::advertised(config);
    if ifaces.is_empty() {
        return MdnsState::Off(
            "off: this host has no usable non-loopback address to advertise".into(),
        );
    }
    match Mdns::start(peer, &ifaces) {
        Ok((mdns, events)) => {
            let mdns = Arc::new(mdns);
            let runtime = peer.runtime().clone();
            let browse = browse::browse_loop(peer.clone(), mdns.clone(), events);
            peer.tracker().spawn_on(browse, &runtime);
            let ips = ifaces.iter().map(|i| i.ip).collect();
            let queries = browse::startup_queries(peer.clone(), mdns.clone(), ips);
            peer.tracker().spawn_on(queries, &runtime);
            if let Ok(monitor) = mdns.daemon.monitor() {
                let stop = peer.shutdown_token().clone();
                let watch = browse::watch_daemon(mdns.clone(), monitor, stop);
                peer.tracker().spawn_on(watch, &runtime);
            }
            MdnsState::Running(mdns)
        }
        Err(e) => {
            tracing::warn!(error = %e, "mDNS did not start; other discovery paths still run");
            MdnsState::Failed(e)
        }
    }
}

impl Mdns {
    fn start(
        peer: &Peer,
        ifaces: &[addrs::Iface],
    ) -> Result<(Mdns, Receiver<ServiceEvent>), String> {
        let config = peer.config();
        let daemon = ServiceDaemon::new().map_err(|e| format!("the mDNS daemon: {e}"))?;
        // Loopback addresses are useless to other hosts, and a bridge's only when nothing
        // better exists (`advertised` already chose); other families than the listener's
        // would advertise addresses nobody can connect to.
        let mut off = vec![IfKind::LoopbackV4, IfKind::LoopbackV6];
        off.push(if peer.addr().is_ipv4() {
            IfKind::IPv6
        } else {
            IfKind::IPv4
        });
        let names: Vec<String> = dedup(ifaces.iter().map(|i| i.name.clone()));
        if names.iter().all(|n| !addrs::is_container_bridge(n)) {
            off.push(IfKind::Predicate(mdns_sd::IfPredicate::new(|i| {
                addrs::is_container_bridge(&i.name)
            })));
        }
        daemon
            .disable_interface(off)
            .map_err(|e| format!("choosing interfaces: {e}"))?;
        // Keep announcements that arrive before (or between) our queries: a peer starting
        // at the same moment announces before our browser exists, and mdns-sd would drop
        // that announcement, leaving us to wait for its next one a second later.
        daemon
            .accept_unsolicited(true)
            .map_err(|e| format!("accepting announcements: {e}"))?;

        // Browse before advertising, so the browser exists when the others answer.
        let events = daemon
            .browse(&config.mdns_service)
            .map_err(|e| format!("browsing {}: {e}", config.mdns_service))?;

        let first = ifaces[0].ip;
        let port = peer.addr().port();
        let instance = format!("net-{}-{port}", first.to_string().replace([':', '.'], "-"));
        let host_name = format!("{instance}.local.");
        let ips: Vec<IpAddr> = ifaces.iter().map(|i| i.ip).collect();
        let txt: HashMap<String, String> = [
            ("id", peer.id().to_string()),
            ("group", config.group.clone().unwrap_or_default()),
            ("hub", if config.hub { "1" } else { "0" }.to_owned()),
            ("proto", PROTOCOL_VERSION.to_string()),
            ("version", crate::config::VERSION.to_owned()),
            // Whether it has a shared secret: peers on the other side of it need not
            // connect to find out. (Nothing else is said: no functions, no user.)
            (
                "secure",
                if peer.is_secured() { "1" } else { "0" }.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut info = ServiceInfo::new(
            &config.mdns_service,
            &instance,
            &host_name,
            &ips[..],
            port,
            txt,
        )
        .map_err(|e| format!("building the advertisement: {e}"))?;
        // The instance name holds our address and port, unique on the link by
        // construction, so the RFC 6762 name probe (~750 ms of silence) buys nothing.
        info.set_requires_probe(false);
        let named: Vec<IfKind> = names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| IfKind::Name(n.clone()))
            .collect();
        if !named.is_empty() {
            info.set_interfaces(named);
        }
        let fullname = info.get_fullname().to_owned();
        // A client only browses: it serves nothing others should find.
        if !config.client {
            daemon
                .register(info)
                .map_err(|e| format!("advertising {fullname}: {e}"))?;
            tracing::debug!(%fullname, ?ips, "mDNS advertising");
        }
        let mdns = Mdns {
            daemon,
            service: config.mdns_service.clone(),
            fullname,
            interfaces: names,
            started: Instant::now(),
            instances: Mutex::new(HashMap::new()),
            heard_self: AtomicBool::new(false),
            resolved: AtomicUsize::new(0),
            in_flight: tokio::sync::watch::Sender::new(0),
            notes: Mutex::new(Vec::new()),
        };
        Ok((mdns, events))
    }

    fn note(&self, note: String) {
        tracing::debug!(%note, "mDNS");
        let mut notes = lock(&self.notes);
        if notes.len() < MAX_NOTES && !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// Says goodbye (the others see ServiceRemoved) and stops the daemon.
    pub(crate) async fn stop(&self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, done.recv_async()).await;
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, done.recv_async()).await;
        }
    }

    /// Waits until the browser has had its settle time and the probes of resolved
    /// instances are done (bounded), then reports.
    pub(crate) async fn settle(&self, peer: &Peer) -> PathReport {
        let until = self.started + SETTLE;
        tokio::time::sleep_until(until.into()).await;
        let bound = peer.config().probe_timeout + Duration::from_millis(100);
        let mut in_flight = self.in_flight.subscribe();
        let _ = tokio::time::timeout(bound, in_flight.wait_for(|n| *n == 0)).await;
        self.report(peer)
    }

    fn report(&self, peer: &Peer) -> PathReport {
        let found = peer
            .discovery()
            .table
            .snapshot()
            .iter()
            .filter(|p| lock(&self.instances).values().any(|(id, _)| *id == p.id))
            .count();
        let waited = self.started.elapsed();
        let on = format!(
            "{} on {} for {:.1} s",
            self.service,
            self.interfaces.join(", "),
            waited.as_secs_f64()
        );
        let mut detail = if found > 0 {
            format!("browsing {on}: {found} peer(s) advertised")
        } else if self.resolved.load(Ordering::Acquire) > 0 {
            format!("browsing {on}: peers answered but none could be reached")
        } else if self.heard_self.load(Ordering::Acquire) {
            format!(
                "browsing {on}: our own advertisement is visible here, but no other peer \
                 answered; multicast may not cross this network (a firewall dropping UDP \
                 5353, a switch or Wi-Fi without multicast), or the others use another \
                 NET_MDNS_SERVICE or have mDNS off; NET_PEERS reaches them regardless"
            )
        } else {
            format!(
                "browsing {on}: not even our own advertisement came back, so multicast looks \
                 blocked on this host (a firewall dropping UDP 5353?); use NET_PEERS or the \
                 scan"
            )
        };
        let notes = lock(&self.notes);
        if !notes.is_empty() {
            detail.push_str(&format!(" [{}]", notes.join("; ")));
        }
        PathReport::ran(Discovery::Mdns, found, detail)
    }
}

fn dedup(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}
