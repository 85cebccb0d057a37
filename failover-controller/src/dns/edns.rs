//! EDNS(0) negotiation and message size (RFC 6891, RFC 1035 4.2.1): the OPT
//! record a response carries, BADVERS for a newer EDNS version, and whether a
//! reply fits the UDP payload the client can take (else it is sent truncated,
//! so the client asks again over TCP).
//!
//! hickory-server 0.25 leaves all of this to the request handler: a handler
//! that sets no OPT gets none in its responses, and its UDP responses are
//! then cut at 4,096 bytes whatever the client advertised (512 without EDNS).

use hickory_proto::op::{message, Edns, Header, Query};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_proto::xfer::Protocol;

/// The largest UDP payload this server sends and advertises: the DNS Flag
/// Day 2020 size, which fits an IPv6 packet on any path without
/// fragmentation. A client that advertises more still gets at most this.
pub const SERVER_UDP_PAYLOAD: u16 = 1232;

/// A UDP message without EDNS is at most 512 bytes (RFC 1035 4.2.1), and no
/// EDNS client is assumed to take less (RFC 6891 6.2.5).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// The one EDNS version this server implements.
const EDNS_VERSION: u8 = 0;

/// Size of an OPT record without options: root name, type, class, TTL,
/// RDLENGTH.
const OPT_RECORD_LEN: usize = 1 + 2 + 2 + 4 + 2;

/// Fixed part of a resource record after its owner name: type, class, TTL,
/// RDLENGTH.
const RECORD_FIXED_LEN: usize = 2 + 2 + 4 + 2;

/// What a request's EDNS (or its absence) means for the response.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The OPT record of the response: present exactly when the request had
    /// one (RFC 6891 7), with the server's payload size, version 0 and the
    /// request's DO bit (RFC 3225 3).
    pub response_edns: Option<Edns>,
    /// The request asked for an EDNS version above 0: answer BADVERS.
    pub bad_version: bool,
    /// The largest response the client takes over this transport, in bytes.
    pub max_response_len: usize,
}

impl Negotiated {
    pub fn new(request_edns: Option<&Edns>, protocol: Protocol) -> Self {
        let response_edns = request_edns.map(|request| {
            let mut edns = Edns::new();
            edns.set_version(EDNS_VERSION)
                .set_max_payload(SERVER_UDP_PAYLOAD)
                .set_dnssec_ok(request.flags().dnssec_ok);
            edns
        });
        let max_response_len = match protocol {
            // A TCP message has a two-byte length: never truncated.
            Protocol::Tcp => usize::from(u16::MAX),
            _ => request_edns
                .map_or(CLASSIC_UDP_PAYLOAD, |edns| {
                    edns.max_payload()
                        .clamp(CLASSIC_UDP_PAYLOAD, SERVER_UDP_PAYLOAD)
                })
                .into(),
        };
        Self {
            response_edns,
            bad_version: request_edns.is_some_and(|edns| edns.version() > EDNS_VERSION),
            max_response_len,
        }
    }

    /// Whether a response with these sections fits `max_response_len`. A
    /// bound without name compression settles nearly every reply at no cost;
    /// only a reply that might not fit is encoded to find out.
    pub fn fits(&self, query: &Query, answers: &[Record], authority: &[Record]) -> bool {
        let opt_len = if self.response_edns.is_some() {
            OPT_RECORD_LEN
        } else {
            0
        };
        let bound = Header::len()
            + name_len_bound(query.name())
            + 4
            + answers
                .iter()
                .chain(authority)
                .map(record_len_bound)
                .sum::<usize>()
            + opt_len;
        if bound <= self.max_response_len {
            return true;
        }
        self.encoded_fits(query, answers, authority)
    }

    fn encoded_fits(&self, query: &Query, answers: &[Record], authority: &[Record]) -> bool {
        let mut buffer = Vec::with_capacity(self.max_response_len);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(self.max_response_len as u16);
        let emitted = message::emit_message_parts(
            &Header::new(),
            &mut std::iter::once(query),
            &mut answers.iter(),
            &mut authority.iter(),
            &mut std::iter::empty::<&Record>(),
            self.response_edns.as_ref(),
            &[],
            &mut encoder,
        );
        emitted.is_ok_and(|header| !header.truncated())
    }
}

/// A name's wire length without compression (label lengths, labels, root).
fn name_len_bound(name: &Name) -> usize {
    name.len() + 1
}

/// A record's wire length without compression; unknown data counts as the
/// largest possible, so that such a reply is always measured exactly.
fn record_len_bound(record: &Record) -> usize {
    let data = match record.data() {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::CNAME(target) => name_len_bound(&target.0),
        RData::NS(target) => name_len_bound(&target.0),
        RData::SOA(soa) => name_len_bound(soa.mname()) + name_len_bound(soa.rname()) + 20,
        _ => usize::from(u16::MAX),
    };
    name_len_bound(record.name()) + RECORD_FIXED_LEN + data
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RecordType;

    use super::*;

    fn edns(version: u8, payload: u16) -> Edns {
        let mut edns = Edns::new();
        edns.set_version(version).set_max_payload(payload);
        edns
    }

    #[test]
    fn payload_is_the_clients_within_512_and_the_servers_size() {
        let size = |edns: Option<&Edns>, protocol| Negotiated::new(edns, protocol).max_response_len;
        assert_eq!(size(None, Protocol::Udp), 512);
        assert_eq!(size(Some(&edns(0, 100)), Protocol::Udp), 512);
        assert_eq!(size(Some(&edns(0, 900)), Protocol::Udp), 900);
        assert_eq!(size(Some(&edns(0, 4096)), Protocol::Udp), 1232);
        assert_eq!(size(None, Protocol::Tcp), 65535);
    }

    #[test]
    fn opt_is_echoed_only_to_edns_requests_with_version_0_and_the_do_bit() {
        assert!(Negotiated::new(None, Protocol::Udp).response_edns.is_none());
        let mut request = edns(1, 4096);
        request.set_dnssec_ok(true);
        let negotiated = Negotiated::new(Some(&request), Protocol::Udp);
        assert!(negotiated.bad_version);
        let opt = negotiated.response_edns.unwrap();
        assert_eq!((opt.version(), opt.max_payload()), (0, 1232));
        assert!(opt.flags().dnssec_ok);
        assert!(!Negotiated::new(Some(&edns(0, 512)), Protocol::Udp).bad_version);
    }

    #[test]
    fn fit_matches_the_encoded_size() {
        let name = Name::from_ascii("api.svc.failover.test.").unwrap();
        let query = Query::query(name.clone(), RecordType::A);
        let answers = |count: u8| -> Vec<Record> {
            (0..count)
                .map(|i| {
                    Record::from_rdata(name.clone(), 5, RData::A(A(Ipv4Addr::new(10, 0, 0, i))))
                })
                .collect()
        };
        let classic = Negotiated::new(None, Protocol::Udp);
        // 12 + 27 (question) + n x 16 (compressed owner): 29 fit in 512, 30 do not.
        assert!(classic.fits(&query, &answers(29), &[]));
        assert!(!classic.fits(&query, &answers(30), &[]));
        let tcp = Negotiated::new(None, Protocol::Tcp);
        assert!(tcp.fits(&query, &answers(250), &[]));
    }
}
