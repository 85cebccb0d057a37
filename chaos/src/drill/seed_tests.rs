//! Seeding against an HTTPS server on loopback that answers the first
//! attempts of every creation with 503: each account is created on a later
//! attempt, under the key of its first, instead of failing the drill.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::seed;
use crate::deployment::tls::DeploymentTls;

/// Serves `POST /v1/accounts` over TLS: the first `fail` requests of each
/// idempotency key get 503, later ones 201 with an id derived from the key;
/// returns the address and the keys seen, with their attempt counts.
async fn flaky_server(
    fail: usize,
) -> (
    std::net::SocketAddr,
    String,
    Arc<Mutex<HashMap<String, usize>>>,
) {
    flaky_server_for(fail, true).await
}

/// As [`flaky_server`], with a certificate that names the instance's
/// address too (`by_address`) or only the host name, as a real load
/// balancer's.
async fn flaky_server_for(
    fail: usize,
    by_address: bool,
) -> (
    std::net::SocketAddr,
    String,
    Arc<Mutex<HashMap<String, usize>>>,
) {
    let dir = std::env::temp_dir().join(format!("chaos-seed-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let addresses: &[std::net::SocketAddr] = if by_address { &[address] } else { &[] };
    let tls = DeploymentTls::create(&dir, "api.svc.failover.test.", addresses).unwrap();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (acceptor, counts) = (tls.acceptor.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, counts) = (acceptor.clone(), counts.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head, then the body its Content-Length announces.
                loop {
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_owned)
                            })
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let key = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("idempotency-key: ")
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                let attempt = {
                    let mut counts = counts.lock().unwrap();
                    let count = counts.entry(key.clone()).or_insert(0);
                    *count += 1;
                    *count
                };
                let response = if attempt <= fail {
                    "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    let id = uuid::Uuid::new_v4();
                    let body = format!(r#"{{"id":"{id}"}}"#);
                    format!(
                        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, tls.ca_pem, seen)
}

fn https(
    ca_pem: &str,
    names: &BTreeMap<std::net::SocketAddr, String>,
) -> crate::deployment::instances::InstanceHttps {
    crate::deployment::instances::InstanceHttps::new(names, || {
        crate::deployment::tls::client_builder(ca_pem)
            .default_headers(crate::api_key::headers("lk_test_key"))
    })
    .unwrap()
}

#[tokio::test]
async fn creations_answered_503_are_retried_under_the_same_key() {
    let (address, ca_pem, seen) = flaky_server(2).await;
    let instances = BTreeMap::from([("us-east-1".to_owned(), vec![address])]);
    let accounts = seed(&instances, &https(&ca_pem, &BTreeMap::new()), 5)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 5);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5, "one key per account: {seen:?}");
    assert!(seen.values().all(|&attempts| attempts == 3), "{seen:?}");
}

#[tokio::test]
async fn a_creation_that_keeps_failing_fails_the_seeding_and_says_so() {
    let (address, ca_pem, _) = flaky_server(usize::MAX).await;
    let instances = BTreeMap::from([("us-east-1".to_owned(), vec![address])]);
    let error = seed(&instances, &https(&ca_pem, &BTreeMap::new()), 1)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "seeding account 0: 503 Service Unavailable (attempt 5 of 5)"
    );
}

/// A real deployment's load balancers have certificates for host names:
/// the seeding asks an instance given by name by that name, at its address.
#[tokio::test]
async fn instances_given_by_host_name_are_seeded_by_it() {
    let (address, ca_pem, seen) = flaky_server_for(1, false).await;
    let instances = BTreeMap::from([("us-east-1".to_owned(), vec![address])]);
    let names = BTreeMap::from([(address, "api.svc.failover.test".to_owned())]);
    let accounts = seed(&instances, &https(&ca_pem, &names), 3).await.unwrap();
    assert_eq!(accounts.len(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
}
