//! The hickory-server request handler and the listeners: the protocol
//! around [`ZoneLookup`]'s answer (opcode, EDNS, size, sending).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::authority::{MessageResponse, MessageResponseBuilder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::edns::Negotiated;
use super::fast_answer::{self, Question};
use super::lookup::{Reply, ZoneLookup};
use super::{udp, DnsError, DnsView, ZoneConfig};

/// Shared, swappable view: the reconcile loop replaces it, queries read it.
pub type SharedView = Arc<RwLock<Arc<DnsView>>>;

/// Answers queries for one zone from the current view (cloned for each
/// UDP socket and for TCP; the clones share everything).
#[derive(Clone)]
pub struct ZoneHandler {
    zone: Arc<ZoneConfig>,
    lookup: Arc<ZoneLookup>,
    /// The service name in wire form, for the UDP fast path.
    service_wire: Arc<[u8]>,
    view: SharedView,
}

impl ZoneHandler {
    pub fn new(zone: Arc<ZoneConfig>, view: SharedView) -> Self {
        Self {
            lookup: Arc::new(ZoneLookup::new(Arc::clone(&zone))),
            service_wire: fast_answer::wire_name(&zone).into(),
            zone,
            view,
        }
    }

    /// The view every answer comes from, on every path.
    fn current_view(&self) -> Arc<DnsView> {
        self.view.read().map(|v| Arc::clone(&v)).unwrap_or_default()
    }

    /// Writes the answer to `question` into `buffer` through the UDP fast
    /// path, or returns false when the general path must answer.
    pub fn encode_fast(
        &self,
        question: &Question<'_>,
        client: IpAddr,
        buffer: &mut Vec<u8>,
    ) -> bool {
        let view = self.current_view();
        // A stale view goes to the general path, which answers SERVFAIL.
        if !view.is_fresh(tokio::time::Instant::now()) {
            return false;
        }
        fast_answer::encode(
            &self.zone,
            &self.service_wire,
            &view,
            question,
            client,
            buffer,
        )
    }

    /// The sections of the response to `request`, checks first.
    fn reply(&self, request: &Request, negotiated: &Negotiated) -> Reply {
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            return Reply::error(ResponseCode::NotImp);
        }
        if negotiated.bad_version {
            return Reply::error(ResponseCode::BADVERS);
        }
        let view = self.current_view();
        let Ok(info) = request.request_info() else {
            return Reply::error(ResponseCode::FormErr);
        };
        self.lookup.lookup(&view, info.query, request.src().ip())
    }
}

/// The sections of a response as hickory-server's `MessageResponse` takes them.
type Section<'a> = std::slice::Iter<'a, Record>;
type Response<'q, 'a> = MessageResponse<'q, 'a, Section<'a>, Section<'a>, Section<'a>, Section<'a>>;

impl ZoneHandler {
    /// Encodes the response to a UDP `request` into `buffer`, for the
    /// caller to send: no response handler, no task, no allocation of its
    /// own ([`udp`] serves with it).
    pub fn encode_udp_response(&self, request: &Request, buffer: &mut Vec<u8>) -> ResponseInfo {
        let negotiated = Negotiated::new(request.edns(), request.protocol());
        let reply = self.reply(request, &negotiated);
        let mut encoder = BinEncoder::new(buffer);
        encoder.set_max_size(u16::try_from(negotiated.max_response_len).unwrap_or(u16::MAX));
        match response(request, negotiated, &reply).destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::error!(%error, "cannot encode a DNS response");
                buffer.clear();
                let mut header = Header::response_from_request(request.header());
                header.set_response_code(ResponseCode::ServFail);
                let _ = header.emit(&mut BinEncoder::new(buffer));
                header.into()
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for ZoneHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let negotiated = Negotiated::new(request.edns(), request.protocol());
        let reply = self.reply(request, &negotiated);
        send(&mut response_handle, response(request, negotiated, &reply)).await
    }
}

/// The response message: header, the reply's sections and the OPT. An
/// answer that does not fit the client's UDP payload goes out without
/// records and with TC set, so that the client asks again over TCP
/// (RFC 2181 9); never a partial RRset.
fn response<'q, 'a>(
    request: &'q Request,
    negotiated: Negotiated,
    reply: &'a Reply,
) -> Response<'q, 'a> {
    let mut header = Header::response_from_request(request.header());
    header.set_response_code(reply.code);
    header.set_authoritative(reply.authoritative);
    let fits = match request.queries().first() {
        Some(query) => negotiated.fits(query.original(), &reply.answers, &reply.authority),
        None => true,
    };
    header.set_truncated(!fits);
    let (answers, authority): (&[Record], &[Record]) = if fits {
        (&reply.answers, &reply.authority)
    } else {
        (&[], &[])
    };
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = negotiated.response_edns {
        builder.edns(edns);
    }
    builder.build(
        header,
        answers.iter(),
        [].iter(),
        authority.iter(),
        [].iter(),
    )
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: MessageResponse<
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

/// A running DNS server: TCP through hickory-server, UDP through
/// [`udp`](super::udp), one socket and task per CPU.
pub struct DnsServer {
    tcp: ServerFuture<ZoneHandler>,
    udp: JoinSet<()>,
    stop_udp: watch::Sender<bool>,
    local_addr: SocketAddr,
}

impl DnsServer {
    /// Binds UDP and TCP on the same address (port 0 picks one port for both).
    pub async fn bind(addr: SocketAddr, handler: ZoneHandler) -> Result<Self, DnsError> {
        let bind_err = |source| DnsError::Bind { addr, source };
        // With port 0, take the TCP port first and bind UDP to the same one.
        let tcp_listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = tcp_listener.local_addr().map_err(bind_err)?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let sockets = udp::bind(local_addr, cpus).map_err(bind_err)?;
        let (stop_udp, stopped) = watch::channel(false);
        let mut udp = JoinSet::new();
        for socket in sockets {
            udp.spawn(udp::serve(socket, handler.clone(), stopped.clone()));
        }
        let mut tcp = ServerFuture::new(handler);
        tcp.register_listener(tcp_listener, Duration::from_secs(5));
        Ok(Self {
            tcp,
            udp,
            stop_udp,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        let _ = self.stop_udp.send(true);
        while self.udp.join_next().await.is_some() {}
        if let Err(error) = self.tcp.shutdown_gracefully().await {
            tracing::warn!(%error, "DNS server stopped with an error");
        }
    }
}
