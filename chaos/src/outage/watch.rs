//! What the outage drills watch while the load runs, beside the clients:
//! the DNS answers and readiness of each controller replica a drill cuts
//! off from the database, asked directly (not through a resolver that
//! would hide a stale answer behind another name server), and the Route53
//! records on the loopback API.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::deployment::{DeploymentInfo, SERVICE_NAME};
use crate::spec::{Drill, FaultKind};

/// How often the watchers look.
const EVERY: Duration = Duration::from_millis(250);

/// One look at a controller replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaSeen {
    pub t: f64,
    pub region: String,
    pub dns: DnsAnswer,
    /// `/readyz` answered 2xx; `None` when it did not answer at all.
    pub ready: Option<bool>,
}

/// A replica's answer to `A api.svc.failover.test.`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DnsAnswer {
    /// NOERROR with addresses: it steered the client.
    Authoritative,
    /// SERVFAIL, REFUSED, another error code, or no address: the resolver
    /// asks another name server.
    Refused { rcode: u8 },
    /// No answer within the timeout.
    Silent,
}

/// The Route53 latency records present at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordsSeen {
    pub t: f64,
    pub regions: BTreeSet<String>,
}

/// The data-plane gate of a region at one moment: its instances'
/// `/healthz/region`, what a Route53 health check probes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateSeen {
    pub t: f64,
    pub region: String,
    /// Some instance answered 2xx (`true`), all that answered said 503
    /// (`false`), or none answered (`None`: the region is down).
    pub admitted: Option<bool>,
}

/// Everything the watchers saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Watched {
    pub replicas: Vec<ReplicaSeen>,
    pub records: Vec<RecordsSeen>,
    pub gates: Vec<GateSeen>,
}

/// Watches until `stop`: the replicas that `controller-db-cut` faults
/// target, and in Route53 mode the records and the gates of the regions
/// that must drain.
pub async fn watch(
    info: DeploymentInfo,
    drill: Drill,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> Watched {
    let targets: BTreeSet<String> = drill
        .method
        .iter()
        .filter(|f| f.fault == FaultKind::ControllerDbCut)
        .map(|f| f.target.clone())
        .collect();
    let replicas: Vec<_> = info
        .regions
        .iter()
        .filter(|r| targets.contains(&r.name))
        .map(|r| {
            (
                r.name.clone(),
                r.controller_dns,
                r.controller_http,
                r.client_address,
            )
        })
        .collect();
    let gated: Vec<_> = match info.route53 {
        Some(_) => info
            .regions
            .iter()
            .filter(|r| drill.hypothesis.must_drain.contains(&r.name))
            .map(|r| (r.name.clone(), r.instances.clone()))
            .collect(),
        None => Vec::new(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .expect("a plain HTTP client builds");
    // The instances' load balancers speak HTTPS with the deployment's CA.
    let https = crate::deployment::tls::client_builder(&info.ca_pem)
        .timeout(Duration::from_millis(400))
        .build()
        .expect("an HTTPS client with the deployment's CA builds");
    let mut watched = Watched::default();
    if replicas.is_empty() && info.route53.is_none() {
        return watched;
    }
    while !stop.load(Ordering::Relaxed) {
        let looked = Instant::now();
        for (region, dns, status, client) in &replicas {
            let answer = ask(*dns, *client).await;
            let ready = match http.get(format!("http://{status}/readyz")).send().await {
                Ok(response) => Some(response.status().is_success()),
                Err(_) => None,
            };
            watched.replicas.push(ReplicaSeen {
                t: t0.elapsed().as_secs_f64(),
                region: region.clone(),
                dns: answer,
                ready,
            });
        }
        if let Some(route53) = &info.route53 {
            if let Ok(regions) =
                super::route53::record_regions(&http, &route53.api_url, &route53.zone_id).await
            {
                watched.records.push(RecordsSeen {
                    t: t0.elapsed().as_secs_f64(),
                    regions,
                });
            }
        }
        for (region, instances) in &gated {
            let mut admitted = None;
            for instance in instances {
                let url = format!("https://{instance}/healthz/region");
                if let Ok(response) = https.get(url).send().await {
                    let ok = response.status().is_success();
                    admitted = Some(admitted.unwrap_or(false) || ok);
                }
            }
            watched.gates.push(GateSeen {
                t: t0.elapsed().as_secs_f64(),
                region: region.clone(),
                admitted,
            });
        }
        tokio::time::sleep(EVERY.saturating_sub(looked.elapsed())).await;
    }
    watched
}

/// Asks `server` for the service's A records from `source` (the client
/// address of the replica's region), over UDP, once.
pub async fn ask(server: SocketAddr, source: IpAddr) -> DnsAnswer {
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(source, 0)).await else {
        return DnsAnswer::Silent;
    };
    let id: u16 = rand::random();
    if socket.send_to(&query(id), server).await.is_err() {
        return DnsAnswer::Silent;
    }
    let mut buffer = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await;
        let Ok(Ok((n, _))) = received else {
            return DnsAnswer::Silent;
        };
        if let Some(answer) = parse(&buffer[..n], id) {
            return answer;
        }
    }
}

/// A DNS query for the service name's A records.
fn query(id: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query; QDCOUNT 1, no other sections.
    packet.extend_from_slice(&[0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    for label in SERVICE_NAME.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    // QTYPE A, QCLASS IN.
    packet.extend_from_slice(&[0, 1, 0, 1]);
    packet
}

/// The answer to query `id`, `None` for a packet that is not one.
fn parse(packet: &[u8], id: u16) -> Option<DnsAnswer> {
    if packet.len() < 12 || packet[..2] != id.to_be_bytes() || packet[2] & 0x80 == 0 {
        return None;
    }
    let rcode = packet[3] & 0x0f;
    let answers = u16::from_be_bytes([packet[6], packet[7]]);
    Some(match (rcode, answers) {
        (0, n) if n > 0 => DnsAnswer::Authoritative,
        _ => DnsAnswer::Refused { rcode },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_apart_by_their_code() {
        let mut reply = query(7);
        reply[2] |= 0x80;
        assert_eq!(parse(&reply, 8), None, "another query's answer");
        assert_eq!(
            parse(&reply, 7),
            Some(DnsAnswer::Refused { rcode: 0 }),
            "no data"
        );
        reply[7] = 2;
        assert_eq!(parse(&reply, 7), Some(DnsAnswer::Authoritative));
        reply[3] |= 2;
        assert_eq!(
            parse(&reply, 7),
            Some(DnsAnswer::Refused { rcode: 2 }),
            "SERVFAIL"
        );
        assert_eq!(parse(&query(7), 7), None, "a query is no answer");
    }
}
