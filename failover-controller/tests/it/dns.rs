//! Authoritative DNS with a real DNS client: clients of different regions,
//! before and after a drain; SOA, NS, NXDOMAIN, REFUSED, and TCP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failover_controller::app::Application;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;
use serde_json::json;

use crate::helpers::{
    accepted_drain, resolve_a, settings, start_peers, test_db, wait_all_seen_up, wait_for,
    wait_ready, Regions,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn region_ips(regions: &Regions, index: usize) -> Vec<IpAddr> {
    regions.servers[index].iter().map(|s| s.addr.ip()).collect()
}

#[tokio::test]
async fn clients_get_their_nearest_serving_region() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let app = Application::build(settings("region-1", &db.url, &regions.toml(), ""))
        .await
        .unwrap();
    let dns = app.dns_addr().unwrap();
    let base = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    wait_ready(&base).await;
    let name = "api.svc.failover.test.";
    for (client, region) in [("127.0.1.9", 0), ("127.0.2.9", 1), ("127.0.3.9", 2)] {
        let (code, ips) = resolve_a(dns, ip(client), name).await;
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(ips, region_ips(&regions, region), "client {client}");
    }
    let (code, ips) = resolve_a(dns, ip("127.0.2.9"), "nothing.svc.failover.test.").await;
    assert_eq!((code, ips.len()), (ResponseCode::NXDomain, 0));
    let (code, _) = resolve_a(dns, ip("127.0.2.9"), "example.org.").await;
    assert_eq!(code, ResponseCode::Refused);

    // Drain region-2: its clients move to region-1 (40 ms) rather than region-3 (60 ms).
    let peers = start_peers(&db.url, &regions.toml(), |_| {}).await;
    wait_all_seen_up(&base).await;
    let body = json!({"kind": "drain", "region": "region-2", "reason": "dns test", "actor": "tester", "ttl_seconds": 60});
    accepted_drain(&base, &body)
        .await
        .expect("the drain accepted");
    let moved = wait_for(Duration::from_secs(10), || async {
        let (_, ips) = resolve_a(dns, ip("127.0.2.9"), name).await;
        (ips == region_ips(&regions, 0)).then_some(())
    })
    .await;
    assert!(
        moved.is_some(),
        "region-2 clients were not moved to region-1"
    );
    let (_, ips) = resolve_a(dns, ip("127.0.3.9"), name).await;
    assert_eq!(
        ips,
        region_ips(&regions, 2),
        "region-3 clients must not move"
    );

    // SOA and NS over TCP.
    let (stream, sender) = TcpClientStream::new(
        dns,
        None,
        Some(Duration::from_secs(2)),
        TokioRuntimeProvider::default(),
    );
    let (mut client, background) = Client::new(stream, sender, None).await.unwrap();
    let bg = tokio::spawn(background);
    let zone = Name::from_ascii("svc.failover.test.").unwrap();
    let soa = client
        .query(zone.clone(), DNSClass::IN, RecordType::SOA)
        .await
        .unwrap();
    assert!(soa.header().authoritative());
    match soa.answers()[0].data() {
        RData::SOA(soa) => {
            assert_eq!(soa.mname().to_ascii(), "ns1.svc.failover.test.");
            assert!(soa.serial() > 1, "serial follows the drain flags");
        }
        other => panic!("not an SOA: {other:?}"),
    }
    let ns = client
        .query(zone, DNSClass::IN, RecordType::NS)
        .await
        .unwrap();
    assert_eq!(ns.answers().len(), 1);
    let a = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, RecordType::A)
        .await
        .unwrap();
    assert_eq!(a.answers().len(), 2, "A over TCP");
    bg.abort();
    let _: SocketAddr = dns;
    for peer in peers {
        peer.stop().await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

/// A client whose address matches no `client_subnets` prefix gets the same
/// answer from every replica (the first configured region, or the nearest
/// serving one to it), never each replica's own region; also while that
/// region is drained, and after it returns.
#[tokio::test]
async fn every_replica_gives_an_unknown_client_the_same_answer() {
    let db = test_db().await;
    let regions = Regions::start(3).await;
    let mut replicas = Vec::new();
    for region in ["region-1", "region-2", "region-3"] {
        let app = Application::build(settings(region, &db.url, &regions.toml(), ""))
            .await
            .unwrap();
        let dns = app.dns_addr().unwrap();
        let base = format!("http://{}", app.http_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        replicas.push((dns, base, stop, run));
    }
    let name = "api.svc.failover.test.";
    let unknown = ip("127.0.9.9");
    let answers = |want: Vec<IpAddr>| {
        let servers: Vec<SocketAddr> = replicas.iter().map(|r| r.0).collect();
        async move {
            wait_for(Duration::from_secs(15), || {
                let (servers, want) = (servers.clone(), want.clone());
                async move {
                    let mut seen = Vec::new();
                    for server in servers {
                        let (code, ips) = resolve_a(server, unknown, name).await;
                        seen.push((code, ips));
                    }
                    seen.iter()
                        .all(|(code, ips)| *code == ResponseCode::NoError && *ips == want)
                        .then_some(())
                }
            })
            .await
        }
    };
    answers(region_ips(&regions, 0))
        .await
        .expect("every replica answers the unknown client with region-1");

    // The default region drained: everyone moves it to region-1's nearest
    // (region-2, 40 ms), and back when the drain ends.
    let base = replicas[0].1.clone();
    wait_all_seen_up(&base).await;
    let body = json!({"kind": "drain", "region": "region-1", "reason": "dns test", "actor": "tester", "ttl_seconds": 60});
    let response = accepted_drain(&base, &body)
        .await
        .expect("the drain accepted");
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    answers(region_ips(&regions, 1))
        .await
        .expect("every replica answers the unknown client with region-2");
    let response = reqwest::Client::new()
        .delete(format!("{base}/v1/admin/overrides/{id}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    answers(region_ips(&regions, 0))
        .await
        .expect("region-1 back for the unknown client on every replica");
    for (_, _, stop, run) in replicas {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}
