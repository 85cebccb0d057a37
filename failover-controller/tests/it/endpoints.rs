//! Regions given as on AWS: health URLs (a host name, not ip:port) and a
//! Route53 alias target per region. Against moto: the alias latency records
//! are created, drained and restored by the votes, and repaired after drift;
//! the authoritative DNS answers such a region with a CNAME to its alias.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_route53::types::{AliasTarget, ResourceRecordSet, RrType};
use failover_controller::app::Application;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::udp::UdpClientStream;

use crate::helpers::{settings, test_db, wait_for, wait_ready, Health, HealthServer};
use crate::route53::{
    credentials, health_checks, raw_client, route53_toml, start_moto, upsert, with_health_checks,
    zone_with_foreign_records,
};

const ALB_ZONE: &str = "Z35SXDOTRQ7X7K";

fn alb(n: usize) -> String {
    format!("geo-r{n}-api-123456.us-east-1.elb.amazonaws.com")
}

/// One health server per region on 127.0.0.1, reached as `localhost`.
async fn url_regions() -> (Vec<HealthServer>, String) {
    let mut servers = Vec::new();
    let mut text = String::new();
    for n in 1..=3 {
        let server = HealthServer::start("127.0.0.1").await;
        text.push_str(&format!(
            "[[regions]]\nname = \"region-{n}\"\naws_region = \"{}\"\n\
             health_urls = [\"http://localhost:{}/healthz/instance\"]\n\
             alias_dns_name = \"{}\"\nalias_hosted_zone_id = \"{ALB_ZONE}\"\n\
             evaluate_target_health = true\n\n",
            ["us-east-1", "eu-west-1", "ap-southeast-1"][n - 1],
            server.addr.port(),
            alb(n),
        ));
        servers.push(server);
    }
    (servers, text)
}

/// region -> (alias dns name, zone id, evaluate target health), our records only.
async fn alias_records(
    client: &aws_sdk_route53::Client,
    zone: &str,
) -> Vec<(String, String, String, bool)> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    let mut found: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|s| *s.r#type() == RrType::A)
        .filter_map(|s| {
            let id = s.set_identifier()?.to_string();
            let target = s.alias_target()?;
            Some((
                id,
                target.dns_name().trim_end_matches('.').to_string(),
                target.hosted_zone_id().to_string(),
                target.evaluate_target_health(),
            ))
        })
        .filter(|(id, ..)| id.starts_with("region-"))
        .collect();
    found.sort();
    found
}

/// The CNAME target answered to `source` for the service name.
async fn cname_for(server: std::net::SocketAddr, source: IpAddr) -> Option<String> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_bind_addr(Some(std::net::SocketAddr::new(source, 0)))
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (mut client, background) = Client::connect(stream).await.expect("dns client");
    let bg = tokio::spawn(background);
    let response = client
        .query(
            Name::from_ascii("api.svc.failover.test.").unwrap(),
            DNSClass::IN,
            RecordType::A,
        )
        .await
        .expect("dns query");
    bg.abort();
    response.answers().iter().find_map(|r| match r.data() {
        RData::CNAME(name) => Some(name.0.to_ascii().trim_end_matches('.').to_string()),
        _ => None,
    })
}

#[tokio::test]
async fn alias_records_follow_health_urls_and_dns_answers_with_a_cname() {
    let moto = start_moto().await;
    let raw = raw_client(&moto.url).await;
    let zone = zone_with_foreign_records(&raw).await;
    let db = test_db().await;
    let (servers, regions_toml) = url_regions().await;
    let regions_toml = with_health_checks(&regions_toml, &health_checks(&raw, 3).await);
    let extra = route53_toml(&moto.url, &zone);
    // Three replicas: a drain by the votes needs two of the three
    // configured vantage points; the lease holder edits the records.
    let mut runs = Vec::new();
    let mut dns_addrs = Vec::new();
    let mut http = Vec::new();
    for n in 1..=3 {
        let app = Application::build_with(
            settings(&format!("region-{n}"), &db.url, &regions_toml, &extra),
            Some(credentials()),
        )
        .await
        .unwrap();
        dns_addrs.push(app.dns_addr().unwrap());
        http.push(format!("http://{}", app.http_addr()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        runs.push((stop, run));
    }
    let dns = dns_addrs[0];
    let all: Vec<(String, String, String, bool)> = (1..=3)
        .map(|n| (format!("region-{n}"), alb(n), ALB_ZONE.to_string(), true))
        .collect();
    wait_for(Duration::from_secs(15), || async {
        (alias_records(&raw, &zone).await == all).then_some(())
    })
    .await
    .expect("three alias latency records");
    wait_ready(&http[0]).await;
    let client2: IpAddr = "127.0.2.9".parse().unwrap();
    assert_eq!(cname_for(dns, client2).await, Some(alb(2)));

    // region-2's health URL fails: drained by the votes, its alias record
    // removed; its clients get region-1's load balancer (40 ms).
    servers[1].set(Health::Unavailable);
    let without_2: Vec<_> = all.iter().filter(|r| r.0 != "region-2").cloned().collect();
    wait_for(Duration::from_secs(15), || async {
        (alias_records(&raw, &zone).await == without_2).then_some(())
    })
    .await
    .expect("region-2's alias record removed");
    assert_eq!(cname_for(dns, client2).await, Some(alb(1)));

    // Drift: region-1's alias edited by someone; put back as configured.
    let drifted = ResourceRecordSet::builder()
        .name("api.svc.example.com.")
        .r#type(RrType::A)
        .set_identifier("region-1")
        .region("us-east-1".into())
        .alias_target(
            AliasTarget::builder()
                .dns_name("somewhere-else.us-east-1.elb.amazonaws.com")
                .hosted_zone_id(ALB_ZONE)
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    upsert(&raw, &zone, vec![drifted]).await;
    wait_for(Duration::from_secs(15), || async {
        (alias_records(&raw, &zone).await == without_2).then_some(())
    })
    .await
    .expect("region-1's alias target repaired");

    // Back after the hold-down (3 s): the alias record returns.
    servers[1].set(Health::Ok);
    wait_for(Duration::from_secs(20), || async {
        (alias_records(&raw, &zone).await == all).then_some(())
    })
    .await
    .expect("region-2's alias record restored");
    assert_eq!(cname_for(dns, client2).await, Some(alb(2)));
    for (stop, run) in runs {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}
