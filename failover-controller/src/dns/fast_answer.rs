//! The UDP fast path for the question a resolver asks most, the service
//! name's A or AAAA records: read straight from the datagram and written
//! straight into the answer, the message the general path (hickory's parser,
//! [`lookup`](super::lookup), hickory's encoder) sends, for a fraction of its
//! CPU (docs/benchmarks-dns.md). Its owner names are compression pointers to
//! the question (so they echo the client's spelling); hickory spells the
//! first one out, so these answers are 21 bytes or more shorter, never
//! longer. Anything else (another name or type,
//! no address of the asked family, a CNAME region, an answer that would not
//! fit, EDNS above version 0, an unusual header) gets `None` and takes the
//! general path. The tests check that both paths give the same message.

use std::net::IpAddr;

use super::edns::SERVER_UDP_PAYLOAD;
use super::{answer_for, DnsView, ZoneConfig};

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// A compression pointer to the question's name, at offset 12.
const POINTER_TO_QUESTION: [u8; 2] = [0xc0, 0x0c];

/// What the fast path needs of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question<'d> {
    id: [u8; 2],
    /// RD and CD, which the answer copies.
    copied_flags: u16,
    /// Name, type and class as the client sent them (its spelling).
    question: &'d [u8],
    name: &'d [u8],
    query_type: u16,
    edns: Option<Edns>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edns {
    payload: u16,
    dnssec_ok: bool,
}

impl<'d> Question<'d> {
    /// A plain query: QR and opcode 0, no TC, one question of class IN, no
    /// answer or authority records, at most one additional record which is
    /// an OPT of version 0, nothing after it.
    pub fn parse(datagram: &'d [u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes([
                *datagram.get(at)?,
                *datagram.get(at + 1)?,
            ]))
        };
        let flags = word(2)?;
        if flags & 0xfa00 != 0 || word(4)? != 1 || word(6)? != 0 || word(8)? != 0 {
            return None;
        }
        let additional = word(10)?;
        let mut at = HEADER_LEN;
        loop {
            let len = usize::from(*datagram.get(at)?);
            at += 1 + len;
            // A compression pointer or an extended label type: general path.
            if len > 63 || at - HEADER_LEN > 255 {
                return None;
            }
            if len == 0 {
                break;
            }
        }
        let name_end = at;
        let query_type = word(at)?;
        if word(at + 2)? != CLASS_IN {
            return None;
        }
        at += 4;
        let question = &datagram[HEADER_LEN..at];
        let edns = match additional {
            0 => None,
            1 => Some(read_opt(datagram, &mut at)?),
            _ => return None,
        };
        (at == datagram.len()).then_some(Self {
            id: [datagram[0], datagram[1]],
            copied_flags: flags & 0x0110,
            question,
            name: &datagram[HEADER_LEN..name_end],
            query_type,
            edns,
        })
    }
}

/// An OPT record of version 0 whose options are well formed.
fn read_opt(datagram: &[u8], at: &mut usize) -> Option<Edns> {
    let opt = datagram.get(*at..*at + 11)?;
    let &[0, type_high, type_low, payload_high, payload_low, 0, 0, do_byte, _, len_high, len_low] =
        opt
    else {
        return None;
    };
    if u16::from_be_bytes([type_high, type_low]) != TYPE_OPT {
        return None;
    }
    let end = *at + 11 + usize::from(u16::from_be_bytes([len_high, len_low]));
    let mut option = *at + 11;
    while option < end {
        let len = datagram.get(option + 2..option + 4)?;
        option += 4 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
    if option != end || end > datagram.len() {
        return None;
    }
    *at = end;
    Some(Edns {
        payload: u16::from_be_bytes([payload_high, payload_low]),
        dnssec_ok: do_byte & 0x80 != 0,
    })
}

/// The service name in wire form, lower case, to compare questions with.
pub fn wire_name(zone: &ZoneConfig) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in zone.service_name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Writes the answer to `question` into `buffer`, or returns false (and
/// leaves `buffer` alone) when the general path must answer.
pub fn encode(
    zone: &ZoneConfig,
    service_wire: &[u8],
    view: &DnsView,
    question: &Question<'_>,
    client: IpAddr,
    buffer: &mut Vec<u8>,
) -> bool {
    if !matches!(question.query_type, TYPE_A | TYPE_AAAA)
        || !question.name.eq_ignore_ascii_case(service_wire)
    {
        return false;
    }
    let (_, addresses) = answer_for(zone, view, client);
    let data_len = if question.query_type == TYPE_A { 4 } else { 16 };
    let count = addresses
        .iter()
        .filter(|ip| ip.is_ipv4() == (data_len == 4))
        .count();
    let max_len = question.edns.map_or(512, |edns| {
        usize::from(edns.payload.clamp(512, SERVER_UDP_PAYLOAD))
    });
    let opt_len = if question.edns.is_some() { 11 } else { 0 };
    let len = HEADER_LEN + question.question.len() + count * (2 + 10 + data_len) + opt_len;
    if count == 0 || len > max_len {
        return false;
    }
    buffer.reserve(len);
    buffer.extend_from_slice(&question.id);
    let flags: u16 = 0x8000 | 0x0400 | question.copied_flags;
    for word in [
        flags,
        1,
        count as u16,
        0,
        u16::from(question.edns.is_some()),
    ] {
        buffer.extend_from_slice(&word.to_be_bytes());
    }
    buffer.extend_from_slice(question.question);
    for ip in addresses {
        let data: &[u8] = match ip {
            IpAddr::V4(v4) if data_len == 4 => &v4.octets(),
            IpAddr::V6(v6) if data_len == 16 => &v6.octets(),
            _ => continue,
        };
        buffer.extend_from_slice(&POINTER_TO_QUESTION);
        buffer.extend_from_slice(&question.query_type.to_be_bytes());
        buffer.extend_from_slice(&CLASS_IN.to_be_bytes());
        buffer.extend_from_slice(&zone.ttl.to_be_bytes());
        buffer.extend_from_slice(&(data_len as u16).to_be_bytes());
        buffer.extend_from_slice(data);
    }
    if let Some(edns) = question.edns {
        buffer.push(0);
        buffer.extend_from_slice(&TYPE_OPT.to_be_bytes());
        buffer.extend_from_slice(&SERVER_UDP_PAYLOAD.to_be_bytes());
        let flags: u16 = if edns.dnssec_ok { 0x8000 } else { 0 };
        buffer.extend_from_slice(&[0, 0]);
        buffer.extend_from_slice(&flags.to_be_bytes());
        buffer.extend_from_slice(&[0, 0]);
    }
    true
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, RwLock};

    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};
    use hickory_proto::serialize::binary::BinDecodable;
    use hickory_proto::xfer::Protocol;
    use hickory_server::authority::MessageRequest;
    use hickory_server::server::Request;

    use super::*;
    use crate::dns::server::ZoneHandler;

    /// A handler whose view was just read from the database.
    fn handler() -> ZoneHandler {
        let zone = crate::dns::tests::zone();
        let mut view = DnsView::all_serving(&zone);
        view.refreshed_at = Some(tokio::time::Instant::now());
        view.max_age = std::time::Duration::from_secs(3600);
        let view = Arc::new(RwLock::new(Arc::new(view)));
        ZoneHandler::new(Arc::new(zone), view)
    }

    #[test]
    fn a_stale_view_gets_servfail_on_both_paths() {
        let zone = crate::dns::tests::zone();
        let never_read = Arc::new(RwLock::new(Arc::new(DnsView::all_serving(&zone))));
        let handler = ZoneHandler::new(Arc::new(zone), never_read);
        let src: SocketAddr = "127.0.1.9:5000".parse().unwrap();
        let datagram = query("api.svc.failover.test.", RecordType::A, None);
        assert!(
            fast(&handler, &datagram, src).is_none(),
            "the fast path declines"
        );
        let answer = Message::from_vec(&general(&handler, &datagram, src)).unwrap();
        assert_eq!(
            answer.response_code(),
            hickory_proto::op::ResponseCode::ServFail
        );
        assert!(!answer.authoritative());
    }

    /// A query as a resolver sends it: RD and CD set, EDNS with `payload`
    /// and a cookie option (as dig sends), DO as asked.
    fn query(name: &str, query_type: RecordType, edns: Option<(u16, bool, u8)>) -> Vec<u8> {
        let mut message = Message::new();
        message
            .set_id(0xbeef)
            .set_recursion_desired(true)
            .set_checking_disabled(true);
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), query_type));
        if let Some((payload, dnssec_ok, version)) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(payload)
                .set_dnssec_ok(dnssec_ok)
                .set_version(version);
            opt.options_mut()
                .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![7; 8]));
            message.set_edns(opt);
        }
        message.to_vec().unwrap()
    }

    fn general(handler: &ZoneHandler, datagram: &[u8], src: SocketAddr) -> Vec<u8> {
        let message = MessageRequest::from_bytes(datagram).unwrap();
        let mut buffer = Vec::new();
        handler.encode_udp_response(&Request::new(message, src, Protocol::Udp), &mut buffer);
        buffer
    }

    fn fast(handler: &ZoneHandler, datagram: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let question = Question::parse(datagram)?;
        let mut buffer = Vec::new();
        handler
            .encode_fast(&question, src.ip(), &mut buffer)
            .then_some(buffer)
    }

    #[test]
    fn the_fast_path_sends_the_general_paths_message() {
        let handler = handler();
        for client in ["127.0.1.9:5000", "127.0.2.9:5000", "127.0.3.9:5000"] {
            let src: SocketAddr = client.parse().unwrap();
            for name in ["api.svc.failover.test.", "aPi.SvC.failover.TEST."] {
                for edns in [
                    None,
                    Some((4096, false, 0)),
                    Some((512, true, 0)),
                    Some((1232, false, 0)),
                ] {
                    let datagram = query(name, RecordType::A, edns);
                    let fast = fast(&handler, &datagram, src).expect("fast path answers");
                    let general = general(&handler, &datagram, src);
                    // The same message (names compared with their case);
                    // the fast path's owner names point at the question,
                    // where hickory's encoder spells the first one out.
                    let decoded = |bytes: &[u8]| format!("{:?}", Message::from_vec(bytes).unwrap());
                    assert_eq!(
                        decoded(&fast),
                        decoded(&general),
                        "{client} {name} {edns:?}"
                    );
                    assert!(fast.len() < general.len());
                }
            }
        }
    }

    #[test]
    fn everything_else_takes_the_general_path() {
        let handler = handler();
        let src: SocketAddr = "127.0.1.9:5000".parse().unwrap();
        for (name, query_type, edns) in [
            // No IPv6 instances: NODATA, with the SOA.
            ("api.svc.failover.test.", RecordType::AAAA, None),
            ("api.svc.failover.test.", RecordType::ANY, None),
            ("nothing.svc.failover.test.", RecordType::A, None),
            ("svc.failover.test.", RecordType::SOA, None),
            ("api.svc.failover.test.example.", RecordType::A, None),
            // BADVERS.
            (
                "api.svc.failover.test.",
                RecordType::A,
                Some((1232, false, 1)),
            ),
        ] {
            let datagram = query(name, query_type, edns);
            assert_eq!(fast(&handler, &datagram, src), None, "{name} {query_type}");
        }
        let mut response = query("api.svc.failover.test.", RecordType::A, None);
        response[2] |= 0x80;
        assert_eq!(Question::parse(&response), None, "a response");
        let mut trailing = query("api.svc.failover.test.", RecordType::A, None);
        trailing.push(0);
        assert_eq!(Question::parse(&trailing), None, "bytes after the question");
        let truncated = query(
            "api.svc.failover.test.",
            RecordType::A,
            Some((1232, false, 0)),
        );
        assert_eq!(
            Question::parse(&truncated[..truncated.len() - 3]),
            None,
            "cut OPT"
        );
    }
}
