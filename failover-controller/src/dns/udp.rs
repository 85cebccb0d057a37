//! DNS over UDP: one socket per CPU on the same address (SO_REUSEPORT, so
//! that the kernel spreads clients over them), each served by one task that
//! receives a query, has the [`ZoneHandler`] answer it and sends the answer
//! itself.
//!
//! hickory-server's own UDP loop spawns a task per query and hands every
//! answer back to the socket's task through a channel; on the DNS benchmark
//! (docs/benchmarks-dns.md) that hand-off, its wake-ups and its allocations
//! cost more CPU than the answer. TCP stays with hickory-server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Header, Message, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncoder};
use hickory_proto::xfer::Protocol;
use hickory_proto::ProtoErrorKind;
use hickory_server::authority::{MessageRequest, MessageResponse};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::server::ZoneHandler;

/// The largest query accepted (EDNS clients rarely send more than 512).
const MAX_QUERY_LEN: usize = 4096;

/// Binds `count` UDP sockets to `addr`, all with SO_REUSEPORT.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    (0..count.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            UdpSocket::from_std(socket.into())
        })
        .collect()
}

/// Serves queries on `socket` until `stop` turns true (or its sender goes).
pub async fn serve(socket: UdpSocket, handler: ZoneHandler, mut stop: watch::Receiver<bool>) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; MAX_QUERY_LEN];
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        match received {
            Ok((len, src)) => answer(&buffer[..len], src, &socket, &handler).await,
            // An ICMP error of an earlier answer (port unreachable) surfaces
            // here on Linux; the socket itself is fine.
            Err(error) => tracing::debug!(%error, "DNS UDP receive error"),
        }
    }
}

/// Answers one datagram: FORMERR to what has a header but does not parse,
/// nothing to responses (no reflection) or to an unusable source.
async fn answer(bytes: &[u8], src: SocketAddr, socket: &Arc<UdpSocket>, handler: &ZoneHandler) {
    if src.port() == 0 || src.ip().is_unspecified() {
        return;
    }
    let message = match MessageRequest::from_bytes(bytes) {
        Ok(message) => message,
        Err(error) => {
            if let ProtoErrorKind::FormError { header, .. } = error.kind() {
                if header.message_type() == MessageType::Query {
                    form_error(header, src, socket).await;
                }
            }
            return;
        }
    };
    if message.message_type() == MessageType::Response {
        return;
    }
    let request = Request::new(message, src, Protocol::Udp);
    let response = UdpResponse {
        socket: Arc::clone(socket),
        dst: src,
    };
    handler.handle_request(&request, response).await;
}

async fn form_error(request: &Header, src: SocketAddr, socket: &UdpSocket) {
    let mut header = Header::response_from_request(request);
    header.set_response_code(ResponseCode::FormErr);
    let mut message = Message::new();
    message.set_header(header);
    if let Ok(bytes) = message.to_vec() {
        let _ = socket.send_to(&bytes, src).await;
    }
}

/// Sends one answer straight from the serving task.
#[derive(Clone)]
struct UdpResponse {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponse {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> io::Result<ResponseInfo> {
        // The handler sizes every answer to the client's payload; the limit
        // here only guards against a reply that was not sized.
        let max_size = response
            .get_edns()
            .as_ref()
            .map_or(512, |edns| edns.max_payload().max(512));
        let id = response.header().id();
        let mut buffer = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_max_size(max_size);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::error!(%error, "cannot encode a DNS response");
                let mut header = Header::new();
                header.set_id(id);
                header.set_message_type(MessageType::Response);
                header.set_response_code(ResponseCode::ServFail);
                let mut message = Message::new();
                message.set_header(header);
                buffer = message.to_vec().map_err(io::Error::other)?;
                header.into()
            }
        };
        self.socket.send_to(&buffer, self.dst).await?;
        Ok(info)
    }
}
