//! Links over an in-memory transport, for tests of this layer and the ones above without
//! sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Handshaken, Inbound, Link, Transport};
use crate::wire::{self, Hello, PROTOCOL_VERSION};

fn hello(max_frame: usize) -> Hello {
    Hello {
        ticket: None,
        protocol: PROTOCOL_VERSION,
        id: None,
        group: None,
        hub: false,
        version: "test".into(),
        max_frame,
        attachments: true,
    }
}

/// Shakes hands over one side of a memory pair and starts its link.
async fn start(transport: Transport, handler: Arc<dyn Inbound>, max_in: usize) -> Arc<Link> {
    let Transport {
        read,
        write,
        remote_addr,
    } = transport;
    let mut reader = FramedRead::new(read, wire::codec(max_in));
    let mut writer = FramedWrite::new(write, wire::codec(u32::MAX as usize));
    let remote = wire::handshake(&mut reader, &mut writer, &hello(max_in), "memory")
        .await
        .unwrap();
    let handshaken = Handshaken {
        reader,
        writer: writer.into_inner(),
        remote,
        remote_addr,
        max_in,
    };
    Link::start(
        handshaken,
        handler,
        &CancellationToken::new(),
        &TaskTracker::new(),
    )
}

/// Two links joined by an in-memory transport, as if `a`'s side had called `b`'s; each
/// side's inbound calls go to its handler. Both sides accept frames up to `max_frame`.
pub(crate) async fn memory_links(
    a: Arc<dyn Inbound>,
    b: Arc<dyn Inbound>,
    max_frame: usize,
) -> (Arc<Link>, Arc<Link>) {
    let addr_a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let addr_b: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let (ta, tb) = Transport::memory_pair(addr_a, addr_b);
    tokio::join!(start(ta, a, max_frame), start(tb, b, max_frame))
}
