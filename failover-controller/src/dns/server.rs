//! The hickory-server request handler and the UDP/TCP listeners.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use tokio::net::{TcpListener, UdpSocket};

use super::{answer_for, DnsError, DnsView, ZoneConfig};

/// Shared, swappable view: the reconcile loop replaces it, queries read it.
pub type SharedView = Arc<RwLock<Arc<DnsView>>>;

/// Answers queries for one zone from the current view.
pub struct ZoneHandler {
    zone: Arc<ZoneConfig>,
    zone_lower: LowerName,
    service_lower: LowerName,
    view: SharedView,
}

impl ZoneHandler {
    pub fn new(zone: Arc<ZoneConfig>, view: SharedView) -> Self {
        Self {
            zone_lower: LowerName::from(zone.zone.clone()),
            service_lower: LowerName::from(zone.service_name.clone()),
            zone,
            view,
        }
    }

    fn soa(&self, serial: u32) -> Record {
        let soa = SOA::new(
            self.zone.nameservers[0].clone(),
            self.zone.hostmaster.clone(),
            serial,
            3600,
            600,
            86400,
            self.zone.ttl,
        );
        Record::from_rdata(self.zone.zone.clone(), self.zone.ttl, RData::SOA(soa))
    }

    fn ns_records(&self) -> Vec<Record> {
        self.zone
            .nameservers
            .iter()
            .map(|ns| Record::from_rdata(self.zone.zone.clone(), 3600, RData::NS(NS(ns.clone()))))
            .collect()
    }

    /// Computes (response code, answers, authority) for a query.
    fn resolve(
        &self,
        name: &LowerName,
        query_type: RecordType,
        client: IpAddr,
    ) -> Option<(ResponseCode, Vec<Record>, Vec<Record>)> {
        if !self.zone_lower.zone_of(name) {
            return None;
        }
        let view = self.view.read().map(|v| Arc::clone(&v)).unwrap_or_default();
        // Not from a view the database no longer refreshes: SERVFAIL sends
        // resolvers to another name server (ARCHITECTURE.md, "When the
        // database fails").
        if !view.is_fresh(tokio::time::Instant::now()) {
            return Some((ResponseCode::ServFail, vec![], vec![]));
        }
        let soa = self.soa(view.serial);
        let owner: Name = name.clone().into();
        if *name == self.zone_lower {
            return Some(match query_type {
                RecordType::SOA => (ResponseCode::NoError, vec![soa], vec![]),
                RecordType::NS => (ResponseCode::NoError, self.ns_records(), vec![]),
                _ => (ResponseCode::NoError, vec![], vec![soa]),
            });
        }
        if *name != self.service_lower {
            return Some((ResponseCode::NXDomain, vec![], vec![soa]));
        }
        let (region, addresses) = answer_for(&self.zone, &view, client);
        if addresses.is_empty() {
            if let Some(target) = self.zone.cnames.get(&region) {
                // A CNAME answers every query type at the name; the resolver
                // follows it to the load balancer's current addresses.
                let cname = RData::CNAME(CNAME(target.clone()));
                let record = Record::from_rdata(owner, self.zone.ttl, cname);
                return Some((ResponseCode::NoError, vec![record], vec![]));
            }
        }
        let answers: Vec<Record> = addresses
            .into_iter()
            .filter_map(|ip| match (ip, query_type) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                _ => None,
            })
            .map(|rdata| Record::from_rdata(owner.clone(), self.zone.ttl, rdata))
            .collect();
        if answers.is_empty() {
            return Some((ResponseCode::NoError, vec![], vec![soa]));
        }
        Some((ResponseCode::NoError, answers, vec![]))
    }
}

#[async_trait::async_trait]
impl RequestHandler for ZoneHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            let response = builder.error_msg(request.header(), ResponseCode::NotImp);
            return send(&mut response_handle, response).await;
        }
        let Ok(info) = request.request_info() else {
            let response = builder.error_msg(request.header(), ResponseCode::FormErr);
            return send(&mut response_handle, response).await;
        };
        let Some((code, answers, authority)) = self.resolve(
            info.query.name(),
            info.query.query_type(),
            request.src().ip(),
        ) else {
            let response = builder.error_msg(request.header(), ResponseCode::Refused);
            return send(&mut response_handle, response).await;
        };
        header.set_authoritative(code != ResponseCode::ServFail);
        header.set_recursion_available(false);
        header.set_response_code(code);
        let response = builder.build(
            header,
            answers.iter(),
            [].iter(),
            authority.iter(),
            [].iter(),
        );
        send(&mut response_handle, response).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(%error, "cannot send DNS response");
            let mut header = Header::new();
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    server: ServerFuture<ZoneHandler>,
    local_addr: SocketAddr,
}

impl DnsServer {
    /// Binds UDP and TCP on the same address (port 0 picks one port for both).
    pub async fn bind(addr: SocketAddr, handler: ZoneHandler) -> Result<Self, DnsError> {
        let bind_err = |source| DnsError::Bind { addr, source };
        // With port 0, take the TCP port first and bind UDP to the same one.
        let tcp = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = tcp.local_addr().map_err(bind_err)?;
        let udp = UdpSocket::bind(local_addr).await.map_err(bind_err)?;
        let mut server = ServerFuture::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5));
        Ok(Self { server, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::warn!(%error, "DNS server stopped with an error");
        }
    }
}
