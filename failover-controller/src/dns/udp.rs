//! DNS over UDP: one socket per CPU on the same address (SO_REUSEPORT, so
//! that the kernel spreads clients over them), each served by one task that
//! receives queries, has the [`ZoneHandler`] answer them and sends the
//! answers itself.
//!
//! hickory-server's own UDP loop spawns a task per query and hands every
//! answer back to the socket's task through a channel; on the DNS benchmark
//! (docs/benchmarks-dns.md) that hand-off, its wake-ups and its allocations
//! cost more CPU than the answer. TCP stays with hickory-server.

use std::io;
use std::net::SocketAddr;

use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};
use hickory_proto::xfer::Protocol;
use hickory_proto::ProtoErrorKind;
use hickory_server::authority::MessageRequest;
use hickory_server::server::Request;
use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::fast_answer::Question;
use super::server::ZoneHandler;

/// The largest query accepted (EDNS clients rarely send more than 512).
const MAX_QUERY_LEN: usize = 4096;

/// The receive buffer asked for each socket.
const RECEIVE_BUFFER: usize = 4 << 20;

/// At most this many queries are answered before their answers are sent:
/// answers sent back to back wake a waiting client once rather than once
/// each (on loopback, the waking was a large part of a send's cost).
const BURST: usize = 32;

/// Binds `count` UDP sockets to `addr`, all with SO_REUSEPORT.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    (0..count.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
            socket.set_reuse_port(true)?;
            // Room for a burst of queries while the task answers the last
            // one (the kernel's default, about 200 KiB, dropped a few under
            // the benchmark's load); the kernel caps it at net.core.rmem_max.
            socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            UdpSocket::from_std(socket.into())
        })
        .collect()
}

/// Serves queries on `socket` until `stop` turns true (or its sender goes):
/// takes what has arrived (up to [`BURST`] queries), answers it, then sends
/// the answers back to back.
pub async fn serve(socket: UdpSocket, handler: ZoneHandler, mut stop: watch::Receiver<bool>) {
    let mut query = vec![0u8; MAX_QUERY_LEN];
    // Answers to send, and emptied buffers to encode the next ones in.
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BURST);
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(BURST);
    loop {
        let mut received = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            received = socket.recv_from(&mut query) => Some(received),
        };
        while let Some(result) = received.take() {
            match result {
                Ok((len, src)) => {
                    let mut buffer = spare.pop().unwrap_or_else(|| Vec::with_capacity(512));
                    if answer(&query[..len], src, &handler, &mut buffer) {
                        answers.push((buffer, src));
                    } else {
                        spare.push(buffer);
                    }
                }
                // An ICMP error of an earlier answer (port unreachable)
                // surfaces here on Linux; the socket itself is fine.
                Err(error) => tracing::debug!(%error, "DNS UDP receive error"),
            }
            if answers.len() < BURST {
                received = match socket.try_recv_from(&mut query) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                    other => Some(other),
                };
            }
        }
        for (mut buffer, dst) in answers.drain(..) {
            let sent = match socket.try_send_to(&buffer, dst) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.send_to(&buffer, dst).await
                }
                other => other,
            };
            if let Err(error) = sent {
                tracing::debug!(%error, "DNS UDP send error");
            }
            buffer.clear();
            spare.push(buffer);
        }
    }
}

/// Encodes the answer to one datagram into `buffer`; false when there is
/// none to send. FORMERR to what has a header but does not parse; nothing
/// to responses (no reflection) or to an unusable source.
fn answer(bytes: &[u8], src: SocketAddr, handler: &ZoneHandler, buffer: &mut Vec<u8>) -> bool {
    if src.port() == 0 || src.ip().is_unspecified() {
        return false;
    }
    if let Some(question) = Question::parse(bytes) {
        if handler.encode_fast(&question, src.ip(), buffer) {
            return true;
        }
    }
    let message = match MessageRequest::from_bytes(bytes) {
        Ok(message) => message,
        Err(error) => {
            let ProtoErrorKind::FormError { header, .. } = error.kind() else {
                return false;
            };
            if header.message_type() != MessageType::Query {
                return false;
            }
            let mut response = Header::response_from_request(header);
            response.set_response_code(ResponseCode::FormErr);
            return response.emit(&mut BinEncoder::new(buffer)).is_ok();
        }
    };
    if message.message_type() == MessageType::Response {
        return false;
    }
    handler.encode_udp_response(&Request::new(message, src, Protocol::Udp), buffer);
    true
}
