//! The zone's answer to one question, as an authoritative server gives it:
//! the records of the nearest serving region at the service name, SOA and NS
//! at the apex, NODATA or NXDOMAIN with the SOA for negative caching
//! (RFC 2308), one RRset for ANY (RFC 8482), REFUSED outside the zone, and
//! every owner name spelled as the client spelled the question (resolvers
//! that randomise the case of their queries, "0x20", check it).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{LowerQuery, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::{answer_for, DnsView, ZoneConfig};

/// SOA timers. No secondary transfers this zone (every replica answers from
/// the database), so they only need to be plausible.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86400;

/// NS records change only with a redeployment.
const NS_TTL: u32 = 3600;

/// The sections of a response, before EDNS and size are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: ResponseCode,
    /// AA: set on every answer from the zone's data, clear on refusals and
    /// errors.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl Reply {
    /// A response with no records and no AA (REFUSED, FORMERR, BADVERS ...).
    pub fn error(code: ResponseCode) -> Self {
        Self {
            code,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }
}

/// The zone's names prepared for matching, and the records built from them.
#[derive(Debug, Clone)]
pub struct ZoneLookup {
    config: Arc<ZoneConfig>,
    apex: LowerName,
    apex_labels: usize,
    service: LowerName,
}

impl ZoneLookup {
    pub fn new(config: Arc<ZoneConfig>) -> Self {
        Self {
            apex: LowerName::from(&config.zone),
            apex_labels: usize::from(config.zone.num_labels()),
            service: LowerName::from(&config.service_name),
            config,
        }
    }

    /// The reply to `query` from a client at `client`, with `view` serving.
    pub fn lookup(&self, view: &DnsView, query: &LowerQuery, client: IpAddr) -> Reply {
        let name = query.name();
        if query.query_class() != DNSClass::IN || !self.apex.zone_of(name) {
            return Reply::error(ResponseCode::Refused);
        }
        // Not from a view the database no longer refreshes: SERVFAIL sends
        // resolvers to another name server (ARCHITECTURE.md, staleness).
        if !view.is_fresh(tokio::time::Instant::now()) {
            return Reply::error(ResponseCode::ServFail);
        }
        // The client's spelling of the question, and of the apex within it.
        let owner = query.original().name();
        let apex = owner.trim_to(self.apex_labels);
        let query_type = query.query_type();
        let answers = if *name == self.apex {
            self.apex_records(&apex, query_type, view.serial)
        } else if *name == self.service {
            self.service_records(owner, query_type, view, client)
        } else {
            return self.negative(ResponseCode::NXDomain, apex, view.serial);
        };
        if answers.is_empty() {
            return self.negative(ResponseCode::NoError, apex, view.serial);
        }
        Reply {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
        }
    }

    /// SOA and NS at the apex; ANY gets the SOA alone (RFC 8482 4.1).
    fn apex_records(&self, apex: &Name, query_type: RecordType, serial: u32) -> Vec<Record> {
        match query_type {
            RecordType::SOA | RecordType::ANY => vec![self.soa(apex.clone(), serial)],
            RecordType::NS => self
                .config
                .nameservers
                .iter()
                .map(|ns| Record::from_rdata(apex.clone(), NS_TTL, RData::NS(NS(ns.clone()))))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The nearest serving region's addresses of the asked family, or the
    /// CNAME to its alias target. ANY gets one RRset (RFC 8482 4.1): the
    /// region's A records, else its AAAA records, else the CNAME.
    fn service_records(
        &self,
        owner: &Name,
        query_type: RecordType,
        view: &DnsView,
        client: IpAddr,
    ) -> Vec<Record> {
        let ttl = self.config.ttl;
        let (region, addresses) = answer_for(&self.config, view, client);
        if addresses.is_empty() {
            // A CNAME answers every query type at the name; the resolver
            // follows it to the load balancer's current addresses.
            return self
                .config
                .cnames
                .get(&region)
                .map(|target| {
                    Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target.clone())))
                })
                .into_iter()
                .collect();
        }
        let family = match query_type {
            RecordType::ANY if addresses.iter().any(IpAddr::is_ipv4) => RecordType::A,
            RecordType::ANY => RecordType::AAAA,
            other => other,
        };
        addresses
            .into_iter()
            .filter_map(|ip| match (ip, family) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                _ => None,
            })
            .map(|data| Record::from_rdata(owner.clone(), ttl, data))
            .collect()
    }

    /// NODATA or NXDOMAIN: the SOA in the authority section, with the TTL
    /// resolvers cache the negative answer for, min(SOA TTL, MINIMUM)
    /// (RFC 2308 3).
    fn negative(&self, code: ResponseCode, apex: Name, serial: u32) -> Reply {
        let mut soa = self.soa(apex, serial);
        if let RData::SOA(data) = soa.data() {
            let negative_ttl = soa.ttl().min(data.minimum());
            soa.set_ttl(negative_ttl);
        }
        Reply {
            code,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![soa],
        }
    }

    /// The zone's SOA. MINIMUM is the negative-caching TTL (RFC 2308 4): the
    /// record TTL, so that a name or type that appears is not hidden longer
    /// than an answer that changes is cached.
    fn soa(&self, apex: Name, serial: u32) -> Record {
        let soa = SOA::new(
            self.config.nameservers[0].clone(),
            self.config.hostmaster.clone(),
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.config.ttl,
        );
        Record::from_rdata(apex, self.config.ttl, RData::SOA(soa))
    }
}
