//! The start-up mDNS queries, sent as RFC 6762 §6.7 "legacy unicast" queries from a port
//! of our own, and the parsing of their answers (just enough DNS to read TXT records).
//!
//! Why not only mdns-sd's browser: its queries are multicast, and a responder may not
//! multicast a record again within a second of announcing it (RFC 6762 §6), so a peer
//! started just after another one hears nothing until that one's second announcement,
//! about 1.1 s later (measured). A query from a port other than 5353 is answered at once
//! by unicast, which that rate limit, the response delay and known-answer suppression do
//! not apply to. mdns-sd's browser still runs for announcements and goodbyes.

/// The mDNS multicast group and port.
pub(crate) const GROUP: std::net::SocketAddr = std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(224, 0, 0, 251), 5353),
);

const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;

/// A PTR query for `service` (`_name._tcp.local.`) with message id `id`.
pub(crate) fn build_query(service: &str, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a standard query), one question, no records.
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in service.trim_end_matches('.').split('.') {
        // Service labels are checked by `Config::validate` to be short ASCII.
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&TYPE_PTR.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// One instance's TXT record from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxtAnswer {
    /// The instance's full name, e.g. `net-10-0-0-5-3010._netpeer._tcp.local.`.
    pub instance: String,
    /// Its `key=value` strings.
    pub entries: Vec<(String, String)>,
}

impl TxtAnswer {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// The TXT records of instances of `service` in a DNS message; anything malformed is
/// skipped (this reads packets from the network).
pub(crate) fn parse_txt(packet: &[u8], service: &str) -> Vec<TxtAnswer> {
    let mut out = Vec::new();
    let Some(header) = packet.get(..12) else {
        return out;
    };
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = 12;
    for _ in 0..questions {
        let Some((_, next)) = read_name(packet, pos) else {
            return out;
        };
        pos = next + 4;
    }
    let suffix = format!(".{}", service.trim_end_matches('.').to_ascii_lowercase());
    for _ in 0..records {
        let Some((name, next)) = read_name(packet, pos) else {
            return out;
        };
        let Some(fixed) = packet.get(next..next + 10) else {
            return out;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = next + 10;
        let Some(rdata) = packet.get(start..start + len) else {
            return out;
        };
        pos = start + len;
        if rtype == TYPE_TXT && name.to_ascii_lowercase().ends_with(&suffix) {
            out.push(TxtAnswer {
                instance: format!("{name}."),
                entries: txt_entries(rdata),
            });
        }
    }
    out
}

/// A TXT record's rdata: length-prefixed `key=value` strings.
fn txt_entries(mut rdata: &[u8]) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let Some(text) = rest.get(..usize::from(len)) else {
            break;
        };
        let text = String::from_utf8_lossy(text);
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        entries.push((k.to_owned(), v.to_owned()));
        rdata = &rest[usize::from(len)..];
    }
    entries
}

/// Reads a (possibly compressed) name at `pos`: the dotted name without the final dot,
/// and where the record continues.
fn read_name(packet: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut resume = None;
    // Each pointer must go backwards, and a name has at most 128 labels: no loops.
    for _ in 0..128 {
        let len = *packet.get(pos)?;
        match len {
            0 => return Some((labels.join("."), resume.unwrap_or(pos + 1))),
            l if l & 0xC0 == 0xC0 => {
                let target = usize::from(u16::from_be_bytes([l & 0x3F, *packet.get(pos + 1)?]));
                if target >= pos {
                    return None;
                }
                resume.get_or_insert(pos + 2);
                pos = target;
            }
            l if l & 0xC0 == 0 => {
                let label = packet.get(pos + 1..pos + 1 + usize::from(l))?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                pos += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as a responder builds it: PTR with the instance name, then a TXT record
    /// whose owner name is compressed to point at the PTR's rdata.
    fn answer() -> Vec<u8> {
        let mut p = vec![0, 7, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        // PTR: _netpeer._tcp.local -> inst._netpeer._tcp.local
        let service_at = p.len();
        for l in ["_netpeer", "_tcp", "local"] {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 10]);
        let rdata = [&[4u8][..], b"inst", &[0xC0, service_at as u8]].concat();
        p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        let instance_at = p.len();
        p.extend_from_slice(&rdata);
        // TXT, owner name = pointer to the instance name in the PTR rdata.
        p.extend_from_slice(&[0xC0, instance_at as u8]);
        p.extend_from_slice(&[0, 16, 0x80, 1, 0, 0, 0, 10]);
        let txt = [&[7u8][..], b"id=abcd", &[7], b"proto=1", &[3], b"hub"].concat();
        p.extend_from_slice(&(txt.len() as u16).to_be_bytes());
        p.extend_from_slice(&txt);
        p
    }

    #[test]
    fn reads_txt_through_compressed_names() {
        let found = parse_txt(&answer(), "_netpeer._tcp.local.");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].instance, "inst._netpeer._tcp.local.");
        assert_eq!(found[0].get("id"), Some("abcd"));
        assert_eq!(found[0].get("PROTO"), Some("1"));
        assert_eq!(found[0].get("hub"), Some(""));
        assert!(parse_txt(&answer(), "_other._tcp.local.").is_empty());
    }

    #[test]
    fn garbage_and_truncation_yield_nothing() {
        let full = answer();
        for cut in 0..full.len() {
            // Must not panic; a cut packet has at most the complete records.
            let _ = parse_txt(&full[..cut], "_netpeer._tcp.local.");
        }
        let mut looped = full.clone();
        // A pointer to itself.
        let at = looped.len() - 20;
        looped[at] = 0xC0;
        looped[at + 1] = at as u8;
        let _ = parse_txt(&looped, "_netpeer._tcp.local.");
        assert!(parse_txt(b"\xff\xff", "_netpeer._tcp.local.").is_empty());
    }

    proptest::proptest! {
        #![proptest_config(crate::wire::fuzz::config(256))]

        /// Any packet, and answers with bytes changed or cut anywhere, are read without
        /// panicking (`scripts/fuzz` runs this longer).
        #[test]
        fn any_packet_is_read_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..4),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let _ = parse_txt(&bytes, "_netpeer._tcp.local.");
            let mut packet = answer();
            for (at, byte) in flips {
                let at = at % packet.len();
                packet[at] = byte;
            }
            packet.truncate(cut % (packet.len() + 1));
            for found in parse_txt(&packet, "_netpeer._tcp.local.") {
                proptest::prop_assert!(found.instance.len() < 600);
            }
        }
    }

    #[test]
    fn query_names_the_service() {
        let q = build_query("_netpeer._tcp.local.", 9);
        assert_eq!(&q[..2], &[0, 9]);
        assert_eq!(&q[q.len() - 4..], &[0, 12, 0, 1]);
        assert_eq!(read_name(&q, 12).unwrap().0, "_netpeer._tcp.local");
    }
}
