//! Against an HTTPS server on loopback whose certificate names a host and
//! no address, as a real load balancer's does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::InstanceHttps;
use crate::deployment::tls::{client_builder, DeploymentTls};

/// Answers every request 200 with the `Host` it was sent, over TLS with a
/// certificate for `name` only.
pub(crate) async fn named_server(name: &str) -> (SocketAddr, String) {
    let dir = std::env::temp_dir().join(format!("chaos-named-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = DeploymentTls::create(&dir, name, &[]).unwrap();
    let acceptor = tls.acceptor.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buffer[..n]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let host = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("host: ")
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{host}",
                    host.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, tls.ca_pem)
}

#[tokio::test]
async fn an_instance_given_by_name_is_asked_by_it_at_its_address() {
    let (address, ca_pem) = named_server("lb.eu-west-1.drill.test.").await;
    let names = BTreeMap::from([(address, "lb.eu-west-1.drill.test".to_owned())]);
    let https = InstanceHttps::new(&names, || client_builder(&ca_pem)).unwrap();
    let response = https.get(address, "/readyz").send().await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.text().await.unwrap(),
        format!("lb.eu-west-1.drill.test:{}", address.port())
    );

    // The same instance by address: its certificate names no address.
    let by_address = InstanceHttps::new(&BTreeMap::new(), || client_builder(&ca_pem)).unwrap();
    let error = by_address.get(address, "/readyz").send().await.unwrap_err();
    assert!(
        error.is_connect() || error.to_string().contains("error sending request"),
        "{error}"
    );
}
